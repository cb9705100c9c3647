import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { NotFoundError } from '../errors.js';
import { NetnsStatsReader, parseProcNetDev } from './ifstats.js';

const run = promisify(execFile);

const SAMPLE = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     168       2    0    0    0     0          0         0      168       2    0    0    0     0       0          0
  eth0: 18446744073709551615  1234    1    2    0     0          0         3  9876  54    4    5    0     0       0          0
`;

test('parseProcNetDev', (t) => {
  t.deepEqual(parseProcNetDev(SAMPLE), [
    { name: 'lo', rxBytes: 168n, rxPackets: 2n, rxErrors: 0n, rxDropped: 0n, txBytes: 168n, txPackets: 2n, txErrors: 0n, txDropped: 0n },
    { name: 'eth0', rxBytes: 18446744073709551615n, rxPackets: 1234n, rxErrors: 1n, rxDropped: 2n, txBytes: 9876n, txPackets: 54n, txErrors: 4n, txDropped: 5n },
  ]);
  t.deepEqual(parseProcNetDev(''), []);
});

(process.getuid?.() === 0 ? test.serial : test.skip)('reads the counters inside a pinned netns, not the host\'s', async (t) => {
  const r = randomBytes(2).toString('hex');
  const ns = `corral-test-${r}`;
  const inner = `ctif${r}`;
  await run('ip', ['netns', 'add', ns]);
  t.teardown(async () => {
    await run('ip', ['netns', 'del', ns]).catch(() => {});
    await run('ip', ['link', 'del', `cth${r}`]).catch(() => {});
  });
  await run('ip', ['link', 'add', `cth${r}`, 'type', 'veth', 'peer', 'name', inner, 'netns', ns]);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  await run('ip', ['netns', 'exec', ns, 'busybox', 'ping', '-c1', '-W1', '127.0.0.1']);
  const reader = new NetnsStatsReader();
  t.teardown(() => reader.close());
  const stats = await reader.read(`/run/netns/${ns}`);
  t.deepEqual(stats.map((s) => s.name).sort(), [inner, 'lo'].sort());
  const lo = stats.find((s) => s.name === 'lo')!;
  t.true(lo.rxPackets >= 2n && lo.txBytes > 0n, JSON.stringify(lo, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  // The worker is reused and went home: a second read works, and the main thread never moved.
  t.is((await reader.read(`/run/netns/${ns}`)).length, 2);
  t.false(readFileSync('/proc/self/net/dev', 'utf8').includes(`${inner}:`));
  await t.throwsAsync(reader.read(`/run/netns/corral-test-missing-${r}`), { instanceOf: NotFoundError });
  await t.throwsAsync(reader.read('/etc/hostname'), { message: /setns/ });
  t.is((await reader.read(`/run/netns/${ns}`)).length, 2);
});
