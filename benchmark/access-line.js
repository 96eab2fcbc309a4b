'use strict';
// What one access line costs the event loop's thread, and the process as a
// whole: ambient's middleware path (logger[WRITE_ACCESS], batched, the batch
// formatted on the writer thread) against pino (formatted on the calling
// thread, as pino-http does), to /dev/null. Lines come 25 at a time, the
// event loop turning between batches, at about 100,000 lines/s (a busy
// server), so the writer keeps up as it does in a server. The pause
// between batches is busy-waiting (a sleeping thread wakes with cold caches
// and costs a system call each time); its CPU is measured alone and taken
// out.
//
// CPU comes from process.threadCpuUsage() (the event loop's thread, Node
// >= 23.9) and process.cpuUsage() (every thread). Each measurement is a
// fresh process; variants alternate within a round (harness.js).
//
// Usage: node benchmark/access-line.js [--rounds N] [--node PATH ...]
//          [--variants ambient,ambient@DIR,pino] [--json out.json]
//        node benchmark/access-line.js --child <variant> <thread|process>
const path = require('node:path');
const { parseArgs, runRounds, variantList, checkoutOf } = require('./harness');

const BATCH = 25;
const LINES = 200_000;
const PAUSE_NS = 250_000n;

function pause() {
  const until = process.hrtime.bigint() + PAUSE_NS;
  while (process.hrtime.bigint() < until);
}

function ambientLines(root) {
  const ambient = require(root);
  const { WRITE_ACCESS, accessMessage } = require(path.join(root, 'lib', 'logger'));
  const log = ambient.createLogger({ destination: '/dev/null' });
  const message = accessMessage('request completed');
  return (count) => {
    const ctx = ambient.RequestContext.begin();
    for (let i = 0; i < count; i++) log[WRITE_ACCESS](ctx, 30, 'GET', '/users/:id', '/users/42?expand=1', 200, 1.234, 11, message);
    ctx.end();
  };
}

function pinoLines() {
  const pino = require('pino');
  const { AsyncLocalStorage } = require('node:async_hooks');
  const store = new AsyncLocalStorage();
  const log = pino({ mixin: () => store.getStore() }, pino.destination({ dest: '/dev/null', sync: false }));
  const line = { method: 'GET', route: '/users/:id', url: '/users/42?expand=1', status: 200, durationMs: 1.234, bytes: 11 };
  return (count) => store.run({ requestId: 'req-1', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' }, () => {
    for (let i = 0; i < count; i++) log.info(line, 'request completed');
  });
}

async function child(variant, scope) {
  if (typeof process.threadCpuUsage !== 'function') throw new Error('process.threadCpuUsage() needs Node >= 23.9');
  const lines = variant === 'pino' ? pinoLines() : ambientLines(checkoutOf(variant));
  const usage = scope === 'thread' ? process.threadCpuUsage : process.cpuUsage;
  const run = async (n) => {
    for (let done = 0; done < n; done += BATCH) {
      lines(BATCH);
      // The batch crosses here, at setImmediate, as in a server.
      await new Promise(setImmediate);
      pause();
    }
  };
  await run(LINES / 4);
  const idle = usage();
  for (let done = 0; done < LINES; done += BATCH) pause();
  const idleUsed = usage(idle);
  const before = usage();
  await run(LINES);
  const used = usage(before);
  const ns = (u) => (u.user + u.system) * 1000;
  console.log(JSON.stringify({ nsPerOp: (ns(used) - ns(idleUsed)) / LINES }));
}

function main() {
  const argv = process.argv.slice(2);
  const options = parseArgs(argv);
  const list = variantList(argv, ['ambient', 'pino']);
  const scenarios = ['thread', 'process'].map((scope) => ({
    label: scope, variants: list, file: __filename, args: (v) => ['--child', v, scope],
  }));
  const results = runRounds(options, scenarios);
  const rows = [];
  for (const [node, medians] of results) {
    console.log(`\nNode ${node}, ${options.rounds} rounds of ${LINES.toLocaleString('en-US')} access lines, ns of CPU per line (median)\n`);
    console.log('| variant | event loop thread | all threads |');
    console.log('|---|---:|---:|');
    for (const variant of list) {
      const thread = medians.get(`thread|${variant}`);
      const all = medians.get(`process|${variant}`);
      rows.push({ node, variant, threadNsPerLine: thread, processNsPerLine: all });
      console.log(`| ${variant} | ${Math.round(thread)} | ${Math.round(all)} |`);
    }
  }
  if (options.jsonOut) require('node:fs').writeFileSync(options.jsonOut, JSON.stringify({ rounds: options.rounds, rows }, null, 2));
}

if (process.argv[2] === '--child') child(process.argv[3], process.argv[4]);
else main();
