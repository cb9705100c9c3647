// ava configuration of the kubelet suites: `npx ava --config e2e/kubelet/ava.config.js [files]`.
// One file at a time: a host runs one kubelet (ports 10250/10248/10255).
export default {
  files: ['dist/e2e/kubelet/**/*.e2e.js'],
  concurrency: 1,
  workerThreads: false,
  timeout: '10m',
};
