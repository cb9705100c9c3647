/**
 * Hostile input: a fuzzer over every RPC of RuntimeService and ImageService.
 *
 * Each call is one of: random bytes as the message; or a well-formed request built from a
 * valid one (a live pod, container and image, so calls reach deep) with one to three fields,
 * found by walking the message type, set to hostile values for their type (empty and unknown
 * ids, 64 KiB strings, `..`, NUL, absolute paths, negative and absurd numbers, enum values out
 * of range, huge lists). Seeded: a run is replayed by its seed. Inputs that once failed are kept
 * in e2e/reliability/corpus.json and replayed first on every run.
 *
 * No call may answer INTERNAL or UNKNOWN; nothing may be written to the canary dirs (where every
 * hostile path points: absolute ones there, `../` chains climbing to them); the daemon answers
 * Version throughout. Hostile paths never name anything outside the harness dir, and images are
 * only ever pulled from the test registry.
 */
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Harness } from '../harness/index.js';
import { REPO } from '../harness/paths.js';
import { CriClient, codeOf, containerConfig, detailsOf, filesUnder, IDLE_COMMAND, outcome, pullBusybox, reliabilityPod, removeEverything, rng, type Outcome } from './lib.js';

export interface FuzzOptions { calls: number; seed: number }

const CORPUS = join(REPO, 'e2e', 'reliability', 'corpus.json');
/** Codes a malformed or hostile request may get. */
const ACCEPTED = new Set(['OK', 'INVALID_ARGUMENT', 'NOT_FOUND', 'FAILED_PRECONDITION', 'RESOURCE_EXHAUSTED', 'ALREADY_EXISTS', 'UNIMPLEMENTED', 'OUT_OF_RANGE', 'DEADLINE_EXCEEDED', 'CANCELLED']);
/** A call still unanswered by then counts as DEADLINE_EXCEEDED (a StopContainer told to wait, a long exec). */
const CALL_MS = 3_000;

interface CorpusEntry { service: 'RuntimeService' | 'ImageService'; method: string; request?: unknown; bytes?: string; note: string }

interface Ctx {
  pod: string;
  podConfig: Record<string, unknown>;
  ctr: string;
  image: string;
  imageId: string;
  registry: string;
  /** Hostile log and file paths point here: nothing may appear in it. */
  canary: string;
  /** Host paths of mounts and devices, and checkpoint locations: the caller's to name. */
  hostPaths: string;
}

