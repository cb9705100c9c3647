import type { VersionRequest__Output } from '../../proto/gen/runtime/v1/VersionRequest.js';
import type { VersionResponse } from '../../proto/gen/runtime/v1/VersionResponse.js';
import { CORRAL_VERSION } from '../../runtime/version.js';
import type { UnaryHandler } from './types.js';

/** The CRI version the kubelet negotiates; "v1" is the only one corral serves. */
const RUNTIME_API_VERSION = 'v1';

export const version: UnaryHandler<VersionRequest__Output, VersionResponse> = async () => ({
  version: '0.1.0',
  runtime_name: 'corral',
  runtime_version: CORRAL_VERSION,
  runtime_api_version: RUNTIME_API_VERSION,
});
