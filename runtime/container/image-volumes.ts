/**
 * Image volumes (CRI Mount.image, KEP-4639): an image's layers mounted read-only on the host as
 * an overlay with no upper dir, then bound into the container like any other volume.
 *
 * Each volume is a view `<containerId>.iv<n>` in the image service, mounted under the
 * container's bundle dir at image-volumes/<n>; the image service records where, so a view
 * outlives a daemon restart and is released with its container (or, orphaned, at recovery).
 * The layers a view uses are kept from garbage collection, and RemoveImage of its image fails
 * while the container exists, as for the container's own image.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Mount__Output } from '../../proto/gen/runtime/v1/Mount.js';
import type { RootfsIdmap } from '../snapshot/snapshotter.js';
import { resolveInRoot } from '../oci/user.js';

/** What ContainerMeta keeps of each image volume. */
export interface ImageVolumeRecord {
  /** The view's key in the image service. */
  key: string;
  containerPath: string;
  imageId: string;
  /** What ContainerStatus reports as mounts[].image.image_ref: PullImage's answer, the id. */
  imageRef: string;
}

export interface ImageVolumePort {
  resolve(ref: string): { id: string } | undefined;
  prepareImageVolume(key: string, imageId: string, target: string, opts?: { idmap?: RootfsIdmap }): Promise<void>;
  releaseImageVolume(key: string): Promise<void>;
}

export function isImageVolume(m: Mount__Output): boolean {
  return !m.host_path && !!m.image?.image;
}

/** The key prefix of a container's views: viewKeys(prefix) lists exactly its own. */
export function imageVolumePrefix(containerId: string): string {
  return `${containerId}.iv`;
}

/** The container id a view key belongs to. */
export function imageVolumeOwner(key: string): string {
  const i = key.lastIndexOf('.iv');
  return i < 0 ? key : key.slice(0, i);
}

/** Checks an image volume mount before anything is mounted. */
export function validateImageVolume(m: Mount__Output): void {
  const where = m.container_path || '(no container_path)';
  if (!m.readonly) throw new InvalidArgumentError(`mount ${where}: an image volume (${m.image!.image}) must be readonly`);
  if (m.recursive_read_only) {
    // An overlay without upper dir has no submounts: rro adds nothing, and is refused as CRI-O does.
    throw new InvalidArgumentError(`mount ${where}: recursive_read_only does not apply to an image volume`);
  }
  const sub = m.image_sub_path ?? '';
  if (sub.startsWith('/') || sub.split('/').includes('..')) {
    throw new InvalidArgumentError(`mount ${where}: image_sub_path ${JSON.stringify(sub)} must be relative and must not contain ".."`);
  }
}

/**
 * Mounts every image volume of the mounts, returning the mounts with each image volume turned
 * into a read-only bind of its view (or of the sub path within it). onPrepared is called for
 * each view as soon as it exists, so that a failure later undoes it.
 */
export async function prepareImageVolumes(
  containerId: string,
  bundleDir: string,
  mounts: Mount__Output[],
  images: ImageVolumePort,
  idmap: RootfsIdmap | undefined,
  onPrepared: (rec: ImageVolumeRecord) => void,
): Promise<{ mounts: Mount__Output[]; records: ImageVolumeRecord[] }> {
  for (const m of mounts) if (isImageVolume(m)) validateImageVolume(m);
  const out: Mount__Output[] = [];
  const records: ImageVolumeRecord[] = [];
  let n = 0;
  for (const m of mounts) {
    if (!isImageVolume(m)) {
      out.push(m);
      continue;
    }
    const ref = m.image!.image;
    const img = images.resolve(ref);
    if (!img) throw new NotFoundError(`mount ${m.container_path}: image volume ${ref} is not present (pull it first)`);
    const key = `${imageVolumePrefix(containerId)}${n}`;
    const target = join(bundleDir, 'image-volumes', String(n));
    n++;
    await images.prepareImageVolume(key, img.id, target, idmap ? { idmap } : undefined);
    const rec: ImageVolumeRecord = { key, containerPath: m.container_path, imageId: img.id, imageRef: img.id };
    onPrepared(rec);
    records.push(rec);
    const source = m.image_sub_path ? await resolveSubPath(target, m.image_sub_path, m) : target;
    // nosuid and nodev: an image volume brings data and programs, never privileges; exec stays
    // allowed (the kubelet's and critest's specs run binaries from it).
    const options = [...new Set([...(m.mount_options ?? []), 'nosuid', 'nodev'])];
    // A view in a pod with its own user namespace is idmapped already (its layers are): an
    // overlay cannot be idmapped again, so the kubelet's mount maps are dropped.
    out.push({
      ...m, host_path: source, image: null, image_sub_path: '', readonly: true, recursive_read_only: false, mount_options: options,
      uidMappings: [], gidMappings: [],
    });
  }
  return { mounts: out, records };
}

/**
 * Resolves sub inside root as if root were "/" (resolveInRoot: symlinks, absolute or with
 * "..", never leave it). The view is read-only and its layers immutable, so what is checked
 * here stays true. The result must be a directory that exists.
 */
export async function resolveSubPath(root: string, sub: string, m: Pick<Mount__Output, 'container_path' | 'image'>): Promise<string> {
  const what = `image volume ${m.image?.image ?? ''} sub path ${JSON.stringify(sub)} (for ${m.container_path})`;
  let resolved: string;
  let st;
  try {
    resolved = await resolveInRoot(root, sub);
    st = await fs.stat(resolved);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new InvalidArgumentError(`${what} does not exist in the image`);
    if (code === 'ELOOP') throw new InvalidArgumentError(`${what}: too many levels of symbolic links`);
    throw err;
  }
  if (!st.isDirectory()) throw new InvalidArgumentError(`${what} is not a directory`);
  return resolved;
}
