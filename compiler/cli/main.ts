import { isPipecError } from "../../graph/errors.ts";
import { PIPEC_VERSION } from "../paths.ts";
import { PassFailure } from "../../graph/pass-manager/manager.ts";
import { didYouMean } from "../../graph/pass-manager/suggest.ts";
import { UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { processIO, type CliIO } from "./io.ts";
import { cleanUpOnSignals } from "../../graph/temp-outputs.ts";

/**
 * The commands, each loaded only when run: some pull in heavy dependencies (Chevrotain,
 * onnxruntime) that `pipec inspect` should not pay for. The key is the command's name.
 */
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  inspect: async () => (await import("./commands/inspect.ts")).inspectCommand,
  ir: async () => (await import("./commands/ir.ts")).irCommand,
  opt: async () => (await import("./commands/opt.ts")).optCommand,
  passes: async () => (await import("./commands/passes.ts")).passesCommand,
  import: async () => (await import("./commands/import.ts")).importCommand,
  zoo: async () => (await import("./commands/zoo.ts")).zooCommand,
  check: async () => (await import("./commands/check.ts")).checkCommand,
  fmt: async () => (await import("./commands/fmt.ts")).fmtCommand,
  compile: async () => (await import("./commands/compile.ts")).compileCommand,
  run: async () => (await import("./commands/run.ts")).runCommand,
  generate: async () => (await import("./commands/generate.ts")).generateCommand,
  cache: async () => (await import("./commands/cache.ts")).cacheCommand,
};

/** Exit codes: 0 success, 1 bad input (a PipecError), 2 a usage error, 70 a bug in pipec. */
export const EXIT = { ok: 0, badInput: 1, usage: 2, internal: 70 } as const;

async function globalHelp(): Promise<string> {
  const commands = await Promise.all(Object.values(COMMANDS).map((load) => load()));
  const width = Math.max(...commands.map((c) => c.name.length));
  return `usage: pipec <command> [options]   (pipec <command> --help for its options)

commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}

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
  // In the pipec process (not when a test calls main): Ctrl-C or a kill leaves no temporary outputs.
  if (io === processIO) cleanUpOnSignals();
  const debug = argv.includes("--debug");
  const args = argv.filter((a) => a !== "--debug");
  const [name, ...rest] = args;
  if (name === undefined) {
    io.err(await globalHelp());
    return EXIT.usage;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    io.out(await globalHelp());
    return EXIT.ok;
  }
  if (name === "--version") {
    io.out(`pipec ${PIPEC_VERSION}\n`);
    return EXIT.ok;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    io.err(`pipec: unknown command '${name}'${didYouMean(name, Object.keys(COMMANDS))} (see pipec --help)\n`);
    return EXIT.usage;
  }
  try {
    return await (await load()).run(rest, io);
  } catch (e) {
    return reportError(e, debug, io);
  }
}

/** Prints an error the way its kind deserves and returns the exit code. */
export function reportError(e: unknown, debug: boolean, io: CliIO): number {
  if (e instanceof UsageError || (isPipecError(e) && e.code === "usage")) {
    io.err(`pipec: ${oneLine(e.message)}\n`);
    return EXIT.usage;
  }
  if (isPipecError(e)) {
    io.err(`pipec: ${oneLine(e.format())}\n`);
    return EXIT.badInput;
  }
  const message = oneLine(e instanceof Error ? e.message : String(e));
  const what = e instanceof PassFailure ? message : `internal error: ${message}`;
  io.err(`pipec: ${what} (this is a bug in pipec: please report it${debug ? "" : "; --debug shows the stack"})\n`);
  if (debug) io.err(`${stackOf(e)}\n`);
  return EXIT.internal;
}

/** Control characters a message quotes from a file (a name with a newline in it) written as escapes, so the error stays one line. */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (ch) => (ch === "\n" ? "\\n" : `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`));
}

function stackOf(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.cause instanceof Error ? `${e.stack}\ncaused by: ${e.cause.stack}` : (e.stack ?? e.message);
}


