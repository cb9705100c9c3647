#!/usr/bin/env node
/**
 * The corral command: `corral [serve]` runs the daemon; `corral config` prints the
 * effective configuration; `corral doctor` checks the host; `corral import FILE` loads
 * an image archive into the store; `corral version`.
 */
import { configToToml, loadConfig, type Config } from '../runtime/config.js';
import { USAGE, parseArgs } from './main-args.js';
import { RuntimeError } from '../runtime/errors.js';
import { createLogger } from '../runtime/util/log.js';
import { CORRAL_VERSION } from '../runtime/version.js';
import { runDoctor } from '../runtime/doctor.js';
import { startDaemon } from './daemon.js';

async function serve(config: Config): Promise<number> {
  const logger = createLogger(config.log_level, config.log_format);
  const daemon = await startDaemon(config, logger);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.on(sig, () => { void daemon.shutdown(sig); });
  }
  await daemon.done;
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const p = parseArgs(argv);
  if (p.command === 'help') { process.stdout.write(USAGE); return 0; }
  if (p.command === 'version') { process.stdout.write(`corral ${CORRAL_VERSION}\n`); return 0; }
  const config = loadConfig(p.configPath, p.overrides, p.configGiven);
  switch (p.command) {
    case 'serve':
      return serve(config);
    case 'config':
      process.stdout.write(configToToml(config) + '\n');
      return 0;
    case 'doctor':
      return runDoctor(config, process.stdout);
    case 'import': {
      if (p.args.length === 0) throw new Error('usage: corral import FILE...');
      const { runImport } = await import('./import.js');
      return runImport(config, p.args, process.stdout);
    }
    default:
      throw new Error(`unknown command "${p.command}"\n\n${USAGE}`);
  }
}

// Exit explicitly: after a shutdown nothing of the daemon may keep the process alive
// (an idle worker thread, a half-closed socket), or a service manager's stop would hang.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    const msg = err instanceof RuntimeError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`corral: ${msg}\n`);
    process.exit(1);
  },
);
