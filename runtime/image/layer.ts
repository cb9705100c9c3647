/**
 * One pass from a compressed layer stream to files: digest of the compressed bytes ->
 * decompression -> diff id of the tar -> tar extraction into the snapshot directory. Both
 * digests are checked when the stream ends; the snapshotter removes the directory on failure.
 *
 * zstd: fzstd's streaming Decompress, in-process. Node 20's zlib has no zstd, and spawning
 * `zstd -d` would add a child process whose lifetime, errors and cancellation must be tied to
 * the stream graph; fzstd is already a dependency and zstd layers are uncommon, so its lower
 * speed matters less than keeping the whole pipeline one cancellable stream.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { InvalidArgumentError } from '../errors.js';
import type { FsOps } from '../linux/fsops.js';
import { unpackLayer, type UnpackIO, type UnpackStats } from '../snapshot/unpack.js';

export type Compression = 'gzip' | 'zstd' | 'none';

export function sniffCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

class ZstdDecompress extends Transform {
  private readonly d = new Decompress((data) => {
    // fzstd may reuse its window buffer for later output: copy before handing it on.
    this.push(Buffer.from(data));
  });
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.d.push(chunk);
      cb();
    } catch (err) {
      cb(new InvalidArgumentError(`zstd: ${(err as Error).message}`));
    }
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.d.push(new Uint8Array(0), true);
      cb();
    } catch (err) {
      cb(new InvalidArgumentError(`zstd: ${(err as Error).message}`));
    }
  }
}

/** Decompresses by sniffing the first bytes (media types in the wild are not always right). */
export async function decompressed(src: AsyncIterable<Buffer>): Promise<AsyncIterable<Buffer>> {
  const it = src[Symbol.asyncIterator]();
  let first = await it.next();
  while (!first.done && first.value.length === 0) first = await it.next();
  const rest = (async function* () {
    if (!first.done) yield first.value;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  })();
  const kind = first.done ? 'none' : sniffCompression(first.value);
  if (kind === 'none') return rest;
  const stage = kind === 'gzip' ? createGunzip({ chunkSize: 128 << 10 }) : new ZstdDecompress();
  return pipeline(Readable.from(rest, { objectMode: false, highWaterMark: 1 << 20 }), stage, () => undefined);
}

async function* hashing(src: AsyncIterable<Buffer>, h: Hash): AsyncGenerator<Buffer> {
  for await (const c of src) {
    h.update(c);
    yield c;
  }
}

/** Wraps a compressed stream so that it throws at its end when the bytes do not match digest. */
export async function* verified(src: AsyncIterable<Buffer>, digest: string, what: string): AsyncGenerator<Buffer> {
  const h = createHash('sha256');
  yield* hashing(src, h);
  const got = `sha256:${h.digest('hex')}`;
  if (got !== digest) throw new InvalidArgumentError(`${what}: digest mismatch: expected ${digest}, got ${got}`);
}

/**
 * Unpacks a layer into fsDir. `compressed` yields the blob as stored in the registry or archive;
 * it is verified against blobDigest (when given) and its tar against diffId.
 */
export async function unpackBlob(fsDir: string, compressed: AsyncIterable<Buffer>, blobDigest: string | undefined, diffId: string, ops: FsOps, io?: UnpackIO): Promise<UnpackStats> {
  const src = blobDigest ? verified(compressed, blobDigest, `layer ${blobDigest}`) : compressed;
  const h = createHash('sha256');
  const tar = hashing(await decompressed(src), h);
  const stats = await unpackLayer(fsDir, tar, ops, io);
  const got = `sha256:${h.digest('hex')}`;
  if (got !== diffId) throw new InvalidArgumentError(`layer ${blobDigest ?? ''}: diff id mismatch: the image config says ${diffId}, the layer's tar is ${got}`);
  return stats;
}
