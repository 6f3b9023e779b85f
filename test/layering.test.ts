import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");

/** The layers, bottom first: a file may import its own layer and the layers listed after `mayImport`. */
const LAYERS: { layer: string; mayImport: string[]; why: string }[] = [
  { layer: "runtime", mayImport: [], why: "a generated driver imports the runtime alone" },
  { layer: "dsl", mayImport: [], why: "dsl/ knows text and ASTs, not ONNX" },
  { layer: "graph", mayImport: [], why: "the graph IR knows nothing of passes, the CLI or the runtime" },
  { layer: "passes", mayImport: ["graph"], why: "passes build on the IR and its rewrite API only" },
  { layer: "compiler", mayImport: ["graph", "passes", "dsl", "runtime"], why: "the compiler's front (lowering, API, CLI) sits on top" },
  { layer: "bin", mayImport: ["compiler", "dist"], why: "the command is a thin shell over the CLI (or its bundle, dist/)" },
];

/**
 * The one exception to the layers: the names a compiled model's graph and the runtime agree on
 * (tree mask, selection-cache state, append-only KV rows, ...) live in one runtime file that
 * passes write from and the runtime reads from, so neither can rename one side alone. It must
 * stay a leaf (no imports), so a pass importing it depends on nothing else of the runtime.
 */
const SHARED_NAMES = { file: "runtime/contract-names.ts", importedBy: "passes" };

/** A relative import of a shipped source file, repository-relative; `typeOnly` when TypeScript erases it. */
interface Import {
  target: string;
  typeOnly: boolean;
}

const IMPORT = /(?:^|\n)\s*(import|export)\s+(type\s+)?([^"]*?)\s*from\s*"(\.{1,2}\/[^"]+)"|import\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g;

/** Every relative import of each shipped source file (not a test: test support lives under test/). */
function sourceImports(): Map<string, Import[]> {
  const out = new Map<string, Import[]>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.(ts|mts|mjs)$/.test(name) && !/\.test\.ts$|\.d\.mts$/.test(name)) {
        const found = [...readFileSync(path, "utf8").matchAll(IMPORT)].map((m) => ({
          target: relative(ROOT, resolve(dirname(path), m[4] ?? m[5]!)),
          typeOnly: m[2] !== undefined || (m[3] !== undefined && /^\{[^}]*\}$/s.test(m[3]) && m[3].slice(1, -1).split(",").every((s) => s.trim() === "" || s.trim().startsWith("type "))),
        }));
        out.set(relative(ROOT, path), found);
      }
    }
  };
  for (const { layer } of LAYERS) walk(join(ROOT, layer));
  for (const file of out.keys()) if (file.startsWith("graph/onnx/generated/")) out.delete(file);
  return out;
}

const layerOf = (file: string) => file.split("/")[0]!;

/** Strongly connected components of more than one file (or a file importing itself): import loops. */
function importLoops(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const loops: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) loops.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return loops;
}

describe("layering", () => {
  const imports = sourceImports();

  it.each(LAYERS)("$layer imports only from itself and $mayImport ($why)", ({ layer, mayImport }) => {
    const files = [...imports.keys()].filter((f) => layerOf(f) === layer);
    expect(files.length).toBeGreaterThan(0); // the scan sees this layer at all
    const allowed = (target: string) => layerOf(target) === layer || mayImport.includes(layerOf(target)) || (layer === SHARED_NAMES.importedBy && target === SHARED_NAMES.file);
    const bad = files.flatMap((file) => imports.get(file)!.filter(({ target }) => !allowed(target)).map(({ target }) => `${file} -> ${target}`));
    expect(bad).toEqual([]);
  });

  it(`${SHARED_NAMES.file}, which ${SHARED_NAMES.importedBy}/ may import, imports nothing`, () => {
    expect(readFileSync(join(ROOT, SHARED_NAMES.file), "utf8")).not.toMatch(/^\s*(import|export)\b[^\n]*\bfrom\b|\bimport\s*\(|\brequire\s*\(/m);
  });

  it("no shipped file imports from a folder outside the layers (test/, bench/, tools/)", () => {
    const layers = new Set([...LAYERS.map((l) => l.layer), "dist"]);
    const bad = [...imports].flatMap(([file, found]) => found.filter(({ target }) => !layers.has(layerOf(target))).map(({ target }) => `${file} -> ${target}`));
    expect(bad).toEqual([]);
  });

  // Type-only imports are erased and cannot make a module load before its dependencies; Graph, Node
  // and Value name one another's types by design. Every import that survives compilation counts.
  it("no import loops between files", () => {
    const loaded = new Map([...imports].map(([file, found]) => [file, found.filter((i) => !i.typeOnly).map((i) => i.target)]));
    expect(importLoops(loaded).map((scc) => scc.join(" <-> "))).toEqual([]);
  });

  it("the scan tells type-only imports from the rest", () => {
    const ir = imports.get("graph/ir/graph.ts")!;
    expect(ir.find((i) => i.target === "graph/ir/node.ts")?.typeOnly).toBe(false);
    expect(imports.get("graph/ir/value.ts")!.find((i) => i.target === "graph/ir/graph.ts")?.typeOnly).toBe(true);
  });

  it("the loop check finds a loop", () => {
    expect(importLoops(new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]], ["d.ts", ["a.ts"]]]))).toEqual([["a.ts", "b.ts", "c.ts"]]);
  });
});
