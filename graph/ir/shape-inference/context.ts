import { DataType } from "../dtype.ts";
import type { Node } from "../node.ts";
import type { Dim, TensorType } from "../types.ts";
import type { Value } from "../value.ts";

/** Something inference could not reconcile with a declared type; the declared type is kept. */
export interface InferenceWarning {
  value: string;
  node: string;
  message: string;
}

/** A declared symbolic dim next to the expression inference derived for it (`total_seq_len` = `past_seq_len + seq_len`). */
export interface DimEquality {
  value: string;
  declared: Dim;
  inferred: Dim;
}

export interface InferenceReport {
  /** Values whose type was set or made more precise. */
  inferred: number;
  /** Nodes no rule covers, by qualified op; their outputs keep the types they had. */
  unknownOps: Map<string, number>;
  warnings: InferenceWarning[];
  equalities: DimEquality[];
}

/** Tensors with more elements than this are never tracked by value. */
export const MAX_KNOWN_ELEMENTS = 64;

export type ShapeRule = (ctx: NodeContext) => void;

/** Rules of one op family, keyed by op (default domain) or `domain::op`. */
export type RuleTable = Record<string, ShapeRule>;

/** State shared by all nodes of one inference run. */
export class InferenceState {
  /**
   * The contents of small tensors known at compile time (flattened; the rank is in the value's
   * type): what exported LLM graphs compute shapes with (Shape -> Gather -> Concat -> Reshape).
   * Elements may be symbolic.
   */
  readonly known = new Map<Value, Dim[]>();
  readonly report: InferenceReport = { inferred: 0, unknownOps: new Map(), warnings: [], equalities: [] };
  constructor(readonly opsets: ReadonlyMap<string, number>) {}

  knownValue(v: Value): Dim[] | undefined {
    const k = this.known.get(v);
    if (k || !v.initializer) return k;
    const read = readSmallTensor(v);
    if (read) this.known.set(v, read);
    return read;
  }
}

/** What a rule sees of one node: its inputs' types and known values, and where to put its outputs' types. */
export class NodeContext {
  readonly outputs: (TensorType | undefined)[] = [];

  constructor(
    readonly node: Node,
    private readonly state: InferenceState,
  ) {}

  opset(domain = ""): number {
    const d = domain === "ai.onnx" ? "" : domain;
    return this.state.opsets.get(d) ?? (d === "" ? this.state.opsets.get("ai.onnx") : undefined) ?? 1;
  }

  has(i: number): boolean {
    return this.node.inputs[i] !== undefined;
  }

  get inputCount(): number {
    return this.node.inputs.length;
  }

  type(i: number): TensorType | undefined {
    const t = this.node.inputs[i]?.type;
    return t?.kind === "tensor" ? t : undefined;
  }

  /** The element type of input `i`, undefined when unknown. */
  dtype(i: number): number | undefined {
    const d = this.type(i)?.dtype;
    return d ? d : undefined;
  }

  shape(i: number): Dim[] | undefined {
    return this.type(i)?.shape;
  }

  rank(i: number): number | undefined {
    return this.shape(i)?.length;
  }

  /** The elements of input `i`, flattened, when its contents are known. */
  known(i: number): Dim[] | undefined {
    const v = this.node.inputs[i];
    return v ? this.state.knownValue(v) : undefined;
  }

  /** The elements of input `i` when all are known numbers. */
  knownInts(i: number): number[] | undefined {
    const k = this.known(i);
    return k && k.every((d) => typeof d === "number") ? (k as number[]) : undefined;
  }

  /** A known scalar (or one-element) input. */
  knownScalar(i: number): Dim {
    const k = this.known(i);
    return k && k.length === 1 ? k[0] : undefined;
  }

  setOutput(i: number, dtype: number | undefined, shape: Dim[] | undefined): void {
    this.outputs[i] = { kind: "tensor", dtype: dtype ?? DataType.UNDEFINED, shape: shape ? [...shape] : undefined };
  }

  /** Output `i` has the same type as input `j`. */
  passThrough(i: number, j: number): void {
    this.setOutput(i, this.dtype(j), this.shape(j));
  }

  /** Records the contents of output `i` (small tensors only). */
  setKnown(i: number, elems: Dim[]): void {
    const v = this.node.outputs[i];
    if (v && elems.length <= MAX_KNOWN_ELEMENTS) this.state.known.set(v, elems);
  }
}

const INT_TYPES = new Set<number>([DataType.INT64, DataType.INT32, DataType.INT16, DataType.INT8, DataType.UINT8, DataType.UINT16, DataType.UINT32, DataType.UINT64, DataType.BOOL]);
const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.DOUBLE]);

function readSmallTensor(v: Value): Dim[] | undefined {
  const t = v.initializer!;
  if (t.elementCount > MAX_KNOWN_ELEMENTS || t.dims.length > 1) return undefined;
  if (!INT_TYPES.has(t.dtype) && !FLOAT_TYPES.has(t.dtype)) return undefined;
  return tensorElements(t.toArray());
}

/** Tensor contents as plain numbers. */
export function tensorElements(values: ArrayLike<number | bigint>): number[] {
  return Array.from(values as ArrayLike<number>, (x) => Number(x));
}
