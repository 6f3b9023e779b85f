// The methods on the export matrix (test/fixtures/export-matrix, made by tools/export_matrix.py
// from real transformers model code), issue 13's acceptance: each sparse method is exact at a
// budget covering the context, and every speculative source gives greedy's tokens, on every
// fixture, or is refused in one line where EXPECTED_REFUSALS says why the method is undefined.
// Sparse methods run as a .pipe compiles them (the pass with kv_append_only); Token Recycling and
// the self-draft pass are compiled from a generated .pipe per fixture and run like a user's.
// Prints the table architecture x implementation x exporter x optimiser -> layers found /
// expected and each method's result; PIPEC_WRITE_MATRIX_TABLE=1 also writes it into the README.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PipecError } from "../graph/errors.ts";
import type { Model } from "../graph/ir/model.ts";
import { loadModel } from "../graph/onnx/index.ts";
import type { Pass } from "../graph/pass-manager/pass.ts";
import { compileSource } from "../compiler/pipeline/compile.ts";
import { runCompiled } from "../compiler/pipeline/run.ts";
import { findAttentionBlocks } from "../passes/attention/index.ts";
import { createStreamingLlm } from "../passes/kv/streaming-llm.ts";
import { chainedExactness } from "./helpers/chained-parity.ts";
import { createTidalDecode } from "../passes/sparse-attention/tidal-decode.ts";
import { createTokenSelect } from "../passes/sparse-attention/token-select.ts";
import { DecoderModel } from "../runtime/decoder.ts";
import { Generator } from "../runtime/generate.ts";
import { expectLossless, losslessPrompts, total } from "./helpers/lossless.ts";
import { exactness, type ExactnessCase } from "./helpers/sparse-parity.ts";
import { HAVE_MATRIX, MATRIX_DIR, matrixFixtures, type MatrixExpected } from "./helpers/export-matrix.ts";
import { tempDir } from "./helpers/tmp.ts";

const fixtures = matrixFixtures();

const expectedOf = (fixture: string) => JSON.parse(readFileSync(join(MATRIX_DIR, fixture, "expected.json"), "utf8")) as MatrixExpected;

/** Logits of lift + method + lower against lift + lower at a covering budget (float32 exports). */
const EXACT = 1e-4;
const OPEN = { device: "cpu" as const, threads: 1 };
/** Prompts per fixture for the speculative sources (open and grounded, see losslessPrompts). */
const PROMPTS = 2;
/** Tokens each compiled speculation generates (the runtime sources generate test/helpers/lossless.ts's NEW_TOKENS). */
const COMPILED_TOKENS = 16;

const METHODS = ["streaming", "tidal", "tokenselect", "lookup / draft / self-draft (runtime)", "recycle (compiled)", "self (compiled)"] as const;
type Method = (typeof METHODS)[number];

/**
 * Where a method is undefined for a model: the fixtures, the method, why, and the one line the
 * refusal says. Empty: every method is defined on every fixture. (StreamingLLM on GPT-2's learned
 * absolute positions is too: the cached keys carry their positions and nothing is re-rotated; the
 * pass refuses learned positions only under speculation's tree mask, a combination not in this table.)
 */
const EXPECTED_REFUSALS: { fixture: RegExp; method: Method; why: string; message: RegExp }[] = [];

interface Row {
  expected: MatrixExpected;
  found?: number;
  results: Partial<Record<Method, string>>;
}
const rows = new Map<string, Row>();
const rowOf = (fixture: string): Row => {
  let row = rows.get(fixture);
  if (!row) rows.set(fixture, (row = { expected: expectedOf(fixture), results: {} }));
  return row;
};

/**
 * Runs `check` for `method` on `fixture`, recording its result: a PipecError (or a compile's error
 * diagnostic, thrown as one) must be one line and listed in EXPECTED_REFUSALS; a listed refusal
 * that no longer happens fails.
 */
async function attempt(fixture: string, method: Method, check: () => Promise<string>): Promise<void> {
  const expected = EXPECTED_REFUSALS.find((r) => r.method === method && r.fixture.test(fixture));
  let result: string;
  try {
    result = await check();
  } catch (e) {
    if (!(e instanceof PipecError)) throw e;
    expect(e.message, "a refusal is one line").not.toContain("\n");
    expect(expected, `unexpected refusal of ${method} on ${fixture}: ${e.message}`).toBeDefined();
    expect(e.message).toMatch(expected!.message);
    rowOf(fixture).results[method] = `refused (${expected!.why})`;
    return;
  }
  expect(expected, `${method} on ${fixture} was expected to be refused (${expected?.why}) but ran: ${result}`).toBeUndefined();
  rowOf(fixture).results[method] = result;
}

