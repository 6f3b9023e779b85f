// Shape inference on real exported decoders, checked against what onnxruntime actually produces.
// Declared intermediate and output types are erased first, so every shape checked here was
// inferred; the symbolic output shapes, with the input symbols bound to the sizes fed, must equal
// the shapes onnxruntime returns, for a prefill (past length 0) and a decode step.

import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { DataType, type Model, type TensorType } from "../graph/ir/index.ts";
import { inferShapes } from "../graph/ir/shape-inference/index.ts";
import { evaluateDim } from "../graph/ir/symbolic-dim.ts";
import { loadModel, saveModel } from "../graph/onnx/index.ts";

const FIXTURES = join(import.meta.dirname, "..", "..", "shared", "fixtures");
const REFERENCE = join(import.meta.dirname, "fixtures", "reference");

function onnxFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => readdirSync(join(dir, e.name)).filter((f) => f.endsWith(".onnx")).map((f) => join(dir, e.name, f)))
    .sort();
}

/** Loads a model with every node output's type erased, infers, and measures how many got a full shape. */
function inferFresh(path: string): { model: Model; coverage: number; unknown: number } {
  const model = loadModel(path);
  let total = 0;
  for (const n of model.graph.allNodes()) {
    for (const o of n.outputs) {
      if (o) (o.type = undefined), total++;
    }
  }
  const report = inferShapes(model);
  let full = 0;
  for (const n of model.graph.allNodes()) {
    for (const o of n.outputs) {
      const t = o?.type as TensorType | undefined;
      if (t?.dtype && t.shape?.every((d) => d !== undefined)) full++;
    }
  }
  return { model, coverage: full / total, unknown: [...report.unknownOps.values()].reduce((a, b) => a + b, 0) };
}

const ORT_TYPES: Record<number, ort.Tensor.Type> = {
  [DataType.FLOAT]: "float32",
  [DataType.FLOAT16]: "float16",
  [DataType.INT64]: "int64",
  [DataType.INT32]: "int32",
  [DataType.BOOL]: "bool",
};

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Sizes for the input symbols: batch B and new tokens S from input_ids, total P + S from the mask, the rest is the past length P. */
function bindSymbols(model: Model, B: number, S: number, P: number): Record<string, number> {
  const bindings: Record<string, number> = {};
  const declared = (name: string) => (model.graph.inputs.find((v) => v.name === name)?.type as TensorType | undefined)?.shape ?? [];
  const bind = (d: unknown, size: number) => typeof d === "string" && !(d in bindings) && (bindings[d] = size);
  const [batch, seq] = declared("input_ids");
  bind(batch, B);
  bind(seq, S);
  bind(declared("attention_mask")[1], P + S);
  for (const v of model.graph.inputs) for (const d of (v.type as TensorType).shape ?? []) bind(d, P);
  return bindings;
}

function feedFor(name: string, type: TensorType, bindings: Record<string, number>, P: number, next: () => number): ort.Tensor {
  const dims = type.shape!.map((d) => evaluateDim(d, bindings)!);
  const count = dims.reduce((a, b) => a * b, 1);
  const S = dims[dims.length - 1];
  const ints = (f: (i: number) => number) => Array.from({ length: count }, (_, i) => f(i));
  const values = name.includes("position") ? ints((i) => P + (i % S)) : name.includes("mask") ? ints(() => 1) : ints(() => Math.floor(next() * 100));
  switch (type.dtype) {
    case DataType.INT64:
      return new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
    case DataType.INT32:
      return new ort.Tensor("int32", Int32Array.from(values), dims);
    case DataType.FLOAT:
      return new ort.Tensor("float32", Float32Array.from({ length: count }, () => next() - 0.5), dims);
    case DataType.FLOAT16:
      // Halves in about ±[1/8, 1/2): a random sign, exponent 12..13 and mantissa.
      return new ort.Tensor("float16", Uint16Array.from({ length: count }, () => ((next() < 0.5 ? 1 : 0) << 15) | ((12 + Math.floor(next() * 2)) << 10) | Math.floor(next() * 1024)), dims);
    default:
      throw new Error(`${name}: no feed for dtype ${type.dtype}`);
  }
}

