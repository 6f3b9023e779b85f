import { parseArgs, type ParseArgsConfig } from "node:util";

/** A command line pipec cannot make sense of: printed with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * `parseArgs` in strict mode, with its errors turned into one-line usage errors naming the command.
 * Every command also takes `--help`.
 */
export function parseCommandArgs<O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args: joinNegativeValues(args, options), options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (e) {
    const err = e as Error & { code?: string };
    const option = /'(-[^' ]*)/.exec(err.message)?.[1];
    switch (err.code) {
      case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
        throw new UsageError(`unknown option '${option}' for 'pipec ${command}' (see pipec ${command} --help)`);
      case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
        // Node says "argument missing" for `--passes` at the end and "argument is ambiguous" for
        // `--passes --help` (the value would start with a dash): both are a value the user left out.
        throw new UsageError(`option '${option ?? "?"}' of 'pipec ${command}' ${/argument missing|argument is ambiguous/.test(err.message) ? "needs a value" : "takes no value"}`);
      default:
        throw new UsageError(`pipec ${command}: ${err.message}`);
    }
  }
}

/**
 * `--max-tokens -2` as `--max-tokens=-2`: parseArgs takes a value that starts with a dash for an
 * option, and would report the number as a missing value; joined, the number is judged as one.
 */
function joinNegativeValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const name = arg.startsWith("--") ? arg.slice(2) : undefined;
    const next = args[i + 1];
    if (name !== undefined && options[name]?.type === "string" && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** The single positional argument a command takes, or a usage error saying what is missing. */
export function onePositional(command: string, positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`pipec ${command} needs ${what} (see pipec ${command} --help)`);
  if (positionals.length > 1) throw new UsageError(`pipec ${command} takes ${what}, got ${positionals.length} arguments: ${positionals.join(" ")}`);
  return positionals[0]!;
}

/** A whole number option of at least `min`: a negative or zero one says the bound, anything else asks for a number. */
export function parseWholeNumber(option: string, text: string, min: number): number {
  if (/^-?\d+$/.test(text) && Number(text) < min) throw new UsageError(`${option} must be >= ${min}, got ${text}`);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${option} needs a whole number, got '${text}'`);
  return Number(text);
}

export function parseNonNegativeInt(option: string, text: string): number {
  return parseWholeNumber(option, text, 0);
}

/** A positive whole number option (`--max-tokens`, `--threads`); undefined when not given. */
export function parsePositiveInt(option: string, text: string | undefined): number | undefined {
  return text === undefined ? undefined : parseWholeNumber(option, text, 1);
}

/** `--ids 1,5,9`: a prompt given as token ids. */
export function parseIds(text: string): number[] {
  const parts = text.split(",").map((p) => p.trim());
  const negative = parts.find((p) => /^-\d+$/.test(p));
  if (negative !== undefined) throw new UsageError(`--ids: a token id must be >= 0, got ${negative}`);
  if (parts.some((p) => !/^\d+$/.test(p) || !Number.isSafeInteger(Number(p)))) throw new UsageError(`--ids needs comma-separated token ids, got '${text}'`);
  return parts.map(Number);
}

/** `--external-files clone|copy`: how unchanged external data files reach an output. */
export function externalFilesFlag(text: string | undefined): "clone" | "copy" | undefined {
  if (text === undefined || text === "clone" || text === "copy") return text;
  throw new UsageError(`--external-files must be clone or copy, got '${text}'`);
}
