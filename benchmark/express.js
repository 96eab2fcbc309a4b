'use strict';
// Express throughput under autocannon on loopback: bare Express against
// ambient's middleware and the peers.
//
// This machine is shared: its speed drifts by tens of percent within
// minutes, and at times by 2x within seconds. So the variants
// take turns in short slots: every variant's server runs side by side (only
// the one under load does any work), and a cycle loads each in turn for
// --seconds (1 s), the order flipped every other cycle. Each variant's
// overhead is taken per cycle, against the bare slot of the same cycle (at
// most a few seconds away), and the median of those paired overheads is
// reported, so drift cancels out unless it is faster than a cycle. Each
// round starts every server afresh (its own JIT state) and warms it up;
// --rounds rounds (3) of --cycles cycles (15) give 45 pairs per variant.
//
// Besides req/s, the server's CPU time per request (all its threads,
// ambient's log writer included, from /proc) is reported: it does not depend
// on how quickly the load generator turns a response around. (Pinning the
// server and the load generator to a core each was tried: the server then
// idled part of the time, so it measured the load generator more than the
// server.)
//
// With --pipelining P, each connection keeps P requests in flight (as
// fastify's benchmarks run autocannon): the server then reads several
// requests per wake-up, so the kernel's cost of waking the load generator on
// the other core, which grows as the server slows, weighs less per request.
//
// Usage: node benchmark/express.js [--rounds N] [--cycles C] [--seconds S]
//          [--warmup W] [--connections C] [--pipelining P] [--variants a,b]
//          [--json out.json]
//        node benchmark/express.js --report out.json   (the tables again,
//          from a saved run's samples)
const { spawn } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const autocannon = require('autocannon');
const { median, quantile } = require('./harness');
const { variantsFrom } = require('./express-variants');

const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const rounds = option('--rounds', 3);
const cycles = option('--cycles', 15);
const seconds = option('--seconds', 1);
const warmup = option('--warmup', 2);
const connections = option('--connections', 50);
const pipelining = option('--pipelining', 1);
const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : null;
const variants = variantsFrom(args);

const TICKS_PER_SECOND = 100; // USER_HZ on Linux
// utime + stime of every thread of the process, in seconds; NaN off Linux.
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}

function startServer(variant) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'express-server.js'), variant], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.once('error', reject);
    // A server that dies before listening (a variant that throws) would
    // otherwise leave the run waiting for its port forever.
    child.once('exit', (code, signal) => reject(new Error(`${variant}: the server exited (${signal ?? code}) before listening`)));
    child.stdout.once('data', (d) => resolve({ child, port: Number(String(d).trim()) }));
  });
}

// One slot: `seconds` of load on one running server.
async function load(server) {
  const before = cpuSeconds(server.child.pid);
  const result = await autocannon({ url: server.url, connections, pipelining, duration: seconds });
  const cpu = cpuSeconds(server.child.pid) - before;
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${server.variant}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return { rps: result.requests.total / seconds, cpuUsPerRequest: (cpu * 1e6) / result.requests.total };
}

// One round: every variant's server started afresh and warmed up, then
// `cycles` cycles of one slot each.
async function round(index, samples) {
  const servers = [];
  try {
    for (const variant of variants) {
      const { child, port } = await startServer(variant);
      servers.push({ variant, child, url: `http://127.0.0.1:${port}/` });
    }
    for (const server of servers) await autocannon({ url: server.url, connections, pipelining, duration: warmup });
    for (let cycle = 0; cycle < cycles; cycle++) {
      const order = (index * cycles + cycle) % 2 ? [...servers].reverse() : servers;
      for (const server of order) samples[server.variant].push(await load(server));
    }
  } finally {
    for (const server of servers) server.child.kill();
  }
}

const percent = (x) => `${(x * 100).toFixed(1)}%`;

