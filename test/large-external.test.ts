import { execFileSync, spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { writeSyntheticModel } from "../bench/synthetic-model.ts";
import { tempDir } from "./helpers/tmp.ts";

const ROOT = resolve(import.meta.dirname, "..");
const dir = tempDir("pipec-large-");
const GIB = 1024 ** 3;

/** Runs the real CLI in a child process; returns its stdout and peak RSS. */
function pipec(...args: string[]): { out: string; maxRssMiB: number } {
  const res = spawnSync(process.execPath, ["--import", join(ROOT, "test/support/report-max-rss.mjs"), join(ROOT, "bin/pipec.mjs"), ...args], { cwd: ROOT, encoding: "utf8" });
  expect(res.status, res.stderr).toBe(0);
  const kib = Number(/pipec-test-max-rss-kib=(\d+)/.exec(res.stderr)![1]);
  return { out: res.stdout, maxRssMiB: kib / 1024 };
}

describe("a model with more than 2 GiB of external weights", () => {
  const model = join(dir, "big", "model.onnx");
  writeSyntheticModel(model, { weightBytes: 2.25 * GIB, weights: 9, nodes: 200, external: true });

  it("goes through pipec inspect and pipec opt --passes dce with peak RSS far below the weight size", () => {
    expect(statSync(`${model}.data`).size).toBeGreaterThan(2 * GIB);
    const inspect = pipec("inspect", "--json", model);
    expect(JSON.parse(inspect.out).initializers.externalBytes).toBeGreaterThan(2 * GIB);
    // Beside the input, so the output shares its 2.25 GiB data file instead of copying it.
    const opt = pipec("opt", model, "-o", join(dir, "big", "model-dce.onnx"), "--passes", "dce");
    expect(opt.out).toMatch(/external data model\.onnx\.data: reused \(/);
    // The whole weight file is 2.25 GiB; pipec's own baseline (Node, modules) is under 100 MiB.
    expect(inspect.maxRssMiB).toBeLessThan(250);
    expect(opt.maxRssMiB).toBeLessThan(250);
  });

  it("runs in onnxruntime-node after the round trip", () => {
    const out = join(dir, "big", "model-dce.onnx");
    const script = `
      const ort = require("onnxruntime-node");
      (async () => {
        const s = await ort.InferenceSession.create(${JSON.stringify(out)});
        const r = await s.run({ ids: new ort.Tensor("int64", BigInt64Array.from([3n]), [1]), x: new ort.Tensor("float32", new Float32Array(256).fill(0.5), [1, 256]) });
        process.stdout.write(String(r.y.data[0]));
      })();`;
    const y = execFileSync(process.execPath, ["-e", script], { cwd: ROOT, encoding: "utf8" });
    // 9 zero-weight Adds leave 0.5; the chain then adds 1 at 9 of every 10 of its remaining nodes.
    expect(Number(y)).toBe(0.5 + 164);
  });
});
