/**
 * Body of the namespace-pinning worker thread (see ./netns.ts). Runs on its own OS
 * thread: unshare(2) there changes only this thread's namespaces, never the daemon's
 * main thread. After each request the thread returns to the namespaces it started in
 * (setns on fds opened at start), so one worker serves many pins without the ~70 ms
 * cost of a new worker per pod. If it cannot return, it exits and a fresh one is made.
 *
 * Everything here is synchronous on purpose: fs *Sync calls run on this thread, so
 * /proc/sys/... writes resolve against this thread's (the new) namespaces, whereas
 * async fs calls would run on libuv's pool threads, which sit in the host namespaces.
 */
import { closeSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUTS, MNT_DETACH, MS_BIND, linux } from './syscalls.js';
import type { PinWorkerReply, PinWorkerRequest } from './netns.js';
import { LOADED } from './worker-loaded.js';

const KINDS = [
  { ns: 'net', flag: CLONE_NEWNET },
  { ns: 'ipc', flag: CLONE_NEWIPC },
  { ns: 'uts', flag: CLONE_NEWUTS },
] as const;

const tid = linux.gettid();
const home: Record<string, number> = {};
for (const k of KINDS) home[k.ns] = openSync(`/proc/self/task/${tid}/ns/${k.ns}`, 'r');

function errFields(err: unknown): { message: string; code?: string } {
  const e = err as { message?: string; code?: string };
  return { message: e?.message ?? String(err), code: e?.code };
}

function pin(req: PinWorkerRequest): PinWorkerReply {
  const wanted = KINDS.filter((k) => req.namespaces.includes(k.ns));
  const flags = wanted.reduce((f, k) => f | k.flag, 0);
  if (flags === 0) return { id: req.id, ok: true, paths: {} };
  if (req.join) {
    for (const k of wanted) {
      const path = req.join[k.ns];
      if (!path) throw new Error(`no pinned ${k.ns} namespace to join`);
      const fd = openSync(path, 'r');
      try {
        linux.setns(fd, k.flag);
      } finally {
        closeSync(fd);
      }
    }
  } else {
    linux.unshare(flags);
  }
  const made: string[] = [];
  try {
    if (req.hostname !== undefined) linux.sethostname(req.hostname);
    for (const [name, value] of req.sysctls) {
      try {
        writeFileSync(`/proc/sys/${name}`, value);
      } catch (err) {
        return { id: req.id, ok: false, error: { ...errFields(err), sysctl: name } };
      }
    }
    if (req.join) return { id: req.id, ok: true, paths: { ...req.join } };
    const paths: Record<string, string> = {};
    for (const k of wanted) {
      const target = `${req.dir}/${k.ns}`;
      closeSync(openSync(target, 'wx', 0o444));
      made.push(target);
      linux.mount(`/proc/self/task/${tid}/ns/${k.ns}`, target, null, MS_BIND, null);
      paths[k.ns] = target;
    }
    made.length = 0;
    return { id: req.id, ok: true, paths };
  } finally {
    // A failed request must not leave half a pin behind.
    for (const target of made.reverse()) {
      try { linux.umount2(target, MNT_DETACH); } catch { /* was not mounted yet */ }
      try { unlinkSync(target); } catch { /* already gone */ }
    }
  }
}

parentPort!.on('message', (req: PinWorkerRequest) => {
  let reply: PinWorkerReply;
  try {
    reply = pin(req);
  } catch (err) {
    reply = { id: req.id, ok: false, error: errFields(err) };
  }
  // Back to the starting namespaces; a thread that cannot get back must not serve again.
  let home_ = true;
  for (const k of KINDS) {
    try {
      linux.setns(home[k.ns]!, k.flag);
    } catch {
      home_ = false;
    }
  }
  parentPort!.postMessage(reply);
  if (!home_) process.exit(1);
});

parentPort!.postMessage(LOADED);
