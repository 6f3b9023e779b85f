import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Declaration, PipeFile, PipelineDecl, Setting, Span, Value } from "./ast.ts";
import type { Diagnostics } from "./diagnostics.ts";
import type { FactsProvider, ModelFacts } from "./facts.ts";
import { checkMethod, defaultMethod, show, type MethodUse } from "./method.ts";
import { suggestion } from "./suggest.ts";
import { tokenizerVocabSize } from "./tokenizer-vocab.ts";
import { DECLARATIONS, DEVICES, MAX_TOKENS_DEFAULT, MODEL_LOADERS, PIPELINE_SETTINGS, STAGE_KINDS, STAGE_SETTINGS, TOKENIZER_KINDS, type MethodTable, type StageKindSpec } from "./schema.ts";

export type Device = (typeof DEVICES)[number];

export interface CheckedModel {
  name: string;
  /** Absolute path of the .onnx file. */
  path: string;
  facts?: ModelFacts;
  span: Span;
}

export interface CheckedTokenizer {
  name: string;
  kind: "hf" | "ids";
  path?: string;
  /** Token ids the tokenizer can produce (largest id + 1). */
  vocabSize?: number;
  span: Span;
}

export interface CheckedStage {
  name: string;
  kind: string;
  /** Models, tokenizers and stages it reads, by argument name. */
  refs: Record<string, string>;
  methods: Record<string, MethodUse>;
  maxTokens: number;
  stop: string[];
  device: Device;
  span: Span;
}

export interface CheckedPipeline {
  name: string;
  /** The .pipe file's absolute path (paths in it are relative to its folder). */
  file: string;
  device: Device;
  models: CheckedModel[];
  tokenizers: CheckedTokenizer[];
  /** In dataflow order: every stage after the stages it reads. */
  stages: CheckedStage[];
}

export interface CheckEnv {
  /** Absolute path of the .pipe file. */
  file: string;
  /** The methods each slot offers (the compiler's method table). */
  methods: MethodTable;
  /** Model facts; without it, checks against the models are skipped. */
  facts?: FactsProvider;
}

/** Checks a parsed file against the schema and (through `env.facts`) the models; every problem goes to `diags`. */
export function checkPipe(ast: PipeFile, env: CheckEnv, diags: Diagnostics): CheckedPipeline | undefined {
  if (ast.pipelines.length === 0) {
    if (!diags.hasErrors) diags.error("no pipeline in this file: expected 'pipeline <name> { ... }'", { line: 1, column: 1, offset: 0, length: 1 });
    return undefined;
  }
  for (const extra of ast.pipelines.slice(1)) diags.error(`a .pipe file holds one pipeline; '${extra.name}' is the second`, extra.keywordSpan);
  return new PipelineChecker(env, diags).check(ast.pipelines[0]!);
}

class PipelineChecker {
  private readonly declared = new Map<string, Declaration>();
  /** Names declared with a misspelled keyword: already reported, so references to them are not. */
  private readonly misdeclared = new Set<string>();
  private readonly models = new Map<string, CheckedModel>();
  private readonly tokenizers = new Map<string, CheckedTokenizer>();
  private readonly stages = new Map<string, CheckedStage>();
  private readonly dir: string;

  constructor(
    private readonly env: CheckEnv,
    private readonly diags: Diagnostics,
  ) {
    this.dir = dirname(env.file);
  }

