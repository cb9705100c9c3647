/**
 * The daemon: binds the CRI socket, serves until SIGTERM/SIGINT, then drains.
 * A shutdown never touches containers or pods: conmon keeps them, and the next
 * start rebuilds the state from disk.
 */
import * as grpc from '@grpc/grpc-js';
import { promises as fs } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { createRuntime, type Config, type Logger, type Runtime } from '../runtime/index.js';
import { errnoCode, FailedPreconditionError } from '../runtime/errors.js';
import { CORRAL_VERSION } from '../runtime/version.js';
import { createGrpcServer } from './grpc.js';
import { startMetricsServer } from './metrics-http.js';
import { ensureStreamingServer } from './streaming/server.js';

/** True when something accepts connections on the unix socket at path. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (v: boolean) => { s.destroy(); resolve(v); };
    s.setTimeout(timeoutMs, () => done(true)); // accepted but silent: still alive
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Makes the socket path usable: the directory root-only (0700), a stale socket file
 * (nobody listening) removed, and a live one refused: two daemons must never share a
 * socket, the second would steal the kubelet's connections.
 */
export async function prepareSocket(path: string): Promise<void> {
  await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await fs.chmod(dirname(path), 0o700);
  let st;
  try {
    st = await fs.lstat(path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new FailedPreconditionError(`${path} exists and is not a socket; refusing to replace it`);
  if (await socketAnswers(path)) {
    throw new FailedPreconditionError(`another daemon is already serving on ${path}; stop it first`);
  }
  await fs.unlink(path);
}

export interface Daemon {
  runtime: Runtime;
  /** Resolves when the daemon has shut down. */
  done: Promise<void>;
  shutdown(reason: string): Promise<void>;
}

export async function startDaemon(config: Config, logger: Logger): Promise<Daemon> {
  await prepareSocket(config.socket);
  const runtime = await createRuntime(config, logger);
  const { server, inflight } = createGrpcServer(runtime);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${config.socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
  await fs.chmod(config.socket, 0o660);
  // The streaming server starts with the daemon so its port is fixed (and logged) before the
  // first exec; a failure here is not fatal, the first Exec tries again and reports it.
  const streaming = await ensureStreamingServer(runtime).catch((err: Error) => {
    logger.warn(`streaming server: ${err.message}`);
    return undefined;
  });
  const metricsServer = config.metrics.address ? await startMetricsServer(runtime, config.metrics.address) : undefined;
  if (metricsServer) logger.info(`metrics on http://${config.metrics.address}/metrics`);
  logger.info(`corral ${CORRAL_VERSION} serving CRI on ${config.socket}`, {
    cgroups: runtime.cgroups.mode,
    driver: runtime.cgroups.driver,
    runtime: runtime.defaultHandler,
  });

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => { resolveDone = r; });
  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    shuttingDown ??= (async () => {
      logger.info(`shutting down (${reason}); ${inflight.size} call(s) in flight`);
      const graceMs = config.shutdown_grace_seconds * 1000;
      // tryShutdown stops accepting new calls; then only the calls in flight get the grace
      // period. Idle connections (including peers stuck mid-handshake) are closed at once:
      // tryShutdown alone would wait for them forever.
      server.tryShutdown(() => undefined);
      const drained = await inflight.drain(graceMs);
      if (!drained) logger.warn(`in-flight calls did not finish within ${config.shutdown_grace_seconds}s; closing them`);
      server.forceShutdown();
      metricsServer?.close();
      await streaming?.close();
      await runtime.close();
      await fs.unlink(config.socket).catch(() => undefined);
      logger.info('stopped');
      resolveDone();
    })();
    return shuttingDown;
  };
  return { runtime, done, shutdown };
}
