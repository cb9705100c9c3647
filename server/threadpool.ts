/**
 * Imported first by main.ts: libuv's thread pool (4 threads unless told) runs every fs call,
 * zlib stream and koffi async syscall of the daemon, and it is sized once, at its first use.
 * Four are too few when pods start and stop together: an fsync or an unmount waiting for an
 * RCU grace period holds a thread for milliseconds while the calls of the other pods queue
 * (10 host-network pods in parallel: RunPodSandbox p50 47 ms with 4 threads, 20 ms with 16).
 * An operator's UV_THREADPOOL_SIZE wins.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
export {};
