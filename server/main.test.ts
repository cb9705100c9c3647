import test from 'ava';
import { parseArgs } from './main-args.js';

test('serve is the default command', (t) => {
  t.is(parseArgs([]).command, 'serve');
  t.is(parseArgs(['--socket', '/s']).command, 'serve');
});

test('flags become typed dotted overrides', (t) => {
  const p = parseArgs(['serve', '--socket=/s.sock', '--streaming-port', '10010', '--config', '/c.toml']);
  t.deepEqual(p.overrides, { socket: '/s.sock', 'streaming.port': 10010 });
  t.is(p.configPath, '/c.toml');
  t.true(p.configGiven);
});

test('bad flags are errors', (t) => {
  t.throws(() => parseArgs(['--nope']), { message: /unknown flag --nope/ });
  t.throws(() => parseArgs(['--streaming-port', 'x']), { message: /needs an integer/ });
  t.throws(() => parseArgs(['--socket']), { message: /needs a value/ });
});

test('import takes files', (t) => {
  t.deepEqual(parseArgs(['import', 'a.tar', 'b.tar']).args, ['a.tar', 'b.tar']);
});
