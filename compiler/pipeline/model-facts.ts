import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { FactsProvider, ModelFacts } from "../../dsl/facts.ts";
import { isPipecError } from "../../graph/errors.ts";
import type { Model } from "../../graph/ir/model.ts";
import { loadModel } from "../../graph/onnx/index.ts";
import { graphPositionLimit } from "./position-limit.ts";

// Optimum: past_key_values.{i}.key -> present.{i}.key; genai GPT-2: past_{i} -> present_{i}.
const KV_INPUT = /^past_key_values\.(\d+)\.(key|value)$|^past_(\d+)$/;
const KV_OUTPUT = /^present(?:_new)?\.(\d+)\.(key|value)$|^present_(\d+)$/;

/** Reads the facts of a decoder from its graph (weights stay on disk), completed by config.json beside it. */
export function readModelFacts(model: Model, configDir?: string): ModelFacts {
  const inputs = model.graph.inputs.map((v) => v.name).filter((n) => KV_INPUT.test(n)).sort(naturalOrder);
  const outputs = model.graph.outputs.map((v) => v.name).filter((n) => KV_OUTPUT.test(n)).sort(naturalOrder);
  const layerIds = new Set(inputs.map((n) => { const m = KV_INPUT.exec(n)!; return m[1] ?? m[3]; }));
  const facts: ModelFacts = { layers: layerIds.size, kvInputs: inputs, kvOutputs: outputs, ...visionFacts(model) };
  // [B, Hkv, P, D] (Optimum) or [2, B, H, P, D] (stacked): Hkv and D are the axes before and after P.
  const kvType = model.graph.inputs.find((v) => v.name === inputs[0])?.type;
  if (kvType?.kind === "tensor" && kvType.shape && kvType.shape.length >= 4) {
    const [h, d] = kvType.shape.slice(-3).filter((_, i) => i !== 1);
    if (typeof h === "number") facts.kvHeads = h;
    if (typeof d === "number") facts.headDim = d;
  }
  const logits = model.graph.outputs.find((v) => v.name === "logits") ?? model.graph.outputs[0];
  const vocab = logits?.type?.kind === "tensor" ? logits.type.shape?.at(-1) : undefined;
  if (typeof vocab === "number") facts.vocabSize = vocab;
  const config = configDir ? readConfig(configDir) : undefined;
  if (config) {
    const num = (...keys: string[]) => keys.map((k) => config[k]).find((x): x is number => typeof x === "number");
    facts.heads = num("num_attention_heads", "n_head", "heads");
    facts.kvHeads ??= num("num_key_value_heads", "kvHeads");
    facts.headDim ??= num("head_dim", "head_size", "headDim");
    facts.vocabSize ??= num("vocab_size", "vocabSize");
    facts.maxPositions = num("max_position_embeddings", "n_positions", "context_length", "maxPositions");
    if (facts.heads === undefined) delete facts.heads;
  }
  facts.maxPositions ??= graphPositionLimit(model);
  if (facts.maxPositions === undefined) delete facts.maxPositions;
  return facts;
}

function readConfig(dir: string): Record<string, unknown> | undefined {
  for (const name of ["config.json", "genai_config.json"]) {
    const path = join(dir, name);
    if (!existsSync(path)) continue;
    try {
      const json = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
      // genai_config.json nests the facts under model and model.decoder.
      const model = json["model"] as (Record<string, unknown> & { decoder?: Record<string, unknown> }) | undefined;
      return model ? { ...json, ...model, ...model.decoder } : json;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/**
 * Model files, each read once: its facts for the checks, and the model itself, kept for the first
 * placement that takes it (placement runs passes on it, so later takers get a fresh load).
 */
export class ModelFiles {
  private readonly facts = new Map<string, ModelFacts | { error: string }>();
  private readonly loaded = new Map<string, Model>();

  readonly provider: FactsProvider = (path) => {
    let facts = this.facts.get(path);
    if (!facts) {
      try {
        const model = loadModel(path);
        facts = readModelFacts(model, dirname(path));
        if (facts.layers === 0 && !facts.vision) facts = { error: "not a decoder with a KV cache (no past_key_values.* inputs) nor a vision encoder (no pixel_values input)" };
        else this.loaded.set(path, model);
      } catch (e) {
        if (!isPipecError(e)) throw e;
        // loadModel names the file; the diagnostic already points at the path in the .pipe.
        facts = { error: e.message.startsWith(`${path}: `) ? e.message.slice(path.length + 2) : e.message };
      }
      this.facts.set(path, facts);
    }
    return facts;
  };

  /** The model read for its facts, handed out once; a fresh load after that. */
  take(path: string): Model {
    const model = this.loaded.get(path);
    if (!model) return loadModel(path);
    this.loaded.delete(path);
    return model;
  }
}

/** What a multimodal pipeline needs of a model: a vision encoder's visual tokens, a decoder's inputs_embeds width. */
function visionFacts(model: Model): Pick<ModelFacts, "embedsDim" | "vision"> {
  const shape = (list: readonly { name: string; type?: Model["graph"]["inputs"][number]["type"] }[], name?: string) => {
    const v = name === undefined ? list[0] : list.find((x) => x.name === name);
    return v?.type?.kind === "tensor" ? v.type.shape : undefined;
  };
  const embeds = shape(model.graph.inputs, "inputs_embeds")?.at(-1);
  if (typeof embeds === "number") return { embedsDim: embeds };
  if (!model.graph.inputs.some((v) => v.name === "pixel_values")) return {};
  // The visual tokens are the first output other than the [CLS] attention map.
  const tokens = shape(model.graph.outputs.filter((v) => v.name !== "cls_attention"));
  const [n, dim] = [tokens?.[1], tokens?.[2]];
  if (tokens?.length !== 3 || typeof dim !== "number") return {};
  return { vision: { dim, ...(typeof n === "number" && { tokens: n }) } };
}
