/**
 * Runs a TAP-printing command (ava --tap) and guards against ava 7's TAP reporter crashing when
 * a test times out: its writeTimeout() hands dumpError() a plain Error, the reporter throws
 * inside an event handler, and the ava process then hangs forever with no totals printed. Seeing
 * that crash, this kills the command's process group, prints a `not ok` line naming the cause,
 * and exits 1, so the suite's counts are the test lines printed so far plus this failure.
 *
 *   node dist/e2e/harness/run-tap.js -- CMD [ARGS...]
 */
import { spawn } from 'node:child_process';

const CRASH = /node_modules\/ava\/lib\/reporters\/tap\.js:\d+/;

function main(argv: string[]): Promise<number> {
  const cmd = argv[0] === '--' ? argv.slice(1) : argv;
  if (cmd.length === 0) throw new Error('usage: run-tap.js -- CMD [ARGS...]');
  return new Promise((resolve) => {
    // Its own process group, so that ava and its workers can be killed together.
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let crashed = false;
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // gone
      }
    };
    const watch = (chunk: Buffer, out: NodeJS.WriteStream) => {
      out.write(chunk);
      if (!crashed && CRASH.test(chunk.toString())) {
        crashed = true;
        // Let the workers' own teardown (after.always hooks of e2e files) run a little first.
        setTimeout(() => killGroup('SIGTERM'), 5_000);
        setTimeout(() => killGroup('SIGKILL'), 30_000);
      }
    };
    child.stdout!.on('data', (c: Buffer) => watch(c, process.stdout));
    child.stderr!.on('data', (c: Buffer) => watch(c, process.stderr));
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => killGroup(sig));
    child.on('error', (e) => {
      console.error(`run-tap: ${cmd[0]}: ${e.message}`);
      resolve(127);
    });
    child.on('close', (code, signal) => {
      if (crashed) {
        process.stdout.write("not ok - ava's TAP reporter crashed after a test timed out (see the stack above); the run was stopped\n");
        resolve(1);
        return;
      }
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: Error) => {
    console.error(`run-tap: ${e.message}`);
    process.exitCode = 2;
  },
);
