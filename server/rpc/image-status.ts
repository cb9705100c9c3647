import type { ImageStatusRequest__Output } from '../../proto/gen/runtime/v1/ImageStatusRequest.js';
import type { ImageStatusResponse } from '../../proto/gen/runtime/v1/ImageStatusResponse.js';
import { toCriImage } from './image-common.js';
import type { UnaryHandler } from './types.js';

/** An unknown image is no error: the kubelet reads a nil image as "not present". */
export const imageStatus: UnaryHandler<ImageStatusRequest__Output, ImageStatusResponse> = async (req, { rt }) => {
  const ref = req.image?.image || req.image?.image_ref || '';
  const st = await rt.images.status(ref);
  if (!st) return { image: null, info: {} };
  const info: Record<string, string> = {};
  if (req.verbose) {
    info.info = JSON.stringify({
      id: st.image.id,
      size: st.image.size,
      manifest: st.manifest,
      imageSpec: st.image.config,
      layers: st.layers,
    });
    info.manifest = JSON.stringify(st.manifest ?? null);
    info.config = JSON.stringify(st.image.config);
    info.size = JSON.stringify(st.image.size);
  }
  return { image: toCriImage(st.image), info };
};
