import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { loadModel, saveModel } from "../../graph/onnx/index.ts";
import { slidingWindow } from "../../passes/kv/sliding-window.ts";
import { sparsify } from "../../test/helpers/sparse-parity.ts";
import { tempDir } from "../../test/helpers/tmp.ts";
import type { KvPolicy, KvPolicyHost } from "../cache/kv-policy.ts";
import { DecoderModel } from "../decoder.ts";
import { isRuntimeError } from "../errors.ts";
import { Generator } from "../generate.ts";
import { SlidingWindowEviction } from "./sliding-window.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const SIZE = 16;
const PROMPT = [1, 72, 101, 108, 108, 111, 44, 32];
const TOKENS = 64;

/** After each decode step (added after the eviction, so it sees the evicted cache): the cache's rows and bytes as the runtime holds them. */
class CacheWatch implements KvPolicy {
  readonly steps: { rows: number; bytes: number; position: number }[] = [];
  afterDecodeStep(host: KvPolicyHost): void {
    this.steps.push({ rows: host.length, bytes: host.cache.bytes, position: host.position });
  }
}

describe("sliding-window eviction on sotu-tiny compiled with the sliding-window pass", () => {
  const dir = tempDir("pipec-sliding-window-");

  async function windowed(): Promise<DecoderModel> {
    const model = await loadModel(join(ROOT, "examples/models/sotu-tiny/model.onnx"));
    const { lifted, rewritten } = sparsify(model, (m) => slidingWindow(m, { size: SIZE }));
    expect(rewritten).toBe(lifted);
    expect(rewritten).toBe(4);
    const path = join(dir, "model.onnx");
    await saveModel(model, path);
    return DecoderModel.open(path, { device: "cpu", threads: 1 });
  }

  it(`keeps the cache at the window and generates the tokens the model generates without eviction (${TOKENS} tokens, window ${SIZE})`, async () => {
    const model = await windowed();
    try {
      const generator = new Generator(model);
      const options = { maxTokens: TOKENS, eosTokenIds: [] };
      const plainWatch = new CacheWatch();
      const plain = await generator.run(PROMPT, { ...options, kvPolicies: [() => plainWatch] });
      const watch = new CacheWatch();
      const evicted = await generator.run(PROMPT, { ...options, kvPolicies: [() => new SlidingWindowEviction({ size: SIZE }), () => watch] });
      expect(plain.tokens.length).toBe(TOKENS);
      expect(evicted.tokens).toEqual(plain.tokens);

      // One row's bytes, from the runtime's cache; the windowed run holds size - 1 rows between steps, size during one.
      const rowBytes = watch.steps[0]!.bytes / watch.steps[0]!.rows;
      expect(watch.steps.every((s) => s.rows <= SIZE - 1 && s.bytes === s.rows * rowBytes)).toBe(true);
      expect(watch.steps.at(-1)!.rows).toBe(SIZE - 1);
      expect(evicted.stats.peakKvBytes).toBe(SIZE * rowBytes);
      expect(plain.stats.peakKvBytes).toBe(plainWatch.steps.at(-1)!.bytes);
      expect(plainWatch.steps.at(-1)!.rows).toBeGreaterThan(4 * SIZE);
      // Positions are not renumbered: the next token sits where it would without eviction.
      expect(watch.steps.map((s) => s.position)).toEqual(plainWatch.steps.map((s) => s.position));
      // What the graph reports it attended: the window, once the context fills it.
      expect(evicted.stats.attendedKeys?.["sliding-window"]?.max).toBe(SIZE);
      expect(plain.stats.attendedKeys?.["sliding-window"]?.max).toBe(SIZE);
    } finally {
      await model.release();
    }
  });

  it("evicts after every prompt chunk too, with the same tokens", async () => {
    const model = await windowed();
    try {
      const generator = new Generator(model);
      const prompt = Array.from({ length: 40 }, (_, i) => PROMPT[i % PROMPT.length]! + i);
      const options = { maxTokens: 16, eosTokenIds: [], prefillChunkSize: 6 };
      const plain = await generator.run(prompt, options);
      const evicted = await generator.run(prompt, { ...options, kvPolicies: [() => new SlidingWindowEviction({ size: SIZE })] });
      expect(evicted.tokens).toEqual(plain.tokens);
      expect(evicted.stats.peakKvBytes).toBeLessThan(plain.stats.peakKvBytes / 2);
    } finally {
      await model.release();
    }
  });

  it("bounds the rows a run reserves by the window, a prompt chunk on the kept rows, or the run", () => {
    const policy = new SlidingWindowEviction({ size: 5 });
    expect(policy.reserveRows({ prompt: 3, chunk: 3, maxTokens: 100 })).toBe(5);
    expect(policy.reserveRows({ prompt: 3, chunk: 3, maxTokens: 1 })).toBe(4);
    expect(policy.reserveRows({ prompt: 20, chunk: 20, maxTokens: 100 })).toBe(20);
    expect(policy.reserveRows({ prompt: 20, chunk: 6, maxTokens: 100 })).toBe(10);
  });

  it("refuses a model without position_ids, whose positions would follow the shortened cache", () => {
    const gathered: { rows: number[]; next?: number }[] = [];
    const host = { contract: {}, length: 9, position: 9, gather: (rows: readonly number[], next?: number) => void gathered.push({ rows: [...rows], next }) } as unknown as KvPolicyHost;
    const policy = new SlidingWindowEviction({ size: 4 });
    const error = (() => {
      try {
        policy.afterDecodeStep(host);
      } catch (e) {
        return e;
      }
    })();
    expect(isRuntimeError(error) && error.code).toBe("sliding-window-positions");
    expect(gathered).toEqual([]);
    policy.afterDecodeStep({ ...host, contract: { positionType: "int64" }, gather: host.gather } as unknown as KvPolicyHost);
    expect(gathered).toEqual([{ rows: [6, 7, 8], next: 9 }]);
  });
});