  check(p: PipelineDecl): CheckedPipeline {
    if (p.keyword !== "pipeline") this.diags.error(`unknown keyword '${p.keyword}'${suggestion(p.keyword, ["pipeline"])}`, p.keywordSpan);
    let device: Device = "auto";
    const seenSettings = new Set<string>();
    for (const item of p.items) {
      if (item.kind === "setting") {
        if (!this.once(seenSettings, item)) continue;
        if (item.key === "device") device = this.device(item.value) ?? device;
        else this.diags.error(`unknown pipeline setting '${item.key}'${this.settingHint(item.key, PIPELINE_SETTINGS)}`, item.keySpan);
        continue;
      }
      if (!(DECLARATIONS as readonly string[]).includes(item.keyword)) {
        this.diags.error(`unknown declaration '${item.keyword}'${suggestion(item.keyword, DECLARATIONS)}`, item.keywordSpan);
        this.misdeclared.add(item.name);
        continue;
      }
      const earlier = this.declared.get(item.name);
      if (earlier) {
        this.diags.error(`'${item.name}' is already declared at ${earlier.nameSpan.line}:${earlier.nameSpan.column}`, item.nameSpan);
        continue;
      }
      this.declared.set(item.name, item);
    }
    // Models and tokenizers first, so stages can refer to names declared after them.
    for (const d of this.declared.values()) if (d.keyword === "model") this.model(d);
    for (const d of this.declared.values()) if (d.keyword === "tokenizer") this.tokenizer(d);
    for (const d of this.declared.values()) if (d.keyword === "stage") this.stage(d, device);
    if (this.stages.size === 0 && !this.diags.hasErrors) this.diags.error(`pipeline '${p.name}' has no stage: add 'stage <name> = generate(<model>, <tokenizer>)'`, p.nameSpan);
    // After an error, a stage that failed its checks reads nothing: its models would be reported as unused.
    if (!this.diags.hasErrors) this.warnUnused();
    return { name: p.name, file: this.env.file, device, models: [...this.models.values()], tokenizers: [...this.tokenizers.values()], stages: this.dataflowOrder() };
  }

  /** Models and tokenizers no stage reads (a draft model counts as read). */
  private warnUnused(): void {
    const read = new Set<string>();
    for (const s of this.stages.values()) {
      for (const r of Object.values(s.refs)) read.add(r);
      for (const use of Object.values(s.methods)) {
        const spec = this.env.methods[use.slot]!.methods[use.method]!;
        for (const [key, param] of Object.entries(spec.params)) if (param.type.kind === "model" && typeof use.params[key] === "string") read.add(use.params[key]);
      }
    }
    for (const d of this.declared.values()) {
      if ((d.keyword === "model" || d.keyword === "tokenizer") && !read.has(d.name)) this.diags.warning(`${d.keyword} '${d.name}' is declared but no stage uses it`, d.nameSpan);
    }
  }

  private once(seen: Set<string>, s: Setting): boolean {
    if (seen.has(s.key)) {
      this.diags.error(`'${s.key}' is set twice`, s.keySpan);
      return false;
    }
    seen.add(s.key);
    return true;
  }

  private settingHint(key: string, allowed: readonly string[]): string {
    if (key in this.env.methods || key === "max_tokens" || key === "stop") return ` ('${key}' belongs in a stage's block)`;
    return suggestion(key, allowed);
  }

  private device(v: Value): Device | undefined {
    if (v.kind === "name" && (DEVICES as readonly string[]).includes(v.name)) return v.name as Device;
    const hint = v.kind === "name" ? suggestion(v.name, DEVICES) : ` (expected one of: ${DEVICES.join(", ")})`;
    this.diags.error(`unknown device ${show(v)}${hint}`, v.span);
    return undefined;
  }

  /** `onnx("path")` or `hf("path")`: the loader's name and the checked path. */
  private loader(d: Declaration, loaders: readonly string[]): { loader: string; path: string; span: Span } | undefined {
    const v = d.value;
    if (v.kind !== "call") {
      if (v.kind === "name" && loaders.includes(v.name)) return { loader: v.name, path: "", span: v.span };
      if (v.kind === "name") this.diags.error(`unknown ${d.keyword} '${v.name}'${suggestion(v.name, loaders)}`, v.span);
      else this.diags.error(`${d.keyword} '${d.name}': expected ${loaders.map((l) => (l === "ids" ? l : `${l}("path")`)).join(" or ")}, got ${show(v)}`, v.span);
      return undefined;
    }
    if (!loaders.includes(v.name)) {
      this.diags.error(`unknown ${d.keyword} loader '${v.name}'${suggestion(v.name, loaders)}`, v.nameSpan);
      return undefined;
    }
    const arg = v.args[0];
    if (!arg || arg.value.kind !== "string" || v.args.length > 1) {
      this.diags.error(`${v.name}(...) takes one path string`, arg?.value.span ?? v.span);
      return undefined;
    }
    const path = resolve(this.dir, arg.value.value);
    if (!existsSync(path)) {
      this.diags.error(`file not found: "${arg.value.value}" (paths are relative to the .pipe file)`, arg.value.span);
      return undefined;
    }
    return { loader: v.name, path, span: arg.value.span };
  }

