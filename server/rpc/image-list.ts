import type { ListImagesRequest__Output } from '../../proto/gen/runtime/v1/ListImagesRequest.js';
import type { ListImagesResponse } from '../../proto/gen/runtime/v1/ListImagesResponse.js';
import { toCriImage } from './image-common.js';
import type { UnaryHandler } from './types.js';

export const listImages: UnaryHandler<ListImagesRequest__Output, ListImagesResponse> = async (req, { rt }) => ({
  images: rt.images.list(req.filter?.image?.image || undefined).map(toCriImage),
});
