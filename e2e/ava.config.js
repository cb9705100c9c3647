// ava configuration of the e2e suites: `npx ava --config e2e/ava.config.js [files]`.
// Files run one after another, each in its own process: every file starts its own daemon (and
// the host-wide leak check of a harness must not see another file's pods).
export default {
  files: ['dist/e2e/tests/**/*.e2e.js'],
  concurrency: 1,
  workerThreads: false,
  // ava's timeout is the longest stretch without a result; a harness start may pull images.
  timeout: '10m',
};
