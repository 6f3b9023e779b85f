// The compile cache of pipec run and generate: in the user's cache folder (never beside the model
// or the .pipe), bounded in size with least-recently-used eviction, listed and cleared by pipec cache.
import { cpSync, existsSync, readdirSync, utimesSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cacheRoot } from "../compiler/pipeline/cache-dir.ts";
import { pipec } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const LLAMA = join(ROOT, "test/fixtures/reference/llama-dynamo");
const dir = tempDir("pipec-cache-");

const saved = { PIPEC_CACHE_DIR: process.env.PIPEC_CACHE_DIR, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME, PIPEC_CACHE_MAX_SIZE: process.env.PIPEC_CACHE_MAX_SIZE };
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** A project folder holding a copy of the reference model and `<name>.pipe` files that use it. */
function project(name: string, ...pipes: string[]): string {
  const p = join(dir, name);
  cpSync(LLAMA, join(p, "model"), { recursive: true });
  for (const pipe of pipes) writeFileSync(join(p, `${pipe}.pipe`), `pipeline ${pipe} {\n  model llm = onnx("model/model.onnx")\n  tokenizer tok = ids\n  stage decode = generate(llm, tok) {\n    max_tokens: 3\n  }\n}\n`);
  return p;
}

interface Listing {
  root: string;
  limitBytes: number;
  totalBytes: number;
  entries: { name: string; path: string; pipeline: string; bytes: number; lastUsed: string }[];
}

async function list(): Promise<Listing> {
  const r = await pipec("cache", "list", "--json");
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as Listing;
}

describe("the compile cache", () => {
  it("lives in $XDG_CACHE_HOME/pipec, else ~/.cache/pipec; PIPEC_CACHE_DIR and --cache-dir override it", () => {
    delete process.env.PIPEC_CACHE_DIR;
    process.env.XDG_CACHE_HOME = "/xdg";
    expect(cacheRoot()).toBe("/xdg/pipec");
    process.env.XDG_CACHE_HOME = "relative/is/ignored";
    expect(cacheRoot()).toMatch(/\.cache\/pipec$/);
    process.env.PIPEC_CACHE_DIR = "/elsewhere";
    expect(cacheRoot()).toBe("/elsewhere");
    expect(cacheRoot("/flag")).toBe("/flag");
  });

  it("run and generate write nothing beside the .pipe or the model; pipec cache lists and clears", async () => {
    process.env.XDG_CACHE_HOME = join(dir, "xdg");
    delete process.env.PIPEC_CACHE_DIR;
    const p = project("quiet", "a");
    const before = readdirSync(p, { recursive: true }).sort();
    const run = await pipec("run", join(p, "a.pipe"), "--ids", "1,5,9", "--json", "--device", "cpu");
    expect(run.code, run.err).toBe(0);
    const gen = await pipec("generate", join(p, "model/model.onnx"), "--ids", "1,5,9", "--max-tokens", "3", "--device", "cpu", "--kv", "full");
    expect(gen.code, gen.err).toBe(0);
    expect(readdirSync(p, { recursive: true }).sort()).toEqual(before);

    const listing = await list();
    expect(listing.root).toBe(join(dir, "xdg", "pipec"));
    expect(listing.entries.map((e) => e.pipeline).sort()).toEqual(["a", "generate"]);
    expect(listing.totalBytes).toBe(listing.entries.reduce((n, e) => n + e.bytes, 0));
    expect(listing.entries.every((e) => existsSync(join(e.path, "driver.ts")))).toBe(true);
    const text = await pipec("cache");
    expect(text.out).toMatch(/: 2 compiled pipelines, .* of 2\.0 GiB\n/);

    writeFileSync(join(listing.root, "not-ours.txt"), "a file a user put there");
    const cleared = await pipec("cache", "clear", "--json");
    expect(JSON.parse(cleared.out)).toEqual({ root: listing.root, removed: 2, bytes: listing.totalBytes });
    expect(readdirSync(listing.root)).toEqual(["not-ours.txt"]);
    expect((await list()).entries).toEqual([]);
  });

  it("same-named .pipe files in different folders keep separate entries", async () => {
    process.env.PIPEC_CACHE_DIR = join(dir, "same-name");
    const [one, two] = [project("one", "p"), project("two", "p")];
    for (const p of [one, two]) expect((await pipec("run", join(p, "p.pipe"), "--ids", "1", "--device", "cpu", "--json")).code).toBe(0);
    expect((await list()).entries).toHaveLength(2);
  });

  it("evicts the least recently used entries beyond PIPEC_CACHE_MAX_SIZE, never the one in use", async () => {
    process.env.PIPEC_CACHE_DIR = join(dir, "bounded");
    const p = project("lru", "first", "second", "third");
    const runPipe = async (name: string) => expect((await pipec("run", join(p, `${name}.pipe`), "--ids", "1", "--device", "cpu", "--json")).code).toBe(0);
    await runPipe("first");
    await runPipe("second");
    const [first, second] = (await list()).entries.sort((a, b) => a.pipeline.localeCompare(b.pipeline));
    // "first" was used last: "second" is the least recently used.
    utimesSync(`${second!.path}.key`, new Date(1000), new Date(1000));
    await runPipe("first");
    const entryBytes = first!.bytes;
    process.env.PIPEC_CACHE_MAX_SIZE = String(2 * entryBytes + 1024);
    await runPipe("third");
    expect((await list()).entries.map((e) => e.pipeline).sort()).toEqual(["first", "third"]);
    process.env.PIPEC_CACHE_MAX_SIZE = "1";
    await runPipe("second");
    expect((await list()).entries.map((e) => e.pipeline)).toEqual(["second"]);
  });

  it("a bad PIPEC_CACHE_MAX_SIZE or action is a usage error", async () => {
    process.env.PIPEC_CACHE_DIR = join(dir, "bad");
    process.env.PIPEC_CACHE_MAX_SIZE = "lots";
    expect(await pipec("cache")).toEqual({ code: 2, out: "", err: "pipec: PIPEC_CACHE_MAX_SIZE must be a size such as 500M or 2G, got 'lots'\n" });
    delete process.env.PIPEC_CACHE_MAX_SIZE;
    expect(await pipec("cache", "purge")).toEqual({ code: 2, out: "", err: "pipec: unknown pipec cache action 'purge': list or clear\n" });
  });
});