/** A valid request per RPC, the starting point of its mutations. */
function bases(c: Ctx): Record<string, unknown> {
  const ctrCfg = containerConfig('fz', c.image, IDLE_COMMAND);
  return {
    Version: { version: 'v1' },
    RunPodSandbox: { config: reliabilityPodFrom(c) },
    StopPodSandbox: { pod_sandbox_id: c.pod },
    RemovePodSandbox: { pod_sandbox_id: c.pod },
    PodSandboxStatus: { pod_sandbox_id: c.pod, verbose: true },
    ListPodSandbox: { filter: { id: c.pod, label_selector: { reliability: 'corral' } } },
    StreamPodSandboxes: { filter: { id: c.pod } },
    CreateContainer: { pod_sandbox_id: c.pod, config: ctrCfg, sandbox_config: c.podConfig },
    StartContainer: { container_id: c.ctr },
    StopContainer: { container_id: c.ctr, timeout: 1 },
    RemoveContainer: { container_id: c.ctr },
    ListContainers: { filter: { id: c.ctr, pod_sandbox_id: c.pod, label_selector: { reliability: 'corral' } } },
    StreamContainers: { filter: { id: c.ctr } },
    ContainerStatus: { container_id: c.ctr, verbose: true },
    UpdateContainerResources: { container_id: c.ctr, linux: { cpu_period: 100000, cpu_quota: 50000, cpu_shares: 512, memory_limit_in_bytes: 128 << 20 } },
    ReopenContainerLog: { container_id: c.ctr },
    ExecSync: { container_id: c.ctr, cmd: ['true'], timeout: 5 },
    Exec: { container_id: c.ctr, cmd: ['true'], stdout: true },
    Attach: { container_id: c.ctr, stdout: true },
    PortForward: { pod_sandbox_id: c.pod, port: [80] },
    ContainerStats: { container_id: c.ctr },
    ListContainerStats: { filter: { id: c.ctr } },
    StreamContainerStats: { filter: { id: c.ctr } },
    PodSandboxStats: { pod_sandbox_id: c.pod },
    ListPodSandboxStats: { filter: { id: c.pod } },
    StreamPodSandboxStats: { filter: { id: c.pod } },
    UpdateRuntimeConfig: { runtime_config: { network_config: { pod_cidr: '' } } },
    Status: { verbose: true },
    CheckpointContainer: { container_id: c.ctr, location: join(c.hostPaths, 'checkpoint.tar'), timeout: 5 },
    CheckpointPod: { pod_sandbox_id: c.pod, path: join(c.hostPaths, 'pod-checkpoint.tar') },
    RestorePod: { path: join(c.hostPaths, 'pod-checkpoint.tar') },
    GetContainerEvents: {},
    ListMetricDescriptors: {},
    ListPodSandboxMetrics: {},
    StreamPodSandboxMetrics: {},
    RuntimeConfig: {},
    UpdatePodSandboxResources: { pod_sandbox_id: c.pod, overhead: { cpu_shares: 2 }, resources: { cpu_shares: 2 } },
    ListImages: { filter: { image: { image: c.image } } },
    StreamImages: { filter: { image: { image: c.image } } },
    ImageStatus: { image: { image: c.image }, verbose: true },
    PullImage: { image: { image: c.image } },
    RemoveImage: { image: { image: `${c.registry}/corral/does-not-exist:1` } },
    ImageFsInfo: {},
  };
}

function reliabilityPodFrom(c: Ctx): Record<string, unknown> {
  return { ...c.podConfig, metadata: { name: 'fz-pod', namespace: 'corral-reliability', uid: 'fz-uid', attempt: 0 } };
}

/** Hostile strings; `path` ones depend on the canary dir. */
function hostileStrings(c: Ctx, field: string): string[] {
  const long = 'a'.repeat(64 * 1024);
  const climb = '../'.repeat(24).slice(0, -1);
  const common = ['', ' ', '.', '..', '../', 'a/../../b', 'x\0y', long, 'ünïcödé', '-1', '99999999999999999999', 'sha256:zzzz', `${c.ctr.slice(0, 5)}`, 'k8s_', '\n', '%s%n'];
  const pathy = [`${c.canary}/abs`, `${climb}${c.canary}/climb`, `${c.canary}/${long.slice(0, 5000)}`, `${c.canary}/x\0y`];
  if (/host_path|location|^path$/.test(field)) return [...common.filter((s) => !s.includes('/')), `${c.hostPaths}/h`, `${c.hostPaths}/../h2`, 'relative/host', ''];
  if (/log|directory|path|file|profile|localhost_ref/.test(field)) return [...common, ...pathy];
  return [...common, ...pathy.slice(0, 1)];
}

const HOSTILE_INTS: Array<number | string> = [0, -1, 1, 2 ** 31 - 1, -(2 ** 31), 2 ** 32, 70000, 65536, '9223372036854775807', '-9223372036854775808', 1e15];

