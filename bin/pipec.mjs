#!/usr/bin/env node
// Runs the bundled CLI from dist/ when it is at least as new as every source file; otherwise the
// TypeScript sources through tsx's loader, so the repository works without (or after) a build.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const built = join(root, "dist", "BUILT");

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

const fresh = existsSync(built) && ["compiler", "dsl", "passes", "runtime"].every((d) => newestSource(join(root, d)) <= statSync(built).mtimeMs);
let main;
if (fresh) {
  ({ main } = await import("../dist/main.js"));
} else {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import("../compiler/cli/main.ts"));
}
process.exitCode = await main(process.argv.slice(2));
