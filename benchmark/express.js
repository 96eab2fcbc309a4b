'use strict';
// Express throughput under autocannon on loopback: bare Express against
// ambient's middleware and the peers, each server a fresh process, the
// variants alternating within each round. Reports the median req/s and the
// overhead (1 - req/s / bare req/s).
// Usage: node benchmark/express.js [--rounds N] [--seconds S] [--connections C] [--variants a,b] [--json out.json]
const { spawn } = require('node:child_process');
const path = require('node:path');
const autocannon = require('autocannon');
const fs = require('node:fs');
const { median } = require('./harness');

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const rounds = option('--rounds', 5);
const seconds = option('--seconds', 8);
const connections = option('--connections', 50);
const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : null;
// --variants a,b,c picks others, e.g. the diagnostic ones in express-server.js.
const variants = args.includes('--variants') ?
  args[args.indexOf('--variants') + 1].split(',') :
  ['bare', 'ambient', 'pino-http', 'cls-rtracer + pino', 'express-http-context + winston', 'morgan'];

function startServer(variant) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'express-server.js'), variant], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.once('error', reject);
    child.stdout.once('data', (d) => resolve({ child, port: Number(String(d).trim()) }));
  });
}

async function measure(variant) {
  const { child, port } = await startServer(variant);
  try {
    const url = `http://127.0.0.1:${port}/`;
    await autocannon({ url, connections, duration: 2 }); // warm-up
    const result = await autocannon({ url, connections, duration: seconds });
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`${variant}: ${result.non2xx} non-2xx, ${result.errors} errors`);
    return result.requests.average;
  } finally {
    child.kill();
  }
}

async function main() {
  const samples = Object.fromEntries(variants.map((v) => [v, []]));
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...variants].reverse() : variants;
    for (const variant of order) samples[variant].push(await measure(variant));
    process.stderr.write(`round ${round + 1}/${rounds} done\n`);
  }
  const bare = median(samples.bare);
  console.log(`Node ${process.version}, ${connections} connections, ${seconds} s per run, median of ${rounds} rounds`);
  console.log('');
  console.log('| variant | req/s | overhead vs bare |');
  console.log('|---|---:|---:|');
  for (const variant of variants) {
    const rps = median(samples[variant]);
    console.log(`| ${variant} | ${Math.round(rps).toLocaleString('en-US')} | ${variant === 'bare' ? '' : `${((1 - rps / bare) * 100).toFixed(1)}%`} |`);
  }
  console.log('');
  console.log(`raw: ${JSON.stringify(samples)}`);
  if (jsonOut) {
    const rows = variants.map((variant) => ({ variant, rps: median(samples[variant]), overhead: variant === 'bare' ? 0 : 1 - median(samples[variant]) / bare }));
    fs.writeFileSync(jsonOut, JSON.stringify({ node: process.version, connections, seconds, rounds, results: rows, samples }, null, 2));
  }
}
main();
