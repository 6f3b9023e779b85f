import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { newestSourceMtime } from "./source-stamp.mjs";

/**
 * The folder holding pipec's package.json. Found by walking up from this module so the answer is
 * the same whether pipec runs from its TypeScript sources or from the bundle in dist/.
 */
export const PACKAGE_ROOT: string = findPackageRoot(import.meta.dirname);

export const PIPEC_VERSION: string = (JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;

/**
 * Identifies the compiler code itself, for caches of compiled output: the version plus when the
 * sources last changed, so editing a pass invalidates compiles made before the edit.
 */
export function compilerIdentity(): string {
  return `${PIPEC_VERSION}+${newestSourceMtime(PACKAGE_ROOT)}`;
}

function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "pipec") return dir;
    if (dirname(dir) === dir) throw new Error(`pipec's package.json not found above ${start}`);
  }
}