/** `pass` on lifted attention, returning its stat `stat` (the rewritten layers) and recording the KV form it left in `form`. */
function runPass(pass: Pass, stat: string, form: { kv: string }): (m: Model) => number {
  return (m) => {
    const rewritten = pass.run(m, { options: {}, note: () => {} }).stats![stat]!;
    form.kv = kvForm(m);
    return rewritten;
  };
}

/** How the KV contract came out: append-only where kv-append-only applied, else the model's present outputs. */
const kvForm = (m: Model) => (m.graph.outputs.some((o) => o.name.startsWith("present_new.")) ? "append-only KV" : "present outputs");

const pipe = (model: string, speculate: string) => `pipeline matrix {
  model llm = onnx(${JSON.stringify(model)})
  tokenizer tok = ids
  stage decode = generate(llm, tok) {
    speculate: ${speculate}
    max_tokens: ${COMPILED_TOKENS}
  }
}
`;

/** The first fixture of another architecture (same exporter and optimiser where there is one): a different model of the same vocabulary. */
function draftFor(fixture: string): string {
  const arch = expectedOf(fixture).arch;
  const suffix = fixture.slice(fixture.indexOf("-", fixture.indexOf("-") + 1));
  const others = fixtures.filter((f) => expectedOf(f).arch !== arch);
  return others.find((f) => f.endsWith(suffix)) ?? others[0]!;
}

afterAll(() => {
  if (rows.size === 0) return;
  const header = ["architecture", "implementation", "exporter", "optimiser", "layers found / expected", ...METHODS];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const [, { expected: e, found, results }] of [...rows].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`| ${[e.arch, e.impl, e.exporter, e.optimiser ?? "none", `${found ?? "?"} / ${e.expected_attention_layers}`, ...METHODS.map((m) => results[m] ?? "not run")].join(" | ")} |`);
  }
  const table = lines.join("\n");
  console.log(`export matrix methods (${rows.size} fixtures):\n${table}`);
  if (process.env["PIPEC_WRITE_MATRIX_TABLE"] === "1" && rows.size === fixtures.length) writeReadmeTable(table);
});

const BEGIN = "<!-- methods table: written by test/export-matrix-methods.test.ts with PIPEC_WRITE_MATRIX_TABLE=1, do not edit -->";
const END = "<!-- end of methods table -->";

function writeReadmeTable(table: string): void {
  const path = join(MATRIX_DIR, "README.md");
  const readme = readFileSync(path, "utf8");
  const [start, end] = [readme.indexOf(BEGIN), readme.indexOf(END)];
  if (start < 0 || end < start) throw new Error(`${path}: the methods table's markers are missing`);
  writeFileSync(path, `${readme.slice(0, start + BEGIN.length)}\n${table}\n${readme.slice(end)}`);
}

