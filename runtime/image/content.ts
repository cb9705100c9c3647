/**
 * Content store for manifests, indexes and configs: <dir>/blobs/sha256/<hex>. Writes go to
 * <dir>/ingest under a temporary name, are verified against their digest and renamed, so a
 * blob under its digest name is always complete and correct.
 *
 * Layer blobs are not kept: their unpacked snapshot is what containers use, and keeping the
 * compressed copy too would double the disk an image takes (CRI-O makes the same choice).
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, isENOENT } from '../errors.js';
import { fsyncDir } from '../state/store.js';
import { sha256 } from './registry.js';

export class ContentStore {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await fs.mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true, mode: 0o700 });
    await fs.rm(join(this.dir, 'ingest'), { recursive: true, force: true });
    await fs.mkdir(join(this.dir, 'ingest'), { recursive: true, mode: 0o700 });
  }

  path(digest: string): string {
    const [alg, hex] = digest.split(':');
    if (alg !== 'sha256' || !/^[a-f0-9]{64}$/.test(hex ?? '')) throw new InvalidArgumentError(`unsupported digest "${digest}"`);
    return join(this.dir, 'blobs', 'sha256', hex!);
  }

  async has(digest: string): Promise<boolean> {
    try {
      await fs.access(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  async read(digest: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.path(digest));
    } catch (err) {
      if (isENOENT(err)) return undefined;
      throw err;
    }
  }

  async write(digest: string, data: Buffer): Promise<void> {
    const got = sha256(data);
    if (got !== digest) throw new InvalidArgumentError(`digest mismatch: expected ${digest}, got ${got}`);
    const final = this.path(digest);
    const tmp = join(this.dir, 'ingest', `${digest.slice(7, 19)}-${randomBytes(4).toString('hex')}`);
    await fs.writeFile(tmp, data, { mode: 0o600 });
    await fs.rename(tmp, final);
    await fsyncDir(join(final, '..'));
  }

  async remove(digest: string): Promise<void> {
    await fs.rm(this.path(digest), { force: true });
  }

  async list(): Promise<string[]> {
    return (await fs.readdir(join(this.dir, 'blobs', 'sha256'))).map((h) => `sha256:${h}`);
  }

  async usage(): Promise<{ bytes: number; inodes: number }> {
    let bytes = 0;
    let inodes = 0;
    for (const d of await this.list()) {
      try {
        const st = await fs.stat(this.path(d));
        bytes += st.blocks * 512;
        inodes++;
      } catch { /* removed meanwhile */ }
    }
    return { bytes, inodes };
  }
}
