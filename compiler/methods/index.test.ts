import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { printParam } from "../../dsl/print.ts";
import { supportPassRegistry } from "../../passes/index.ts";
import { defaultSelectLayers, TIDAL_PAPER_LAYERS } from "../../passes/sparse-attention/tidal-decode.ts";
import { TOKEN_SELECT_PAPER, TOKEN_SELECT_PAPER_BUDGET } from "../../passes/sparse-attention/token-select.ts";
import { ADAPTIVE_DEFAULTS } from "../../runtime/speculative/draft-length.ts";
import type { KvPolicy } from "../../runtime/index.ts";
import { METHOD_TABLE, METHODS } from "./index.ts";
import { defaultRegistry } from "./registry.ts";

// Each method's defaults are declared once, in its method table entry: the language reference
// states them, the pass files and passes/index.ts keep no copies, and `--passes` takes them from
// the table.
const ROOT = resolve(import.meta.dirname, "../..");
const LANGUAGE = readFileSync(join(ROOT, "docs/language.md"), "utf8");

/** The defaults docs/language.md's method tables state: `slot.method` -> parameter -> default text (or "required"). */
function documentedDefaults(): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let slot: string | undefined;
  for (const line of LANGUAGE.split("\n")) {
    const heading = /^### `(\w+):`/.exec(line);
    if (heading) slot = heading[1];
    const row = /^\| `(\w+)` \| (.*?) \| (yes|no) \|/.exec(line);
    if (!row || slot === undefined) continue;
    const params = [...row[2]!.matchAll(/`(\w+)` \(((?:[^()]|\([^()]*\))*)\)/g)].map((m) => [m[1]!, m[2]!]);
    out.set(`${slot}.${row[1]}`, Object.fromEntries(params));
  }
  return out;
}

describe("method defaults", () => {
  it("docs/language.md states every method's defaults as the table declares them", () => {
    const documented = documentedDefaults();
    for (const m of METHODS) {
      const declared = Object.fromEntries(Object.entries(m.params).map(([k, p]) => [k, p.default === undefined ? "required" : printParam(p.default)]));
      expect(documented.get(`${m.slot}.${m.name}`), `${m.slot}: ${m.name}`).toEqual(declared);
    }
    expect([...documented.keys()].sort()).toEqual(METHODS.map((m) => `${m.slot}.${m.name}`).sort());
    for (const [slot, spec] of Object.entries(METHOD_TABLE)) expect(LANGUAGE).toContain(`### \`${slot}:\` ${spec.doc} (default \`${spec.default}\`)`);
  });

  it("docs/language.md's account of `auto` and `adaptive` has the numbers the table's entries use", () => {
    const { layers, fullLayers, reselectLayer } = TIDAL_PAPER_LAYERS;
    expect(LANGUAGE).toContain(`keeps the paper's first ${fullLayers} layers dense, fewer in a model of\n  under ${fullLayers + 2} layers`);
    expect(LANGUAGE).toContain(`re-selects at the paper's depth, ${reselectLayer} of ${layers} layers, scaled to the\n  model (\`[${defaultSelectLayers(16, fullLayers).join(", ")}]\` in 16 layers)`);
    const { sinks, window, selected } = TOKEN_SELECT_PAPER;
    expect(LANGUAGE).toContain(`take the paper's shares of its ${TOKEN_SELECT_PAPER_BUDGET} keys (${sinks} sinks, ${window} recent, ${selected} selected)`);
    const share = (paper: number) => Math.floor((200 * paper) / TOKEN_SELECT_PAPER_BUDGET);
    expect(LANGUAGE).toContain(`\`top_k: 200\` attends ${share(sinks)} sinks, ${share(window)} recent and ${200 - share(sinks) - share(window)} selected keys`);
    expect(LANGUAGE).toContain(`\`adaptive(threshold: ${ADAPTIVE_DEFAULTS.threshold}, min: ${ADAPTIVE_DEFAULTS.min}, max: ${ADAPTIVE_DEFAULTS.max})\``);
  });

  it("no pass file declares a copy of a method's defaults, and passes/index.ts registers no method's pass", () => {
    const copies: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith(".ts") && !/\.test(-support)?\.ts$/.test(name) && /_DEFAULTS\b/.test(readFileSync(path, "utf8"))) copies.push(path);
      }
    };
    walk(join(ROOT, "passes"));
    expect(copies).toEqual([]);
    const methodPasses = METHODS.flatMap((m) => (m.lowering.level === "graph" && "pass" in m.lowering ? [m.lowering.pass.name] : []));
    expect(methodPasses.length).toBeGreaterThan(0);
    expect(supportPassRegistry().names.filter((n) => methodPasses.includes(n))).toEqual([]);
  });

  it("`--passes` gives a method's pass the table's defaults", () => {
    const registry = defaultRegistry();
    for (const m of METHODS) {
      if (m.lowering.level !== "graph" || !("pass" in m.lowering)) continue;
      const options = registry.entry(m.lowering.pass.name).options ?? {};
      for (const [key, param] of Object.entries(m.params)) expect(String(options[key]?.default), `${m.name}: ${key}`).toBe(printParam(param.default!));
    }
  });
});

// A method's runtime KV policy is named by its file and class (runtime.kvPolicy), which the
// generated driver imports: each entry's must exist, construct from the defaults' options and
// implement a KvPolicy hook.
const withPolicy = METHODS.filter((m) => m.runtime?.kvPolicy).map((m) => [`${m.slot}: ${m.name}`, m] as const);
describe.skipIf(withPolicy.length === 0)("methods' KV policies", () => {
  const defaults = (m: (typeof METHODS)[number]) => Object.fromEntries(Object.entries(m.params).flatMap(([k, p]) => (p.default === undefined ? [] : [[k, p.default]])));
  it.each(withPolicy)("%s names a policy class in its file", async (_, m) => {
    const request = m.runtime!.kvPolicy!(defaults(m));
    const module = (await import(join(ROOT, "runtime", request.module))) as Record<string, unknown>;
    const PolicyClass = module[request.export] as new (options: object) => KvPolicy;
    expect(typeof PolicyClass, `${request.module} exports ${request.export}`).toBe("function");
    const policy = new PolicyClass(request.options);
    const hooks = ["beforeCall", "afterCall", "onRowsChanged", "reserveRows", "afterPromptChunk", "afterPrompt", "afterDecodeStep"] as const;
    expect(hooks.some((h) => typeof policy[h] === "function")).toBe(true);
  });
});
