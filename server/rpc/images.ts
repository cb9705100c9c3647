/** RPC handlers of this area, by RPC name. */
import type { HandlerTable } from './types.js';
import { pullImage } from './image-pull.js';
import { listImages } from './image-list.js';
import { imageStatus } from './image-status.js';
import { removeImage } from './image-remove.js';
import { imageFsInfo } from './image-fs-info.js';
import { streamImages } from './image-stream.js';

export const imagesHandlers: HandlerTable = {
  unary: {
    PullImage: pullImage,
    ListImages: listImages,
    ImageStatus: imageStatus,
    RemoveImage: removeImage,
    ImageFsInfo: imageFsInfo,
  },
  stream: {
    StreamImages: streamImages,
  },
};
