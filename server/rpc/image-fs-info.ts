import type { ImageFsInfoRequest__Output } from '../../proto/gen/runtime/v1/ImageFsInfoRequest.js';
import type { ImageFsInfoResponse } from '../../proto/gen/runtime/v1/ImageFsInfoResponse.js';
import type { FilesystemUsage } from '../../proto/gen/runtime/v1/FilesystemUsage.js';
import type { UnaryHandler } from './types.js';

function usage(u: { bytes: number; inodes: number; mountpoint: string }, now: string): FilesystemUsage {
  return { timestamp: now, fs_id: { mountpoint: u.mountpoint }, used_bytes: { value: String(u.bytes) }, inodes_used: { value: String(u.inodes) } };
}

export const imageFsInfo: UnaryHandler<ImageFsInfoRequest__Output, ImageFsInfoResponse> = async (_req, { rt }) => {
  const info = await rt.images.fsInfo();
  const now = String(BigInt(Date.now()) * 1_000_000n);
  return { image_filesystems: [usage(info.image, now)], container_filesystems: [usage(info.containers, now)] };
};
