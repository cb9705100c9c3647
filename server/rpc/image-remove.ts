import type { RemoveImageRequest__Output } from '../../proto/gen/runtime/v1/RemoveImageRequest.js';
import type { RemoveImageResponse } from '../../proto/gen/runtime/v1/RemoveImageResponse.js';
import { InvalidArgumentError } from '../../runtime/errors.js';
import type { UnaryHandler } from './types.js';

/** By id removes the image; by tag or digest that name. Unknown images succeed (the kubelet retries). */
export const removeImage: UnaryHandler<RemoveImageRequest__Output, RemoveImageResponse> = async (req, { rt }) => {
  const ref = req.image?.image || req.image?.image_ref || '';
  if (!ref) throw new InvalidArgumentError('RemoveImage: image.image must not be empty');
  await rt.images.remove(ref);
  return {};
};
