import type { PullImageRequest__Output } from '../../proto/gen/runtime/v1/PullImageRequest.js';
import type { PullImageResponse } from '../../proto/gen/runtime/v1/PullImageResponse.js';
import { InvalidArgumentError } from '../../runtime/errors.js';
import type { UnaryHandler } from './types.js';

/** image_ref is the image id (config digest), as ListImages/ImageStatus report it. */
export const pullImage: UnaryHandler<PullImageRequest__Output, PullImageResponse> = async (req, { rt, signal }) => {
  const ref = req.image?.image;
  if (!ref) throw new InvalidArgumentError('PullImage: image.image must not be empty');
  return { image_ref: await rt.images.pull(ref, req.auth, signal) };
};
