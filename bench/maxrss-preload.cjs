// Loaded with `node --require` into the CLI processes the scaling benchmark starts: reports the
// process's peak resident set size on stderr at exit. On Linux that is VmHWM of /proc/self/status
// (this program's own high-water mark: getrusage's maxRSS would also count the parent's memory,
// which a forked child inherits until exec); elsewhere getrusage maxRSS (KiB on macOS too).
const { readFileSync } = require('node:fs');

process.on('exit', () => {
  let kb = process.resourceUsage().maxRSS;
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) kb = Number(m[1]);
  } catch {
    // Not Linux.
  }
  process.stderr.write(`ARC_BENCH_MAXRSS_KB ${kb}\n`);
});
