// Warm state: what speculation measures or learns before it pays (call-cost curves, the guards'
// state, Token Recycling's successor table and per-node acceptance, DySpec's acceptance by draft
// probability), kept in a JSON file beside a compiled pipeline so that a fresh process starts
// where the last one stopped. Entries are keyed by the model file's SHA-256 and the machine (CPU
// model and count, architecture, device, threads): costs measured elsewhere, or for other
// weights, are never used. A missing, stale or malformed entry is ignored and what it would have
// held is measured when the pipeline opens, before any request, so no cost measurement runs
// inside a request's timed decode. The file is rewritten after each request (best effort: a
// read-only folder only means the next process measures again); `reset` deletes it first.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { arch, cpus } from "node:os";
import { dirname } from "node:path";
import type { DecoderModel } from "../decoder.ts";
import type { GenerationEvent } from "../generate.ts";
import { CostModel, knownCost, measureCost, rememberCost } from "./cost-model.ts";
import { guardFor, guardsOf, installGuard, SpeculationGuard, type GuardSnapshot } from "./guard.ts";
import type { SpeculateOptions } from "./speculator.ts";
import { AdjacencyMatrix, RECYCLE_TOP_K } from "./adjacency-matrix.ts";
import { MeasuredCost } from "./cost-model.ts";
import { freshLearned, paperTreeTemplate, recyclingState, restoreRecyclingState, type Learned } from "./recycling-state.ts";
import type { RecycleSpeculation } from "./token-recycling.ts";
import { AcceptanceByProbability, installCalibration, knownCalibration, type DySpecSpeculation } from "./dyspec-draft.ts";
import type { SpecTrSpeculation } from "./spectr-decoding.ts";
import type { WarmStateStats } from "./stats.ts";
import { ADAPTIVE_DEFAULTS } from "./draft-length.ts";

const VERSION = 1;
/** Tokens of context the warm-up's cost measurements run after: long enough that attention shows, short enough to stay cheap. */
const WARM_UP_CONTEXT = 64;

/** One model's warm state on one machine. */
interface ModelEntry {
  /** The cost line of calls on this model (chain verification, a draft model's tokens). */
  cost?: { fixedMs: number; perTokenMs: number };
  /** Guards whose source has a stable name (lookup's `lookup 3`; "draft" for the pipeline's draft model). */
  guards?: Record<string, GuardSnapshot>;
  recycle?: {
    cost?: { tokens: number; ms: number }[];
    matrix?: { vocabSize: number; k: number; successors: string; probs?: string };
    template?: LearnedEntry;
    grown?: LearnedEntry;
  };
  /** DySpec's acceptance by draft probability for the pipeline's draft model (dyspec-draft.ts). */
  dyspec?: { hits: number[]; trials: number[] };
}

interface LearnedEntry {
  hits: number[];
  trials: number[];
  guard: GuardSnapshot;
}

interface WarmFile {
  version: number;
  entries: Record<string, ModelEntry>;
  /** Model files hashed before, by path: a file with the same size and mtime is not read again (a large model takes seconds). */
  hashes?: Record<string, { size: number; mtimeMs: number; sha256: string }>;
}

/** A model of the pipeline and its file. */
export interface WarmModel {
  model: DecoderModel;
  path: string;
}

export interface WarmStateOptions {
  /** The pipeline's draft model, if it has one. */
  draft?: WarmModel;
  /** The speculation every request runs (what to measure before the first one). */
  speculate?: SpeculateOptions | RecycleSpeculation | DySpecSpeculation | SpecTrSpeculation;
  /** Whether requests decode greedily without processors (their steps then fetch ids, and are timed so). */
  argmaxOnly?: boolean;
  device?: string;
  threads?: number;
  /** Delete the file first: everything is measured and learned again. */
  reset?: boolean;
}

/** This machine, as the entries are keyed: costs measured on another CPU, thread count or device do not transfer. */
export function machineKey(device = "cpu", threads?: number): string {
  const cpu = cpus();
  return `${cpu[0]?.model.trim() ?? "unknown CPU"} x${cpu.length} ${arch} ${device} threads=${threads ?? "default"}`;
}

/** The SHA-256 of the file at `path`, from `known` when its size and mtime still match (recorded there when not). */
async function fileHash(path: string, known: WarmFile): Promise<string> {
  const { size, mtimeMs } = await stat(path);
  const seen = known.hashes?.[path];
  if (seen && seen.size === size && seen.mtimeMs === mtimeMs && /^[0-9a-f]{64}$/.test(seen.sha256)) return seen.sha256;
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const sha256 = hash.digest("hex");
  (known.hashes ??= {})[path] = { size, mtimeMs, sha256 };
  return sha256;
}

export class WarmState {
  private constructor(
    private readonly file: string,
    private readonly models: { warm: WarmModel; key: string }[],
    private readonly draft: DecoderModel | undefined,
    private readonly contents: WarmFile,
    /** What opening gave the pipeline, added to each request's stats. */
    readonly opened: WarmStateStats,
  ) {}

