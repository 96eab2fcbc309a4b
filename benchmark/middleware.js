'use strict';
// What each Express variant's request logging costs in CPU per request,
// measured in-process: the Express app of express-server.js handles
// requests made of a real IncomingMessage and ServerResponse over a socket
// stand-in that discards what is written, so no HTTP parsing, no kernel and
// no load generator is in the figure. The loopback benchmark (express.js)
// measures req/s, which on this two-core machine also carries the cost of
// waking the load generator; this one isolates what the middleware itself
// costs, which that benchmark cannot resolve from its noise.
//
// Each measurement is a fresh process; the variants alternate within a
// round and the order flips every other round (harness.js). Requests go in
// waves of 50 at once, the event loop turning between waves (so batched
// writes, finalizers and the peers' async streams run as in a server). CPU
// time covers every thread of the process, log writers included.
//
// Usage: node benchmark/middleware.js [--rounds N] [--node PATH ...]
//          [--variants a,b] [--json out.json]
//        node benchmark/middleware.js --child <variant>   (one measurement;
//          it also prints the bytes allocated per request, on Node 26)
const http = require('node:http');
const { Writable } = require('node:stream');
const { median, parseArgs, runRounds } = require('./harness');
const { helloApp, variantsFrom, COMPARED } = require('./express-variants');

const WAVE = 50;
const WARMUP = 20_000;
const REQUESTS = 60_000;

function child(variant) {
  const app = helloApp(variant);

  // One request through the app; resolves once the response closed, as
  // node:http's server does it (detach on 'finish', then 'close').
  function oneRequest(i) {
    return new Promise((resolve) => {
      const socket = new Writable({ write(chunk, encoding, cb) { cb(); }, writev(chunks, cb) { cb(); } });
      const req = new http.IncomingMessage(socket);
      req.method = 'GET';
      req.url = '/';
      req.httpVersion = '1.1';
      // Every other request brings its own id.
      req.headers = { host: '127.0.0.1', 'user-agent': 'ambient-bench', accept: '*/*' };
      if (i % 2) req.headers['x-request-id'] = `req-${i}`;
      req.complete = true;
      req.push(null);
      const res = new http.ServerResponse(req);
      res.assignSocket(socket);
      res.once('finish', () => {
        res.detachSocket(socket);
        process.nextTick(() => {
          res.emit('close');
          resolve();
        });
      });
      app(req, res);
    });
  }

  async function run(count) {
    for (let done = 0; done < count; done += WAVE) {
      const wave = [];
      for (let i = 0; i < WAVE; i++) wave.push(oneRequest(done + i));
      await Promise.all(wave);
      await new Promise(setImmediate);
    }
  }

  (async () => {
    await run(WARMUP);
    const allocated = () => require('node:v8').getHeapStatistics().total_allocated_bytes;
    const bytesBefore = allocated();
    const cpu = process.cpuUsage();
    await run(REQUESTS);
    const used = process.cpuUsage(cpu);
    // total_allocated_bytes: Node 26 has it; 24 and older do not.
    const bytes = (allocated() - bytesBefore) / REQUESTS;
    console.log(JSON.stringify({ nsPerOp: ((used.user + used.system) * 1000) / REQUESTS, bytesPerOp: Number.isNaN(bytes) ? undefined : bytes }));
  })();
}

function main() {
  const argv = process.argv.slice(2);
  const options = parseArgs(argv);
  const variants = variantsFrom(argv, ['noop-layer', ...COMPARED]);
  // Bytes allocated per request (Node 26): unlike CPU time, the same in
  // every run, so it shows small differences that the noise hides.
  const allocated = new Map();
  const results = runRounds(options, [{ label: 'request', variants, file: __filename, args: (v) => ['--child', v] }],
    (node, key, sample) => {
      if (typeof sample.bytesPerOp !== 'number') return;
      const id = `${node}|${key}`;
      if (!allocated.has(id)) allocated.set(id, []);
      allocated.get(id).push(sample.bytesPerOp);
    });
  const rows = [];
  for (const [node, medians] of results) {
    const bare = medians.get('request|bare');
    const bytesOf = (variant) => {
      const samples = allocated.get(`${node}|request|${variant}`);
      return samples === undefined ? undefined : median(samples);
    };
    const bareBytes = bytesOf('bare');
    console.log(`\nNode ${node}, ${options.rounds} rounds of ${REQUESTS.toLocaleString('en-US')} requests, CPU per request in-process (median)\n`);
    console.log('| variant | CPU µs/request | above bare (µs) | above bare | bytes allocated above bare |');
    console.log('|---|---:|---:|---:|---:|');
    for (const variant of variants) {
      const us = medians.get(`request|${variant}`) / 1000;
      const extra = us - bare / 1000;
      const bytes = bytesOf(variant);
      const extraBytes = bytes === undefined || bareBytes === undefined ? undefined : bytes - bareBytes;
      rows.push({ node, variant, cpuUsPerRequest: us, extraUs: variant === 'bare' ? 0 : extra, bytesPerRequest: bytes, extraBytes });
      const bytesCell = variant === 'bare' ? (bytes === undefined ? 'n/a' : `(${Math.round(bytes)} in all)`) :
        extraBytes === undefined ? 'n/a' : String(Math.round(extraBytes));
      console.log(`| ${variant} | ${us.toFixed(2)} | ${variant === 'bare' ? '' : extra.toFixed(2)} | ` +
        `${variant === 'bare' ? '' : `${((extra / (bare / 1000)) * 100).toFixed(1)}%`} | ${bytesCell} |`);
    }
  }
  if (options.jsonOut) require('node:fs').writeFileSync(options.jsonOut, JSON.stringify({ rounds: options.rounds, rows }, null, 2));
}

if (process.argv[2] === '--child') child(process.argv[3]);
else main();
