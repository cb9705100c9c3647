/** Command-line parsing of the corral command (kept apart from main.ts so tests can import it). */
import { DEFAULT_CONFIG_PATH } from '../runtime/config.js';

export const USAGE = `usage: corral [serve|config|doctor|import FILE|version] [flags]

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

export interface Parsed { command: string; args: string[]; configPath: string; configGiven: boolean; overrides: Record<string, unknown> }

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

