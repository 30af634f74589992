// Loaded with `node --require` into the CLI processes the scaling benchmark starts: reports the
// process's peak resident set size (getrusage maxRSS, KiB on Linux and macOS) on stderr at exit.
process.on('exit', () => {
  process.stderr.write(`ARC_BENCH_MAXRSS_KB ${process.resourceUsage().maxRSS}\n`);
});
