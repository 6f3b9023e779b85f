// What `-o` may name, and outputs other tools accept: pipec compile and opt never destroy a user's
// files (each case below once did, with exit 0), and never hard-link the user's weights.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { pipec, pipecProcess } from "./helpers/run-cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const dir = tempDir("pipec-outputs-");
const ZOO = join(dir, "zoo");
const PIPE_TEXT = 'pipeline p {\n  model llm = onnx("model.onnx")\n  tokenizer tok = ids\n  stage decode = generate(llm, tok) {\n    max_tokens: 4\n  }\n}\n';

beforeAll(async () => {
  const zoo = await pipec("zoo", "llama", "-o", ZOO, "--external-data", "--layers", "1", "--hidden", "64", "--intermediate", "128", "--vocab", "256");
  expect(zoo.code, zoo.err).toBe(0);
});

let projects = 0;
/** A fresh project folder: the zoo model (model.onnx, model.onnx.data, config.json) and p.pipe. */
function project(): string {
  const p = join(dir, `project-${projects++}`);
  cpSync(ZOO, p, { recursive: true });
  writeFileSync(join(p, "p.pipe"), PIPE_TEXT);
  return p;
}

/** Every file under `d` with a hash of its bytes, by relative path. */
function snapshot(d: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(d, { recursive: true, encoding: "utf8" })) {
    const path = join(d, name);
    if (statSync(path).isFile()) out[name] = createHash("sha256").update(readFileSync(path)).digest("hex");
  }
  return out;
}

/** Runs pipec with `cwd` as the working folder (the cases below name outputs relative to it). */
async function pipecIn(cwd: string, ...args: string[]) {
  const before = process.cwd();
  process.chdir(cwd);
  try {
    return await pipec(...args);
  } finally {
    process.chdir(before);
  }
}

describe("pipec compile -o never destroys an input or a folder it did not write", () => {
  it("-o naming the model file: refused, the model stays a file, byte-identical", async () => {
    const p = project();
    const before = snapshot(p);
    const r = await pipecIn(p, "compile", "p.pipe", "-o", "model.onnx");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^pipec: refusing to overwrite the model llm '.*model\.onnx': give -o another path\n$/);
    expect(statSync(join(p, "model.onnx")).isFile()).toBe(true);
    expect(snapshot(p)).toEqual(before);
  });

  it("-o naming a folder of the user's files: refused; --force replaces it", async () => {
    const p = project();
    const mine = join(dir, `mine-${projects}`);
    mkdirSync(join(mine, "notes"), { recursive: true });
    writeFileSync(join(mine, "notes", "todo.txt"), "keep me");
    const before = snapshot(mine);
    const r = await pipecIn(p, "compile", "p.pipe", "-o", mine);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^pipec: refusing to replace '.*': it is a folder pipec did not write \(1 entry\); give -o another path, or --force to replace it\n$/);
    expect(snapshot(mine)).toEqual(before);
    const forced = await pipecIn(p, "compile", "p.pipe", "-o", mine, "--force");
    expect(forced.code, forced.err).toBe(0);
    expect(existsSync(join(mine, "notes"))).toBe(false);
    expect(existsSync(join(mine, "driver.ts"))).toBe(true);
  });

  it("-o . in the project folder: refused, the .pipe and the model untouched", async () => {
    const p = project();
    const before = snapshot(p);
    const r = await pipecIn(p, "compile", "p.pipe", "-o", ".");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^pipec: refusing to write '\.': it holds the pipeline '.*p\.pipe', which the output would replace; give -o another path\n$/);
    expect(snapshot(p)).toEqual(before);
  });

  it("-o a folder that holds the model (its parent): refused", async () => {
    const p = project();
    const r = await pipec("compile", join(p, "p.pipe"), "-o", dir);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/it holds the pipeline/);
    expect(existsSync(join(p, "p.pipe"))).toBe(true);
  });

  it("-o under the model file (<file>/sub) is the user's mistake, not a bug", async () => {
    const p = project();
    const r = await pipecIn(p, "compile", "p.pipe", "-o", "model.onnx/sub");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^pipec: refusing to write 'model\.onnx\/sub': it lies inside the model llm '.*model\.onnx'; give -o another path\n$/);
    writeFileSync(join(p, "notes.txt"), "mine");
    const underFile = await pipecIn(p, "compile", "p.pipe", "-o", "notes.txt/sub");
    expect(underFile.code).toBe(1);
    expect(underFile.err).toMatch(/^pipec: cannot write 'notes\.txt\/sub': '.*notes\.txt' is a file, not a folder\n$/);
  });

  it("-o naming a file that is not an input: refused, a file is never replaced by a folder", async () => {
    const p = project();
    writeFileSync(join(p, "notes.txt"), "mine");
    const r = await pipecIn(p, "compile", "p.pipe", "-o", "notes.txt");
    expect(r.code).toBe(2);
    expect(r.err).toBe("pipec: refusing to write the folder 'notes.txt': a file of that name exists; give -o another path\n");
    expect(readFileSync(join(p, "notes.txt"), "utf8")).toBe("mine");
  });

  it.skipIf(!existsSync("/proc/self"))("-o /proc/x/out: an error at once, not an endless loop", () => {
    const p = project();
    const r = pipecProcess("compile", join(p, "p.pipe"), "-o", "/proc/x/out");
    expect(r.code).toBe(1);
    expect(r.err).toBe("pipec: cannot write '/proc/x/out': cannot create the folder '/proc/x' (ENOENT)\n");
  });

  it("a folder a previous compile wrote is replaced; nothing else in the project changes", async () => {
    const p = project();
    const before = snapshot(p);
    expect((await pipecIn(p, "compile", "p.pipe", "-o", "out")).code).toBe(0);
    const second = await pipecIn(p, "compile", "p.pipe", "-o", "out");
    expect(second.code, second.err).toBe(0);
    const after = snapshot(p);
    expect(Object.fromEntries(Object.entries(after).filter(([k]) => !k.startsWith("out/")))).toEqual(before);
    expect(readdirSync(join(p, "out")).sort()).toEqual([".pipec-output", "driver.ts", "manifest.json", "models", "package.json", "pipeline.ir"]);
  });
});

