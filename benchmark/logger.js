'use strict';
// Logger throughput: ambient against pino, same message and context fields
// (and, in the `object` rows, the same logged object), to /dev/null and to
// a file, medians of ROUNDS fresh-process runs with the variants
// alternating. Usage: node benchmark/logger.js [--rounds N] [--node path ...] [--json out.json]
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { median, parseArgs } = require('./harness');

const { rounds, nodes, jsonOut } = parseArgs(process.argv.slice(2));
const file = path.join(os.tmpdir(), `ambient-logger-bench-${process.pid}.log`);
const results = [];
for (const node of nodes) {
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  for (const shape of ['message', 'object']) {
    for (const [label, dest] of [['/dev/null', '/dev/null'], ['a file', file]]) {
      const samples = { ambient: [], pino: [] };
      for (let round = 0; round < rounds; round++) {
        for (const variant of round % 2 ? ['pino', 'ambient'] : ['ambient', 'pino']) {
          if (dest === file) fs.rmSync(file, { force: true });
          const out = execFileSync(node, [path.join(__dirname, 'logger-case.js'), variant, dest, shape], { encoding: 'utf8' });
          samples[variant].push(JSON.parse(out.trim().split('\n').pop()).linesPerSec);
        }
      }
      const ambient = median(samples.ambient);
      const pino = median(samples.pino);
      results.push({ node: version, shape, destination: label, ambient, pino, ratio: ambient / pino });
    }
  }
}
fs.rmSync(file, { force: true });
console.log('| Node | line | destination | ambient lines/s | pino lines/s | ambient/pino |');
console.log('|---|---|---|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.node} | ${r.shape} | ${r.destination} | ${Math.round(r.ambient).toLocaleString('en-US')} | ${Math.round(r.pino).toLocaleString('en-US')} | ${r.ratio.toFixed(2)}× |`);
}
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ rounds, results }, null, 2));