// The peers that log a request id in JSON: ambient's overhead is held
// against the cheapest of them.
const JSON_PEERS = ['pino-http', 'cls-rtracer + pino', 'express-http-context + winston'];

// Each variant's medians, its overheads paired per cycle with bare's slot.
function summarize(samples) {
  const bare = samples.bare;
  return Object.entries(samples).map(([variant, own]) => {
    const pairedOverhead = own.map((s, i) => 1 - s.rps / bare[i].rps);
    const pairedCpu = own.map((s, i) => s.cpuUsPerRequest / bare[i].cpuUsPerRequest - 1);
    return {
      variant,
      rps: median(own.map((s) => s.rps)),
      overhead: variant === 'bare' ? 0 : median(pairedOverhead),
      overheadQuartiles: variant === 'bare' ? [0, 0] : [quantile(pairedOverhead, 0.25), quantile(pairedOverhead, 0.75)],
      cpuUsPerRequest: median(own.map((s) => s.cpuUsPerRequest)),
      extraCpu: variant === 'bare' ? 0 : median(pairedCpu),
    };
  });
}

// Prints a run's tables and, when it has ambient and a JSON-logging peer,
// where ambient stands against the two targets. Returns the rows.
function report(run) {
  const rows = summarize(run.samples);
  const slots = run.rounds * run.cycles;
  console.log(`Node ${run.node}, ${run.connections} connections, pipelining ${run.pipelining}, ${run.rounds} rounds of ${run.cycles} cycles, ${run.seconds} s slots`);
  console.log('');
  console.log('| variant | req/s | overhead vs bare (interquartile range) | server CPU µs/request | extra CPU vs bare |');
  console.log('|---|---:|---:|---:|---:|');
  for (const row of rows) {
    const bareRow = row.variant === 'bare';
    const [q1, q3] = row.overheadQuartiles;
    console.log(`| ${row.variant} | ${Math.round(row.rps).toLocaleString('en-US')} | ${bareRow ? '' : `${percent(row.overhead)} (${percent(q1)} to ${percent(q3)})`} | ` +
      `${row.cpuUsPerRequest.toFixed(1)} | ${bareRow ? '' : percent(row.extraCpu)} |`);
  }
  console.log('');
  console.log(`req/s and µs/request are medians of the ${slots} slots; the two overheads are medians of each cycle's pair with bare.`);
  const ambient = rows.find((row) => row.variant === 'ambient');
  const peers = rows.filter((row) => JSON_PEERS.includes(row.variant));
  if (ambient !== undefined && peers.length > 0) {
    const cheapest = peers.reduce((a, b) => (b.overhead < a.overhead ? b : a));
    const cheapestByCpu = peers.reduce((a, b) => (b.extraCpu < a.extraCpu ? b : a));
    console.log(`ambient keeps ${percent(1 - ambient.overhead)} of bare req/s (target: at least 90%). ` +
      `Its overhead is ${(ambient.overhead / cheapest.overhead).toFixed(2)} of the cheapest JSON-logging peer's, ${cheapest.variant} (target: at most 0.5); ` +
      `by server CPU ${(ambient.extraCpu / cheapestByCpu.extraCpu).toFixed(2)} of ${cheapestByCpu.variant}'s.`);
  }
  return rows;
}

async function main() {
  const samples = Object.fromEntries(variants.map((v) => [v, []]));
  for (let index = 0; index < rounds; index++) {
    await round(index, samples);
    process.stderr.write(`round ${index + 1}/${rounds} done\n`);
  }
  const run = { node: process.version, connections, pipelining, seconds, rounds, cycles, warmup };
  const rows = report({ ...run, samples });
  console.log(`raw: ${JSON.stringify(samples)}`);
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ ...run, results: rows, samples }, null, 2));
}

const saved = args.includes('--report') ? args[args.indexOf('--report') + 1] : null;
if (saved !== null) report(JSON.parse(fs.readFileSync(saved, 'utf8')));
else main();
