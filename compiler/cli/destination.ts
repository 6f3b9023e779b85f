import { accessSync, constants, statSync, type Stats } from "node:fs";
import { dirname, resolve } from "node:path";
import { PipecError } from "../errors.ts";

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Fails at once, before any work, when `path` cannot be created as a `kind`: a file stands where a
 * folder is needed (or the other way round), or the nearest existing folder above it is not
 * writable. Without this a compile could run for minutes and then fail at its last step.
 */
export function checkDestination(path: string, kind: "file" | "folder"): void {
  const target = resolve(path);
  const existing = statOrUndefined(target);
  if (existing) {
    if (kind === "folder" && !existing.isDirectory()) throw new PipecError("bad-destination", `${path}: cannot write a folder here, a file of that name exists`);
    if (kind === "file" && existing.isDirectory()) throw new PipecError("bad-destination", `${path}: cannot write a file here, it is a folder`);
  }
  let above = dirname(target);
  let stats = statOrUndefined(above);
  while (!stats && dirname(above) !== above) {
    above = dirname(above);
    stats = statOrUndefined(above);
  }
  if (!stats?.isDirectory()) throw new PipecError("bad-destination", `${path}: cannot be created, ${above} is not a folder`);
  try {
    accessSync(above, constants.W_OK);
  } catch {
    throw new PipecError("bad-destination", `${path}: cannot be created, ${above} is not writable`);
  }
}
