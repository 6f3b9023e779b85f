import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { main } from "../../compiler/cli/main.ts";

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** Runs `pipec <args>` in this process with its output captured. */
export async function pipec(...args: string[]): Promise<CliResult> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

/** Runs `node bin/pipec.mjs <args>` as a real process: exit code and streams as a user sees them. */
export function pipecProcess(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [join(import.meta.dirname, "../../bin/pipec.mjs"), ...args], { encoding: "utf8" });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
