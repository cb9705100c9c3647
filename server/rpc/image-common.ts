/** ImageRecord -> CRI Image, shared by ListImages, StreamImages and ImageStatus. */
import type { Image } from '../../proto/gen/runtime/v1/Image.js';
import type { ImageRecord } from '../../runtime/image/service.js';

/** uid when the image config's User is numeric ("1000" or "1000:1000"), else username. */
export function imageUser(rec: ImageRecord): { uid?: { value: string }; username: string } {
  const user = String(rec.config?.config?.User ?? '');
  const name = user.split(':')[0] ?? '';
  if (/^\d+$/.test(name)) return { uid: { value: name }, username: '' };
  return { username: name };
}

export function toCriImage(rec: ImageRecord): Image {
  return {
    id: rec.id,
    repo_tags: rec.repoTags,
    repo_digests: rec.repoDigests,
    size: String(rec.size),
    ...imageUser(rec),
    spec: { image: rec.id, annotations: {} },
    pinned: rec.pinned,
  };
}
