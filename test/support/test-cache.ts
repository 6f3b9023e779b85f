import { rmSync } from "node:fs";

/**
 * vitest globalSetup: the compile cache of the `run` and `generate` commands the tests start is a
 * temporary folder (vitest.config.ts sets PIPEC_CACHE_DIR), never the user's ~/.cache/pipec;
 * removed when the run ends.
 */
export default function setup(): () => void {
  const dir = process.env.PIPEC_CACHE_DIR;
  return () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
}
