import type { ValueInfoProto } from "../onnx/generated/onnx_pb.ts";
import type { Graph } from "./graph.ts";
import type { Node } from "./node.ts";
import type { Tensor } from "./tensor.ts";
import type { ValueType } from "./types.ts";

export type ValueInfoRole = "input" | "output" | "valueInfo";

/** One place a value is read: input `index` of `node`. */
export interface Use {
  node: Node;
  index: number;
  /** Position in the value's `uses` array (maintained by Node). */
  slot: number;
}

/**
 * An SSA value: produced by exactly one node output, a graph input, or an initializer.
 * `uses` is kept in sync by every edit made through Node and Graph methods.
 */
export class Value {
  name: string;
  type: ValueType | undefined;
  /** The graph whose scope defines this value. */
  readonly graph: Graph;
  producer: Node | undefined;
  outputIndex = 0;
  /** Set for initializers. */
  initializer: Tensor | undefined;
  readonly uses: Use[] = [];
  /**
   * The ValueInfoProtos this value was read with, per place it was listed; each is written back
   * as it was while `type` is still the type read (`typeAtLoad`), so a round trip changes nothing.
   */
  readonly infos: Partial<Record<ValueInfoRole, ValueInfoProto>> = {};
  typeAtLoad: ValueType | undefined;

  constructor(graph: Graph, name: string, type?: ValueType) {
    this.graph = graph;
    this.name = name;
    this.type = type;
  }

  get isGraphInput(): boolean {
    return this.graph.inputs.includes(this);
  }

  get isGraphOutput(): boolean {
    return this.graph.outputs.includes(this);
  }

  get isInitializer(): boolean {
    return this.initializer !== undefined;
  }

  /** The nodes reading this value, each once. */
  consumers(): Node[] {
    return [...new Set(this.uses.map((u) => u.node))];
  }

  /** True when nothing reads the value: no node input and no graph output. */
  get unused(): boolean {
    return this.uses.length === 0 && !this.isGraphOutput;
  }

  /** Points every use (node inputs and graph outputs) at `other` instead. */
  replaceAllUsesWith(other: Value): void {
    if (other === this) return;
    for (const use of [...this.uses]) use.node.setInput(use.index, other);
    const outputs = this.graph.outputs;
    for (let i = 0; i < outputs.length; i++) {
      if (outputs[i] === this) this.graph.setOutput(i, other);
    }
  }

  toString(): string {
    return `%${this.name}`;
  }
}
