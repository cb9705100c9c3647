import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { writeTar } from '../snapshot/tar-writer.js';
import { UnpackPool } from './unpack-pool.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function* pieces(b: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let off = 0;
  for (let i = 0; off < b.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield b.subarray(off, off + n);
    off += n;
  }
}

function layer(files: Record<string, Buffer>) {
  const tar = writeTar(Object.entries(files).map(([name, data]) => ({ name, type: 'file' as const, mode: 0o644, data })));
  const blob = gzipSync(tar, { level: 1 });
  return { blob, digest: sha(blob), diffId: sha(tar) };
}

test('bytes arriving in reads of any size, and reads larger than a batch, unpack intact on a worker', async (t) => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'corral-pool-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const pool = new UnpackPool(2);
  t.teardown(() => pool.close());
  await pool.ready();
  const a = randomBytes(3 << 20);
  const b = randomBytes(12345);
  const l = layer({ a, 'sub/b': b });
  await fs.mkdir(join(dir, 'x'));
  // Odd small reads, then one read of 3 MiB (more than a batch).
  const stats = await pool.unpack(join(dir, 'x'), pieces(l.blob, [7001, 1, 65536, 3 << 20]), l.digest, l.diffId, new AbortController().signal);
  t.true((await fs.readFile(join(dir, 'x', 'a'))).equals(a));
  t.true((await fs.readFile(join(dir, 'x', 'sub', 'b'))).equals(b));
  t.is(stats.size, a.length + b.length);
});

test('a source that fails mid-layer rejects with its error; a wrong digest names both', async (t) => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'corral-pool-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const pool = new UnpackPool(1);
  t.teardown(() => pool.close());
  const l = layer({ f: randomBytes(2 << 20) });
  await fs.mkdir(join(dir, 'y'));
  await fs.mkdir(join(dir, 'z'));
  async function* broken() {
    yield l.blob.subarray(0, 1500000);
    throw new Error('connection reset');
  }
  await t.throwsAsync(pool.unpack(join(dir, 'y'), broken(), l.digest, l.diffId, new AbortController().signal), { message: /connection reset/ });
  const wrong = `sha256:${'0'.repeat(64)}`;
  const err = await t.throwsAsync(pool.unpack(join(dir, 'z'), pieces(l.blob, [50000]), wrong, l.diffId, new AbortController().signal));
  t.regex(err!.message, new RegExp(`${wrong}.*${l.digest}`));
});