class Generator {
  constructor(private readonly random: () => number, private readonly ctx: Ctx) {}

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.random() * xs.length)]!;
  }

  value(field: protobuf.Field, name: string, depth: number): unknown {
    const t = field.resolvedType;
    if (field.repeated && this.random() < 0.6) {
      const n = this.random() < 0.05 ? 1000 : Math.floor(this.random() * 4);
      return Array.from({ length: n }, () => this.scalarOrMessage(field, t, name, depth));
    }
    return this.scalarOrMessage(field, t, name, depth);
  }

  private scalarOrMessage(field: protobuf.Field, t: protobuf.Type | protobuf.Enum | null, name: string, depth: number): unknown {
    if (t instanceof protobuf.Enum) {
      const vals = Object.values(t.values);
      return this.random() < 0.7 ? this.pick(vals) : this.pick([99, -1, 1 << 20]);
    }
    if (t instanceof protobuf.Type) return depth > 4 ? {} : this.message(t, depth + 1);
    if (field instanceof protobuf.MapField) {
      const m: Record<string, string> = {};
      const n = this.random() < 0.05 ? 500 : 1 + Math.floor(this.random() * 3);
      for (let i = 0; i < n; i++) m[this.pick(hostileStrings(this.ctx, name)) + (n > 3 ? String(i) : '')] = this.pick(hostileStrings(this.ctx, name));
      return m;
    }
    switch (field.type) {
      case 'string': return this.pick(hostileStrings(this.ctx, name));
      case 'bool': return this.random() < 0.5;
      case 'bytes': return Buffer.from(Array.from({ length: Math.floor(this.random() * 64) }, () => Math.floor(this.random() * 256)));
      case 'double': case 'float': return this.pick([-1, 0, 1e308, Number.NaN, 0.5]);
      case 'uint32': case 'fixed32': return this.pick([0, 1, 2 ** 32 - 1, 70000]);
      case 'uint64': case 'fixed64': return this.pick(['0', '1', '18446744073709551615', '70000']);
      default: return this.pick(HOSTILE_INTS);
    }
  }

  /** A message with random fields set to hostile values. */
  message(t: protobuf.Type, depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const f of t.fieldsArray) if (this.random() < 0.3) out[f.name] = this.value(f.resolve(), f.name, depth);
    return out;
  }

  /** The base request with 1-3 fields (anywhere in its tree) replaced by hostile values. */
  mutate(t: protobuf.Type, base: Record<string, unknown>): Record<string, unknown> {
    const req = structuredClone(base);
    const n = 1 + Math.floor(this.random() * 3);
    for (let i = 0; i < n; i++) {
      let type = t;
      let obj: Record<string, unknown> = req;
      for (let depth = 0; depth < 8; depth++) {
        if (type.fieldsArray.length === 0) break;
        const f = this.pick(type.fieldsArray).resolve();
        const sub = f.resolvedType;
        if (sub instanceof protobuf.Type && !f.repeated && !(f instanceof protobuf.MapField) && this.random() < 0.75) {
          if (typeof obj[f.name] !== 'object' || obj[f.name] === null) obj[f.name] = {};
          obj = obj[f.name] as Record<string, unknown>;
          type = sub;
          continue;
        }
        obj[f.name] = this.value(f, f.name, depth);
        break;
      }
    }
    return req;
  }
}

type Callback = (err: grpc.ServiceError | null, res?: Buffer) => void;

/** One raw call: the bytes as they are, the answer's status code. */
function rawCall(client: grpc.Client, path: string, bytes: Buffer, stream: boolean): Promise<{ code: string; details: string }> {
  const identity = (b: Buffer) => b;
  const deadline = Date.now() + CALL_MS;
  return new Promise((resolve) => {
    if (!stream) {
      client.makeUnaryRequest(path, identity, identity, bytes, new grpc.Metadata(), { deadline }, ((err, _res) => {
        resolve({ code: codeOf(err), details: err ? detailsOf(err) : '' });
      }) as Callback);
      return;
    }
    // A stream answers its first message, an error, or runs on: one second of it is enough.
    const call = client.makeServerStreamRequest(path, identity, identity, bytes, new grpc.Metadata(), { deadline });
    let settled = false;
    const settle = (code: string, details = '') => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      resolve({ code, details });
      call.cancel();
    };
    const t = setTimeout(() => settle('OK'), 1000);
    call.on('data', () => settle('OK'));
    call.on('error', (e: grpc.ServiceError) => settle(e.code === grpc.status.CANCELLED && settled ? 'OK' : codeOf(e), detailsOf(e)));
    call.on('end', () => settle('OK'));
  });
}

