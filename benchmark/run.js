'use strict';
// Context benchmarks: ambient against native AsyncLocalStorage, side by side
// in one run. Every measurement is a fresh process (benchmark/context-case.js)
// so each variant has its own JIT state and promise hooks; variants alternate
// within each round, and the report gives the median of the rounds and the
// ratio ambient/native.
//
// Usage: node benchmark/run.js [--rounds N] [--node /path/to/node ...] [--only text] [--json out.json]
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i === -1 ? fallback : args[i + 1];
};
const rounds = Number(option('--rounds', 5));
const nodes = args.flatMap((a, i) => (a === '--node' ? [args[i + 1]] : []));
if (nodes.length === 0) nodes.push(process.execPath);
const jsonOut = option('--json', null);
const only = option('--only', null);

// [label, case, k, variants]
const scenarios = [
  ['await loop, no context', 'propagation', 0, ['none']],
  ['await loop, K=1', 'propagation', 1, ['native', 'ambient']],
  ['await loop, K=8', 'propagation', 8, ['native', 'ambient']],
  ['run(), K=1', 'run', 1, ['native', 'ambient']],
  ['run(), K=8', 'run', 8, ['native', 'ambient']],
  ['getStore(), K=1', 'getStore', 1, ['native', 'ambient']],
  ['getStore(), K=8', 'getStore', 8, ['native', 'ambient']],
  ['snapshot() + call', 'snapshot', 1, ['native', 'ambient']],
  ['new AsyncResource + runInAsyncScope', 'asyncResource', 1, ['native', 'ambient']],
];

if (only) scenarios.splice(0, scenarios.length, ...scenarios.filter(([label]) => label.includes(only)));

const median = (xs) => {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function measure(node, impl, caseName, k) {
  const out = execFileSync(node, [path.join(__dirname, 'context-case.js'), impl, caseName, String(k)], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()).nsPerOp;
}

const results = [];
for (const node of nodes) {
  const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
  const samples = new Map();
  for (let round = 0; round < rounds; round++) {
    for (const [label, caseName, k, variants] of scenarios) {
      // Alternate which variant goes first so drift on a shared machine
      // does not always favour the same side.
      const order = round % 2 ? variants.slice().reverse() : variants;
      for (const impl of order) {
        const key = `${label}|${impl}`;
        if (!samples.has(key)) samples.set(key, []);
        samples.get(key).push(measure(node, impl, caseName, k));
      }
    }
    process.stderr.write(`${version}: round ${round + 1}/${rounds} done\n`);
  }
  const get = (label, impl) => samples.has(`${label}|${impl}`) ? median(samples.get(`${label}|${impl}`)) : undefined;
  const nativeK1 = get('await loop, K=1', 'native');
  const present = new Set(scenarios.map(([label]) => label));
  for (const label of present) {
    const row = { node: version, scenario: label, native: get(label, 'native'), ambient: get(label, 'ambient'), none: get(label, 'none') };
    if (row.native !== undefined) row.ratio = row.ambient / row.native;
    if (label === 'await loop, K=8') row.vsNativeK1 = row.ambient / nativeK1;
    results.push(row);
  }
}

const fmt = (x) => (x === undefined ? '' : x.toFixed(1));
console.log(`| Node | scenario | native ns/op | ambient ns/op | ambient/native | notes |`);
console.log(`|---|---|---:|---:|---:|---|`);
for (const r of results) {
  const notes = r.none !== undefined ? `baseline, no store: ${fmt(r.none)} ns/op` :
    r.vsNativeK1 !== undefined ? `ambient K=8 / native K=1: ${r.vsNativeK1.toFixed(2)}×` : '';
  console.log(`| ${r.node} | ${r.scenario} | ${fmt(r.native)} | ${fmt(r.ambient)} | ${r.ratio === undefined ? '' : r.ratio.toFixed(2) + '×'} | ${notes} |`);
}
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ rounds, results }, null, 2));
