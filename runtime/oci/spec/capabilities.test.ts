import test from 'ava';
import { ALL_CAPABILITIES, capabilityNamesFromMask, DEFAULT_CAPABILITIES, normalizeCapability, withCapabilities } from './capabilities.js';
import { containerConfig, specContext, specInput } from './fixtures.js';

async function caps(sc: Parameters<typeof containerConfig>[1], hostCaps: string[] = [...ALL_CAPABILITIES]) {
  const { spec, ctx } = specContext(specInput({ config: containerConfig({ command: ['x'] }, sc), hostCaps }));
  await withCapabilities(spec, ctx);
  return { c: spec.process.capabilities!, warnings: ctx.warnings };
}

const capability = (add: string[] = [], drop: string[] = [], ambient: string[] = []) => ({
  capabilities: { add_capabilities: add, drop_capabilities: drop, add_ambient_capabilities: ambient },
});

const sorted = (l: readonly string[]) => [...l].sort();

const rows: Array<{ title: string; sc: Parameters<typeof containerConfig>[1]; want: string[] }> = [
  { title: 'default set', sc: {}, want: [...DEFAULT_CAPABILITIES] },
  { title: 'add without prefix, lower case', sc: capability(['net_admin', 'SYS_TIME']), want: [...DEFAULT_CAPABILITIES, 'CAP_NET_ADMIN', 'CAP_SYS_TIME'] },
  { title: 'drop with prefix', sc: capability([], ['CAP_CHOWN', 'kill']), want: DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_CHOWN' && c !== 'CAP_KILL') },
  { title: 'add ALL', sc: capability(['ALL']), want: [...ALL_CAPABILITIES] },
  { title: 'drop ALL', sc: capability([], ['ALL']), want: [] },
  { title: 'drop ALL, add one', sc: capability(['NET_BIND_SERVICE'], ['ALL']), want: ['CAP_NET_BIND_SERVICE'] },
  { title: 'add ALL, drop one', sc: capability(['ALL'], ['SYS_ADMIN']), want: ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_ADMIN') },
  { title: 'add and drop the same: dropped', sc: capability(['NET_ADMIN'], ['NET_ADMIN']), want: [...DEFAULT_CAPABILITIES] },
  { title: 'privileged: all, add/drop ignored', sc: { privileged: true, ...capability([], ['ALL']) }, want: [...ALL_CAPABILITIES] },
];
for (const row of rows) {
  test(`caps: ${row.title}`, async (t) => {
    const { c } = await caps(row.sc);
    t.deepEqual(sorted(c.bounding), sorted(row.want));
    t.deepEqual(c.effective, c.bounding);
    t.deepEqual(c.permitted, c.bounding);
    t.deepEqual(c.inheritable, []);
    t.deepEqual(c.ambient, []);
  });
}

test('caps: the daemon lacks CAP_SYS_RESOURCE: privileged and explicit adds leave it out', async (t) => {
  const host = ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE');
  const p = await caps({ privileged: true }, host);
  t.false(p.c.bounding.includes('CAP_SYS_RESOURCE'));
  t.is(p.c.bounding.length, ALL_CAPABILITIES.length - 1);
  t.deepEqual(p.warnings, []);
  const a = await caps(capability(['SYS_RESOURCE']), host);
  t.false(a.c.bounding.includes('CAP_SYS_RESOURCE'));
  t.regex(a.warnings.join(), /CAP_SYS_RESOURCE/);
});

test('caps: ambient capabilities are inheritable too, and must be in the set', async (t) => {
  const { c, warnings } = await caps(capability(['NET_ADMIN'], [], ['net_admin', 'CAP_SYS_ADMIN']));
  t.deepEqual(c.ambient, ['CAP_NET_ADMIN']);
  t.deepEqual(c.inheritable, ['CAP_NET_ADMIN']);
  t.regex(warnings.join(), /CAP_SYS_ADMIN is not in the container's capability set/);
});

test('caps: unknown names are warned and ignored', async (t) => {
  const { c, warnings } = await caps(capability(['CAP_BOGUS']));
  t.deepEqual(sorted(c.bounding), sorted(DEFAULT_CAPABILITIES));
  t.regex(warnings.join(), /unknown capability CAP_BOGUS/);
});

test('caps: helpers', (t) => {
  t.is(normalizeCapability('net_raw'), 'CAP_NET_RAW');
  t.is(normalizeCapability('all'), 'ALL');
  t.deepEqual(capabilityNamesFromMask(0x1fffeffffffn), ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE'));
});
