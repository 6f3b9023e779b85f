import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Builds a folder in a temporary sibling and renames it into place only when `build` succeeds,
 * so a failed build leaves `target` exactly as it was (absent, or the previous output).
 * The sibling shares the target's parent, so relative paths written inside stay valid after the rename.
 */
export async function writeDirAtomically<T>(target: string, build: (dir: string) => Promise<T> | T): Promise<T> {
  const parent = dirname(target);
  mkdirSync(parent, { recursive: true });
  const temp = mkdtempSync(join(parent, `.${basename(target)}.pipec-`));
  try {
    const result = await build(temp);
    if (existsSync(target)) {
      const old = `${temp}.old`;
      renameSync(target, old);
      renameSync(temp, target);
      rmSync(old, { recursive: true, force: true });
    } else renameSync(temp, target);
    return result;
  } catch (e) {
    rmSync(temp, { recursive: true, force: true });
    throw e;
  }
}
