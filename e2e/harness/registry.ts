/**
 * The harness' link to the test registry and the test images (both built by e2e/registry and
 * e2e/images). One registry serves a whole e2e run: e2e/test-all.sh starts it through
 * with-registry.js and passes it down in CORRAL_E2E_REGISTRY_* variables; a harness started
 * without them (one test file run by hand) starts its own and stops it with itself.
 *
 * Images are built into <repo>/.tools/images (or $CORRAL_E2E_IMAGES); e2e/images/build.js keeps
 * its own cache, so a build with nothing changed takes well under a second.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, DIST } from './paths.js';
import { runOk } from './exec.js';

/** A running registry, as e2e/registry describes it. */
export interface RegistryHandle {
  /** Base URL, e.g. "http://127.0.0.1:5000". */
  url: string;
  /** host:port, as it appears in image references. */
  host: string;
  /** CA certificate (PEM file) when the registry speaks TLS with a generated CA. */
  caFile?: string;
  stop(): Promise<void>;
}

/** Upstream registries whose names critest and the tests use; the mirrors send them home. */
export const MIRRORED_HOSTS = ['registry.k8s.io', 'k8s.gcr.io', 'gcr.io', 'docker.io', 'quay.io', 'public.ecr.aws'];

export const ENV_URL = 'CORRAL_E2E_REGISTRY_URL';
export const ENV_HOST = 'CORRAL_E2E_REGISTRY_HOST';
export const ENV_CA = 'CORRAL_E2E_REGISTRY_CA';

/** The registry of this e2e run, if with-registry.js (or the caller) announced one. */
export function sharedRegistry(): RegistryHandle | undefined {
  const url = process.env[ENV_URL];
  if (!url) return undefined;
  return {
    url,
    host: process.env[ENV_HOST] || new URL(url).host,
    caFile: process.env[ENV_CA] || undefined,
    stop: async () => {},
  };
}

export function registryEnv(reg: RegistryHandle): Record<string, string> {
  return { [ENV_URL]: reg.url, [ENV_HOST]: reg.host, ...(reg.caFile ? { [ENV_CA]: reg.caFile } : {}) };
}

interface RegistryModule {
  startRegistry(opts: { variant: string }): Promise<RegistryHandle>;
  pushImages(reg: RegistryHandle, imagesDir: string): Promise<unknown>;
  MIRRORED_HOSTS?: string[];
}

/** e2e/registry, loaded only when a harness wants a registry (foundation tests do not). */
export async function registryModule(): Promise<RegistryModule> {
  const file = join(DIST, 'e2e', 'registry', 'registry.js');
  if (!existsSync(file)) throw new Error(`the test registry module is missing: ${file} (npm run build)`);
  return (await import(file)) as RegistryModule;
}

/** The upstream hosts to mirror: e2e/registry's list when it has one, else ours. */
export async function mirroredHosts(): Promise<string[]> {
  try {
    const hosts = (await registryModule()).MIRRORED_HOSTS;
    return [...new Set([...(hosts ?? []), ...MIRRORED_HOSTS])];
  } catch {
    return MIRRORED_HOSTS;
  }
}

/** Builds the test images into <repo>/.tools/images (the builder skips what is up to date). */
export async function ensureImages(): Promise<string> {
  const dir = process.env.CORRAL_E2E_IMAGES || join(REPO, '.tools', 'images');
  const builder = join(DIST, 'e2e', 'images', 'build.js');
  if (!existsSync(builder)) throw new Error(`the test image builder is missing: ${builder} (npm run build)`);
  mkdirSync(dir, { recursive: true });
  await runOk(process.execPath, [builder, dir, '--quiet'], { timeoutMs: 15 * 60_000 });
  return dir;
}

/** Starts a registry of the given variant and pushes every test image into it. */
export async function startRegistryWithImages(variant = 'plain'): Promise<RegistryHandle> {
  const images = await ensureImages();
  const mod = await registryModule();
  const reg = await mod.startRegistry({ variant });
  try {
    await mod.pushImages(reg, images);
  } catch (e) {
    await reg.stop();
    throw e;
  }
  return reg;
}
