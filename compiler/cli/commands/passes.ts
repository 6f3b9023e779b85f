import { defaultRegistry } from "../../methods/registry.ts";
import { parseCommandArgs } from "../args.ts";
import type { Command } from "../command.ts";
import { wrapText } from "../format.ts";

/** `pipec passes` fits a terminal this wide. */
const WIDTH = 100;

export const passesCommand: Command = {
  name: "passes",
  summary: "list the passes --passes can name, with their options",
  help: `usage: pipec passes [--json]

Lists every registered pass with its description and options (name(key=value) in a pipeline).

  --json   print [{name, description, options: {key: type}}] instead
`,
  run(args, io) {
    const { values } = parseCommandArgs("passes", args, { json: { type: "boolean" } });
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const registry = defaultRegistry();
    const passes = registry.names.map((name) => ({
      name,
      description: registry.describe(name),
      options: Object.fromEntries(Object.entries(registry.entry(name).options ?? {}).map(([k, spec]) => [k, spec.type])),
    }));
    if (values.json) {
      io.out(`${JSON.stringify(passes, null, 2)}\n`);
      return 0;
    }
    // The name, then the description and options wrapped beside it.
    const indent = Math.max(...passes.map((p) => p.name.length)) + 2;
    for (const p of passes) {
      const options = Object.entries(p.options).map(([k, type]) => `${k}=<${type}>`);
      const lines = [...wrapText(p.description, WIDTH - indent), ...(options.length ? wrapText(`options: ${options.join(" ")}`, WIDTH - indent) : [])];
      io.out(lines.map((line, i) => `${(i === 0 ? p.name : "").padEnd(indent)}${line}`.trimEnd()).join("\n") + "\n");
    }
    return 0;
  },
};
