/**
 * Image records: <dir>/<hex of the config digest>.json, each written atomically. A tag names
 * at most one image; giving it to a new image takes it from the old one (which stays, untagged,
 * until removed, as docker and containerd do).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { writeFileAtomic } from '../state/store.js';
import type { Logger } from '../util/log.js';

/** What the containers service sees of an image. */
export interface ImageRecord {
  /** "sha256:<config digest>" */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Compressed layers plus config, as the registry counts it. */
  size: number;
  /** The OCI image config JSON (config.Env, Entrypoint, Cmd, WorkingDir, User, StopSignal, ...). */
  config: any;
  pinned: boolean;
}

export interface LayerInfo {
  digest: string;
  mediaType: string;
  size: number;
  diffId: string;
}

export interface StoredImage extends ImageRecord {
  manifestDigest: string;
  /** Index (or manifest) digest the image was pulled by; repoDigests use it. */
  topDigest: string;
  layers: LayerInfo[];
  created: number;
}

export class ImageStore {
  private readonly byId = new Map<string, StoredImage>();
  private readonly tags = new Map<string, string>();

  constructor(readonly dir: string, private readonly logger: Logger) {}

  async load(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const byId = new Map<string, StoredImage>();
    for (const name of await fs.readdir(this.dir)) {
      if (!name.endsWith('.json')) {
        if (name.includes('.tmp-')) await fs.rm(join(this.dir, name), { force: true });
        continue;
      }
      try {
        const img = JSON.parse(await fs.readFile(join(this.dir, name), 'utf8')) as StoredImage;
        byId.set(img.id, img);
      } catch (err) {
        this.logger.warn(`images: skipping unreadable record ${name}: ${String(err)}`);
      }
    }
    this.byId.clear();
    this.tags.clear();
    for (const [id, img] of byId) this.byId.set(id, img);
    for (const img of this.byId.values()) for (const t of img.repoTags) this.tags.set(t, img.id);
  }

  /**
   * Adds records another process (corral import) wrote and this one does not know yet. Known
   * records are never re-read, so a reload cannot undo a change this process made meanwhile.
   */
  async loadNew(): Promise<number> {
    let added = 0;
    for (const name of await fs.readdir(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const id = `sha256:${name.slice(0, -5)}`;
      if (this.byId.has(id)) continue;
      let img: StoredImage;
      try {
        img = JSON.parse(await fs.readFile(join(this.dir, name), 'utf8')) as StoredImage;
      } catch {
        continue;
      }
      if (this.byId.has(img.id)) continue;
      this.byId.set(img.id, img);
      for (const t of img.repoTags) {
        const prev = this.tags.get(t);
        const old = prev ? this.byId.get(prev) : undefined;
        if (old && old.id !== img.id) this.byId.set(old.id, { ...old, repoTags: old.repoTags.filter((x) => x !== t) });
        this.tags.set(t, img.id);
      }
      added++;
    }
    return added;
  }

  private file(id: string): string {
    return join(this.dir, `${id.replace(/^sha256:/, '')}.json`);
  }

  get(id: string): StoredImage | undefined {
    return this.byId.get(id);
  }

  byTag(tag: string): StoredImage | undefined {
    const id = this.tags.get(tag);
    return id ? this.byId.get(id) : undefined;
  }

  byDigest(repoDigest: string): StoredImage | undefined {
    for (const img of this.byId.values()) if (img.repoDigests.includes(repoDigest)) return img;
    return undefined;
  }

  /** Full id, id without "sha256:", or a unique prefix of either. */
  byIdPrefix(s: string): StoredImage | undefined {
    const hex = s.replace(/^sha256:/, '');
    if (!/^[a-f0-9]{1,64}$/.test(hex)) return undefined;
    const full = this.byId.get(`sha256:${hex}`);
    if (full) return full;
    if (hex.length < 4) return undefined;
    const m = [...this.byId.values()].filter((i) => i.id.slice(7).startsWith(hex));
    if (m.length > 1) throw new InvalidArgumentError(`image id prefix "${s}" is ambiguous: ${m.map((i) => i.id).join(', ')}`);
    return m[0];
  }

  list(): StoredImage[] {
    return [...this.byId.values()];
  }

  private async persist(img: StoredImage): Promise<void> {
    await writeFileAtomic(this.file(img.id), JSON.stringify(img));
  }

  /**
   * Adds or merges an image and gives it the tags and digests; tags move from other images.
   * Returns the stored record.
   */
  async put(img: StoredImage, tags: string[], digests: string[]): Promise<StoredImage> {
    const existing = this.byId.get(img.id);
    const rec: StoredImage = existing ? { ...existing } : { ...img, repoTags: [], repoDigests: [] };
    rec.repoTags = [...new Set([...rec.repoTags, ...tags])];
    rec.repoDigests = [...new Set([...rec.repoDigests, ...digests])];
    for (const t of tags) {
      const prev = this.tags.get(t);
      if (prev && prev !== img.id) {
        const old = this.byId.get(prev);
        if (old) {
          const o = { ...old, repoTags: old.repoTags.filter((x) => x !== t) };
          this.byId.set(o.id, o);
          await this.persist(o);
        }
      }
    }
    const changed = !existing || rec.repoTags.length !== existing.repoTags.length || rec.repoDigests.length !== existing.repoDigests.length;
    if (changed) await this.persist(rec);
    this.byId.set(rec.id, rec);
    for (const t of tags) this.tags.set(t, rec.id);
    return rec;
  }

  async untag(id: string, tag: string): Promise<StoredImage | undefined> {
    const img = this.byId.get(id);
    if (!img) return undefined;
    const rec = { ...img, repoTags: img.repoTags.filter((t) => t !== tag) };
    if (this.tags.get(tag) === id) this.tags.delete(tag);
    this.byId.set(id, rec);
    await this.persist(rec);
    return rec;
  }

  async dropDigest(id: string, repoDigest: string): Promise<void> {
    const img = this.byId.get(id);
    if (!img) return;
    const rec = { ...img, repoDigests: img.repoDigests.filter((d) => d !== repoDigest) };
    this.byId.set(id, rec);
    await this.persist(rec);
  }

  async remove(id: string): Promise<void> {
    const img = this.byId.get(id);
    if (!img) return;
    for (const t of img.repoTags) if (this.tags.get(t) === id) this.tags.delete(t);
    this.byId.delete(id);
    await fs.rm(this.file(id), { force: true });
  }
}
