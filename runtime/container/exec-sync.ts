/**
 * ExecSync: `<runtime> exec --process <json>` with stdout and stderr on separate pipes,
 * each kept up to 16 MiB (the rest is read and dropped so that the process never blocks
 * on a full pipe). At the deadline the exec'd process is SIGKILLed through its pid file
 * (killing `runc exec` alone would leave it running in the container) and the call fails
 * with DeadlineExceeded, which the kubelet's prober reads as a probe timeout (the kubelet
 * maps a DEADLINE_EXCEEDED status of ExecSync to a timed-out probe).
 */
import { promises as fs } from 'node:fs';
import { CancelledError, DeadlineExceededError, InternalError } from '../errors.js';
import { fastSpawn } from '../linux/spawn.js';
import { MAX_TIMER_MS } from '../util/timers.js';

export const EXEC_OUTPUT_CAP = 16 << 20;

export interface ExecSyncResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

class Capped {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly cap: number) {}
  push(b: Buffer): void {
    if (this.size >= this.cap) return;
    const take = b.subarray(0, this.cap - this.size);
    this.chunks.push(take);
    this.size += take.length;
  }
  get value(): Buffer { return Buffer.concat(this.chunks); }
}

async function readPid(pidFile: string): Promise<number | undefined> {
  const s = await fs.readFile(pidFile, 'utf8').catch(() => '');
  const n = Number.parseInt(s.trim(), 10);
  return n > 0 ? n : undefined;
}

export async function runExecSync(opts: {
  file: string;
  args: string[];
  pidFile: string;
  timeoutMs: number;
  cmd: string[];
  signal?: AbortSignal;
  cap?: number;
}): Promise<ExecSyncResult> {
  const cap = opts.cap ?? EXEC_OUTPUT_CAP;
  const out = new Capped(cap);
  const err = new Capped(cap);
  const child = fastSpawn(opts.file, opts.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout = child.stdout!;
  const stderr = child.stderr!;
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  let why: 'timeout' | 'cancel' | undefined;
  // The runtime (runc/crun exec) is the exec'd process' parent and reaps it: kill only the
  // process and let the runtime exit by itself. Killing the runtime too would reparent the
  // process to the container's init, which (top, sleep, a shell) rarely reaps: a zombie
  // "sleep" would then linger in the container (critest looks for exactly that).
  let grace: NodeJS.Timeout | undefined;
  const killAll = async (reason: 'timeout' | 'cancel') => {
    why ??= reason;
    const pid = await readPid(opts.pidFile);
    if (pid) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
    grace ??= setTimeout(() => child.kill('SIGKILL'), pid ? 2000 : 0);
  };
  // A timeout past setTimeout's range (~24.8 days) would fire at once: it is no timeout.
  const timer = opts.timeoutMs > 0 && opts.timeoutMs <= MAX_TIMER_MS ? setTimeout(() => void killAll('timeout'), opts.timeoutMs) : undefined;
  const onAbort = () => void killAll('cancel');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (c: number | null, s: NodeJS.Signals | null) => {
        // Background children of the command may hold the pipes open: give the output a
        // moment to drain, then stop reading instead of waiting for them.
        const done = () => resolve({ code: c, signal: s });
        if (stdout.readableEnded && stderr.readableEnded) return done();
        const t = setTimeout(() => { stdout.destroy(); stderr.destroy(); done(); }, 500);
        child.once('close', () => { clearTimeout(t); done(); });
      });
    });
    if (why === 'timeout') {
      throw new DeadlineExceededError(`command ${JSON.stringify(opts.cmd)} timed out after ${opts.timeoutMs / 1000}s`);
    }
    if (why === 'cancel') throw new CancelledError(`exec of ${JSON.stringify(opts.cmd)} cancelled`);
    if (code === null) throw new InternalError(`exec of ${JSON.stringify(opts.cmd)}: runtime killed by ${signal}`);
    // As CRI-O does, a runtime that could not start the command (no such executable)
    // reports its own exit code and message as the command's.
    return { stdout: out.value, stderr: err.value, exitCode: code };
  } finally {
    if (timer) clearTimeout(timer);
    if (grace) clearTimeout(grace);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

