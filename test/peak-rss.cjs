// Preloaded into a pgharbor child (NODE_OPTIONS=--require this file): at exit, writes the
// process's peak resident set size in KiB (getrusage's maxrss) to $PGHARBOR_TEST_PEAK_RSS.
// test/hostile-decoding.test.ts reads it to check that a decoding bomb fails in bounded memory.
const { writeFileSync } = require('node:fs');
const file = process.env.PGHARBOR_TEST_PEAK_RSS;
if (file) process.on('exit', () => writeFileSync(file, String(process.resourceUsage().maxRSS)));
