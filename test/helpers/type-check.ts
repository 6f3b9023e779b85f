import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { expect } from "vitest";
import { tempDir } from "./tmp.ts";

const ROOT = resolve(import.meta.dirname, "../..");

/**
 * Type-checks generated drivers with tsc under the settings a user's project would have (strict,
 * nodenext, the repository's @types), failing with tsc's messages.
 */
export function expectTypeChecks(files: readonly string[]): void {
  const dir = tempDir("pipec-tsc-");
  const tsconfig = {
    compilerOptions: { target: "ES2023", module: "nodenext", moduleResolution: "nodenext", strict: true, noEmit: true, allowImportingTsExtensions: true, skipLibCheck: true, types: ["node"], typeRoots: [join(ROOT, "node_modules/@types")] },
    files: files.map((f) => resolve(f)),
  };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(tsconfig));
  let output = "";
  try {
    execFileSync(join(ROOT, "node_modules/.bin/tsc"), ["-p", join(dir, "tsconfig.json")], { encoding: "utf8" });
  } catch (e) {
    output = String((e as { stdout?: string }).stdout ?? e);
  }
  expect(output).toBe("");
}
