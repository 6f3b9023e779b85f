import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

/** The shared fixtures folder (absent on a user's clone: tests that need it skip). */
export const SHARED_FIXTURES = resolve(import.meta.dirname, "../../../shared/fixtures");
export const HAVE_SHARED = existsSync(SHARED_FIXTURES);
export const SKIP_SHARED_REASON = `../shared/fixtures not found at ${SHARED_FIXTURES}: skipping tests on the shared fixture models`;

/** Every .onnx file under the shared fixtures, as paths relative to the folder. */
export function sharedOnnxFiles(): string[] {
  if (!HAVE_SHARED) return [];
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".onnx")) out.push(p.slice(SHARED_FIXTURES.length + 1));
    }
  };
  walk(SHARED_FIXTURES);
  return out;
}
