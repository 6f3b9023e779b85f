#!/usr/bin/env node
// Bundles the CLI into dist/ so `pipec` starts without compiling TypeScript on the fly (tsx's
// loader costs most of a second per start). Run by `npm ci` / `npm install` (the `prepare`
// script); bin/pipec.mjs falls back to the TypeScript sources whenever dist/ is missing or older
// than them, so editing a source file never runs stale code.
import { build } from "esbuild";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
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
  packages: "external",
  sourcemap: "linked",
  logLevel: "warning",
});
writeFileSync(join(outdir, "BUILT"), `${Date.now()}\n`);
