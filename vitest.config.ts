import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

// Every process the tests start (workers, the CLI they spawn) inherits it: nothing writes to ~/.cache/pipec.
process.env.PIPEC_CACHE_DIR = mkdtempSync(join(tmpdir(), "pipec-test-cache-"));

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "passes/**/*.test.ts", "compiler/**/*.test.ts", "graph/**/*.test.ts", "runtime/**/*.test.ts", "dsl/**/*.test.ts"],
    globalSetup: ["./test/support/test-cache.ts"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // onnxruntime sessions are native and heavy: a few workers on a 2-core machine is the sweet spot.
    maxWorkers: 2,
  },
});
