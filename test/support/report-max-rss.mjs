// Preloaded with `node --import` so a child process reports its peak RSS (KiB) on exit.
process.on("exit", () => process.stderr.write(`pipec-test-max-rss-kib=${process.resourceUsage().maxRSS}\n`));
