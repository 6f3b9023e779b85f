import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "passes/**/*.test.ts", "compiler/**/*.test.ts", "runtime/**/*.test.ts", "dsl/**/*.test.ts"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // onnxruntime sessions are native and heavy: a few workers on a 2-core machine is the sweet spot.
    maxWorkers: 2,
  },
});
