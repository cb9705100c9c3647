import type { ListMetricDescriptorsRequest__Output } from '../../proto/gen/runtime/v1/ListMetricDescriptorsRequest.js';
import type { ListMetricDescriptorsResponse } from '../../proto/gen/runtime/v1/ListMetricDescriptorsResponse.js';
import type { UnaryHandler } from './types.js';

export const listMetricDescriptors: UnaryHandler<ListMetricDescriptorsRequest__Output, ListMetricDescriptorsResponse> = async (_req, { rt }) => {
  return { descriptors: rt.stats.listMetricDescriptors() };
};
