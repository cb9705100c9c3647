/**
 * The record of built test images (OUTDIR/images.json) and helpers to look images up.
 *
 *   const m = await loadImages(outDir);               // throws if the build has not run
 *   const img = findImage(m, 'critest-busybox');       // by name, or by any ref:
 *   findImage(m, 'registry.k8s.io/e2e-test-images/busybox:1.29-2');
 *   localName(ref) -> 'registry.k8s.io/e2e-test-images/busybox:1.29-2': repository:tag as pushed to
 *                     the local registry, which is also the fully qualified name clients ask for
 *
 * All images live in ONE OCI layout, OUTDIR/oci (blobs are shared); each image's top-level
 * descriptor is in OUTDIR/oci/index.json with org.opencontainers.image.ref.name = image name,
 * so `skopeo copy oci:OUTDIR/oci:<name> ...` and umoci work on it too.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

export type ImageCategory = 'critest' | 'node-e2e' | 'general' | 'exerciser' | 'hostile' | 'bench';

/**
 * Where an image is pushed. With a host, the local registry repository is "<host>/<repo>" so a
 * mirror with a namespace (http://127.0.0.1:PORT/<host>) serves the upstream name; without one
 * it is a short local name such as corral/busybox.
 */
export interface ImageRef { host?: string; repo: string; tag: string }

/** What unpacking an image must produce (exercisers) or must never cause (hostile images). */
export interface Expectations {
  /** Paths (inside the rootfs) that must exist after all layers are applied. */
  present?: string[];
  /** Paths that must not exist (whited out, opaque-dir'd). */
  absent?: string[];
  /** Exact file contents after all layers. */
  content?: Record<string, string>;
  /** Paths inside the rootfs and the octal mode (with setuid etc.) they must have. */
  modes?: Record<string, number>;
  /** Groups of paths that must be the same inode (hard links). */
  hardlinks?: string[][];
  /** xattrs (hex values) files must carry. */
  xattrs?: Record<string, Record<string, string>>;
  /** Host paths (absolute) a hostile image tries to create or modify; they must stay untouched. */
  hostPaths?: string[];
  /** True when a correct client must refuse the image (pull or unpack fails). */
  mustFail?: boolean;
}

export interface BuiltImage {
  /** Unique name; also the ref.name of the image in OUTDIR/oci/index.json. */
  name: string;
  category: ImageCategory;
  purpose: string;
  refs: ImageRef[];
  /** Top-level descriptor: a manifest, or an index / manifest list for multi-platform images. */
  digest: string;
  mediaType: string;
  size: number;
  /** Config digest of the image (of the amd64 image for an index) = the image id. */
  configDigest?: string;
  layerMediaTypes: string[];
  /** e.g. ['linux/amd64', 'linux/arm64'] for an index. */
  platforms: string[];
  /** Blobs whose content in the layout does NOT match their digest (hostile). */
  tamperedBlobs?: string[];
  expect?: Expectations;
  /** sha256 over the builder code, the image definition and the host files read. */
  inputHash: string;
}

export interface NotReproducible {
  ref: string;
  usedBy: string;
  reason: string;
}

export interface ImagesManifest {
  version: 1;
  /** Relative to the manifest's directory. */
  layout: 'oci';
  images: BuiltImage[];
  notReproducible: NotReproducible[];
  /** Images not built because a host file they are made of is missing (package not installed). */
  skipped?: { name: string; reason: string }[];
}

export const MANIFEST_FILE = 'images.json';

export async function loadImages(outDir: string): Promise<ImagesManifest> {
  const text = await fs.readFile(path.join(outDir, MANIFEST_FILE), 'utf8');
  return JSON.parse(text) as ImagesManifest;
}

export function localRepo(ref: ImageRef): string {
  return ref.host ? `${ref.host}/${ref.repo}` : ref.repo;
}

export function localName(ref: ImageRef): string {
  return `${localRepo(ref)}:${ref.tag}`;
}

export function findImage(m: ImagesManifest, key: string): BuiltImage | undefined {
  return m.images.find((i) => i.name === key)
    ?? m.images.find((i) => i.refs.some((r) => localName(r) === key || (!key.includes(':') && localRepo(r) === key && r.tag === 'latest')));
}