function feedsFor(model: Model, bindings: Record<string, number>, P: number): Record<string, ort.Tensor> {
  const next = rng(1234);
  const feeds: Record<string, ort.Tensor> = {};
  for (const v of model.graph.inputs) if (!v.initializer) feeds[v.name] = feedFor(v.name, v.type as TensorType, bindings, P, next);
  return feeds;
}

/**
 * Exposes every shaped intermediate of a freshly inferred copy as a graph output (declared by
 * element type only, so onnxruntime's own inference cannot mask ours) and returns the inferred
 * shapes, evaluated under `bindings`, with the shapes onnxruntime produced for them.
 */
async function intermediateShapes(path: string, step: (typeof STEPS)[number]): Promise<{ name: string; inferred: (number | undefined)[]; actual: readonly number[] }[]> {
  const { model } = inferFresh(path);
  const bindings = bindSymbols(model, step.B, step.S, step.P);
  const inferred = new Map<string, (number | undefined)[]>();
  for (const n of model.graph.nodes()) {
    for (const o of n.outputs) {
      const t = o?.type as TensorType | undefined;
      if (!o || !t?.shape || o.isGraphOutput) continue;
      inferred.set(o.name, t.shape.map((d) => evaluateDim(d, bindings)));
      o.type = { kind: "tensor", dtype: t.dtype, shape: undefined };
      model.graph.addOutput(o);
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "pipec-shapes-"));
  try {
    saveModel(model, join(dir, "model.onnx"), { weights: "inline" });
    const session = await ort.InferenceSession.create(join(dir, "model.onnx"));
    try {
      const out = await session.run(feedsFor(model, bindings, step.P));
      return [...inferred].map(([name, shape]) => ({ name, inferred: shape, actual: out[name].dims }));
    } finally {
      await session.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const models = [...onnxFiles(FIXTURES), ...onnxFiles(REFERENCE)];
const STEPS = [
  { what: "prefill", B: 2, S: 4, P: 0 },
  { what: "decode", B: 2, S: 1, P: 4 },
];

describe.skipIf(!existsSync(FIXTURES))("shape inference on the shared fixtures (skipped: ../shared/fixtures is absent)", () => {
  it("finds the genai models", () => expect(onnxFiles(FIXTURES).length).toBeGreaterThanOrEqual(3));
});

describe("shape inference on real exports", () => {
  for (const path of models) {
    const { model, coverage, unknown } = inferFresh(path);
    const label = path.split("/").slice(-2).join("/");

    it(`${label}: ${(coverage * 100).toFixed(1)}% of node outputs fully shaped, ${unknown} unsupported nodes`, () => {
      expect(coverage).toBeGreaterThanOrEqual(0.95);
    });

    for (const step of STEPS) {
      it(`${label}: inferred output shapes match onnxruntime (${step.what}, P=${step.P}, S=${step.S})`, async () => {
        const bindings = bindSymbols(model, step.B, step.S, step.P);
        const feeds = feedsFor(model, bindings, step.P);
        const session = await ort.InferenceSession.create(path);
        try {
          const out = await session.run(feeds);
          for (const v of model.graph.outputs) {
            const t = v.type as TensorType;
            const inferred = t.shape!.map((d) => evaluateDim(d, bindings));
            expect({ name: v.name, shape: inferred, type: ORT_TYPES[t.dtype] }).toEqual({ name: v.name, shape: out[v.name].dims, type: out[v.name].type });
          }
        } finally {
          await session.release();
        }
      });
    }

    it(`${label}: every inferred intermediate shape matches onnxruntime (decode)`, async () => {
      const shapes = await intermediateShapes(path, STEPS[1]);
      expect(shapes.length).toBeGreaterThan(5);
      const wrong = shapes.filter((s) => s.inferred.some((d, i) => d !== undefined && d !== s.actual[i]) || s.inferred.length !== s.actual.length);
      expect(wrong).toEqual([]);
    });
  }
});
