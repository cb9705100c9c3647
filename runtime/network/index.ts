/** CNI networking for pod sandboxes: the NetworkManager and the types its callers need. */
export {
  NetworkManager,
  POD_IFNAME,
  ipsFromResult,
  type NetworkManagerDeps,
  type NetworkStatus,
  type SetUpPodRequest,
  type SetUpPodResult,
  type TearDownPodRequest,
  type CheckPodRequest,
} from './manager.js';
export { CniPluginError } from './cni-exec.js';
