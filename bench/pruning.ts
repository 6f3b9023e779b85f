/**
 * Visual token pruning (issue 18), side by side in one run: unpruned, DivPrune at keep = 50 / 25
 * / 10 %, ToDRE at 25 %, each compiled from a .pipe with that `prune:` setting and run through
 * its compiled driver as `pipec run` does.
 *
 * Two models:
 * - trained: examples/models/shapes-vlm (examples/shapes-vlm.pipe), a tiny LLaVA-style model
 *   trained on synthetic images, on its held-out questions (heldout/: images it never trained
 *   on). Accuracy is the first generated word against the expected one-word answer. Its vision
 *   encoder costs about as much as its 2-layer decoder, so pruning, which only shortens the
 *   decoder's prompt, can speed up the time to first token only so far.
 * - zoo: the same vision tower and projector shape in front of a larger decoder (4 layers,
 *   hidden 256; random weights from graph/zoo/vlm.ts, built into bench/models/ on first use),
 *   the proportions of a real VLM, where the decoder dominates. Speed only; and the same model
 *   on multi-crop input (a thumbnail and 2 x 2 crops, 1280 visual tokens) under GlobalCom2,
 *   against that multi-crop input unpruned.
 *
 * The configurations take turns on each question, so load from other jobs falls on all of them
 * alike. Per configuration: the decoder's prefill (median wall ms of the prompt's forward pass:
 * text and kept visual rows), time to first token (median wall ms from the image file going in:
 * decoding it, the vision encoder, pruning, prefill, the first token) and its CPU ms (process
 * CPU time over the same span, which other jobs do not inflate), and the KV cache after the
 * prompt (the memory that grows with the visual tokens; the weights are the same in all).
 * Prefill CPU ms is measured apart, with the runtime's classes: the decoder's forward pass over
 * the same prompt rows, process CPU time around it alone.
 *
 * Usage: npx tsx bench/pruning.ts [--questions N] [--zoo-questions N] [--threads 1]
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { compileSource } from "../compiler/pipeline/compile.ts";
import { loadCompiled, type CompiledPipeline } from "../compiler/pipeline/run.ts";
import { llamaConfig, visionConfig, writeZooVlm } from "../graph/zoo/index.ts";
import { DecoderModel, loadImage, selectVisualTokens, VisionEncoder, type GenerationStats, type PruneConfig } from "../runtime/index.ts";
import { cropGrid, gatherTokens } from "../runtime/vision/prune/index.ts";
import { imagePromptRows } from "../runtime/vision/splice.ts";

const ROOT = join(import.meta.dirname, "..");
const TRAINED_PIPE = join(ROOT, "examples/shapes-vlm.pipe");
const HELDOUT = join(ROOT, "examples/models/shapes-vlm/heldout");
const ZOO_DIR = join(import.meta.dirname, "models/vlm-zoo");
type Config = { name: string; prune: string };
const CONFIGS: Config[] = [
  { name: "unpruned", prune: "none" },
  { name: "divprune 50%", prune: "divprune(keep: 50%)" },
  { name: "divprune 25%", prune: "divprune(keep: 25%)" },
  { name: "divprune 10%", prune: "divprune(keep: 10%)" },
  { name: "todre 25%", prune: "todre(keep: 25%)" },
];
const MULTI_CROP: Config[] = [
  { name: "multi-crop unpruned (globalcom2 100%)", prune: "globalcom2(keep: 100%)" },
  { name: "globalcom2 50%", prune: "globalcom2(keep: 50%)" },
  { name: "globalcom2 25%", prune: "globalcom2(keep: 25%)" },
  { name: "globalcom2 10%", prune: "globalcom2(keep: 10%)" },
];
const WARMUP = 5;
const IMAGE_TOKEN = 4;

interface Question {
  image: string;
  prompt: string | number[];
  answer?: string;
}

interface Sample {
  correct: boolean;
  prefillCpuMs: number;
  prefillMs: number;
  ttftMs: number;
  ttftCpuMs: number;
  kvBytes: number;
  keptTokens: number;
}

const { values } = parseArgs({ options: { questions: { type: "string", default: "100" }, "zoo-questions": { type: "string", default: "30" }, threads: { type: "string", default: "1" } } });
const threads = Number(values.threads);
const started = performance.now();

/** The zoo model and a .pipe over it (ids in, no tokenizer). */
function zooPipe(): string {
  const decoder = llamaConfig({ hidden: 256, heads: 8, kvHeads: 4, intermediate: 704, layers: 4, vocabSize: 512, seed: 7, maxPositions: 2048 });
  const config = { vision: visionConfig({ projection: 256 }), decoder, imageTokenId: IMAGE_TOKEN };
  const stamp = join(ZOO_DIR, "zoo-config.json");
  if (!existsSync(stamp) || readFileSync(stamp, "utf8") !== JSON.stringify(config)) {
    writeZooVlm(config, ZOO_DIR);
    writeFileSync(stamp, JSON.stringify(config));
  }
  return join(ZOO_DIR, "zoo.pipe");
}

