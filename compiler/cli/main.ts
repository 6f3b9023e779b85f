import { readFileSync } from "node:fs";
import { isPipecError } from "../errors.ts";
import { PassFailure } from "../pass-manager/manager.ts";
import { didYouMean } from "../pass-manager/suggest.ts";
import { UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { checkCommand } from "./commands/check.ts";
import { compileCommand } from "./commands/compile.ts";
import { fmtCommand } from "./commands/fmt.ts";
import { generateCommand } from "./commands/generate.ts";
import { importCommand } from "./commands/import.ts";
import { inspectCommand } from "./commands/inspect.ts";
import { irCommand } from "./commands/ir.ts";
import { optCommand } from "./commands/opt.ts";
import { passesCommand } from "./commands/passes.ts";
import { runCommand } from "./commands/run.ts";
import { zooCommand } from "./commands/zoo.ts";
import { processIO, type CliIO } from "./io.ts";

const COMMANDS: readonly Command[] = [inspectCommand, irCommand, optCommand, passesCommand, importCommand, zooCommand, checkCommand, fmtCommand, compileCommand, runCommand, generateCommand];

/** Exit codes: 0 success, 1 bad input (a PipecError), 2 a usage error, 70 a bug in pipec. */
export const EXIT = { ok: 0, badInput: 1, usage: 2, internal: 70 } as const;

function globalHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `usage: pipec <command> [options]   (pipec <command> --help for its options)

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}

global options:
  --debug     show the stack of internal errors
  --version   print the version
`;
}

/**
 * Runs one pipec command line and returns its exit code. User errors print as one line,
 * `pipec: <message>`; internal errors print a short line asking for a report, with the stack
 * only under --debug.
 */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const debug = argv.includes("--debug");
  const args = argv.filter((a) => a !== "--debug");
  const [name, ...rest] = args;
  if (name === undefined) {
    io.err(globalHelp());
    return EXIT.usage;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    io.out(globalHelp());
    return EXIT.ok;
  }
  if (name === "--version") {
    io.out(`pipec ${version()}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`pipec: unknown command '${name}'${didYouMean(name, COMMANDS.map((c) => c.name))} (see pipec --help)\n`);
    return EXIT.usage;
  }
  try {
    return await command.run(rest, io);
  } catch (e) {
    return reportError(e, debug, io);
  }
}

/** Prints an error the way its kind deserves and returns the exit code. */
export function reportError(e: unknown, debug: boolean, io: CliIO): number {
  if (e instanceof UsageError || (isPipecError(e) && e.code === "usage")) {
    io.err(`pipec: ${e.message}\n`);
    return EXIT.usage;
  }
  if (isPipecError(e)) {
    io.err(`pipec: ${e.format()}\n`);
    return EXIT.badInput;
  }
  const message = e instanceof Error ? e.message : String(e);
  const what = e instanceof PassFailure ? message : `internal error: ${message}`;
  io.err(`pipec: ${what} (this is a bug in pipec: please report it${debug ? "" : "; --debug shows the stack"})\n`);
  if (debug) io.err(`${stackOf(e)}\n`);
  return EXIT.internal;
}

function stackOf(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.cause instanceof Error ? `${e.stack}\ncaused by: ${e.cause.stack}` : (e.stack ?? e.message);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}