export async function fuzz(h: Harness, opts: FuzzOptions): Promise<Outcome> {
  const out = outcome(`fuzz: ${opts.calls} calls over every RPC (seed ${opts.seed})`);
  const random = rng(opts.seed);
  const root = new protobuf.Root();
  root.loadSync(join(REPO, 'proto', 'api.proto'), { keepCase: true });
  root.resolveAll();
  const services = (['RuntimeService', 'ImageService'] as const).map((s) => ({ name: s, svc: root.lookupService(`runtime.v1.${s}`) }));
  const methods = services.flatMap(({ name, svc }) => svc.methodsArray.map((m) => ({
    service: name, name: m.name, path: `/runtime.v1.${name}/${m.name}`, type: root.lookupType(m.requestType), stream: !!m.responseStream,
  })));

  const cri = new CriClient(h.socket);
  const rawClient = new grpc.Client(`unix://${h.socket}`, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': 64 << 20 });
  const canary = join(h.dir, 'canary');
  const hostPaths = join(h.dir, 'hostpaths');
  mkdirSync(canary, { recursive: true });
  mkdirSync(hostPaths, { recursive: true });
  const histogram: Record<string, number> = {};
  const slow: Record<string, number> = {};
  const failures: CorpusEntry[] = [];
  let versionFailures = 0;
  try {
    const image = await pullBusybox(h, cri);
    const imageId = (await cri.image<{ image: { id: string } }>('ImageStatus', { image: { image } })).image.id;
    // The context the mutations start from; made again when a fuzzed call removed it.
    const ctx: Ctx = { pod: '', podConfig: {}, ctr: '', image, imageId, registry: h.registry!.host, canary, hostPaths };
    const fresh = async () => {
      const podConfig = reliabilityPod(h, `fz-base-${Math.floor(random() * 1e9)}`, `fz-base-uid-${Math.floor(random() * 1e9)}`);
      ctx.podConfig = podConfig;
      ctx.pod = (await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: podConfig })).pod_sandbox_id;
      ctx.ctr = (await cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: ctx.pod, config: containerConfig('base', image, IDLE_COMMAND), sandbox_config: podConfig })).container_id;
      await cri.call('StartContainer', { container_id: ctx.ctr });
    };
    await fresh();

    const send = async (m: typeof methods[number], bytes: Buffer, what: () => CorpusEntry) => {
      const r = await rawCall(rawClient, m.path, bytes, m.stream);
      histogram[r.code] = (histogram[r.code] ?? 0) + 1;
      if (r.code === 'DEADLINE_EXCEEDED') slow[m.name] = (slow[m.name] ?? 0) + 1;
      if (!ACCEPTED.has(r.code)) {
        const entry = what();
        failures.push(entry);
        out.problems.push(`${m.service}.${m.name} answered ${r.code}: ${r.details.slice(0, 200)} <- ${entry.note.slice(0, 300)}`);
      }
    };
    const imagePullSafe = (m: typeof methods[number], req: Record<string, any>) => {
      // Never a pull from anywhere but the test registry.
      if (m.name !== 'PullImage') return req;
      const spec = (typeof req.image === 'object' && req.image) ? req.image : (req.image = {});
      spec.image = `${ctx.registry}/${typeof spec.image === 'string' ? spec.image.replace(/^[^/]*\//, '') : 'x'}`;
      return req;
    };

    // 1. The regression corpus.
    const corpus: CorpusEntry[] = existsSync(CORPUS) ? (JSON.parse(readFileSync(CORPUS, 'utf8')) as CorpusEntry[]) : [];
    for (const e of corpus) {
      const m = methods.find((x) => x.service === e.service && x.name === e.method);
      if (!m) continue;
      const bytes = e.bytes !== undefined ? Buffer.from(e.bytes, 'base64')
        : Buffer.from(m.type.encode(m.type.fromObject(imagePullSafe(m, substitute(e.request, ctx) as Record<string, unknown>))).finish());
      await send(m, bytes, () => e);
    }

    // 2. Seeded calls.
    const gen = new Generator(random, ctx);
    let clientRejected = 0;
    for (let i = 0; i < opts.calls; i++) {
      const m = gen.pick(methods);
      if (random() < 0.25) {
        const bytes = Buffer.from(Array.from({ length: Math.floor(random() * 200) }, () => Math.floor(random() * 256)));
        await send(m, bytes, () => ({ service: m.service, method: m.name, bytes: bytes.toString('base64'), note: `random bytes ${bytes.toString('hex').slice(0, 80)}` }));
      } else {
        const base = (bases(ctx)[m.name] ?? {}) as Record<string, unknown>;
        const req = imagePullSafe(m, random() < 0.15 ? gen.message(m.type, 0) : gen.mutate(m.type, base));
        let bytes: Buffer;
        try {
          bytes = Buffer.from(m.type.encode(m.type.fromObject(req)).finish());
        } catch {
          clientRejected++; // not expressible as this message: nothing to send
          continue;
        }
        await send(m, bytes, () => ({ service: m.service, method: m.name, request: generalize(req, ctx), note: JSON.stringify(generalize(req, ctx)).slice(0, 2000) }));
      }
      if (i % 25 === 0) {
        try {
          await cri.call('Version', {}, 5000);
        } catch {
          versionFailures++;
          out.problems.push(`Version failed after call ${i}`);
        }
        // Keep a live pod and container to aim at.
        const alive = await cri.call('ContainerStatus', { container_id: ctx.ctr }, 10_000).then((s: any) => s.status.state === 'CONTAINER_RUNNING', () => false);
        if (!alive) await fresh().catch((e) => out.problems.push(`recreating the fuzz pod: ${codeOf(e)} ${detailsOf(e)}`));
      }
      if (out.problems.length > 40) break;
    }
    const written = filesUnder(canary);
    if (written.length) out.problems.push(`files written through hostile paths: ${written.slice(0, 5).map((f) => f.path).join(' ')}`);
    out.problems.push(...(await removeEverything(cri)));
    out.figures = {
      calls: Object.values(histogram).reduce((a, b) => a + b, 0),
      'codes': Object.entries(histogram).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', '),
      'not expressible (skipped)': clientRejected,
      'unanswered within 3 s': Object.entries(slow).map(([k, v]) => `${k} ${v}`).join(', ') || 'none',
      'corpus replayed': corpus.length,
      'Version failures': versionFailures,
      'files under the canary': written.length,
    };
    if (failures.length) {
      const file = join(REPO, '.tools', 'reports', 'fuzz-failures.json');
      mkdirSync(join(REPO, '.tools', 'reports'), { recursive: true });
      writeFileSync(file, JSON.stringify(failures, null, 2));
      out.figures['failing inputs'] = `${file} (add them to e2e/reliability/corpus.json once fixed)`;
    }
  } finally {
    cri.close();
    rawClient.close();
  }
  return out;
}

/** The live ids and dirs of this run replaced by placeholders, for the corpus. */
function generalize(v: unknown, c: Ctx): unknown {
  const s = JSON.stringify(v, (_k, x) => (Buffer.isBuffer(x) || (x && x.type === 'Buffer') ? undefined : x));
  const pairs: Array<[string, string]> = [[c.ctr, '$CTR'], [c.pod, '$POD'], [c.imageId, '$IMAGE_ID'], [c.image, '$IMAGE'], [c.canary, '$CANARY'], [c.hostPaths, '$HOSTPATHS'], [c.registry, '$REGISTRY']];
  let out = s ?? 'null';
  for (const [from, to] of pairs) if (from) out = out.split(from).join(to);
  return JSON.parse(out);
}

function substitute(v: unknown, c: Ctx): unknown {
  let s = JSON.stringify(v ?? {});
  const pairs: Array<[string, string]> = [['$CTR', c.ctr], ['$POD', c.pod], ['$IMAGE_ID', c.imageId], ['$IMAGE', c.image], ['$CANARY', c.canary], ['$HOSTPATHS', c.hostPaths], ['$REGISTRY', c.registry]];
  for (const [from, to] of pairs) s = s.split(from).join(to);
  return JSON.parse(s);
}
