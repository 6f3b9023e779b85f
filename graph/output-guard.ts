import { accessSync, constants, existsSync, mkdirSync, readdirSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { PipecError } from "./errors.ts";

/**
 * What `-o` may name. An output never is, contains or lies inside a file the command reads; a
 * folder output never replaces a file, nor a folder pipec did not write (unless forced).
 */

/** The file compile writes into every output folder, so a later compile knows the folder is its own. */
export const OUTPUT_MARKER = ".pipec-output";
const MARKER_TEXT = "Written by pipec compile. The next compile into this folder replaces it as a whole.\n";

export function writeOutputMarker(dir: string): void {
  writeFileSync(join(dir, OUTPUT_MARKER), MARKER_TEXT);
}

/** The path with symlinks resolved as far as it exists (the rest appended as given). */
function realPathOf(path: string): string {
  const abs = resolve(path);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  return parent === abs ? abs : join(realPathOf(parent), basename(abs));
}

function within(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** Refuses an output that is, contains or lies inside one of `inputs` (each named by its role). */
export function refuseOverlap(output: string, given: string, inputs: readonly { path: string; role: string }[]): void {
  const out = realPathOf(output);
  for (const input of inputs) {
    const real = realPathOf(input.path);
    const what = `${input.role} '${input.path}'`;
    if (real === out) throw usage(`refusing to overwrite the ${what}: give -o another path`);
    if (within(real, out)) throw usage(`refusing to write '${given}': it holds the ${what}, which the output would replace; give -o another path`);
    if (within(out, real)) throw usage(`refusing to write '${given}': it lies inside the ${what}; give -o another path`);
  }
}

/**
 * Checks that `output` may become a folder that replaces whatever is there: nothing, an empty
 * folder, or a folder a previous compile wrote (it holds the marker); any other folder only with
 * `force`. Creates nothing: a compile that fails leaves no empty folders behind.
 */
export function checkOutputFolder(output: string, given: string, force: boolean): void {
  const out = resolve(output);
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw usage(`refusing to write the folder '${given}': a file of that name exists; give -o another path`);
    const entries = readdirSync(out);
    if (entries.length > 0 && !entries.includes(OUTPUT_MARKER) && !force) {
      throw usage(`refusing to replace '${given}': it is a folder pipec did not write (${entries.length} entr${entries.length === 1 ? "y" : "ies"}); give -o another path, or --force to replace it`);
    }
  }
  nearestFolder(dirname(out), given);
}

/** `-o` of a file: it may not be an existing folder, and its folder must be one that can exist. */
export function checkOutputFile(output: string, given: string): void {
  const out = resolve(output);
  if (existsSync(out) && statSync(out).isDirectory()) throw usage(`refusing to write '${given}': it is a folder; give -o a file path`);
  nearestFolder(dirname(out), given);
}

/**
 * Fails at once, before any work, when `path` cannot be created as a `kind`: a file stands where a
 * folder is needed (or the other way round), or the nearest existing folder above it is a file or
 * not writable. Without this a compile could run for minutes and then fail at its last step.
 */
export function checkDestination(path: string, kind: "file" | "folder"): void {
  const target = resolve(path);
  if (existsSync(target)) {
    const isFolder = statSync(target).isDirectory();
    if (kind === "folder" && !isFolder) throw new PipecError("io", `cannot write '${path}': a file of that name exists`);
    if (kind === "file" && isFolder) throw new PipecError("io", `cannot write '${path}': it is a folder`);
  }
  const { existing } = nearestFolder(dirname(target), path);
  try {
    accessSync(existing, constants.W_OK);
  } catch {
    throw new PipecError("io", `cannot write '${path}': '${existing}' is not writable`);
  }
}

/** The deepest part of `dir` that exists, which must be a folder; and the parts missing below it. */
function nearestFolder(dir: string, given: string): { existing: string; missing: string[] } {
  const missing: string[] = [];
  let existing = resolve(dir);
  while (!existsSync(existing) && dirname(existing) !== existing) {
    missing.unshift(existing);
    existing = dirname(existing);
  }
  if (!statSync(existing).isDirectory()) throw new PipecError("io", `cannot write '${given}': '${existing}' is a file, not a folder`);
  return { existing, missing };
}

/**
 * `mkdir -p`, one level at a time: Node's recursive mkdir loops forever on some paths (a missing
 * folder under /proc), and its errors do not say which part of the path was wrong.
 */
export function makeDirs(dir: string, given = dir): void {
  for (const d of nearestFolder(dir, given).missing) {
    try {
      mkdirSync(d);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === "EEXIST" && statSync(d).isDirectory()) continue;
      throw new PipecError("io", `cannot write '${given}': cannot create the folder '${d}' (${err.code ?? err.message})`);
    }
  }
}

function usage(message: string): PipecError {
  return new PipecError("usage", message);
}
