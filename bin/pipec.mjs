#!/usr/bin/env node
// Runs the bundled CLI from dist/ when it is at least as new as every source file; otherwise the
// TypeScript sources through tsx's loader, so the repository works without (or after) a build.
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { newestSourceMtime } from "../compiler/source-stamp.mjs";

const root = join(import.meta.dirname, "..");
const built = join(root, "dist", "BUILT");

let main;
if (existsSync(built) && newestSourceMtime(root) <= statSync(built).mtimeMs) {
  ({ main } = await import("../dist/main.js"));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../compiler/cli/main.ts"));
}
process.exitCode = await main(process.argv.slice(2));