  private model(d: Declaration): void {
    this.noBody(d);
    const l = this.loader(d, MODEL_LOADERS);
    if (!l) return;
    const model: CheckedModel = { name: d.name, path: l.path, span: d.nameSpan };
    const facts = this.env.facts?.(l.path);
    if (facts && "error" in facts) this.diags.error(`model '${d.name}': ${facts.error}`, l.span);
    else if (facts) model.facts = facts;
    this.models.set(d.name, model);
  }

  private tokenizer(d: Declaration): void {
    this.noBody(d);
    const l = this.loader(d, TOKENIZER_KINDS);
    if (!l) return;
    const tok: CheckedTokenizer = { name: d.name, kind: l.loader as "hf" | "ids", span: d.nameSpan };
    if (l.loader === "hf") {
      const vocabSize = tokenizerVocabSize(l.path);
      if (typeof vocabSize !== "number") this.diags.error(`tokenizer '${d.name}': ${vocabSize.error}`, l.span);
      Object.assign(tok, { path: l.path, ...(typeof vocabSize === "number" && { vocabSize }) });
    }
    this.tokenizers.set(d.name, tok);
  }

  private noBody(d: Declaration): void {
    if (d.body) this.diags.error(`a ${d.keyword} takes no '{ ... }' block`, d.nameSpan);
  }

  private stage(d: Declaration, pipelineDevice: Device): void {
    const v = d.value;
    const kindName = v.kind === "call" || v.kind === "name" ? v.name : undefined;
    const spec = kindName !== undefined ? STAGE_KINDS[kindName] : undefined;
    if (!spec) {
      const span = v.kind === "call" ? v.nameSpan : v.span;
      this.diags.error(kindName ? `unknown stage kind '${kindName}'${suggestion(kindName, Object.keys(STAGE_KINDS))}` : `stage '${d.name}': expected a stage kind such as generate(<model>, <tokenizer>)`, span);
      return;
    }
    const stage: CheckedStage = { name: d.name, kind: kindName!, refs: {}, methods: {}, maxTokens: MAX_TOKENS_DEFAULT, stop: [], device: pipelineDevice, span: d.nameSpan };
    this.stageArguments(stage, spec, v);
    this.stageSettings(stage, spec, d.body ?? []);
    this.checkTokenizerFits(stage, v);
    this.checkAgainstModels(stage);
    this.stages.set(d.name, stage);
  }

  /** `generate(llm, tok, input: enc)`: positional or named references to declared names. */
  private stageArguments(stage: CheckedStage, spec: StageKindSpec, call: Value): void {
    const args = call.kind === "call" ? call.args : [];
    const given = new Set<string>();
    let badArgs = false;
    args.forEach((arg, i) => {
      const argSpec = arg.name !== undefined ? spec.args.find((a) => a.name === arg.name) : spec.args[i];
      if (!argSpec) {
        badArgs = true;
        const names = spec.args.map((a) => a.name);
        this.diags.error(arg.name !== undefined ? `${stage.kind} has no argument '${arg.name}'${suggestion(arg.name, names)}` : `${stage.kind} takes at most ${names.length} arguments (${names.join(", ")})`, arg.nameSpan ?? arg.value.span);
        return;
      }
      given.add(argSpec.name);
      const ref = this.reference(argSpec.refers, arg.value);
      if (ref !== undefined) stage.refs[argSpec.name] = ref;
    });
    // A misspelled argument name is likely the missing one: reporting both would say the same twice.
    if (badArgs) return;
    for (const a of spec.args) if (a.required && !given.has(a.name)) this.diags.error(`${stage.kind} needs a ${a.refers} argument '${a.name}'`, call.span);
  }