  /**
   * Reads `file` (if present and valid) into the target's and draft's state, then measures what
   * is still missing for `options.speculate`: after this, a request measures nothing.
   */
  static async open(file: string, target: WarmModel, options: WarmStateOptions = {}): Promise<WarmState> {
    const t0 = performance.now();
    if (options.reset) await rm(file, { force: true });
    const machine = machineKey(options.device, options.threads);
    const contents = await readWarmFile(file);
    const models = [{ warm: target, key: `${machine} | ${await fileHash(target.path, contents)}` }];
    if (options.draft) models.push({ warm: options.draft, key: `${machine} | ${await fileHash(options.draft.path, contents)}` });
    const opened: WarmStateStats = { reset: options.reset ?? false, restored: contents.entries[models[0]!.key] !== undefined, measuredAtOpen: [], openMs: 0 };
    const state = new WarmState(file, models, options.draft?.model, contents, opened);
    for (const { warm, key } of models) state.restore(warm.model, state.contents.entries[key]);
    opened.measuredAtOpen = await warmUp(target.model, options);
    opened.openMs = performance.now() - t0;
    return state;
  }

  /** `events`, passed through with the end event's stats saying what opening gave; once they end, the state is saved for the next process. */
  async *after(events: AsyncIterable<GenerationEvent>): AsyncGenerator<GenerationEvent> {
    try {
      for await (const event of events) yield event.kind === "end" ? { ...event, stats: { ...event.stats, warmState: { ...this.opened, measuredAtOpen: [...this.opened.measuredAtOpen] } } } : event;
    } finally {
      await this.save();
    }
  }

  /** Writes every model's state (atomically: a reader never sees half a file); a folder that cannot be written is left alone. */
  async save(): Promise<void> {
    for (const { warm, key } of this.models) this.contents.entries[key] = this.capture(warm.model);
    try {
      await mkdir(dirname(this.file), { recursive: true });
      const temporary = `${this.file}.${process.pid}.tmp`;
      await writeFile(temporary, JSON.stringify(this.contents));
      await rename(temporary, this.file);
    } catch {
      // Warm state is an optimisation: without it the next process measures again.
    }
  }

  private sourceName(source: unknown): string | undefined {
    if (typeof source === "string") return source;
    return source !== undefined && source === this.draft ? "draft" : undefined;
  }

  private sourceOf(name: string): unknown {
    return name === "draft" ? this.draft : name;
  }

  private capture(model: DecoderModel): ModelEntry {
    const entry: ModelEntry = {};
    const cost = knownCost(model);
    if (cost) entry.cost = { fixedMs: cost.fixedMs, perTokenMs: cost.perTokenMs };
    const guards = guardsOf(model);
    if (guards) {
      entry.guards = {};
      for (const [source, guard] of guards) {
        const name = this.sourceName(source);
        if (name !== undefined) entry.guards[name] = guard.snapshot();
      }
    }
    const calibration = this.draft && knownCalibration(model, this.draft);
    if (calibration) entry.dyspec = calibration.snapshot();
    const recycling = recyclingState(model);
    if (recycling.cost || recycling.matrix || recycling.template || recycling.grown) {
      entry.recycle = {
        cost: recycling.cost instanceof MeasuredCost ? [...recycling.cost.samples] : undefined,
        matrix: recycling.matrix && {
          vocabSize: recycling.matrix.vocabSize,
          k: recycling.matrix.k,
          successors: base64(recycling.matrix.successors),
          probs: recycling.matrix.recordedProbs && base64(recycling.matrix.recordedProbs),
        },
        template: recycling.template && learnedEntry(recycling.template),
        grown: recycling.grown && learnedEntry(recycling.grown),
      };
    }
    return entry;
  }

  /** Restores each part of `entry` that is well formed; a malformed part is dropped (and measured or learned again). */
  private restore(model: DecoderModel, entry: ModelEntry | undefined): void {
    if (!entry) return;
    const attempt = (part: () => void) => {
      try {
        part();
      } catch {
        // A part written by another version, or damaged: start that part cold.
      }
    };
    attempt(() => {
      const cost = entry.cost;
      if (cost && finite(cost.fixedMs) && finite(cost.perTokenMs) && cost.fixedMs > 0 && cost.perTokenMs >= 0) rememberCost(model, new CostModel(cost.fixedMs, cost.perTokenMs));
    });
    for (const [name, snapshot] of Object.entries(entry.guards ?? {})) {
      const source = this.sourceOf(name);
      if (source !== undefined) attempt(() => installGuard(model, source, SpeculationGuard.restore(snapshot)));
    }
    const draft = this.draft;
    if (entry.dyspec && draft) attempt(() => installCalibration(model, draft, AcceptanceByProbability.restore(entry.dyspec!)));
    const recycle = entry.recycle;
    if (!recycle) return;
    attempt(() => {
      const samples = recycle.cost;
      if (samples && samples.length >= 2 && samples.every((s) => finite(s.tokens) && finite(s.ms) && s.ms > 0)) restoreRecyclingState(model, { cost: new MeasuredCost(samples) });
    });
    attempt(() => {
      const m = recycle.matrix;
      const V = model.contract.vocabSize;
      if (!m || (V !== undefined && m.vocabSize !== V)) return;
      const matrix = new AdjacencyMatrix(m.vocabSize, m.k);
      const successors = new Int32Array(fromBase64(m.successors, matrix.successors.length * 4));
      if (successors.some((id) => id < 0 || id >= m.vocabSize)) throw new RangeError("successor out of the vocabulary");
      matrix.successors.set(successors);
      if (m.probs) matrix.probs.set(new Float32Array(fromBase64(m.probs, matrix.successors.length * 4)));
      restoreRecyclingState(model, { matrix });
    });
    attempt(() => recycle.template && restoreRecyclingState(model, { template: restoreLearned(recycle.template) }));
    attempt(() => recycle.grown && restoreRecyclingState(model, { grown: restoreLearned(recycle.grown) }));
  }
}

