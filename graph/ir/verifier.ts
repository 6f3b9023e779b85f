import { byteSize, dtypeName, DataType } from "./dtype.ts";
import { typeFromProto } from "./from-proto.ts";
import type { Graph } from "./graph.ts";
import type { Model } from "./model.ts";
import type { Node } from "./node.ts";
import { describeCycle, findCycle, predecessors } from "./toposort.ts";
import type { Value } from "./value.ts";

export interface Diagnostic {
  /** A stable identifier of the rule broken: "undefined-input", "cycle", ... */
  code: string;
  /** One line naming the graph and the node or value concerned. */
  message: string;
  node?: Node;
  value?: Value;
}

/**
 * Checks the structural invariants every pass may rely on and every pass must keep: single
 * assignment, topological order without cycles, inputs defined in scope, opsets imported for
 * every domain used, initializers agreeing with their declared types, use lists in sync.
 * Returns every violation found; an empty list means the model is well formed.
 */
export function verifyModel(model: Model): Diagnostic[] {
  const out: Diagnostic[] = [];
  new GraphChecker(out, (domain) => model.opset(domain) !== undefined).check(model.graph);
  for (const fn of model.functions) {
    const imported = (domain: string) => fn.opsets.has(domain) || (domain === "" && fn.opsets.has("ai.onnx")) || model.opset(domain) !== undefined;
    new GraphChecker(out, imported).check(fn.body);
  }
  return out;
}

class GraphChecker {
  constructor(
    private readonly out: Diagnostic[],
    private readonly imported: (domain: string) => boolean,
  ) {}

  check(graph: Graph, outer: ReadonlySet<string> = new Set()): void {
    const where = `graph '${graph.name}'`;
    const names = new Set<string>();
    const define = (v: Value, role: string) => {
      if (names.has(v.name) || outer.has(v.name)) {
        this.report("duplicate-name", `${where}: '${v.name}' (${role}) is assigned more than once`, { value: v });
      }
      names.add(v.name);
    };
    for (const v of graph.inputs) define(v, "graph input");
    for (const v of graph.initializers.values()) {
      if (!v.isGraphInput) define(v, "initializer");
      this.checkInitializer(where, v);
    }
    for (const n of graph.nodes()) {
      n.outputs.forEach((v, i) => {
        if (!v) return;
        if (v.producer !== n || v.outputIndex !== i) {
          this.report("producer", `${where}: output ${i} of ${n.describe()} is '${v.name}', which records another producer`, { node: n, value: v });
        }
        define(v, `output of ${n.describe()}`);
      });
    }

    const cycle = findCycle(graph);
    if (cycle) this.report("cycle", `${where} has a cycle: ${describeCycle(cycle)}`, { node: cycle[0] });

    const placed = new Set<Node>();
    for (const n of graph.nodes()) {
      if (!this.imported(n.domain)) {
        this.report("opset", `${where}: ${n.describe()} uses domain '${n.domain}', which the model does not import`, { node: n });
      }
      n.inputs.forEach((v, i) => {
        if (v) this.checkInput(graph, n, i, v);
      });
      if (!cycle) {
        for (const p of predecessors(graph, n)) {
          if (!placed.has(p)) this.report("order", `${where}: ${n.describe()} comes before ${p.describe()}, which produces a value it reads`, { node: n });
        }
      }
      placed.add(n);
      const subgraphs = n.subgraphs();
      if (subgraphs.length) {
        const inScope = new Set([...outer, ...names]);
        for (const sub of subgraphs) this.check(sub, inScope);
      }
    }
    graph.outputs.forEach((v, i) => {
      if (!isDefinedIn(graph, v)) this.report("undefined-output", `${where}: output ${i} '${v.name}' is not defined in scope`, { value: v });
    });
  }

  private checkInput(graph: Graph, n: Node, i: number, v: Value): void {
    const where = `graph '${graph.name}'`;
    if (!isDefinedIn(graph, v)) {
      this.report("undefined-input", `${where}: ${n.describe()} input ${i} reads '${v.name}', which is not defined in scope`, { node: n, value: v });
    }
    if (!v.uses.some((u) => u.node === n && u.index === i)) {
      this.report("use-list", `${where}: '${v.name}' does not record its use by ${n.describe()} input ${i}`, { node: n, value: v });
    }
  }

  private checkInitializer(where: string, v: Value): void {
    const t = v.initializer!;
    // The IR's type and every type the file listed for it (input, value_info); each conflict once.
    const listed = Object.values(v.infos).flatMap((info) => (info?.type ? [typeFromProto(info.type)] : []));
    const conflicts = new Set<string>();
    for (const type of [v.type, ...listed]) {
      if (type?.kind !== "tensor") continue;
      const shapeAgrees = !type.shape || (type.shape.length === t.dims.length && type.shape.every((d, k) => typeof d !== "number" || d === t.dims[k]));
      if (type.dtype !== t.dtype || !shapeAgrees) conflicts.add(`${dtypeName(type.dtype)}${type.shape ? `[${type.shape.map((d) => d ?? "?").join(",")}]` : ""}`);
    }
    for (const declared of conflicts) {
      this.report("initializer-type", `${where}: initializer '${v.name}' is declared ${declared} but holds ${dtypeName(t.dtype)}[${t.dims.join(",")}]`, { value: v });
    }
    const expected = byteSize(t.dtype, t.elementCount);
    if (t.dtype !== DataType.STRING && !t.dataInProto && t.byteLength !== expected) {
      this.report("initializer-size", `${where}: initializer '${v.name}' has ${t.byteLength} bytes of data, its shape needs ${expected}`, { value: v });
    }
  }

  private report(code: string, message: string, at: { node?: Node; value?: Value } = {}): void {
    this.out.push({ code, message, ...at });
  }
}

/** True when `v` is a live value of `graph`'s scope or an enclosing one. */
function isDefinedIn(graph: Graph, v: Value): boolean {
  if (graph.lookup(v.name) !== v) return false;
  if (v.producer) return v.producer.graph === v.graph;
  return v.isInitializer || v.isGraphInput;
}
