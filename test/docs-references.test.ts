import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, posix, resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../compiler/cli/main.ts";
import { codeSpans, linkTargets, markdownFiles, npmScripts, pipecCommandLines, readText, repositoryFiles, rootedPaths, sectionFlags, type Mention } from "./helpers/markdown-references.ts";

/**
 * The docs name files, scripts and command lines; each must exist as named, so that a move or a
 * rename cannot leave a page pointing at nothing. Fast: it reads text and asks the CLI for its
 * help in-process, and runs no model.
 */

const ROOT = resolve(import.meta.dirname, "..");
const FILES = repositoryFiles(ROOT);
const DOCS = markdownFiles(FILES);
const TOP_FOLDERS = [...new Set(FILES.filter((f) => f.includes("/")).map((f) => f.split("/")[0]!))].concat(["dist"]);

/**
 * Paths the docs name that a fresh clone does not have, because a command makes them: the only
 * exceptions to "every path named exists". Each says what makes it.
 */
const MADE_BY_A_COMMAND: Readonly<Record<string, string>> = {
  "dist/": "the CLI bundle `npm ci` (tools/build.mjs) writes",
  "bench/models/": "the models benches build on first use (bench/zoo.ts, tools/export_matrix.py)",
  "bench/results/": "where a bench is told to write its JSON",
  "driver.ts": "the driver pipec compile writes into its output folder",
  "models/": "the models in a compile's output folder (docs/language.md, What pipec compile writes)",
};

const madeByACommand = (path: string) => Object.keys(MADE_BY_A_COMMAND).some((p) => path === p || path === p.replace(/\/$/, "") || (p.endsWith("/") && path.startsWith(p)));

/** Whether a repository-relative path (a file, a folder, or a glob with `*`) names something that exists. */
function exists(path: string): boolean {
  const clean = path.replace(/\/$/, "");
  if (clean.includes("*")) {
    const glob = new RegExp(`^${clean.split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*")}(/|$)`);
    return FILES.some((f) => glob.test(f));
  }
  return clean === "" || FILES.includes(clean) || FILES.some((f) => f.startsWith(`${clean}/`));
}

/** Extensions of files the docs name as files to read (code, docs, pipelines); data files (`config.json`) are often named as a kind. */
const READ_AS_FILES = /\.(ts|mts|mjs|js|py|md|pipe|html|proto|yaml)$/;
const PATH_LIKE = /^(\.{1,2}\/)?[\w.-]+(\/[\w.*-]+)*\/?$/;

interface Missing {
  doc: string;
  line: number;
  path: string;
}

