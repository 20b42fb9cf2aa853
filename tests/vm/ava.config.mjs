// The suites that run inside the VM (tests/vm/lts-kernel.sh): IPVS needs the VM's kernel.
export default {
  files: ['tests/vm/**/*.vmtest.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  workerThreads: false,
  // One file at a time: each matrix is heavy for two emulated CPUs.
  concurrency: 1,
  // Emulated CPUs: the agent takes a minute to its first program, the matrix several more.
  timeout: '900s',
};
