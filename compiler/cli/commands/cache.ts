import { cacheLimitBytes, cacheRoot, clearCache, listCacheEntries } from "../../pipeline/cache-dir.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import type { Command } from "../command.ts";
import { formatBytes, formatTable } from "../format.ts";

const HELP = `usage: pipec cache [list | clear] [--json] [--cache-dir DIR]

The compiled pipelines pipec run and pipec generate keep, so running one again costs no compile.
They live in PIPEC_CACHE_DIR, else $XDG_CACHE_HOME/pipec, else ~/.cache/pipec; the least recently
used are removed once the cache passes PIPEC_CACHE_MAX_SIZE (default 2G; e.g. 500M).

  list               each compiled pipeline: its folder, pipeline name, size and last use (default)
  clear              remove them all (and temporary folders a killed pipec left)
  --json             print the result as JSON
  --cache-dir DIR    a cache other than the default
`;

export const cacheCommand: Command = {
  name: "cache",
  summary: "list or clear the compiled pipelines run and generate keep",
  help: HELP,
  run(args, io) {
    const { values, positionals } = parseCommandArgs("cache", args, { json: { type: "boolean" }, "cache-dir": { type: "string" } });
    if (values.help) {
      io.out(HELP);
      return 0;
    }
    if (positionals.length > 1) throw new UsageError(`pipec cache takes one action (list or clear), got ${positionals.join(" ")}`);
    const action = positionals[0] ?? "list";
    const root = cacheRoot(values["cache-dir"]);
    if (action === "clear") {
      const removed = clearCache(root);
      if (values.json) io.out(`${JSON.stringify({ root, removed: removed.entries, bytes: removed.bytes })}\n`);
      else io.out(`removed ${removed.entries} compiled pipeline${removed.entries === 1 ? "" : "s"} (${formatBytes(removed.bytes)}) from ${root}\n`);
      return 0;
    }
    if (action !== "list") throw new UsageError(`unknown pipec cache action '${action}': list or clear`);
    const entries = listCacheEntries(root).reverse();
    const limit = cacheLimitBytes();
    const total = entries.reduce((n, e) => n + e.bytes, 0);
    if (values.json) {
      const shown = entries.map((e) => ({ name: e.name, path: e.path, pipeline: e.pipeline, bytes: e.bytes, lastUsed: e.lastUsed.toISOString() }));
      io.out(`${JSON.stringify({ root, limitBytes: limit, totalBytes: total, entries: shown }, null, 2)}\n`);
      return 0;
    }
    io.out(`${root}: ${entries.length} compiled pipeline${entries.length === 1 ? "" : "s"}, ${formatBytes(total)} of ${formatBytes(limit)}\n`);
    if (entries.length) io.out(formatTable(["entry", "pipeline", "size", "last used"], entries.map((e) => [e.name, e.pipeline, formatBytes(e.bytes), e.lastUsed.toISOString()])));
    return 0;
  },
};
