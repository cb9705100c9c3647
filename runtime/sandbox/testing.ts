/** Test doubles for the sandbox service's ports (also usable by other services' tests). */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { NamespacePinner, PinRequest, PinnedNamespaces } from '../linux/netns.js';
import { SysctlWriteError } from '../linux/netns.js';
import type { PodContainers, PodNetwork } from './ports.js';
import { LOG_FILE } from '../state/record-log.js';

/** Pins as plain files; records what is pinned so tests can check nothing leaks. */
export class FakePinner implements NamespacePinner {
  readonly pinned = new Set<string>();
  readonly requests: PinRequest[] = [];
  /** A sysctl path that the "kernel" refuses. */
  refuseSysctl: string | undefined;
  /** Called inside pin(), to hold it open in race tests. */
  gate: (() => Promise<void>) | undefined;

  async pin(req: PinRequest): Promise<PinnedNamespaces> {
    this.requests.push(req);
    if (this.gate) await this.gate();
    for (const [path] of req.sysctls ?? []) {
      if (path === this.refuseSysctl) throw new SysctlWriteError(path, 'EINVAL', `sysctl ${path.replace(/\//g, '.')}: EINVAL`);
    }
    // Namespaces a pod's user namespace made (createUserns): joined, not pinned again.
    if (req.join) return { ...req.join };
    const out: PinnedNamespaces = {};
    for (const ns of req.namespaces) {
      const p = join(req.dir, ns);
      await fs.writeFile(p, '');
      this.pinned.add(p);
      out[ns] = p;
    }
    return out;
  }

  async unpin(path: string): Promise<void> {
    this.pinned.delete(path);
    await fs.rm(path, { force: true });
  }

  async isPinned(path: string): Promise<boolean> {
    return this.pinned.has(path);
  }

  async close(): Promise<void> {}

  /** A SandboxServiceDeps.createUserns that pins user, net, ipc and uts as files here. */
  readonly createUserns = async (dir: string, maps: unknown) => {
    this.usernsMaps.push(maps);
    const out = {} as Record<'user' | 'net' | 'ipc' | 'uts', string>;
    for (const ns of ['user', 'net', 'ipc', 'uts'] as const) {
      out[ns] = join(dir, ns);
      await fs.writeFile(out[ns], '');
      this.pinned.add(out[ns]);
    }
    return out;
  };

  readonly usernsMaps: unknown[] = [];
}

/** A network that hands out 10.0.0.N and remembers which pods hold one. */
export class FakeNetwork implements PodNetwork {
  readonly up = new Map<string, string[]>();
  readonly calls: string[] = [];
  /** Makes the next ADD fail (once). */
  fail: Error | undefined;
  private next = 2;

  async setUpPod(pod: Parameters<PodNetwork['setUpPod']>[0]) {
    this.calls.push(`add ${pod.id}`);
    if (this.fail) {
      const err = this.fail;
      this.fail = undefined;
      throw err;
    }
    const ips = [`fd00::${this.next}`, `10.0.0.${this.next++}`];
    this.up.set(pod.id, ips);
    return { ips, result: { cniVersion: '1.0.0', ips: ips.map((address) => ({ address })) } };
  }

  async tearDownPod(pod: Parameters<PodNetwork['tearDownPod']>[0]) {
    this.calls.push(`del ${pod.id}`);
    this.up.delete(pod.id);
  }

  async status() {
    return { ready: true, reason: '', message: '' };
  }
}

export class FakeContainers implements PodContainers {
  readonly calls: string[] = [];
  async stopAllInPod(podId: string, timeoutSec: number) { this.calls.push(`stop ${podId} ${timeoutSec}`); }
  async removeAllInPod(podId: string) { this.calls.push(`remove ${podId}`); }
}

/**
 * What is left in a sandbox state or run dir once the background deletions are done: its
 * entries, the empty trash not counted (anything still in the trash is listed as .trash/NAME).
 */
export async function leftovers(svc: { settled(): Promise<void> }, dir: string): Promise<string[]> {
  await svc.settled();
  const names = await fs.readdir(dir);
  const trash = names.includes('.trash') ? await fs.readdir(join(dir, '.trash')) : [];
  // The record log is the store itself, not a pod's file (what it holds is the service's list).
  return [...names.filter((n) => n !== '.trash' && n !== LOG_FILE), ...trash.map((n) => `.trash/${n}`)];
}
