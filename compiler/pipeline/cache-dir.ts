import { createHash } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from "node:fs";
import { homedir } from "node:os";
import { basename, isAbsolute, join, resolve } from "node:path";
import { PipecError } from "../../graph/errors.ts";
import { OUTPUT_MARKER } from "../../graph/output-guard.ts";
import { sweepStaleTemps } from "../../graph/temp-outputs.ts";

/**
 * The compile cache of `pipec run` and `pipec generate`: one entry per pipeline, in the user's
 * cache folder (never beside a model), bounded in size by evicting the least recently used.
 *
 * An entry `<root>/<id>` is a compile output folder (it holds compile's marker), with
 * `<root>/<id>.key` (what it was compiled from; its mtime is the entry's last use) and, for
 * generate's options, `<root>/<id>.pipe` (the pipeline they stand for).
 */

export interface CacheEntry {
  /** The entry's folder name. */
  name: string;
  /** The compiled folder. */
  path: string;
  /** The pipeline's name, from the compile's manifest. */
  pipeline: string;
  /** Bytes on disk: the folder, its key and its .pipe. */
  bytes: number;
  lastUsed: Date;
}

const DEFAULT_LIMIT = 2 * 1024 ** 3;

/** `--cache-dir`, else `PIPEC_CACHE_DIR`, else `$XDG_CACHE_HOME/pipec`, else `~/.cache/pipec`. */
export function cacheRoot(override?: string): string {
  if (override) return resolve(override);
  const env = process.env.PIPEC_CACHE_DIR;
  if (env) return resolve(env);
  // The XDG spec says a relative XDG_CACHE_HOME is invalid and to be ignored.
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, "pipec");
  return join(homedir(), ".cache", "pipec");
}

/** `PIPEC_CACHE_MAX_SIZE` (bytes, or with a K, M or G suffix, powers of 1024), default 2 GiB. */
export function cacheLimitBytes(): number {
  const text = process.env.PIPEC_CACHE_MAX_SIZE;
  if (text === undefined || text === "") return DEFAULT_LIMIT;
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) throw new PipecError("usage", `PIPEC_CACHE_MAX_SIZE must be a size such as 500M or 2G, got '${text}'`);
  return Math.floor(Number(m[1]) * 1024 ** "_KMG".indexOf(m[2]!.toUpperCase() || "_"));
}

/** The entry folder for a .pipe file: its name and a hash of its absolute path, so same-named files do not collide. */
export function entryFor(root: string, pipeFile: string): string {
  const abs = resolve(pipeFile);
  const hash = createHash("sha256").update(abs).digest("hex").slice(0, 12);
  return join(root, `${basename(abs, ".pipe").replace(/[^\w.-]/g, "_")}-${hash}`);
}

export function keyFileOf(entry: string): string {
  return `${entry}.key`;
}

/** Marks the entry as just used, so eviction takes others first. */
export function touchEntry(entry: string): void {
  const now = new Date();
  if (existsSync(keyFileOf(entry))) utimesSync(keyFileOf(entry), now, now);
}

/** The cache's entries, least recently used first. Folders pipec did not write are not entries. */
export function listCacheEntries(root: string): CacheEntry[] {
  if (!existsSync(root)) return [];
  const entries: CacheEntry[] = [];
  for (const d of readdirSync(root, { withFileTypes: true })) {
    const path = join(root, d.name);
    if (!d.isDirectory() || !existsSync(join(path, OUTPUT_MARKER))) continue;
    const siblings = [keyFileOf(path), `${path}.pipe`].filter((f) => existsSync(f));
    const bytes = diskBytes(path) + siblings.reduce((n, f) => n + statSync(f).size, 0);
    const lastUsed = statSync(existsSync(keyFileOf(path)) ? keyFileOf(path) : path).mtime;
    entries.push({ name: d.name, path, pipeline: pipelineName(path), bytes, lastUsed });
  }
  return entries.sort((a, b) => a.lastUsed.getTime() - b.lastUsed.getTime() || a.name.localeCompare(b.name));
}

/** Removes one entry: its folder, key and .pipe. */
export function removeCacheEntry(entry: string): void {
  for (const p of [keyFileOf(entry), `${entry}.pipe`, entry]) rmSync(p, { recursive: true, force: true });
}

/** Removes every entry, and temporary folders left by killed processes; returns what went. */
export function clearCache(root: string): { entries: number; bytes: number } {
  const entries = listCacheEntries(root);
  for (const e of entries) removeCacheEntry(e.path);
  sweepStaleTemps(root);
  return { entries: entries.length, bytes: entries.reduce((n, e) => n + e.bytes, 0) };
}

/**
 * Evicts least recently used entries until the cache fits `limit` bytes. `keep` (the entry in
 * use) is never evicted, even when it alone is larger than the limit.
 */
export function evictToLimit(root: string, limit: number, keep: string): CacheEntry[] {
  const entries = listCacheEntries(root);
  let total = entries.reduce((n, e) => n + e.bytes, 0);
  const evicted: CacheEntry[] = [];
  for (const e of entries) {
    if (total <= limit) break;
    if (e.path === resolve(keep)) continue;
    removeCacheEntry(e.path);
    total -= e.bytes;
    evicted.push(e);
  }
  return evicted;
}

function pipelineName(entry: string): string {
  try {
    return (JSON.parse(readFileSync(join(entry, "manifest.json"), "utf8")) as { pipeline?: string }).pipeline ?? "";
  } catch {
    return "";
  }
}

/** Bytes of every file under `path` (links not followed). */
function diskBytes(path: string): number {
  const s = lstatSync(path);
  if (!s.isDirectory()) return s.size;
  return readdirSync(path).reduce((n, name) => n + diskBytes(join(path, name)), 0);
}
