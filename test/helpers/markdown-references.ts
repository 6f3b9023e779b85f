import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

/**
 * What the repository's markdown files name: paths in the repository, `npm run` scripts and
 * `pipec` command lines. test/docs-references.test.ts holds each against what exists.
 */

/** Folders that are not the repository's own files: dependencies, build output, what benches and tests write (.gitignore). */
const NOT_SOURCES = new Set(["node_modules", ".git", "dist", "out", ".cache", "bench/models", "bench/results"]);

/** Every file of the repository, repository-relative with `/` separators, generated and ignored folders left out. */
export function repositoryFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const rel = relative(root, path).split("\\").join("/");
      if (NOT_SOURCES.has(rel)) continue;
      if (statSync(path).isDirectory()) walk(path);
      else out.push(rel);
    }
  };
  walk(root);
  return out.sort();
}

/** A mention in a markdown file: its text, 1-based line, and the paragraph, table row or list item it stands in. */
export interface Mention {
  text: string;
  line: number;
  block: number;
  /** The table a row belongs to (its header row's block), else `block`. */
  scope: number;
}

/** The markdown file split into lines, each with its block number and whether it lies in a fenced code block. */
interface Line {
  text: string;
  line: number;
  block: number;
  /** A table row's table (the block of its header row), else the line's own block. */
  scope: number;
  fenced: boolean;
}

function lines(markdown: string): Line[] {
  const out: Line[] = [];
  let fenced = false;
  let block = 0;
  let table: number | undefined;
  markdown.split("\n").forEach((text, i) => {
    if (/^\s*```/.test(text)) {
      fenced = !fenced;
      block++;
      return;
    }
    // A table row or a list item is a block of its own: a name in it is read against the folders it
    // names, and a table row also against those its header names.
    if (text.trim() === "" || /^\s*(\||[-*] |\d+\. |#)/.test(text)) block++;
    const row = !fenced && text.trimStart().startsWith("|");
    table = row ? (table ?? block) : undefined;
    out.push({ text, line: i + 1, block, scope: row ? table! : block, fenced });
  });
  return out;
}

/** `[text](target)` links outside code, without web addresses and in-page anchors. */
export function linkTargets(markdown: string): Mention[] {
  return lines(markdown)
    .filter((l) => !l.fenced)
    .flatMap((l) => [...l.text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => ({ text: m[1]!, line: l.line, block: l.block, scope: l.scope })))
    .filter((m) => !/^(https?:|mailto:|#)/.test(m.text));
}

/** The contents of `code spans` outside fenced blocks. */
export function codeSpans(markdown: string): Mention[] {
  return lines(markdown)
    .filter((l) => !l.fenced)
    .flatMap((l) => [...l.text.matchAll(/`([^`]+)`/g)].map((m) => ({ text: m[1]!.trim(), line: l.line, block: l.block, scope: l.scope })));
}

/**
 * Paths that start with one of the repository's top-level folders (`runtime/index.ts`,
 * `examples/story.pipe`), anywhere in the text, code blocks included. A name right after `/`,
 * `.` or a word (`../test/x`, `/work/main/examples`, a web address) is not one.
 */
export function rootedPaths(markdown: string, topFolders: readonly string[]): Mention[] {
  const rooted = new RegExp(`(?<![\\w./~$@-])(?:\\./)?((?:${topFolders.map(escapeRegExp).join("|")})/[\\w.*/-]*)`, "g");
  return lines(markdown).flatMap((l) =>
    [...l.text.matchAll(rooted)].map((m) => ({ text: m[1]!.replace(/\.+$/, ""), line: l.line, block: l.block, scope: l.scope })),
  );
}

/** `npm run NAME` wherever it is written. */
export function npmScripts(markdown: string): Mention[] {
  return lines(markdown).flatMap((l) => [...l.text.matchAll(/\bnpm run ([\w:.-]+)/g)].map((m) => ({ text: m[1]!, line: l.line, block: l.block, scope: l.scope })));
}

/**
 * Every `pipec COMMAND ...` command line in code spans and code blocks (prose says "pipec
 * compiles", which is no command), with its flags. A code block's line continued with `\`, or
 * followed by indented `[--flag ...]` lines, is one command line.
 */
export function pipecCommandLines(markdown: string): (Mention & { command: string; flags: string[] })[] {
  const texts: Mention[] = [];
  const all = lines(markdown);
  for (let i = 0; i < all.length; i++) {
    const l = all[i]!;
    if (!l.fenced) {
      texts.push(...codeSpans(l.text).map((m) => ({ ...m, line: l.line, block: l.block, scope: l.scope })));
      continue;
    }
    let text = l.text;
    while (i + 1 < all.length && all[i + 1]!.fenced && (/\\\s*$/.test(text) || /^\s+[[-]/.test(all[i + 1]!.text))) text = `${text.replace(/\\\s*$/, "")} ${all[++i]!.text}`;
    texts.push({ text, line: l.line, block: l.block, scope: l.scope });
  }
  return texts.flatMap((t) =>
    [...t.text.matchAll(/(?:^|\$ |npx |&& |; |\| )pipec\s+([a-z][\w-]*|--?[a-z][\w-]*)([^#`]*)/g)].map((m) => ({
      ...t,
      text: m[0].trim(),
      command: m[1]!,
      flags: [m[1]!.startsWith("-") ? m[1]! : "", ...flagsOf(stripQuoted(m[2]!))].filter((f) => f !== ""),
    })),
  );
}

/**
 * Flags listed on their own in a table (`--max-tokens N`) in a section whose heading names
 * commands (`## Generation flags: \`pipec run\` and \`pipec generate\``): flags of each of them.
 * A heading of a lower level keeps the commands of the one above.
 */
export function sectionFlags(markdown: string): (Mention & { commands: string[]; flags: string[] })[] {
  const out: (Mention & { commands: string[]; flags: string[] })[] = [];
  let commands: string[] = [];
  for (const l of lines(markdown)) {
    if (l.fenced) continue;
    const heading = /^(#+) (.*)$/.exec(l.text);
    if (heading) {
      const named = [...heading[2]!.matchAll(/`pipec ([a-z][\w-]*)`/g)].map((m) => m[1]!);
      if (heading[1]!.length <= 2 || named.length) commands = named;
      continue;
    }
    // Tables list a command's options; prose may mention another command's.
    if (!commands.length || !l.text.trimStart().startsWith("|")) continue;
    for (const span of codeSpans(l.text)) {
      if (span.text.startsWith("-")) out.push({ ...span, line: l.line, block: l.block, scope: l.scope, commands, flags: flagsOf(stripQuoted(span.text)) });
    }
  }
  return out;
}

/** Flags of a command line: `--name`, `--name=value`, `-o`, inside `[...]` and `(... | ...)` alike. */
function flagsOf(text: string): string[] {
  return [...text.matchAll(/(?<![\w-])(--[a-z][\w-]*|-[a-zA-Z])(?![\w-])/g)].map((m) => m[1]!);
}

/** A command line with its quoted arguments blanked, so that a prompt's words are not read as flags. */
function stripQuoted(text: string): string {
  return text.replace(/'[^']*'|"[^"]*"/g, "''");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The markdown files of the repository. */
export function markdownFiles(files: readonly string[]): string[] {
  return files.filter((f) => f.endsWith(".md"));
}

export function readText(root: string, file: string): string {
  return readFileSync(join(root, file), "utf8");
}
