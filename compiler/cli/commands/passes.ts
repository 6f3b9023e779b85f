import { defaultRegistry } from "../../../passes/index.ts";
import { parseCommandArgs } from "../args.ts";
import type { Command } from "../command.ts";
import { formatTable } from "../format.ts";

export const passesCommand: Command = {
  name: "passes",
  summary: "list the passes --passes can name, with their options",
  help: `usage: pipec passes

Lists every registered pass with its description and options (name(key=value) in a pipeline).
`,
  run(args, io) {
    const { values } = parseCommandArgs("passes", args, {});
    if (values.help) {
      io.out(this.help);
      return 0;
    }
    const registry = defaultRegistry();
    const rows = registry.names.map((name) => {
      const options = Object.entries(registry.entry(name).options ?? {}).map(([k, spec]) => `${k}=<${spec.type}>`);
      return [name, options.join(" "), registry.describe(name)];
    });
    io.out(formatTable(["pass", "options", "description"], rows));
    return 0;
  },
};
