import type { StreamImagesRequest__Output } from '../../proto/gen/runtime/v1/StreamImagesRequest.js';
import type { StreamImagesResponse } from '../../proto/gen/runtime/v1/StreamImagesResponse.js';
import { toCriImage } from './image-common.js';
import type { StreamHandler } from './types.js';

const BATCH = 50;

/** Every image exactly once, in batches, then the end of the stream. */
export const streamImages: StreamHandler<StreamImagesRequest__Output, StreamImagesResponse> = async (req, { rt, signal }, write) => {
  const all = rt.images.list(req.filter?.image?.image || undefined).map(toCriImage);
  for (let i = 0; i < all.length && !signal.aborted; i += BATCH) {
    await write({ images: all.slice(i, i + BATCH) });
  }
};
