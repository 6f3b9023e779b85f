/**
 * `npm run bench`: the benches bench/README.md documents, each with the commands that run it;
 * `npm run bench -- NAME [args]` runs one (bench/NAME.ts, in its own process, output as it comes).
 * The list is read from bench/README.md's `## NAME.ts: what it measures` sections, so a bench
 * appears here exactly when it is documented there.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

interface Bench {
  name: string;
  title: string;
  /** The indented command lines under the section's heading. */
  usage: string[];
}

const BENCH_DIR = import.meta.dirname;

function documentedBenches(): Bench[] {
  const readme = readFileSync(join(BENCH_DIR, "README.md"), "utf8");
  return readme
    .split(/^## /m)
    .slice(1)
    .flatMap((section) => {
      const heading = /^([\w-]+)\.ts: (.+)$/m.exec(section.split("\n")[0]!);
      if (!heading) return [];
      const body = section.split("\n").slice(1);
      const first = body.findIndex((line) => /^ {4}\S/.test(line));
      const usage = first < 0 ? [] : body.slice(first, body.findIndex((line, i) => i > first && !/^ {4}\S/.test(line))).map((line) => line.trim());
      return [{ name: heading[1]!, title: heading[2]!, usage }];
    });
}

function list(benches: readonly Bench[]): string {
  return [
    "usage: npm run bench -- NAME [args]   (each bench's own arguments below; bench/README.md has what they measured)",
    "",
    ...benches.flatMap((b) => [`${b.name}: ${b.title}`, ...b.usage.map((u) => `    ${u}`), ""]),
  ].join("\n");
}

const benches = documentedBenches();
const [name, ...args] = process.argv.slice(2);
if (name === undefined || name === "--help" || name === "-h") {
  process.stdout.write(list(benches));
  process.exit(0);
}
const bench = benches.find((b) => b.name === name || `${b.name}.ts` === name);
if (!bench || !existsSync(join(BENCH_DIR, `${bench.name}.ts`))) {
  process.stderr.write(`bench: no bench '${name}'; there are: ${benches.map((b) => b.name).join(", ")} (npm run bench lists them)\n`);
  process.exit(2);
}
// Its own process, as `npx tsx bench/NAME.ts` would run it: benches that report peak RSS need one.
const run = spawnSync(process.execPath, ["--import", "tsx", join(BENCH_DIR, `${bench.name}.ts`), ...args], { stdio: "inherit", cwd: join(BENCH_DIR, "..") });
process.exit(run.status ?? 1);