describe("pipec opt -o", () => {
  it("refuses a path inside the input, and a folder", async () => {
    const p = project();
    const before = snapshot(p);
    const inside = await pipecIn(p, "opt", "model.onnx", "-o", "model.onnx/x.onnx");
    expect(inside.code).toBe(2);
    expect(inside.err).toBe("pipec: refusing to write 'model.onnx/x.onnx': it lies inside the input 'model.onnx'; give -o another path\n");
    mkdirSync(join(p, "sub"));
    const folder = await pipecIn(p, "opt", "model.onnx", "-o", "sub");
    expect(folder.code).toBe(2);
    expect(folder.err).toBe("pipec: refusing to write 'sub': it is a folder; give -o a file path\n");
    expect(snapshot(p)).toEqual(before);
  });
});

describe("external weights are never hard-linked to the user's file", () => {
  it("opt and compile into another folder clone or copy the data file; beside the input it is shared", async () => {
    const p = project();
    const before = snapshot(p);
    const data = join(p, "model.onnx.data");
    const opt = await pipec("opt", join(p, "model.onnx"), "-o", join(dir, "opt-out", "model.onnx"));
    expect(opt.code, opt.err).toBe(0);
    expect(opt.out).toMatch(/external data model\.onnx\.data: (cloned|copied) \(/);
    const compiled = await pipec("compile", join(p, "p.pipe"), "-o", join(dir, "compile-out"));
    expect(compiled.code, compiled.err).toBe(0);
    const copy = await pipec("opt", join(p, "model.onnx"), "-o", join(dir, "opt-copy", "model.onnx"), "--external-files", "copy");
    expect(copy.out).toMatch(/external data model\.onnx\.data: copied \(/);
    const beside = await pipec("opt", join(p, "model.onnx"), "-o", join(p, "model-opt.onnx"));
    expect(beside.out).toMatch(/external data model\.onnx\.data: reused \(/);
    for (const f of [data, join(dir, "opt-out", "model.onnx.data"), join(dir, "compile-out", "models", "llm", "model.onnx.data"), join(dir, "opt-copy", "model.onnx.data")]) {
      expect(statSync(f).nlink, f).toBe(1);
      expect(readFileSync(f).equals(readFileSync(data)), f).toBe(true);
    }
    expect(Object.fromEntries(Object.entries(snapshot(p)).filter(([k]) => k !== "model-opt.onnx"))).toEqual(before);
  });

  it("refuses an unknown --external-files mode", async () => {
    const p = project();
    const r = await pipec("opt", join(p, "model.onnx"), "-o", join(dir, "x.onnx"), "--external-files", "link");
    expect(r).toEqual({ code: 2, out: "", err: "pipec: --external-files must be clone or copy, got 'link'\n" });
  });
});

const PYTHON_TOOLS = spawnSync("python3", ["-c", "import onnx, onnx_ir, onnxruntime"]).status === 0;
const CHECK_PY = `
import sys, onnx, onnx.checker, onnx_ir, onnxruntime
for path in sys.argv[1:]:
    m = onnx.load(path)
    onnx.checker.check_model(path)
    ir = onnx_ir.load(path)
    for v in list(ir.graph.initializers.values())[:3]:
        v.const_value.numpy()
    o = onnxruntime.SessionOptions()
    o.intra_op_num_threads = 1
    onnxruntime.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    print("ok", path)
`;

describe.skipIf(!PYTHON_TOOLS)(`outputs and inputs load in onnx, onnx.checker, onnx-ir and onnxruntime${PYTHON_TOOLS ? "" : " (skipped: python3 lacks onnx, onnx_ir or onnxruntime)"}`, () => {
  it("after opt and compile (plain and rewritten), both the outputs and the user's model", async () => {
    const p = project();
    writeFileSync(join(p, "streaming.pipe"), PIPE_TEXT.replace("max_tokens: 4", "kv: streaming(sinks: 4, window: 60)\n    max_tokens: 4"));
    const before = snapshot(p);
    const optOut = join(dir, "py-opt", "model.onnx");
    expect((await pipec("opt", join(p, "model.onnx"), "-o", optOut)).code).toBe(0);
    const compileOut = join(dir, "py-compile");
    expect((await pipec("compile", join(p, "p.pipe"), "-o", compileOut)).code).toBe(0);
    const streamingOut = join(dir, "py-compile-streaming");
    const streaming = await pipec("compile", join(p, "streaming.pipe"), "-o", streamingOut);
    expect(streaming.code, streaming.err).toBe(0);
    const paths = [join(p, "model.onnx"), optOut, join(compileOut, "models", "llm", "model.onnx"), join(streamingOut, "models", "llm", "model.onnx")];
    const r = spawnSync("python3", ["-c", CHECK_PY, ...paths], { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1" } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(paths.map((path) => `ok ${path}`));
    expect(snapshot(p)).toEqual(before);
  });
});
