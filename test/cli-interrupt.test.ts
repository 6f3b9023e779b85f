// Interrupting pipec: SIGINT or SIGTERM during a compile removes its temporary folder; the
// temporary folder of a process killed outright (SIGKILL) is removed by the next run.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { pipec } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const BIN = resolve(import.meta.dirname, "../bin/pipec.mjs");
const dir = tempDir("pipec-interrupt-");
const PIPE = join(dir, "p.pipe");

beforeAll(async () => {
  // Eight layers with external weights: lifting, rewriting and saving them takes long enough to
  // interrupt in the middle.
  const zoo = await pipec("zoo", "llama", "-o", join(dir, "m"), "--external-data", "--layers", "8", "--hidden", "256", "--intermediate", "704", "--vocab", "4096");
  expect(zoo.code, zoo.err).toBe(0);
  writeFileSync(PIPE, 'pipeline p {\n  model llm = onnx("m/model.onnx")\n  tokenizer tok = ids\n  stage decode = generate(llm, tok) {\n    kv: streaming(sinks: 4, window: 60)\n    max_tokens: 4\n  }\n}\n');
});

/** pipec's temporary outputs in `parent`. */
function temps(parent: string): string[] {
  return readdirSync(parent).filter((n) => n.includes(".pipec-"));
}

/** Starts `pipec compile` into `out` and sends `signal` as soon as its temporary folder exists. */
function compileAndSignal(out: string, signal: NodeJS.Signals) {
  return runAndSignal(["compile", PIPE, "-o", out], resolve(out, ".."), signal);
}

/** Starts `pipec <args>` and sends `signal` as soon as a temporary folder of it appears in `parent`. */
async function runAndSignal(args: string[], parent: string, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string; sawTemp: boolean }> {
  mkdirSync(parent, { recursive: true });
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => void (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on("exit", (code, sig) => done({ code, signal: sig })));
  let sawTemp = false;
  const poll = setInterval(() => {
    if (sawTemp || !temps(parent).some((n) => n.includes(`.pipec-${child.pid}-`))) return;
    sawTemp = true;
    child.kill(signal);
  }, 5);
  const result = await exited;
  clearInterval(poll);
  return { ...result, err, sawTemp };
}

describe("interrupting pipec compile", () => {
  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)("%s removes the temporary folder and leaves no output", async (signal, exitCode) => {
    const parent = join(dir, signal);
    const out = join(parent, "out");
    const r = await compileAndSignal(out, signal);
    expect(r.sawTemp, r.err).toBe(true);
    expect(r, r.err).toMatchObject({ code: exitCode });
    expect(temps(parent)).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });

  it.each([
    ["run", () => ["run", PIPE, "--ids", "1,2,3"]],
    ["generate --kv", () => ["generate", join(dir, "m", "model.onnx"), "--ids", "1,2,3", "--kv", "streaming(sinks: 4, window: 60)"]],
  ])("SIGINT while %s compiles into the cache removes the temporary folder there", async (_, args) => {
    const cache = join(dir, `cache-${args()[0]}`);
    const r = await runAndSignal([...args(), "--cache-dir", cache], cache, "SIGINT");
    expect(r.sawTemp, r.err).toBe(true);
    expect(r, r.err).toMatchObject({ code: 130 });
    expect(temps(cache)).toEqual([]);
    expect(readdirSync(cache).filter((n) => !n.endsWith(".pipe"))).toEqual([]);
  });

  it("SIGINT once generate is generating stops the generation: what it has is printed, exit 0, nothing left behind", async () => {
    const cache = join(dir, "cache-generating");
    const args = ["generate", join(dir, "m", "model.onnx"), "--ids", "1,2,3", "--max-tokens", "100000", "--device", "cpu", "--kv", "streaming(sinks: 4, window: 60)", "--cache-dir", cache];
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let [out, err, sent] = ["", "", false];
    child.stdout.on("data", (d) => {
      out += d;
      if (sent || out.trim().split(/\s+/).length <= 5) return;
      sent = true;
      child.kill("SIGINT");
    });
    child.stderr.on("data", (d) => void (err += d));
    const code = await new Promise<number | null>((done) => child.on("exit", (c) => done(c)));
    expect(code, err).toBe(0);
    expect(out.trim().split(/\s+/).length).toBeGreaterThan(5);
    expect(err).toMatch(/stopped: aborted/);
    expect(temps(cache)).toEqual([]);
  });

  it("SIGKILL leaves the temporary folder; the next compile there removes it and succeeds", async () => {
    const parent = join(dir, "killed");
    const out = join(parent, "out");
    const r = await compileAndSignal(out, "SIGKILL");
    expect(r.sawTemp, r.err).toBe(true);
    expect(r.signal).toBe("SIGKILL");
    const left = temps(parent);
    expect(left.length).toBe(1);
    const again = await pipec("compile", PIPE, "-o", out);
    expect(again.code, again.err).toBe(0);
    expect(temps(parent)).toEqual([]);
    expect(existsSync(join(out, "driver.ts"))).toBe(true);
  });

  it("a temporary folder of a process that is still running is left alone", async () => {
    const parent = join(dir, "alive");
    mkdirSync(join(parent, `.out.pipec-${process.ppid}-abc123`), { recursive: true });
    const r = await pipec("compile", PIPE, "-o", join(parent, "out"));
    expect(r.code, r.err).toBe(0);
    expect(temps(parent)).toEqual([`.out.pipec-${process.ppid}-abc123`]);
  });
});
