// Per-run measurements. "Session" time is spent inside onnxruntime's session.run; "host"
// time is everything else the runtime does (feeds, cache bookkeeping, sampling, decoding text).
import type { AttendedKeysStats } from "./attended-keys.ts";
import type { SpeculativeStats, WarmStateStats } from "./speculative/stats.ts";

export interface GenerationStats {
  device: string;
  promptTokens: number;
  generatedTokens: number;
  /** Wall time of the prompt's forward pass(es). */
  prefillMs: number;
  /** From the start of the run to the first token being handed out. */
  timeToFirstTokenMs: number;
  /** Tokens after the first, per second of the time they took. */
  decodeTokensPerSecond: number;
  totalMs: number;
  sessionRunMs: number;
  hostMs: number;
  /** Largest KV cache size seen during the run. */
  peakKvBytes: number;
  /** Present when the run decoded speculatively. */
  speculative?: SpeculativeStats;
  /** Present for a compiled pipeline with speculation: what its warm state gave it when it opened. */
  warmState?: WarmStateStats;
  /** Keys a sparse layer attended per one-query step, by method (tidal, tokenselect, streaming-llm), as the graph reported them. */
  attendedKeys?: Record<string, AttendedKeysStats>;
}

export class RunClock {
  private readonly start = performance.now();
  private firstToken?: number;
  private lastToken?: number;
  prefillMs = 0;

  now(): number {
    return performance.now() - this.start;
  }

  tokenOut(): void {
    const t = this.now();
    this.firstToken ??= t;
    this.lastToken = t;
  }

  finish(fields: { device: string; promptTokens: number; generatedTokens: number; sessionRunMs: number; peakKvBytes: number }): GenerationStats {
    const totalMs = this.now();
    const decodeMs = (this.lastToken ?? 0) - (this.firstToken ?? 0);
    const decodeTokens = Math.max(0, fields.generatedTokens - 1);
    return {
      device: fields.device,
      promptTokens: fields.promptTokens,
      generatedTokens: fields.generatedTokens,
      prefillMs: this.prefillMs,
      timeToFirstTokenMs: this.firstToken ?? totalMs,
      decodeTokensPerSecond: decodeMs > 0 ? (decodeTokens * 1000) / decodeMs : 0,
      totalMs,
      sessionRunMs: fields.sessionRunMs,
      hostMs: totalMs - fields.sessionRunMs,
      peakKvBytes: fields.peakKvBytes,
    };
  }
}
