'use strict';
// Shared by the benchmark runners: one fresh process per measurement,
// variants alternating within a round (order flipped every other round),
// medians across rounds.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

// The p-quantile of xs, interpolated between the two nearest samples.
function quantile(xs, p) {
  const s = xs.slice().sort((a, b) => a - b);
  const at = (s.length - 1) * p;
  const below = Math.floor(at);
  return below === at ? s[below] : s[below] + (s[below + 1] - s[below]) * (at - below);
}

const median = (xs) => quantile(xs, 0.5);

// One measurement: the child's last line, {"nsPerOp": N, ...}.
function measure(node, file, args) {
  const out = execFileSync(node, [file, ...args], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop());
}

function parseArgs(argv) {
  const option = (name, fallback) => {
    const i = argv.indexOf(name);
    return i === -1 ? fallback : argv[i + 1];
  };
  const nodes = argv.flatMap((a, i) => (a === '--node' ? [argv[i + 1]] : []));
  if (nodes.length === 0) nodes.push(process.execPath);
  return { rounds: Number(option('--rounds', 5)), nodes, jsonOut: option('--json', null), only: option('--only', null) };
}

// scenarios: [{ label, variants: [name...], args(variant) -> argv, file }]
// Returns Map<node version, Map<"label|variant", median ns/op>>. Whatever
// else a child reports (bytesPerOp) reaches onSample(version, key, sample).
function runRounds({ rounds, nodes }, scenarios, onSample = () => {}) {
  const results = new Map();
  for (const node of nodes) {
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    const samples = new Map();
    for (let round = 0; round < rounds; round++) {
      for (const scenario of scenarios) {
        const order = round % 2 ? scenario.variants.slice().reverse() : scenario.variants;
        for (const variant of order) {
          const key = `${scenario.label}|${variant}`;
          if (!samples.has(key)) samples.set(key, []);
          const sample = measure(node, scenario.file, scenario.args(variant));
          samples.get(key).push(sample.nsPerOp);
          onSample(version, key, sample);
        }
      }
      process.stderr.write(`${version}: round ${round + 1}/${rounds} done\n`);
    }
    results.set(version, new Map([...samples].map(([k, v]) => [k, median(v)])));
  }
  return results;
}

// `--variants a,b,c`, or `fallback`.
function variantList(argv, fallback) {
  return argv.includes('--variants') ? argv[argv.indexOf('--variants') + 1].split(',') : fallback;
}

// The ambient checkout a variant loads: `ambient@DIR` is another checkout
// (to compare two builds side by side in one run), anything else this one.
function checkoutOf(variant) {
  return variant.startsWith('ambient@') ? path.resolve(variant.slice('ambient@'.length)) : path.join(__dirname, '..');
}

module.exports = { median, quantile, measure, parseArgs, runRounds, variantList, checkoutOf };
