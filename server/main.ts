#!/usr/bin/env node
/**
 * The corral command: `corral [serve]` runs the daemon; `corral config` prints the
 * effective configuration; `corral doctor` checks the host; `corral import FILE` loads
 * an image archive into the store; `corral version`.
 */
import { DEFAULT_CONFIG_PATH, configToToml, loadConfig, type Config } from '../runtime/config.js';
import { RuntimeError } from '../runtime/errors.js';
import { createLogger } from '../runtime/util/log.js';
import { CORRAL_VERSION } from '../runtime/version.js';
import { runDoctor } from '../runtime/doctor.js';
import { startDaemon } from './daemon.js';

const USAGE = `usage: corral [serve|config|doctor|import FILE|version] [flags]

flags:
  --config FILE            configuration file (default ${DEFAULT_CONFIG_PATH}; missing = embedded defaults)
  --socket PATH            CRI socket
  --root-dir DIR           persistent state: images, snapshots, containers
  --state-dir DIR          volatile state: pinned namespaces, runtime state
  --log-level LEVEL        error|warn|info|debug
  --log-format FORMAT      text|json
  --cgroup-driver DRIVER   auto|cgroupfs|systemd
  --default-runtime NAME   runtime handler used when a pod names none
  --streaming-address ADDR address of the exec/attach/port-forward server
  --streaming-port PORT    its port (0: any free port)
`;

/** Flag -> dotted config key and how to parse its value. */
const FLAGS: Record<string, { key: string; int?: boolean }> = {
  '--socket': { key: 'socket' },
  '--root-dir': { key: 'root_dir' },
  '--state-dir': { key: 'state_dir' },
  '--log-level': { key: 'log_level' },
  '--log-format': { key: 'log_format' },
  '--cgroup-driver': { key: 'cgroup_driver' },
  '--default-runtime': { key: 'default_runtime' },
  '--streaming-address': { key: 'streaming.address' },
  '--streaming-port': { key: 'streaming.port', int: true },
};

interface Parsed { command: string; args: string[]; configPath: string; configGiven: boolean; overrides: Record<string, unknown> }

export function parseArgs(argv: string[]): Parsed {
  const out: Parsed = { command: '', args: [], configPath: DEFAULT_CONFIG_PATH, configGiven: false, overrides: {} };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let value: string | undefined;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) { value = a.slice(eq + 1); a = a.slice(0, eq); }
    const take = () => {
      if (value !== undefined) return value;
      const v = argv[++i];
      if (v === undefined) throw new Error(`flag ${a} needs a value`);
      return v;
    };
    if (a === '-h' || a === '--help') { out.command = 'help'; continue; }
    if (a === '--config') { out.configPath = take(); out.configGiven = true; continue; }
    const f = FLAGS[a];
    if (f) {
      const v = take();
      if (f.int && !/^\d+$/.test(v)) throw new Error(`flag ${a} needs an integer, got ${JSON.stringify(v)}`);
      out.overrides[f.key] = f.int ? Number(v) : v;
      continue;
    }
    if (a.startsWith('-')) throw new Error(`unknown flag ${a}\n\n${USAGE}`);
    if (!out.command) out.command = a;
    else out.args.push(a);
  }
  out.command ||= 'serve';
  return out;
}

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

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    const msg = err instanceof RuntimeError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`corral: ${msg}\n`);
    process.exitCode = 1;
  },
);
