'use strict';
// One logger throughput measurement in a fresh process: LINES lines with the
// same message and 4 context fields, then a flush. Prints {"linesPerSec": N}.
// Usage: node logger-case.js <ambient|pino> <destination path> [lines]
const { AsyncLocalStorage } = require('node:async_hooks');
const path = require('node:path');

const [variant, destination, linesArg] = process.argv.slice(2);
const lines = Number(linesArg ?? 200_000);
// Four context fields per line: requestId, traceId, spanId and tenant.
const fields = { tenant: 'acme' };

async function ambientRun() {
  const { createLogger, RequestContext } = require(path.join(__dirname, '..'));
  const log = createLogger({ destination });
  const loop = (n) => RequestContext.run({ requestId: 'req-1', fields }, () => {
    for (let i = 0; i < n; i++) log.info('request handled');
  });
  loop(10_000);
  await log.flush();
  const start = process.hrtime.bigint();
  loop(lines);
  await log.flush();
  return Number(process.hrtime.bigint() - start);
}

async function pinoRun() {
  const pino = require('pino');
  // The same four context fields, from a native store through pino's mixin.
  const store = new AsyncLocalStorage();
  const dest = pino.destination({ dest: destination, sync: false, minLength: 4096 });
  // The file opens asynchronously; 'ready' may have fired already.
  if (dest.fd < 0) await new Promise((resolve) => dest.once('ready', resolve));
  const log = pino({ mixin: () => store.getStore() }, dest);
  const ctx = { requestId: 'req-1', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', ...fields };
  const loop = (n) => store.run(ctx, () => {
    for (let i = 0; i < n; i++) log.info('request handled');
  });
  // Waits until sonic-boom has written everything it buffered (flush()
  // would also fsync, which /dev/null refuses; flushSync() can hang while an
  // asynchronous write is in flight).
  const drained = () => new Promise((resolve) => {
    const check = () => (dest._writing || dest._len > 0 ? setTimeout(check, 1) : resolve());
    check();
  });
  loop(10_000);
  await drained();
  const start = process.hrtime.bigint();
  loop(lines);
  await drained();
  return Number(process.hrtime.bigint() - start);
}

(variant === 'ambient' ? ambientRun() : pinoRun()).then((ns) => {
  process.stdout.write(JSON.stringify({ linesPerSec: lines / (ns / 1e9) }) + '\n');
  process.exit(0);
});
