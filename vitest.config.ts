import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Interop and netns suites create network namespaces with fixed names; run files one at a time
    // so two suites never race for the same names (and the 2-core machine is not oversubscribed).
    fileParallelism: false,
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