  /** The stage's block: methods (defaults for the slots not given) and plain settings. */
  private stageSettings(stage: CheckedStage, spec: StageKindSpec, body: readonly Setting[]): void {
    const seen = new Set<string>();
    for (const s of body) {
      if (!this.once(seen, s)) continue;
      if (!spec.settings.includes(s.key)) {
        const elsewhere = s.key in this.env.methods || (STAGE_SETTINGS as readonly string[]).includes(s.key);
        const hint = elsewhere ? ` (a ${stage.kind} stage takes ${spec.settings.join(", ")})` : suggestion(s.key, spec.settings);
        this.diags.error(`unknown setting '${s.key}'${hint}`, s.keySpan);
      } else if (s.key in this.env.methods) {
        const use = checkMethod(s.key, s.value, this.diags, this.env.methods);
        if (use && s.optional) use.optional = true;
        if (use) stage.methods[s.key] = use;
      } else {
        if (s.optional) this.diags.error(`'?' marks an optimisation request optional (${Object.keys(this.env.methods).join(", ")}); ${s.key} is a plain setting`, s.optional);
        this.plainSetting(stage, s);
      }
    }
    for (const slot of spec.settings) if (slot in this.env.methods && !stage.methods[slot]) stage.methods[slot] = defaultMethod(slot, this.env.methods);
    const tok = stage.refs["tokenizer"] !== undefined ? this.tokenizers.get(stage.refs["tokenizer"]) : undefined;
    const stop = body.find((s) => s.key === "stop");
    if (tok?.kind === "ids" && stop && stage.stop.length) this.diags.error(`stop strings need a text tokenizer, but '${tok.name}' is raw ids`, stop.keySpan);
  }

  private plainSetting(stage: CheckedStage, s: Setting): void {
    const v = s.value;
    if (s.key === "device") stage.device = this.device(v) ?? stage.device;
    else if (s.key === "max_tokens") {
      if (v.kind === "number" && Number.isInteger(v.value) && v.value >= 1) stage.maxTokens = v.value;
      else this.diags.error(`max_tokens must be a positive integer, got ${show(v)}`, v.span);
    } else if (s.key === "stop") {
      const items = v.kind === "list" ? v.items : [v];
      const bad = items.find((i) => i.kind !== "string" || i.value === "");
      if (bad) this.diags.error(`stop takes non-empty strings (stop: ["\\n\\n"]), got ${show(bad)}`, bad.span);
      else stage.stop = items.map((i) => (i as { value: string }).value);
    }
  }

  private reference(refers: "model" | "tokenizer" | "stage", v: Value): string | undefined {
    const pool = refers === "model" ? this.models : refers === "tokenizer" ? this.tokenizers : undefined;
    if (v.kind !== "name") {
      this.diags.error(`expected the name of a ${refers}, got ${show(v)}`, v.span);
      return undefined;
    }
    if (this.misdeclared.has(v.name)) return undefined;
    const d = this.declared.get(v.name);
    if (d && d.keyword === refers) {
      // A declared model whose file failed its checks was reported already.
      if (pool && !pool.has(v.name)) return undefined;
      return v.name;
    }
    const candidates = [...this.declared.values()].filter((x) => x.keyword === refers).map((x) => x.name);
    this.diags.error(d ? `'${v.name}' is a ${d.keyword}, not a ${refers}` : `unknown ${refers} '${v.name}'${suggestion(v.name, candidates)}`, v.span);
    return undefined;
  }

  /** A tokenizer producing ids beyond the model's logits would index past them. */
  private checkTokenizerFits(stage: CheckedStage, call: Value): void {
    const tok = stage.refs["tokenizer"] !== undefined ? this.tokenizers.get(stage.refs["tokenizer"]) : undefined;
    const model = stage.refs["model"] !== undefined ? this.models.get(stage.refs["model"]) : undefined;
    const vocab = model?.facts?.vocabSize;
    if (tok?.vocabSize === undefined || vocab === undefined || tok.vocabSize <= vocab) return;
    const arg = call.kind === "call" ? (call.args.find((a) => a.name === "tokenizer") ?? call.args[1]) : undefined;
    this.diags.error(`tokenizer '${tok.name}' has ${tok.vocabSize} token ids but model '${model!.name}' has a vocabulary of ${vocab}: use the model's own tokenizer`, arg?.value.span ?? stage.span);
  }

