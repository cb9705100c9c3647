/** Pod sandboxes: the service and the ports other services implement or consume. */
export { SandboxService, sortIps, type SandboxConfig, type SandboxMeta, type SandboxServiceDeps, type SandboxState, type SandboxStatus, type SandboxView } from './service.js';
export { OciInfraRunner, infraCgroupsPath, infraOciSpec, type OciInfraRunnerDeps } from './infra.js';
export type { InfraRunner, InfraSpec, PodContainers, PodDns, PodNetwork, PodNetworkRef, PortMappingIn } from './ports.js';
