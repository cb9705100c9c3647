/**
 * Body of the port-forward dialer thread (see ./netns-dial.ts). For each request it enters the
 * pod's network namespace with setns on this thread only, creates and connects a TCP socket to
 * 127.0.0.1:<port> there (a socket stays in the namespace it was created in), and returns to the
 * namespace it started in before answering. The fd is process-wide, so the main thread can wrap
 * it in a net.Socket.
 */
import { closeSync, openSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { CLONE_NEWNET, linux } from './syscalls.js';
import { closeFd, tcpSocketToLoopback, waitConnected } from './socket.js';
import type { DialReply, DialRequest } from './netns-dial.js';
import { LOADED } from './worker-loaded.js';

const home = openSync(`/proc/self/task/${linux.gettid()}/ns/net`, 'r');

parentPort!.on('message', (req: DialRequest) => {
  let reply: DialReply;
  let nsFd = -1;
  let fd = -1;
  try {
    nsFd = openSync(req.netns, 'r');
    linux.setns(nsFd, CLONE_NEWNET);
    try {
      fd = tcpSocketToLoopback(req.port);
    } finally {
      linux.setns(home, CLONE_NEWNET);
    }
    waitConnected(fd, 5000);
    reply = { id: req.id, ok: true, fd };
  } catch (err) {
    if (fd >= 0) closeFd(fd);
    const e = err as { message?: string; code?: string };
    const message = e.code && /^E[A-Z]+$/.test(e.code) ? `connect ${e.code} 127.0.0.1:${req.port}` : e.message ?? String(err);
    reply = { id: req.id, ok: false, error: { message, code: e.code } };
    // If we could not get home, this thread is unusable: say so and let a fresh one start.
    try {
      linux.setns(home, CLONE_NEWNET);
    } catch {
      parentPort!.postMessage(reply);
      process.exit(1);
    }
  } finally {
    if (nsFd >= 0) closeSync(nsFd);
  }
  parentPort!.postMessage(reply);
});

parentPort!.postMessage(LOADED);