  /** Layer indices within the model, the draft model's vocabulary equal to the target's. */
  private checkAgainstModels(stage: CheckedStage): void {
    const target = stage.refs["model"] !== undefined ? this.models.get(stage.refs["model"]) : undefined;
    const facts = target?.facts;
    for (const use of Object.values(stage.methods)) {
      const spec = this.env.methods[use.slot]!.methods[use.method]!;
      for (const [key, param] of Object.entries(spec.params)) {
        const value = use.params[key];
        const span = use.paramSpans[key] ?? use.span;
        if (param.type.kind === "layers" && facts && Array.isArray(value)) {
          const bad = value.find((i) => i >= facts.layers);
          const range = `model '${target!.name}' has ${facts.layers} layers (0..${facts.layers - 1})`;
          if (bad !== undefined && use.given.includes(key)) this.diags.error(`${use.method}: ${key}: layer ${bad} is out of range: ${range}`, span);
          else if (bad !== undefined) this.diags.error(`${use.method}: the default ${key} [${value.join(", ")}] does not fit: ${range}; give ${key} explicitly`, span);
        }
        if (param.type.kind === "auto-or-int" && param.type.layers && facts && typeof value === "number" && value > facts.layers) {
          this.diags.error(`${use.method}: ${key} is ${value} but model '${target!.name}' has ${facts.layers} layers`, span);
        }
        if (param.type.kind === "model" && typeof value === "string") {
          if (!param.type.keywords?.includes(value)) this.checkDraft(target, value, span, param.type.keywords ?? []);
          else if (this.declared.get(value)?.keyword === "model") this.diags.error(`${use.method}: ${key}: '${value}' names both a declared model and ${use.method}'s own source: rename the model`, span);
        }
      }
    }
  }

  /** `keywords`: the other names the parameter takes, offered with the models when `name` is neither. */
  private checkDraft(target: CheckedModel | undefined, name: string, span: Span | undefined, keywords: readonly string[] = []): void {
    const draft = this.models.get(name);
    if (!this.declared.has(name) || this.declared.get(name)!.keyword !== "model") {
      const models = [...this.declared.values()].filter((x) => x.keyword === "model").map((x) => x.name);
      const what = keywords.length ? `'${name}' is neither a declared model nor ${keywords.join(" or ")}` : `unknown model '${name}'`;
      this.diags.error(`${what}${suggestion(name, [...keywords, ...models])}`, span);
      return;
    }
    if (!draft || !target) return;
    if (draft.name === target.name) this.diags.error(`speculate: the draft model must differ from the stage's model '${target.name}'`, span);
    const [dv, tv] = [draft.facts?.vocabSize, target.facts?.vocabSize];
    if (dv !== undefined && tv !== undefined && dv !== tv) {
      this.diags.error(`speculate: draft model '${draft.name}' has a vocabulary of ${dv} tokens but '${target.name}' has ${tv}: they must share one tokenizer`, span);
    }
  }

  /** Stages after the stages they read; a cycle is reported at one of its stages. */
  private dataflowOrder(): CheckedStage[] {
    const order: CheckedStage[] = [];
    const state = new Map<string, "visiting" | "done">();
    const visit = (s: CheckedStage, path: string[]): void => {
      if (state.get(s.name) === "done") return;
      if (state.get(s.name) === "visiting") {
        this.diags.error(`stages form a cycle: ${[...path.slice(path.indexOf(s.name)), s.name].join(" -> ")}`, s.span);
        return;
      }
      state.set(s.name, "visiting");
      const input = s.refs["input"];
      const next = input !== undefined ? this.stages.get(input) : undefined;
      if (next) visit(next, [...path, s.name]);
      state.set(s.name, "done");
      order.push(s);
    };
    for (const s of this.stages.values()) visit(s, []);
    return order;
  }
}
