import type { ModelFacts } from "../../dsl/facts.ts";
import { printMethod } from "../../dsl/print.ts";
import { lossyRequests, type EncodeNode, type GenerateNode, type Lowered, type ModelNode, type PipelineIR } from "./ir.ts";

/**
 * The pipeline IR as text that reads like the .pipe it came from, with everything explicit:
 * defaults, absolute paths, model facts, and how each request is carried out. Deterministic.
 */
export function dumpPipeline(ir: PipelineIR, paths: (p: string) => string = (p) => p): string {
  const out: string[] = [`# pipeline IR of ${paths(ir.source)}`];
  const lossy = lossyRequests(ir);
  out.push(`# lossy: ${lossy.length ? lossy.join(", ") : "none"}`);
  out.push(`pipeline ${ir.name} {`, `  device: ${ir.device}`);
  for (const m of ir.models) out.push(...dumpModel(m, paths));
  for (const t of ir.tokenizers) out.push(`  tokenizer ${t.name} = ${t.kind === "hf" ? `hf(${JSON.stringify(paths(t.path))})` : "ids"}`);
  for (const e of ir.encoders ?? []) out.push(...dumpEncode(e));
  for (const s of ir.stages) out.push(...dumpGenerate(s));
  out.push("}");
  return out.join("\n") + "\n";
}

function dumpModel(m: ModelNode, paths: (p: string) => string): string[] {
  const lines = [`  model ${m.name} = onnx(${JSON.stringify(paths(m.path))}) {`];
  for (const [key, value] of factLines(m.facts)) lines.push(`    ${key}: ${value}`);
  const passes = m.passes.map((p) => {
    const opts = Object.entries(p.options).map(([k, v]) => `${k}=${v}`);
    return `${p.pass}${opts.length ? `(${opts.join(",")})` : ""}`;
  });
  lines.push(`    passes: [${passes.join(", ")}]`, "  }");
  return lines;
}

function factLines(f: ModelFacts): [string, string][] {
  if (f.vision) return [["visual_tokens", f.vision.tokens !== undefined ? String(f.vision.tokens) : "dynamic"], ["visual_dim", String(f.vision.dim)]];
  const lines: [string, string][] = [["layers", String(f.layers)]];
  if (f.embedsDim !== undefined) lines.push(["inputs_embeds_dim", String(f.embedsDim)]);
  if (f.heads !== undefined) lines.push(["heads", String(f.heads)]);
  if (f.kvHeads !== undefined) lines.push(["kv_heads", String(f.kvHeads)]);
  if (f.headDim !== undefined) lines.push(["head_dim", String(f.headDim)]);
  lines.push(["vocab", f.vocabSize !== undefined ? String(f.vocabSize) : "unknown"]);
  lines.push(["positions", f.maxPositions !== undefined ? String(f.maxPositions) : "unknown"]);
  lines.push(["kv_inputs", JSON.stringify(f.kvInputs).replaceAll(",", ", ")]);
  lines.push(["kv_outputs", JSON.stringify(f.kvOutputs).replaceAll(",", ", ")]);
  return lines;
}

function method(l: Lowered): string {
  const notes = l.unplaced ? ["not applied: the model cannot take it"] : [l.level === "none" ? "nothing to do" : `${l.level}`, ...(l.use.lossy ? ["lossy"] : [])];
  return `    ${l.use.slot}: ${printMethod(l.use)}${l.use.optional ? "?" : ""}  # ${notes.join(", ")}`;
}

function dumpEncode(e: EncodeNode): string[] {
  return [`  stage ${e.name} = encode(model: ${e.model}) {`, method(e.prune), `    device: ${e.device}`, "  }"];
}

function dumpGenerate(s: GenerateNode): string[] {
  const args = [`model: ${s.model}`, `tokenizer: ${s.tokenizer}`, ...(s.input !== undefined ? [`input: ${s.input}`] : [])];
  return [
    `  stage ${s.name} = generate(${args.join(", ")}) {`,
    method(s.kv),
    method(s.attention),
    method(s.speculate),
    method(s.sampling),
    `    max_tokens: ${s.maxTokens}`,
    `    stop: [${s.stop.map((x) => JSON.stringify(x)).join(", ")}]`,
    `    device: ${s.device}`,
    "  }",
  ];
}
