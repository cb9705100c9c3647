import type { RuntimeConfigRequest__Output } from '../../proto/gen/runtime/v1/RuntimeConfigRequest.js';
import type { RuntimeConfigResponse } from '../../proto/gen/runtime/v1/RuntimeConfigResponse.js';
import type { UnaryHandler } from './types.js';

/** The kubelet reads the cgroup driver once at start and builds its hierarchy on it. */
export const runtimeConfig: UnaryHandler<RuntimeConfigRequest__Output, RuntimeConfigResponse> = async (_req, { rt }) => ({
  linux: { cgroup_driver: rt.cgroups.driver === 'systemd' ? 'SYSTEMD' : 'CGROUPFS' },
});