/**
 * The measurements the first request would otherwise make (warm-up calls on a throwaway
 * sequence of the target, rolled back after each): the cost line for chain speculation, the
 * draft model's cost, the cost curve of Token Recycling's auto trees. Each is skipped when known.
 * Returns what it measured.
 */
async function warmUp(target: DecoderModel, options: WarmStateOptions): Promise<string[]> {
  const speculate = options.speculate;
  // DySpec with a draft model and SpecTr draft to a fixed budget: they price nothing.
  if (!speculate || speculate.kind === "dyspec" || speculate.kind === "spectr") return [];
  const recycle = speculate.kind === "recycle";
  const adaptive = recycle ? (speculate.tree ?? "auto") === "auto" : (speculate.draftLength ?? "adaptive") === "adaptive";
  if (!adaptive) return [];
  // The guard of this source exists from the start, so the first save records it even before a step.
  if (speculate.kind === "lookup") guardFor(target, `lookup ${speculate.maxNgram ?? 3}`);
  const measured: string[] = [];
  const targetKnown = recycle ? recyclingState(target).cost !== undefined : knownCost(target) !== undefined;
  if (!targetKnown) {
    const maxDraft = recycle ? paperTreeTemplate().size : (speculate.adaptive?.max ?? ADAPTIVE_DEFAULTS.max) + 1;
    const room = target.maxPositions === undefined ? Infinity : target.maxPositions - maxDraft - 1;
    const context = Array<number>(Math.max(1, Math.min(WARM_UP_CONTEXT, room))).fill(0);
    const sequence = target.newSequence();
    await sequence.advance(context.slice(0, -1));
    if (recycle) restoreRecyclingState(target, { cost: await MeasuredCost.measure(sequence, 0, maxDraft, speculate.topK ?? RECYCLE_TOP_K) });
    else await measureCost(sequence, 0, maxDraft, options.argmaxOnly ?? false);
    measured.push(recycle ? "recycle cost" : "target cost");
  }
  if (speculate.kind === "draft" && !knownCost(speculate.model)) {
    await measureCost(speculate.model.newSequence(), 0, 4);
    measured.push("draft cost");
  }
  return measured;
}

async function readWarmFile(file: string): Promise<WarmFile> {
  try {
    const parsed = JSON.parse(await readFile(file, "utf8")) as WarmFile;
    if (parsed && parsed.version === VERSION && typeof parsed.entries === "object" && parsed.entries !== null) {
      if (typeof parsed.hashes !== "object" || parsed.hashes === null) delete parsed.hashes;
      return parsed;
    }
  } catch {
    // Absent or unreadable: start cold.
  }
  return { version: VERSION, entries: {} };
}

function learnedEntry(learned: Learned): LearnedEntry {
  return { hits: [...learned.acceptance.hits], trials: [...learned.acceptance.trials], guard: learned.guard.snapshot() };
}

function restoreLearned(entry: LearnedEntry): Learned {
  const learned = freshLearned(paperTreeTemplate());
  const n = learned.acceptance.hits.length;
  if (entry.hits.length !== n || entry.trials.length !== n || ![...entry.hits, ...entry.trials].every((x) => finite(x) && x >= 0)) throw new RangeError("not the template's acceptance");
  learned.acceptance.hits.set(entry.hits);
  learned.acceptance.trials.set(entry.trials);
  learned.guard = SpeculationGuard.restore(entry.guard);
  return learned;
}

function finite(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

function base64(array: Int32Array | Float32Array): string {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength).toString("base64");
}

/** The bytes of `text`, which must be exactly `bytes` long. */
function fromBase64(text: string, bytes: number): ArrayBuffer {
  const buffer = Buffer.from(text, "base64");
  if (buffer.length !== bytes) throw new RangeError(`expected ${bytes} bytes, got ${buffer.length}`);
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.length);
}
