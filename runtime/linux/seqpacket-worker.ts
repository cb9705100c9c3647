/**
 * Reader thread of one SOCK_SEQPACKET connection (see ./seqpacket.ts): blocking recv of one
 * packet at a time, each posted to the main thread whole so that packet boundaries survive.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { recvPacket } from './socket.js';

const fd = (workerData as { fd: number }).fd;
const buf = Buffer.alloc(64 * 1024);
for (;;) {
  let n: number;
  try {
    n = recvPacket(fd, buf);
  } catch (err) {
    parentPort!.postMessage({ error: (err as Error).message });
    break;
  }
  if (n === 0) break;
  parentPort!.postMessage(Buffer.from(buf.subarray(0, n)));
}
parentPort!.postMessage(null);
