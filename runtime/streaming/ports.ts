/**
 * What the streaming backends need from the container and sandbox services, declared here so
 * that they depend on shapes, not on those services (and tests pass plain objects).
 */

/** The part of an OCI process spec that exec copies from the container. */
export interface OciProcessLike {
  terminal?: boolean;
  args?: string[];
  env?: string[];
  cwd?: string;
  consoleSize?: { height: number; width: number };
}

export interface StreamingContainer {
  id: string;
  podId: string;
  state: 'CREATED' | 'RUNNING' | 'EXITED' | 'UNKNOWN';
  runtimeHandler: string;
  runtimePath: string;
  /** What to execute for the runtime (a sealed copy of runtimePath); runtimePath when absent. */
  runtimeExecPath?: string;
  runtimeRoot: string;
  bundleDir: string;
  /** The container's OCI spec when the service has it in memory; else bundleDir/config.json is read. */
  spec?: { process?: OciProcessLike } | undefined;
  attachSocketPath: string;
  ctlFifoPath: string;
  tty: boolean;
  stdin: boolean;
}

export interface ContainerLookup {
  /** By id or unique prefix; throws NotFoundError. */
  get(idOrPrefix: string): StreamingContainer;
}

export interface SandboxLookup {
  /** By id or unique prefix; throws NotFoundError. `namespaces.net` undefined: host network. */
  get(idOrPrefix: string): { id: string; namespaces: { net?: string } };
}
