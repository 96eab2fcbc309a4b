'use strict';
// Context benchmarks: ambient against native AsyncLocalStorage, side by side
// in one run (see harness.js for how runs are taken). Prints a markdown table
// with the median ns/op of each and the ratio ambient/native.
//
// Usage: node benchmark/run.js [--rounds N] [--node /path/to/node ...] [--only text] [--json out.json]
const path = require('node:path');
const fs = require('node:fs');
const { parseArgs, runRounds } = require('./harness');

const options = parseArgs(process.argv.slice(2));
const file = path.join(__dirname, 'context-case.js');

// [label, case, k, variants]
let scenarios = [
  ['await loop, no context', 'propagation', 0, ['none']],
  ['await loop, K=1', 'propagation', 1, ['native', 'ambient']],
  ['await loop, K=8', 'propagation', 8, ['native', 'ambient']],
  ['run(), K=1', 'run', 1, ['native', 'ambient']],
  ['run(), K=8', 'run', 8, ['native', 'ambient']],
  ['getStore(), K=1', 'getStore', 1, ['native', 'ambient']],
  ['getStore(), K=8', 'getStore', 8, ['native', 'ambient']],
  ['snapshot() + call', 'snapshot', 1, ['native', 'ambient']],
  ['new AsyncResource + runInAsyncScope', 'asyncResource', 1, ['native', 'ambient']],
].map(([label, caseName, k, variants]) => ({ label, file, variants, args: (impl) => [impl, caseName, String(k)] }));
if (options.only) scenarios = scenarios.filter((s) => s.label.includes(options.only));

const results = runRounds(options, scenarios);
const fmt = (x) => (x === undefined ? '' : x.toFixed(1));
const rows = [];
console.log('| Node | scenario | native ns/op | ambient ns/op | ambient/native | notes |');
console.log('|---|---|---:|---:|---:|---|');
for (const [version, medians] of results) {
  const get = (label, impl) => medians.get(`${label}|${impl}`);
  const nativeK1 = get('await loop, K=1', 'native');
  for (const { label } of scenarios) {
    const row = { node: version, scenario: label, native: get(label, 'native'), ambient: get(label, 'ambient'), none: get(label, 'none') };
    const ratio = row.native === undefined ? '' : `${(row.ambient / row.native).toFixed(2)}×`;
    const notes = row.none !== undefined ? `baseline, no store: ${fmt(row.none)} ns/op` :
      label === 'await loop, K=8' ? `ambient K=8 / native K=1: ${(row.ambient / nativeK1).toFixed(2)}×` : '';
    console.log(`| ${version} | ${label} | ${fmt(row.native)} | ${fmt(row.ambient)} | ${ratio} | ${notes} |`);
    rows.push(row);
  }
}
if (options.jsonOut) fs.writeFileSync(options.jsonOut, JSON.stringify({ rounds: options.rounds, results: rows }, null, 2));
