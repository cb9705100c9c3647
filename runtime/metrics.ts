/**
 * Prometheus metrics of the runtime (prom-client). One registry per daemon; services
 * record into the metric objects below, and server/metrics-http.ts serves the registry
 * when config.metrics.address is set. Recording is cheap and never throws, so services
 * call it unconditionally.
 */
import client from 'prom-client';

export class Metrics {
  readonly registry = new client.Registry();

  readonly rpcRequests = new client.Counter({
    name: 'corral_rpc_requests_total',
    help: 'CRI RPCs served, by method and gRPC status code.',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  });

  readonly rpcDuration = new client.Histogram({
    name: 'corral_rpc_duration_seconds',
    help: 'Latency of CRI RPCs, by method.',
    labelNames: ['method'] as const,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
    registers: [this.registry],
  });

  readonly pullBytes = new client.Counter({
    name: 'corral_image_pull_bytes_total',
    help: 'Bytes received from registries while pulling images.',
    registers: [this.registry],
  });

  readonly pullDuration = new client.Histogram({
    name: 'corral_image_pull_duration_seconds',
    help: 'Duration of image pulls that fetched something.',
    buckets: [0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });

  /** Operation latencies: sandbox_run, sandbox_stop, container_create, container_start, container_stop, ... */
  readonly operationDuration = new client.Histogram({
    name: 'corral_operation_duration_seconds',
    help: 'Latency of runtime operations, by operation.',
    labelNames: ['operation'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  /** Where the time of a pod or container start goes: one observation per phase. */
  readonly phaseDuration = new client.Histogram({
    name: 'corral_start_phase_duration_seconds',
    help: 'Duration of each phase of sandbox and container creation.',
    labelNames: ['kind', 'phase'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly cniErrors = new client.Counter({
    name: 'corral_cni_errors_total',
    help: 'CNI plugin invocations that failed, by command.',
    labelNames: ['command'] as const,
    registers: [this.registry],
  });

  /** Set by the composition root: current counts by state, read at each scrape. */
  private countSource: (() => { containers: Record<string, number>; sandboxes: Record<string, number> }) | undefined;

  readonly containers: client.Gauge<'state'> = new client.Gauge({
    name: 'corral_containers',
    help: 'Containers by state.',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: (): void => this.fill(this.containers, 'containers'),
  });

  readonly sandboxes: client.Gauge<'state'> = new client.Gauge({
    name: 'corral_pod_sandboxes',
    help: 'Pod sandboxes by state.',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: (): void => this.fill(this.sandboxes, 'sandboxes'),
  });

  setCountSource(fn: () => { containers: Record<string, number>; sandboxes: Record<string, number> }): void {
    this.countSource = fn;
  }

  private fill(g: client.Gauge<'state'>, which: 'containers' | 'sandboxes'): void {
    if (!this.countSource) return;
    g.reset();
    for (const [state, n] of Object.entries(this.countSource()[which])) g.set({ state }, n);
  }

  constructor(withProcessMetrics = true) {
    if (withProcessMetrics) client.collectDefaultMetrics({ register: this.registry });
  }

  /** Times an async operation into operationDuration. */
  async time<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const end = this.operationDuration.startTimer({ operation });
    try {
      return await fn();
    } finally {
      end();
    }
  }
}
