import { readdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/**
 * Temporary outputs: every file or folder pipec writes before renaming it into place is named
 * `.<target>.pipec-<pid>...`, tracked while it exists, removed when the process is interrupted,
 * and removed by a later run when the process that made it is gone (killed, or out of power).
 */
const live = new Set<string>();

/** A temporary name for `target` in its own folder, marked with this process's id. */
export function tempPathFor(target: string, suffix = ".tmp"): string {
  return join(dirname(target), `.${basename(target)}.pipec-${process.pid}${suffix}`);
}

/** The prefix `mkdtemp` completes into a temporary folder for `target`. */
export function tempDirPrefixFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.pipec-${process.pid}-`);
}

/** Notes a temporary path that an interruption must remove. */
export function trackTemp(path: string): void {
  live.add(path);
}

/** The path was renamed into place or removed: nothing to clean for it any more. */
export function untrackTemp(path: string): void {
  live.delete(path);
}

/** Removes every temporary output this process still holds. */
function removeLiveTemps(): void {
  for (const path of live) rmSync(path, { recursive: true, force: true });
  live.clear();
}

const TEMP_NAME = /^\..+\.pipec-(\d+)(?:-[A-Za-z0-9]+)?(?:\.old|\.tmp)?$/;

/**
 * Removes the temporary outputs in `dir` left by pipec processes that no longer run. A name whose
 * process is alive (another pipec writing there now) is left alone.
 */
export function sweepStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(TEMP_NAME.exec(name)?.[1] ?? NaN);
    if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;
let installed = false;

/**
 * In the pipec process: on SIGINT or SIGTERM, remove the temporary outputs and exit (130 or 143).
 * A command that handles the signal itself (generate stops generating and prints what it has)
 * keeps running: only the temporary outputs go. Installed once, for the life of the process, so
 * a signal that arrives while synchronous work runs is handled when it yields, never dropped.
 */
export function cleanUpOnSignals(): void {
  if (installed) return;
  installed = true;
  for (const signal of Object.keys(SIGNAL_EXIT) as (keyof typeof SIGNAL_EXIT)[]) {
    process.on(signal, function onSignal() {
      removeLiveTemps();
      if (process.listenerCount(signal) > 1) return;
      process.exit(SIGNAL_EXIT[signal]);
    });
  }
}

/** Lets a pending signal's handler run between steps of long synchronous work. */
export function signalCheckpoint(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