describe.skipIf(!HAVE_MATRIX)(`methods on the export matrix (${HAVE_MATRIX ? `${fixtures.length} fixtures` : "test/fixtures/export-matrix absent: skipped"})`, () => {
  const out = tempDir("pipec-matrix-methods-");

  for (const fixture of fixtures) {
    describe(fixture, () => {
      const path = join(MATRIX_DIR, fixture, "model.onnx");
      const c: ExactnessCase = { name: fixture, load: () => loadModel(path) };
      const layers = () => {
        const row = rowOf(fixture);
        row.found ??= findAttentionBlocks(loadModel(path)).layers.length;
        expect(row.found).toBe(row.expected.expected_attention_layers);
        return row.found;
      };

      it("streaming: sinks + window covering the context is exact", async () => {
        const L = layers();
        await attempt(fixture, "streaming", async () => {
          const form = { kv: "" };
          const pass = createStreamingLlm({ sinks: 4, window: 1 << 20, appendOnly: true });
          const r = await chainedExactness(c, runPass(pass, "layers", form));
          expect(r.rewritten).toBe(L);
          expect(r.diff).toBeLessThanOrEqual(EXACT * Math.max(1, r.scale));
          return `exact (${r.diff.toExponential(1)}, ${form.kv})`;
        });
      });

      it("tidal: top_k covering the context is exact", async () => {
        const L = layers();
        await attempt(fixture, "tidal", async () => {
          const form = { kv: "" };
          // Layer 0 selects (attends fully), every later layer is sparse.
          const pass = createTidalDecode({ topK: { tokens: 1 << 20 }, fullLayers: 0, selectLayers: [0], appendOnly: true });
          const r = await exactness(c, runPass(pass, "sparse", form));
          expect(r.rewritten).toBe(L - 1);
          expect(r.diff).toBeLessThanOrEqual(EXACT);
          return `exact (${r.diff.toExponential(1)}, ${form.kv})`;
        });
      });

      it("tokenselect: top_k covering the context is exact", async () => {
        const L = layers();
        await attempt(fixture, "tokenselect", async () => {
          const form = { kv: "" };
          const pass = createTokenSelect({ topK: { tokens: 1 << 20 }, sinks: 4, window: 8, kernelSize: -1, appendOnly: true });
          const r = await exactness(c, runPass(pass, "layers", form));
          expect(r.rewritten).toBe(L);
          expect(r.diff).toBeLessThanOrEqual(EXACT);
          return `exact (${r.diff.toExponential(1)}, ${form.kv})`;
        });
      });

      it("lookup, draft model and self-draft (runtime) give greedy's tokens", async () => {
        await attempt(fixture, "lookup / draft / self-draft (runtime)", async () => {
          const draftFixture = draftFor(fixture);
          const [target, draft] = await Promise.all([DecoderModel.open(path, OPEN), DecoderModel.open(join(MATRIX_DIR, draftFixture, "model.onnx"), OPEN)]);
          try {
            const stats = await expectLossless(target, draft, PROMPTS);
            const accepted = [...stats.values()].reduce((s, x) => s + total(x, "acceptedTokens"), 0);
            return `token-identical (${stats.size} sources, draft ${expectedOf(draftFixture).arch}, ${accepted} accepted)`;
          } finally {
            await Promise.all([target.release(), draft.release()]);
          }
        });
      });

      /** Greedy tokens of the unrewritten model for the prompts the compiled speculations run (computed once). */
      let plain: Promise<{ prompt: number[]; tokens: number[] }[]> | undefined;
      const plainRuns = () => (plain ??= greedyRuns());
      const greedyRuns = async (): Promise<{ prompt: number[]; tokens: number[] }[]> => {
        const model = await DecoderModel.open(path, OPEN);
        try {
          const generator = new Generator(model);
          const runs = [];
          for (const prompt of await losslessPrompts(generator, model.contract.vocabSize ?? 256, PROMPTS)) {
            runs.push({ prompt, tokens: (await generator.run(prompt, { maxTokens: COMPILED_TOKENS, eosTokenIds: [] })).tokens });
          }
          return runs;
        } finally {
          await model.release();
        }
      };

      /** Compiles `speculate` for this fixture from a generated .pipe and checks every prompt's tokens against plain greedy. */
      const compiledSpeculation = async (name: string, speculate: string, source: string): Promise<string> => {
        const dir = join(out, fixture, name);
        const result = await compileSource(pipe(path, speculate), join(out, `${fixture}-${name}.pipe`), { outDir: dir });
        const errors = result.diagnostics.filter((d) => d.severity === "error");
        if (errors.length) throw new PipecError("compile", errors.map((d) => d.message).join("; "));
        let drafted = 0;
        let accepted = 0;
        for (const { prompt, tokens } of await plainRuns()) {
          let end: { tokens: number[]; stats: { speculative?: { source?: string; draftedTokens: number; acceptedTokens: number } } } | undefined;
          for await (const event of runCompiled(dir, prompt, OPEN)) if (event.kind === "end") end = event;
          expect(end!.tokens, `${speculate}, prompt ${prompt.join(" ")}`).toEqual(tokens);
          expect(end!.stats.speculative).toMatchObject({ source });
          drafted += end!.stats.speculative!.draftedTokens;
          accepted += end!.stats.speculative!.acceptedTokens;
        }
        // Verification was exercised: drafts were made and checked against the target.
        expect(drafted).toBeGreaterThan(0);
        return `token-identical (${accepted}/${drafted} drafts accepted)`;
      };

      it("recycle (compiled .pipe: tree attention mask) gives greedy's tokens", async () => {
        // A fixed 16-node tree drafts every step (the auto tree drafts only while measured costs say it pays).
        await attempt(fixture, "recycle (compiled)", () => compiledSpeculation("recycle", "recycle(top_k: 8, tree: 16)", "recycle"));
      });

      it("self (compiled .pipe: the self-draft pass skips layer 1) gives greedy's tokens", async () => {
        await attempt(fixture, "self (compiled)", () => compiledSpeculation("self", "self(skip: [1], k: 3)", "draft"));
      });
    });
  }
});
