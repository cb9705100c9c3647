import test from 'ava';
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdtempSync, readlinkSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXEC_SEALS, SealedBinaries, sealedCopy, sealsOf } from './sealed.js';

test('a sealed copy carries the seals runtimes look for and runs like the file', (t) => {
  const fd = sealedCopy('/bin/echo');
  try {
    t.is(sealsOf(fd), EXEC_SEALS);
    t.is(execFileSync(`/proc/${process.pid}/fd/${fd}`, ['sealed']).toString(), 'sealed\n');
    t.regex(readlinkSync(`/proc/self/fd/${fd}`), /^\/memfd:/);
  } finally {
    closeSync(fd);
  }
});

test('execPath reuses its copy, makes a new one when the file changes, and falls back to the path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-sealed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, 'echo');
  copyFileSync('/bin/echo', bin);
  const errors: string[] = [];
  const sb = new SealedBinaries((p) => errors.push(p));
  t.teardown(() => sb.close());
  const a = sb.execPath(bin);
  t.regex(a, new RegExp(`^/proc/${process.pid}/fd/\\d+$`));
  t.is(sb.execPath(bin), a);
  utimesSync(bin, new Date(), new Date(Date.now() + 5000));
  t.is(sb.execPath(bin), a, 'not looked at again within a second');
  await new Promise((r) => setTimeout(r, 1100));
  const b = sb.execPath(bin);
  t.not(b, a);
  t.is(execFileSync(b, ['x']).toString(), 'x\n');
  t.is(sb.execPath(join(dir, 'missing')), join(dir, 'missing'));
  t.deepEqual(errors, []);
});
