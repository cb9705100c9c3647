import type { StatusRequest__Output } from '../../proto/gen/runtime/v1/StatusRequest.js';
import type { StatusResponse } from '../../proto/gen/runtime/v1/StatusResponse.js';
import type { UnaryHandler } from './types.js';

/** Status: RuntimeReady and NetworkReady as the kubelet reads them, the handlers and their features. */
export const runtimeStatus: UnaryHandler<StatusRequest__Output, StatusResponse> = async (req, { rt }) => {
  const health = await rt.health();
  const handlers = rt.handlers.filter((h) => h.available);
  const def = handlers.find((h) => h.name === rt.defaultHandler);
  const features = (h: { recursiveReadOnly: boolean; userNamespaces: boolean }) => ({
    recursive_read_only_mounts: h.recursiveReadOnly,
    user_namespaces: h.userNamespaces,
  });
  const res: StatusResponse = {
    status: {
      conditions: [
        { type: 'RuntimeReady', status: health.runtime.ready, reason: health.runtime.reason, message: health.runtime.message },
        { type: 'NetworkReady', status: health.network.ready, reason: health.network.reason, message: health.network.message },
      ],
    },
    runtime_handlers: [
      ...(def ? [{ name: '', features: features(def) }] : []),
      ...handlers.map((h) => ({ name: h.name, features: features(h) })),
    ],
    features: { supplemental_groups_policy: true, user_namespaces_host_network: false, mount_options: false },
    info: {},
  };
  if (req.verbose) {
    res.info = {
      config: JSON.stringify(rt.config),
      cgroups: JSON.stringify(rt.cgroups),
      handlers: JSON.stringify(rt.handlers),
      defaultRuntime: JSON.stringify(rt.defaultHandler),
      podCidr: JSON.stringify(rt.podCidr),
    };
  }
  return res;
};
