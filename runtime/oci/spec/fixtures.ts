/**
 * Test helpers: a complete CRI request with proto-loader's defaults, and fake host deps.
 * Not used by the daemon.
 */
import type { ContainerConfig__Output } from '../../../proto/gen/runtime/v1/ContainerConfig.js';
import type { LinuxContainerSecurityContext__Output } from '../../../proto/gen/runtime/v1/LinuxContainerSecurityContext.js';
import type { LinuxContainerResources__Output } from '../../../proto/gen/runtime/v1/LinuxContainerResources.js';
import type { Mount__Output } from '../../../proto/gen/runtime/v1/Mount.js';
import type { PodSandboxConfig__Output } from '../../../proto/gen/runtime/v1/PodSandboxConfig.js';
import { ALL_CAPABILITIES } from './capabilities.js';
import type { ContainerSpecInput, SpecContext, SpecDeps, StatInfo } from './context.js';
import { emptySpec } from './index.js';
import type { OciSpec } from './types.js';

export function securityContextDefaults(sc: Partial<LinuxContainerSecurityContext__Output> = {}): LinuxContainerSecurityContext__Output {
  return {
    capabilities: null, privileged: false, namespace_options: null, selinux_options: null, run_as_user: null,
    run_as_username: '', readonly_rootfs: false, supplemental_groups: [], apparmor_profile: '', seccomp_profile_path: '',
    no_new_privs: false, run_as_group: null, masked_paths: [], readonly_paths: [], seccomp: null, apparmor: null,
    supplemental_groups_policy: 'Merge', ...sc,
  };
}

export function resourcesDefaults(r: Partial<LinuxContainerResources__Output> = {}): LinuxContainerResources__Output {
  return {
    cpu_period: '0', cpu_quota: '0', cpu_shares: '0', memory_limit_in_bytes: '0', oom_score_adj: '0', cpuset_cpus: '',
    cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: '0', ...r,
  };
}

export function mountDefaults(m: Partial<Mount__Output>): Mount__Output {
  return {
    container_path: '', host_path: '', readonly: false, selinux_relabel: false, propagation: 'PROPAGATION_PRIVATE',
    uidMappings: [], gidMappings: [], recursive_read_only: false, image: null, image_sub_path: '', mount_options: [], ...m,
  };
}

export function containerConfig(c: Partial<ContainerConfig__Output> = {}, sc?: Partial<LinuxContainerSecurityContext__Output>, res?: Partial<LinuxContainerResources__Output>): ContainerConfig__Output {
  return {
    metadata: { name: 'app', attempt: 0 },
    image: { image: 'busybox:latest', annotations: {}, user_specified_image: 'busybox', runtime_handler: '', image_ref: '' },
    command: [], args: [], working_dir: '', envs: [], mounts: [], devices: [], labels: {}, annotations: {}, log_path: '',
    stdin: false, stdin_once: false, tty: false,
    linux: { resources: res ? resourcesDefaults(res) : null, security_context: securityContextDefaults(sc) },
    windows: null, CDI_devices: [], stop_signal: 'RUNTIME_DEFAULT',
    ...c,
  } as ContainerConfig__Output;
}

export function sandboxConfig(): PodSandboxConfig__Output {
  return {
    metadata: { name: 'pod', uid: 'uid-1', namespace: 'default', attempt: 0 },
    hostname: 'pod-host', log_directory: '/var/log/pods/x', dns_config: null, port_mappings: [], labels: {}, annotations: {},
    linux: null, windows: null,
  };
}

export function specInput(over: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    containerId: 'c1',
    config: containerConfig({ command: ['/bin/sh'] }),
    sandbox: {
      id: 's1', config: sandboxConfig(), hostname: 'pod-host',
      namespaces: { net: '/run/corral/ns/net/s1', ipc: '/run/corral/ns/ipc/s1', uts: '/run/corral/ns/uts/s1' },
      files: { hosts: '/run/corral/s1/hosts', resolvConf: '/run/corral/s1/resolv.conf', hostname: '/run/corral/s1/hostname', shm: '/run/corral/s1/shm' },
      cgroupParent: '/kubepods/pod1',
    },
    image: { id: 'sha256:img', config: { config: { Env: ['PATH=/usr/bin:/bin', 'A=image'], Cmd: ['sh'], WorkingDir: '' } } },
    rootfs: '/nonexistent-rootfs',
    cgroupsPath: '/kubepods/pod1/c1',
    cgroupMode: 'v2',
    hostCaps: [...ALL_CAPABILITIES],
    ...over,
  };
}

function errno(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code });
}

export interface FakeNode { kind: 'dir' | 'file' | 'char' | 'block' | 'link'; rdev?: number; mode?: number; target?: string }

/** Fake host: a flat map of absolute paths; directories list their direct children. */
export function fakeDeps(nodes: Record<string, FakeNode> = {}, over: Partial<SpecDeps> = {}): SpecDeps {
  const statOf = (n: FakeNode): StatInfo => ({
    isDirectory: () => n.kind === 'dir', isCharacterDevice: () => n.kind === 'char', isBlockDevice: () => n.kind === 'block',
    isFile: () => n.kind === 'file', rdev: n.rdev ?? 0, mode: n.mode ?? 0o666, uid: 0, gid: 0,
  });
  const follow = (p: string): FakeNode | undefined => {
    let n = nodes[p];
    for (let i = 0; n?.kind === 'link' && i < 10; i++) n = nodes[n.target!];
    return n;
  };
  return {
    stat: async (p) => { const n = follow(p); if (!n) throw errno('ENOENT', p); return statOf(n); },
    lstat: async (p) => { const n = nodes[p]; if (!n) throw errno('ENOENT', p); return statOf(n); },
    realpath: async (p) => { const n = nodes[p]; if (!n) throw errno('ENOENT', p); return n.kind === 'link' ? n.target! : p; },
    readdir: async (p) => {
      if (nodes[p]?.kind !== 'dir') throw errno('ENOTDIR', p);
      return Object.keys(nodes).filter((k) => k !== p && k.startsWith(p.endsWith('/') ? p : p + '/') && !k.slice(p.length + 1).includes('/')).map((k) => k.slice(p.length + 1));
    },
    readFile: async (p) => { throw errno('ENOENT', p); },
    hostCapabilities: async () => [...ALL_CAPABILITIES],
    currentOomScoreAdj: async () => 0,
    nofileHardLimit: async () => 1048576,
    apparmorEnabled: async () => false,
    apparmorProfiles: async () => [],
    selinuxEnabled: async () => false,
    swapAccounting: async () => true,
    arch: 'x64',
    ...over,
  };
}

export function specContext(input: ContainerSpecInput = specInput(), deps: SpecDeps = fakeDeps()): { spec: OciSpec; ctx: SpecContext } {
  return { spec: emptySpec(), ctx: { input, deps, warnings: [], hostPropagation: [] } };
}