const ZOO_SOURCE = `pipeline vlm_zoo {
  model vision = onnx("vision_encoder.onnx")
  model llm = onnx("decoder_model.onnx")
  tokenizer tok = ids
  stage see = encode(vision) {
    prune: none
  }
  stage answer = generate(llm, tok, input: see)
}
`;

async function measure(pipeFile: string, source: string, questions: Question[], configs: Config[] = CONFIGS): Promise<Sample[][]> {
  const work = mkdtempSync(join(tmpdir(), "pipec-pruning-"));
  const pipelines: CompiledPipeline[] = [];
  try {
    for (const [i, config] of configs.entries()) {
      const compiled = await compileSource(source.replace(/prune: [^\n]+/, `prune: ${config.prune}`), pipeFile, { outDir: join(work, String(i)) });
      if (!compiled.outDir) throw new Error(`${config.name}: ${compiled.diagnostics.map((d) => d.message).join("; ")}`);
      pipelines.push(await loadCompiled(compiled.outDir, { device: "cpu", threads }));
    }
    const ask = async (p: CompiledPipeline, q: Question): Promise<Sample> => {
      const cpu = process.cpuUsage();
      let stats: (GenerationStats & { keptTokens?: number }) | undefined;
      let text = "";
      for await (const event of p.generate(q.prompt, { image: q.image, maxTokens: 1 })) if (event.kind === "end") [stats, text] = [event.stats, event.text];
      const used = process.cpuUsage(cpu);
      return { correct: text.trim() === q.answer, prefillCpuMs: 0, prefillMs: stats!.prefillMs, ttftMs: stats!.timeToFirstTokenMs, ttftCpuMs: (used.user + used.system) / 1000, kvBytes: stats!.peakKvBytes, keptTokens: stats!.keptTokens! };
    };
    for (const q of questions.slice(0, WARMUP)) for (const p of pipelines) await ask(p, q);
    const samples: Sample[][] = configs.map(() => []);
    for (const q of questions) for (const [i, p] of pipelines.entries()) samples[i]!.push(await ask(p, q));
    await prefillCpu(join(work, "0"), questions, samples, configs);
    return samples;
  } finally {
    for (const p of pipelines) await p.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** CPU ms of the decoder's prompt pass alone, per configuration and question, into `samples`. */
async function prefillCpu(compiled: string, questions: Question[], samples: Sample[][], configs: Config[]): Promise<void> {
  const encoder = await VisionEncoder.open(join(compiled, "models/vision/model.onnx"), { device: "cpu", threads });
  const decoder = await DecoderModel.open(join(compiled, "models/llm/model.onnx"), { device: "cpu", threads });
  const prunes = configs.map((c): PruneConfig => {
    if (c.prune === "none") return { method: "none" };
    const keep = { percent: Number(/(\d+)%/.exec(c.prune)![1]) };
    return c.prune.startsWith("globalcom2") ? { method: "globalcom2", keep, grid: 2 } : { method: c.prune.startsWith("todre") ? "todre" : "divprune", keep };
  });
  try {
    for (const [n, q] of questions.entries()) {
      const image = loadImage(q.image);
      const grid = cropGrid(prunes[0]!);
      const tokens = grid > 1 ? await encoder.encodeCrops(image, grid) : await encoder.encode(image);
      for (const [i, config] of prunes.entries()) {
        const kept = selectVisualTokens(tokens, config);
        const ids = typeof q.prompt === "string" ? [1, IMAGE_TOKEN, ...q.prompt.split(" ").map((_, j) => 10 + j)] : q.prompt;
        const rows = await imagePromptRows(ids, { features: gatherTokens(tokens, kept), kept, tokens: tokens.tokens, tokenId: IMAGE_TOKEN }, decoder.embedder!);
        const cpu = process.cpuUsage();
        await decoder.newSequence().forwardEmbeds(rows.embeds, rows.positions);
        const used = process.cpuUsage(cpu);
        samples[i]![n]!.prefillCpuMs = (used.user + used.system) / 1000;
      }
    }
  } finally {
    await encoder.release();
    await decoder.release();
  }
}

function table(title: string, samples: Sample[][], withAccuracy: boolean, configs: Config[] = CONFIGS): void {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const summary = (s: Sample[]) => ({
    accuracy: (100 * s.filter((x) => x.correct).length) / s.length,
    prefill: median(s.map((x) => x.prefillMs)),
    prefillCpu: median(s.map((x) => x.prefillCpuMs)),
    ttft: median(s.map((x) => x.ttftMs)),
    ttftCpu: median(s.map((x) => x.ttftCpuMs)),
    kv: median(s.map((x) => x.kvBytes)),
    kept: median(s.map((x) => x.keptTokens)),
  });
  const base = summary(samples[0]!);
  const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  console.log(`\n${title} (${samples[0]!.length} questions)\n`);
  console.log(`| configuration | visual tokens |${withAccuracy ? " accuracy |" : ""} prefill ms | prefill speed-up | prefill CPU ms | prefill CPU speed-up | TTFT ms | TTFT speed-up | TTFT CPU ms | TTFT CPU speed-up | KV after prompt |`);
  console.log(`|---|---|${withAccuracy ? "---|" : ""}---|---|---|---|---|---|---|---|---|`);
  for (const [i, config] of configs.entries()) {
    const s = summary(samples[i]!);
    const accuracy = withAccuracy ? ` ${s.accuracy.toFixed(1)}% |` : "";
    console.log(`| ${config.name} | ${s.kept} |${accuracy} ${s.prefill.toFixed(2)} | ${x(base.prefill, s.prefill)} | ${s.prefillCpu.toFixed(2)} | ${x(base.prefillCpu, s.prefillCpu)} | ${s.ttft.toFixed(2)} | ${x(base.ttft, s.ttft)} | ${s.ttftCpu.toFixed(2)} | ${x(base.ttftCpu, s.ttftCpu)} | ${(s.kv / 1024).toFixed(0)} KiB |`);
  }
}

const heldout = (JSON.parse(readFileSync(join(HELDOUT, "questions.json"), "utf8")) as { image: string; question: string; answer: string }[]).map((q) => ({ image: join(HELDOUT, q.image), prompt: q.question, answer: q.answer }));
const trained = heldout.slice(0, Number(values.questions));
table("trained: examples/models/shapes-vlm", await measure(TRAINED_PIPE, readFileSync(TRAINED_PIPE, "utf8"), trained), true);
const zooFile = zooPipe();
const zooQuestions = heldout.slice(0, Number(values["zoo-questions"])).map((q, i) => ({ image: q.image, prompt: [1, IMAGE_TOKEN, ...Array.from({ length: 8 }, (_, j) => 10 + ((i * 8 + j) % 400))] }));
table("zoo: ViT 2x48 + projector + Llama 4x256 (random weights)", await measure(zooFile, ZOO_SOURCE, zooQuestions), false);
table("zoo, multi-crop: a thumbnail and 2 x 2 crops", await measure(zooFile, ZOO_SOURCE, zooQuestions, MULTI_CROP), false, MULTI_CROP);
console.log(`\n${threads} intra-op thread(s), load average ${loadavg()[0]!.toFixed(1)} at the end; npx tsx bench/pruning.ts${process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""}: ${((performance.now() - started) / 1000).toFixed(0)} s`);