/** Paths a markdown file names that do not exist, read the way a reader would read them. */
function missingPaths(doc: string): Missing[] {
  const text = readText(ROOT, doc);
  const docDir = posix.dirname(doc);
  const missing: Missing[] = [];
  // Folders already named in a block: a bare `scan.ts` in the row of `graph/onnx/` is graph/onnx/scan.ts.
  const context = new Map<number, Set<string>>();
  const addContext = (m: Mention, path: string) => {
    const dirs = context.get(m.block) ?? new Set<string>();
    const clean = path.replace(/\/$/, "");
    dirs.add(FILES.includes(clean) ? posix.dirname(clean) : clean);
    context.set(m.block, dirs);
  };
  for (const m of rootedPaths(text, TOP_FOLDERS)) {
    if (exists(m.text)) addContext(m, m.text);
    else if (!madeByACommand(m.text)) missing.push({ doc, line: m.line, path: m.text });
  }
  for (const m of linkTargets(text)) {
    const path = posix.normalize(posix.join(docDir, m.text.replace(/#.*$/, "")));
    if (!exists(path)) missing.push({ doc, line: m.line, path: m.text });
  }
  for (const m of codeSpans(text)) {
    const name = m.text;
    if (!PATH_LIKE.test(name) || /^\.\w+$/.test(name) || TOP_FOLDERS.includes(name.split("/")[0]!)) continue;
    // NAME, DIR: a placeholder, not a name.
    if (name.split("/").some((segment) => /^[A-Z_]+$/.test(segment))) continue;
    if (!name.includes("/") && !READ_AS_FILES.test(name)) continue;
    // `../shared/fixtures`: beside the repository, not in it.
    if (posix.normalize(name).startsWith("../")) continue;
    const candidates = [docDir, ".", ...(context.get(m.block) ?? []), ...(context.get(m.scope) ?? [])].map((dir) => posix.normalize(posix.join(dir, name)));
    const found = candidates.find(exists);
    if (found) addContext(m, found);
    else if (!madeByACommand(name)) missing.push({ doc, line: m.line, path: name });
  }
  return missing;
}

describe("paths the docs name", () => {
  it("finds the docs", () => {
    expect(DOCS).toEqual(expect.arrayContaining(["README.md", "docs/ARCHITECTURE.md", "docs/cli.md", "docs/language.md", "docs/runtime.md", "bench/README.md", "graph/rewrite/README.md"]));
  });

  it.each(DOCS)("%s names only files and folders that exist", (doc) => {
    expect(missingPaths(doc).map((m) => `${m.doc}:${m.line}: ${m.path}`)).toEqual([]);
  });

  it("cite no document outside the repository", () => {
    const cited = DOCS.flatMap((doc) => citationsOutside(readText(ROOT, doc)).map((line) => `${doc}:${line}`));
    expect(cited).toEqual([]);
  });
});

/** A reference document that lives beside the repository, not in it: a reader of a clone cannot open it. */
const OUTSIDE_REFERENCE = /shared\/reference\b|\b(algorithms|anchors|platform)\.md\b/;

function citationsOutside(text: string): number[] {
  return text.split("\n").flatMap((line, i) => (OUTSIDE_REFERENCE.test(line) ? [i + 1] : []));
}

describe("source comments", () => {
  it("cite no document outside the repository (a reader of the code has only the repository)", () => {
    const sources = FILES.filter((f) => /^(compiler|graph|passes|runtime|dsl)\//.test(f) && /\.(ts|mts|mjs)$/.test(f));
    const citing = sources.flatMap((f) => citationsOutside(readText(ROOT, f)).map((line) => `${f}:${line}`));
    expect(citing).toEqual([]);
  });
});

describe("imports in the docs' code", () => {
  it("name what the module they import from exports", () => {
    const wrong: string[] = [];
    for (const doc of DOCS) {
      readText(ROOT, doc)
        .split("\n")
        .forEach((line, i) => {
          const m = /^import (?:type )?\{([^}]*)\} from "([^"]+)"/.exec(line);
          // "../../../graph/rewrite/index.ts" from a folder the comment names: the path from the top folder on.
          const path = m?.[2]!.replace(/^(\.\.?\/)+/, "");
          if (!m || !TOP_FOLDERS.includes(path!.split("/")[0]!)) return;
          if (!FILES.includes(path!)) return void wrong.push(`${doc}:${i + 1}: ${path}: no such file`);
          const source = readText(ROOT, path!);
          for (const name of m[1]!.split(",").map((n) => n.trim().replace(/^type /, "")).filter(Boolean)) {
            const declared = new RegExp(`export\\s+(?:declare\\s+)?(?:async\\s+)?(?:function\\*?|const|let|class|interface|type|enum)\\s+${name}\\b`).test(source);
            const listed = new RegExp(`export\\s+(?:type\\s+)?\\{[^}]*\\b${name}\\b[^}]*\\}`).test(source);
            if (!declared && !listed) wrong.push(`${doc}:${i + 1}: ${path} exports no ${name}`);
          }
        });
    }
    expect(wrong).toEqual([]);
  });
});

describe("npm scripts", () => {
  const scripts = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;

  it("every `npm run X` the docs name is a script of package.json", () => {
    const named = DOCS.flatMap((doc) => npmScripts(readText(ROOT, doc)).map((m) => ({ doc, ...m })));
    expect(named.length).toBeGreaterThan(0);
    expect(named.filter((m) => !(m.text in scripts)).map((m) => `${m.doc}:${m.line}: npm run ${m.text}`)).toEqual([]);
  });

  it("every file or folder a script names exists", () => {
    const missing = Object.entries(scripts).flatMap(([name, command]) =>
      command
        .split(/\s+/)
        .filter((word) => word.includes("/") && !word.startsWith("-"))
        .filter((path) => !existsSync(join(ROOT, path)))
        .map((path) => `${name}: ${path}`),
    );
    expect(missing).toEqual([]);
  });
});

describe("benches", () => {
  const benchFiles = FILES.filter((f) => /^bench\/[\w-]+\.ts$/.test(f));
  const imported = new Set(benchFiles.flatMap((f) => [...readText(ROOT, f).matchAll(/from "\.\/([\w-]+\.ts)"/g)].map((m) => `bench/${m[1]}`)));

  it("every bench script one runs (not a child process, not a module the others import) has its section in bench/README.md", () => {
    const headings = new Set([...readText(ROOT, "bench/README.md").matchAll(/^## ([\w-]+\.ts):/gm)].map((m) => `bench/${m[1]}`));
    const entryPoints = benchFiles.filter((f) => !f.endsWith("-child.ts") && !imported.has(f) && f !== "bench/index.ts");
    expect(entryPoints.length).toBeGreaterThan(0);
    expect(entryPoints.filter((f) => !headings.has(f))).toEqual([]);
    expect([...headings].filter((f) => !FILES.includes(f))).toEqual([]);
  });
});

/** A command's output in-process: the CLI is a function of its arguments. */
async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

const FLAG = /(?<![\w-])(--[a-z][\w-]*|-[a-zA-Z])(?![\w-])/g;

describe("pipec commands and flags the docs name", () => {
  /** Per command, its help texts (a command may have a variant: `pipec ir file.pipe --help`) with the arguments that select each. */
  const helps = new Map<string, { args: string[]; text: string }[]>();
  let globalFlags: string[] = [];

  beforeAll(async () => {
    const global = await cli(["--help"]);
    expect(global.code).toBe(0);
    globalFlags = ["--help", "-h", ...[...global.out.matchAll(FLAG)].map((m) => m[1]!)];
    const commands = [...global.out.split("commands:")[1]!.split("global options:")[0]!.matchAll(/^ {2}([a-z][\w-]*) {2,}/gm)].map((m) => m[1]!);
    for (const command of commands) {
      const own = await cli([command, "--help"]);
      expect(own.code, `pipec ${command} --help`).toBe(0);
      const texts: { args: string[]; text: string }[] = [{ args: [], text: own.out }];
      for (const [, variant] of own.out.matchAll(new RegExp(`pipec ${command} (\\S+) --help`, "g"))) {
        const help = await cli([command, variant!, "--help"]);
        expect(help.code, `pipec ${command} ${variant} --help`).toBe(0);
        texts.push({ args: [variant!], text: help.out });
      }
      helps.set(command, texts);
    }
  }, 60_000);

  const flagsOf = (command: string) => new Set([...globalFlags, ...(helps.get(command) ?? []).flatMap((h) => [...h.text.matchAll(FLAG)].map((m) => m[1]!))]);

  it("every command line in the docs names a command and flags its help lists", () => {
    const wrong: string[] = [];
    for (const doc of DOCS) {
      for (const c of pipecCommandLines(readText(ROOT, doc))) {
        if (c.command.startsWith("-")) {
          if (!globalFlags.includes(c.command)) wrong.push(`${doc}:${c.line}: pipec ${c.command}: no such global option`);
          continue;
        }
        if (!helps.has(c.command)) {
          wrong.push(`${doc}:${c.line}: pipec ${c.command}: no such command`);
          continue;
        }
        const known = flagsOf(c.command);
        for (const flag of c.flags) if (!known.has(flag)) wrong.push(`${doc}:${c.line}: pipec ${c.command} ${flag}: not in pipec ${c.command} --help`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("every flag a section on commands lists is in each of those commands' help", () => {
    const wrong = DOCS.flatMap((doc) =>
      sectionFlags(readText(ROOT, doc)).flatMap((m) =>
        m.commands.flatMap((command) =>
          !helps.has(command) ? [`${doc}:${m.line}: pipec ${command}: no such command`] : m.flags.filter((flag) => !flagsOf(command).has(flag)).map((flag) => `${doc}:${m.line}: ${flag}: not in pipec ${command} --help`),
        ),
      ),
    );
    expect(wrong).toEqual([]);
  });

  it("every command is documented in README.md or docs/", () => {
    const text = DOCS.filter((d) => d === "README.md" || d.startsWith("docs/")).map((d) => readText(ROOT, d)).join("\n");
    expect([...helps.keys()].filter((command) => !new RegExp(`pipec ${command}\\b`).test(text))).toEqual([]);
  });

  it("every flag a command's help lists is one the command accepts", async () => {
    const refused: string[] = [];
    for (const [command, texts] of helps) {
      const flags = new Set(texts.flatMap(({ text }) => [...text.matchAll(FLAG)].map((m) => m[1]!)));
      for (const flag of flags) {
        if (globalFlags.includes(flag)) continue;
        // --help last: a flag the command parses ends in its help or a complaint about its value,
        // never "unknown option". A variant's help may be summarised in the command's (pipec ir).
        const errors = await Promise.all(texts.map(async ({ args }) => (await cli([command, ...args, flag, "--help"])).err));
        if (errors.every((err) => /unknown option/.test(err))) refused.push(`pipec ${command} ${flag}: ${errors[0]!.trim()}`);
      }
    }
    expect(refused).toEqual([]);
  });
});

describe("the README's first screen", () => {
  const readme = readText(ROOT, "README.md");
  const firstBlock = readme.split("```sh")[1]!.split("```")[0]!;

  it("installs and runs an example end to end, then runs the tests", () => {
    expect(firstBlock).toMatch(/^npm ci && npx pipec run examples\/\S+\.pipe /m);
    expect(firstBlock).toMatch(/^npm test$/m);
  });

  it("runs an example that exists, on a model in the repository", () => {
    const example = /npx pipec run (examples\/\S+\.pipe)/.exec(firstBlock)![1]!;
    const model = /onnx\("([^"]+)"\)/.exec(readFileSync(join(ROOT, example), "utf8"))![1]!;
    expect(statSync(resolve(dirname(join(ROOT, example)), model)).isFile()).toBe(true);
  });
});
