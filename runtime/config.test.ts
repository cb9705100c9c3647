import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configToToml, defaultConfig, loadConfig, parseConfig } from './config.js';
import { InvalidArgumentError } from './errors.js';

const dir = mkdtempSync(join(tmpdir(), 'corral-config-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

test('a missing file means the embedded defaults', (t) => {
  const cfg = loadConfig(join(dir, 'nope.toml'));
  t.is(cfg.socket, defaultConfig().socket);
  t.is(cfg.runtimes.runc!.root, '/run/corral/runc');
  t.is(cfg.cni.cache_dir, '/var/lib/corral/cni');
});

test('empty runtime roots and CNI cache follow state_dir and root_dir', (t) => {
  const cfg = loadConfig(join(dir, 'nope.toml'), { state_dir: '/s', root_dir: '/r' });
  t.is(cfg.runtimes.crun!.root, '/s/crun');
  t.is(cfg.cni.cache_dir, '/r/cni');
});

test('a missing file that was asked for explicitly is an error naming it', (t) => {
  const err = t.throws(() => loadConfig(join(dir, 'nope.toml'), {}, true));
  t.regex(err!.message, /nope\.toml does not exist/);
});

test('values override defaults, tables merge key by key', (t) => {
  const cfg = parseConfig('socket = "/x.sock"\n[cni]\nconf_dir = "/c"\n[streaming]\nport = 1234\n', 'f.toml');
  t.is(cfg.socket, '/x.sock');
  t.is(cfg.cni.conf_dir, '/c');
  t.deepEqual(cfg.cni.bin_dirs, defaultConfig().cni.bin_dirs);
  t.is(cfg.streaming.port, 1234);
  t.is(cfg.streaming.address, '127.0.0.1');
  t.is(cfg.streaming.idle_timeout_seconds, 4 * 60 * 60);
  t.is(parseConfig('[streaming]\nidle_timeout_seconds = 0\n', 'f.toml').streaming.idle_timeout_seconds, 0);
});

test('runtime handlers merge over the defaults of the same name and new ones get empty defaults', (t) => {
  const cfg = parseConfig('[runtimes.runc]\npath = "/opt/runc"\n[runtimes.kata]\npath = "/k"\n', 'f.toml');
  t.is(cfg.runtimes.runc!.path, '/opt/runc');
  t.is(cfg.runtimes.runc!.root, '');
  t.deepEqual(cfg.runtimes.kata, { path: '/k', root: '', options: [] });
});

test('registries with mirrors', (t) => {
  const cfg = parseConfig('[registries."docker.io"]\nmirrors = ["http://127.0.0.1:5000/docker.io"]\n', 'f.toml');
  t.deepEqual(cfg.registries['docker.io'], { mirrors: ['http://127.0.0.1:5000/docker.io'], insecure: false, ca_file: '' });
});

const bad: Array<[string, string, RegExp]> = [
  ['unknown top-level key', 'sockett = "/x"', /unknown key "sockett"/],
  ['unknown nested key', '[cni]\nconfdir = "/x"', /unknown key "cni\.confdir"/],
  ['wrong type', 'socket = 3', /key "socket" must be string, got 3/],
  ['wrong integer', '[streaming]\nport = "80"', /key "streaming\.port" must be integer/],
  ['float for integer', 'shutdown_grace_seconds = 1.5', /must be integer/],
  ['bad enum', 'log_level = "loud"', /key "log_level" must be one of "error", "warn", "info", "debug"/],
  ['array of strings', '[cni]\nbin_dirs = [1]', /key "cni\.bin_dirs" must be array of strings/],
  ['table expected', 'cni = 3', /key "cni" must be table/],
  ['default runtime unknown', 'default_runtime = "kata"', /default_runtime.*"kata".*not in \[runtimes\]/],
  ['bad mirror', '[registries."x.io"]\nmirrors = ["ftp://m"]', /registries\.x\.io\.mirrors/],
  ['port out of range', '[streaming]\nport = 70000', /streaming\.port/],
  ['negative idle timeout', '[streaming]\nidle_timeout_seconds = -1', /streaming\.idle_timeout_seconds/],
  ['not TOML', 'socket = ', /f\.toml/],
];
for (const [name, text, re] of bad) {
  test(`error: ${name} names the key and the file`, (t) => {
    const err = t.throws(() => parseConfig(text, 'f.toml'));
    t.true(err instanceof InvalidArgumentError);
    t.regex(err!.message, re);
    t.regex(err!.message, /f\.toml/);
  });
}

test('errors from a real file name the file', (t) => {
  const p = file('bad.toml', 'nope = 1\n');
  const err = t.throws(() => loadConfig(p));
  t.true(err!.message.includes(p));
});

test('CLI overrides win over the file and are type-checked', (t) => {
  const p = file('ok.toml', 'socket = "/from-file.sock"\n');
  const cfg = loadConfig(p, { socket: '/flag.sock', 'streaming.port': 99 });
  t.is(cfg.socket, '/flag.sock');
  t.is(cfg.streaming.port, 99);
  const err = t.throws(() => loadConfig(p, { log_level: 'loud' }));
  t.regex(err!.message, /command line/);
});

test('configToToml prints every default and parses back to the same config', (t) => {
  const text = configToToml(defaultConfig());
  for (const key of ['socket', 'root_dir', 'state_dir', 'conmon', 'default_runtime', '[cni]', '[streaming]', '[pull]', '[runtimes.crun]']) {
    t.true(text.includes(key), key);
  }
  t.deepEqual(parseConfig(text, 'roundtrip'), defaultConfig());
});
