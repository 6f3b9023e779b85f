import { existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { makeDirs } from "../../graph/output-guard.ts";
import { sweepStaleTemps, tempDirPrefixFor, tempPathFor, trackTemp, untrackTemp } from "../../graph/temp-outputs.ts";

/**
 * Builds a folder in a temporary sibling and renames it into place only when `build` succeeds,
 * so a failed build leaves `target` exactly as it was (absent, or the previous output).
 * The sibling shares the target's parent, so relative paths written inside stay valid after the rename.
 * Temporary siblings a killed pipec left there are removed first; an interrupted one removes its own.
 */
export async function writeDirAtomically<T>(target: string, build: (dir: string) => Promise<T> | T): Promise<T> {
  const parent = dirname(target);
  makeDirs(parent, target);
  sweepStaleTemps(parent);
  const temp = mkdtempSync(tempDirPrefixFor(target));
  trackTemp(temp);
  try {
    const result = await build(temp);
    if (existsSync(target)) {
      const old = tempPathFor(target, ".old");
      trackTemp(old);
      renameSync(target, old);
      renameSync(temp, target);
      untrackTemp(temp);
      rmSync(old, { recursive: true, force: true });
      untrackTemp(old);
    } else renameSync(temp, target);
    return result;
  } finally {
    rmSync(temp, { recursive: true, force: true });
    untrackTemp(temp);
  }
}
