import { describe, expect, it } from "vitest";
import { isRuntimeError } from "../errors.ts";
import { composeProcessors, repetitionPenalty, temperature, topK, topP } from "./processors.ts";
import { createRng } from "./rng.ts";
import { argmax, createSampler, parseSampling, sampleSoftmax } from "./sampler.ts";

const LOGITS = [1.5, -0.5, 3.0, 0.25, 2.0, -2.0, 0.0, 2.5];
const logits = () => Float32Array.from(LOGITS);
const none = { tokens: [] };

describe("rng", () => {
  it("same seed, same stream; different seeds differ", () => {
    const a = createRng(42), b = createRng(42), c = createRng(43);
    const sa = Array.from({ length: 5 }, a), sb = Array.from({ length: 5 }, b), sc = Array.from({ length: 5 }, c);
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
    for (const x of sa) expect(x >= 0 && x < 1).toBe(true);
  });
});

describe("processors", () => {
  it("temperature divides", () => {
    const l = logits();
    temperature(2)(l, none);
    expect(Array.from(l)).toEqual(LOGITS.map((x) => x / 2));
  });

  it("top-k keeps the k largest", () => {
    const l = logits();
    topK(3, l.length)(l, none);
    expect(Array.from(l)).toEqual([-Infinity, -Infinity, 3.0, -Infinity, 2.0, -Infinity, -Infinity, 2.5]);
  });

  it("top-p keeps the smallest nucleus reaching p", () => {
    const l = logits();
    // softmax mass: 3.0 -> 0.383, 2.5 -> 0.232, 2.0 -> 0.141: the first two reach 0.6, three reach 0.75.
    topP(0.6, l.length)(l, none);
    expect(Array.from(l).map((x) => x !== -Infinity)).toEqual([false, false, true, false, false, false, false, true]);
  });

  it("repetition penalty divides positive and multiplies negative logits, once per distinct token", () => {
    const l = logits();
    repetitionPenalty(2, l.length)(l, { tokens: [0, 1, 1, 0] });
    expect(Array.from(l)).toEqual([0.75, -1.0, ...LOGITS.slice(2)]);
  });

  it("compose applies left to right", () => {
    const l = logits();
    composeProcessors(temperature(0.5), topK(1, l.length))(l, none);
    expect(Array.from(l).filter((x) => x !== -Infinity)).toEqual([6]);
  });

  it("rejects invalid settings with a RuntimeError", () => {
    for (const make of [() => temperature(0), () => topK(0, 8), () => topP(1.5, 8), () => repetitionPenalty(-1, 8)]) {
      let error: unknown;
      try {
        make();
      } catch (e) {
        error = e;
      }
      expect(isRuntimeError(error)).toBe(true);
    }
  });
});

describe("samplers", () => {
  it("greedy is argmax", () => {
    expect(argmax(logits())).toBe(2);
    expect(createSampler({}, 8)(logits(), none)).toBe(2);
  });

  it("seeded sampling is reproducible and actually samples", () => {
    const draw = (seed: number) => {
      const sample = createSampler({ temperature: 1, seed }, 8);
      return Array.from({ length: 40 }, () => sample(logits(), none));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(new Set(draw(7)).size).toBeGreaterThan(2);
  });

  it("sampleSoftmax follows the softmax distribution", () => {
    const rng = createRng(1);
    const counts = new Array(LOGITS.length).fill(0);
    const N = 40000;
    for (let i = 0; i < N; i++) counts[sampleSoftmax(logits(), rng)]++;
    const max = Math.max(...LOGITS);
    const weights = LOGITS.map((x) => Math.exp(x - max));
    const total = weights.reduce((a, b) => a + b);
    weights.forEach((w, i) => expect(Math.abs(counts[i] / N - w / total)).toBeLessThan(0.01));
  });

  it("top_k=1 and a tiny top_p sample only the argmax", () => {
    for (const config of [{ temperature: 1.3, topK: 1, seed: 3 }, { temperature: 1.3, topP: 0.01, seed: 3 }]) {
      const sample = createSampler(config, 8);
      for (let i = 0; i < 20; i++) expect(sample(logits(), none)).toBe(2);
    }
  });
});

describe("parseSampling", () => {
  it("reads the CLI form", () => {
    expect(parseSampling("greedy")).toEqual({});
    expect(parseSampling("temperature=0.8,top_k=40,top_p=0.9,seed=1")).toEqual({ temperature: 0.8, topK: 40, topP: 0.9, seed: 1 });
  });

  it("names the problem in one line", () => {
    expect(() => parseSampling("temp=1")).toThrow(/unknown key "temp"/);
    expect(() => parseSampling("temperature=hot")).toThrow(/expected key=number/);
    expect(() => parseSampling("top_k=4")).toThrow(/give temperature/);
  });
});
