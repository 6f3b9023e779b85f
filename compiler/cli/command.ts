import type { CliIO } from "./io.ts";

/** A `pipec` subcommand. `run` returns the exit code; errors it throws are formatted by main. */
export interface Command {
  name: string;
  /** One line for `pipec --help`. */
  summary: string;
  /** The full `pipec <name> --help` text. */
  help: string;
  run(args: string[], io: CliIO): number | Promise<number>;
}
