'use strict';
// Request-context benchmarks: ambient's Rust-backed store, ids and W3C codec
// against the JS alternatives, side by side in one run (see harness.js).
// Prints a markdown table: each variant's median ns/op and ambient's ratio
// to it (below 1 means ambient is faster).
//
// Usage: node benchmark/store.js [--rounds N] [--node /path/to/node ...] [--only case,case] [--json out.json]
const path = require('node:path');
const fs = require('node:fs');
const { parseArgs, runRounds } = require('./harness');

const options = parseArgs(process.argv.slice(2));
const file = path.join(__dirname, 'store-case.js');
const scenarios = [
  ['begin + end per request', 'beginEnd', ['ambient', 'js'], 'a native AsyncLocalStorage with ids from node:crypto and a Map of fields'],
  ['run() per request', 'run', ['ambient', 'native'], 'native AsyncLocalStorage#run'],
  ['listener bound to the request (bind + call)', 'boundListener', ['ambient', 'AsyncResource'], 'a new AsyncResource and runInAsyncScope() per listener'],
  ['access line, per line', 'accessLine', ['ambient', 'pino'], 'pino with the ids from a native store (mixin)'],
  ['field set', 'fieldSet', ['ambient', 'js'], 'Map#set on a native AsyncLocalStorage store'],
  ['field get', 'fieldGet', ['ambient', 'js'], 'Map#get on a native AsyncLocalStorage store'],
  ['ids and fields for a pino mixin, per line', 'contextFields', ['ambient', 'js'], 'spreading a native AsyncLocalStorage store\'s ids and Map of fields'],
  ['worker task hand-off (RequestContext.task)', 'taskHandOff', ['ambient', 'js'], 'the same ids and fields copied from a native store'],
  ['headers for a fetch made in a request', 'fetchPropagation', ['ambient', 'opentelemetry'], "OpenTelemetry's W3C propagator inject() and a request id header"],
  ['the same with baggage on the context', 'fetchPropagationBaggage', ['ambient', 'opentelemetry'], "OpenTelemetry's trace-context and baggage propagators' inject() and a request id header"],
  ['request id', 'requestId', ['ambient', 'crypto.randomUUID'], 'crypto.randomUUID() (v4)'],
  ['traceparent parse', 'traceparentParse', ['ambient', 'opentelemetry', 'traceparent'], '@opentelemetry/core parseTraceParent; traceparent package'],
  ['traceparent format', 'traceparentFormat', ['ambient', 'opentelemetry'], "OpenTelemetry's W3C propagator inject()"],
].map(([label, caseName, variants, peer]) => ({ label, caseName, file, variants, peer, args: (variant) => [caseName, variant] }))
  // --only run,accessLine measures those cases alone.
  .filter(({ caseName }) => options.only === null || options.only.split(',').includes(caseName));

const results = runRounds(options, scenarios);
const rows = [];
console.log('| Node | operation | ambient ns/op | compared with | its ns/op | ambient/it |');
console.log('|---|---|---:|---|---:|---:|');
for (const [version, medians] of results) {
  for (const { label, variants } of scenarios) {
    const ours = medians.get(`${label}|ambient`);
    for (const peer of variants.slice(1)) {
      const theirs = medians.get(`${label}|${peer}`);
      rows.push({ node: version, operation: label, ambient: ours, peer, peerNs: theirs, ratio: ours / theirs });
      console.log(`| ${version} | ${label} | ${ours.toFixed(1)} | ${peer === 'js' ? 'plain JS' : peer} | ${theirs.toFixed(1)} | ${(ours / theirs).toFixed(2)}× |`);
    }
  }
}
if (options.jsonOut) fs.writeFileSync(options.jsonOut, JSON.stringify({ rounds: options.rounds, results: rows }, null, 2));
