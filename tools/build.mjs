#!/usr/bin/env node
// Bundles the CLI into dist/ so `pipec` starts without compiling TypeScript on the fly (tsx's
// loader costs most of a second per start). Run by `npm ci` / `npm install` (the `prepare`
// script); bin/pipec.mjs falls back to the TypeScript sources whenever dist/ is missing or older
// than them, so editing a source file never runs stale code.
import { build } from "esbuild";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
// Dependencies stay in node_modules, except these ES modules of many small files: Node resolves,
// reads and links each file on every start (chevrotain pulls in some 2,300 files of lodash-es), so
// each is inlined into the chunks that use it. Native, loader and CommonJS packages stay outside.
const INLINED = new Set(["chevrotain", "@bufbuild/protobuf", "code-block-writer"]);
const outdir = join(root, "dist");
rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: ["compiler/cli/main.ts"],
  outdir,
  bundle: true,
  splitting: true, // each command stays its own chunk, loaded only when run
  format: "esm",
  platform: "node",
  target: "node20",
  plugins: [externalPackagesBut(INLINED)],
  sourcemap: "linked",
  logLevel: "warning",
});
writeFileSync(join(outdir, "BUILT"), `${Date.now()}\n`);

/** Marks every package import external but those of `inlined` (and what they import in turn). */
function externalPackagesBut(inlined) {
  return {
    name: "external-packages-but",
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => {
        const name = args.path.startsWith("@") ? args.path.split("/").slice(0, 2).join("/") : args.path.split("/")[0];
        const fromInlined = /[\\/]node_modules[\\/]/.test(args.importer);
        return inlined.has(name) || fromInlined ? undefined : { path: args.path, external: true };
      });
    },
  };
}
