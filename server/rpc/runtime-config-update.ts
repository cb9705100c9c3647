import type { UpdateRuntimeConfigRequest__Output } from '../../proto/gen/runtime/v1/UpdateRuntimeConfigRequest.js';
import type { UpdateRuntimeConfigResponse } from '../../proto/gen/runtime/v1/UpdateRuntimeConfigResponse.js';
import type { UnaryHandler } from './types.js';

/**
 * The kubelet sends the node's pod CIDR here, at start and whenever it changes; the network
 * layer uses it as the CNI ipRanges and as the range of corral's default network. A value
 * that is not a CIDR is InvalidArgument and changes nothing (runtime/network/pod-cidr.ts).
 */
export const updateRuntimeConfig: UnaryHandler<UpdateRuntimeConfigRequest__Output, UpdateRuntimeConfigResponse> = async (req, { rt }) => {
  const cidr = req.runtime_config?.network_config?.pod_cidr ?? '';
  if (cidr && cidr !== rt.podCidr) {
    rt.setPodCidr(cidr);
    rt.logger.info(`pod CIDR set to ${cidr}`);
  }
  return {};
};
