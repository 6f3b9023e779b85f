import { inspectModel, type ModelSummary, type ValueSummary } from "../../api.ts";
import { PipecError } from "../../../graph/errors.ts";
import type { Model } from "../../../graph/ir/model.ts";
import { describeCycle, findCycle } from "../../../graph/ir/toposort.ts";
import { loadModel } from "../../../graph/onnx/index.ts";
import { attentionSummary, formatAttentionSummary } from "../../../passes/attention/summary.ts";
import { onePositional, parseCommandArgs } from "../args.ts";
import type { Command } from "../command.ts";
import { formatBytes } from "../format.ts";

export const inspectCommand: Command = {
  name: "inspect",
  summary: "summarise a model: opsets, inputs and outputs, operators, weights",
  help: `usage: pipec inspect <model.onnx> [--json]

Prints the IR version, producer, opsets, inputs and outputs (dtype and shape), the node count,
an operator histogram, the initializers (count, bytes inline and external) and the external
data files, and the attention blocks found (per form, and candidates not recognised with the
reason). Weights are not read.

  --json   print the summary as JSON (the shape is documented in docs/cli.md)
`,
  run(args, io) {
    const { values, positionals } = parseCommandArgs("inspect", args, { json: { type: "boolean" } });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const path = onePositional("inspect", positionals, "a model file");
    const summary = { ...inspectModel(path), attention: attentionSummary(acyclic(loadModel(path), path)) };
    io.out(values.json ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(summary) + `${formatAttentionSummary(summary.attention).join("\n")}\n`);
    return 0;
  },
};

/** The attention matcher follows producers upward: on a cycle it would never stop, so a cycle is reported as opt reports it. */
function acyclic(model: Model, path: string): Model {
  const cycle = findCycle(model.graph);
  if (cycle) throw new PipecError("invalid-model", `${path}: graph '${model.graph.name}' has a cycle: ${describeCycle(cycle)}`);
  return model;
}

function formatSummary(s: ModelSummary): string {
  const value = (v: ValueSummary) => `    ${v.name}  ${v.dtype ?? "?"}${v.shape ? `[${v.shape.map((d) => d ?? "?").join(",")}]` : ""}`;
  const init = s.initializers;
  const lines = [
    s.path,
    `  ir_version ${s.irVersion}, producer ${[s.producer.name, s.producer.version].filter(Boolean).join(" ") || "(none)"}`,
    `  opsets: ${s.opsets.map((o) => `${o.domain || "ai.onnx"} ${o.version}`).join(", ")}`,
    `  inputs:`,
    ...s.inputs.map(value),
    `  outputs:`,
    ...s.outputs.map(value),
    `  nodes: ${s.nodeCount}${s.subgraphNodeCount ? ` (+${s.subgraphNodeCount} in subgraphs)` : ""}${s.functions ? `, ${s.functions} functions` : ""}`,
    `  initializers: ${init.count}, ${formatBytes(init.bytes)} (${formatBytes(init.inlineBytes)} inline, ${formatBytes(init.externalBytes)} external)`,
    ...s.externalFiles.map((f) => `  external file: ${f.location} (${formatBytes(f.bytes)}, ${f.tensors} tensors)`),
    `  ops: ${Object.entries(s.ops).map(([op, n]) => `${op} ${n}`).join(", ")}`,
  ];
  return `${lines.join("\n")}\n`;
}
