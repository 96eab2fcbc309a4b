'use strict';
// One logger throughput measurement in a fresh process: LINES lines with the
// same message and 4 context fields, then a flush. Prints {"linesPerSec": N}.
// Usage: node logger-case.js <ambient|pino> <destination path> [message|object] [lines]
// `object` logs the same object with each line as well (nested members, an
// array, a number, a boolean): the serializer's share.
const { AsyncLocalStorage } = require('node:async_hooks');
const path = require('node:path');

const [variant, destination, shape = 'message', linesArg] = process.argv.slice(2);
const lines = Number(linesArg ?? 200_000);
// Four context fields per line: requestId, traceId, spanId and tenant.
const fields = { tenant: 'acme' };
const logged = { order: { id: 'o-1042', items: ['sku-1', 'sku-7'], total: 42.5, paid: true }, user: 'u-17' };
const logLine = shape === 'object' ? (log) => log.info(logged, 'request handled') : (log) => log.info('request handled');

async function ambientRun() {
  const { createLogger, RequestContext } = require(path.join(__dirname, '..'));
  const log = createLogger({ destination });
  const loop = (n) => RequestContext.run({ requestId: 'req-1', fields }, () => {
    for (let i = 0; i < n; i++) logLine(log);
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
    for (let i = 0; i < n; i++) logLine(log);
  });
  // Waits until sonic-boom has written everything it buffered (flush()
  // would also fsync, which /dev/null refuses; flushSync() can hang while an
  // asynchronous write is in flight). Under minLength, the last bytes stay
  // buffered until a flush, so once no write is in flight they are written
  // with flushSync().
  const drained = () => new Promise((resolve) => {
    const check = () => {
      if (dest._writing) return setTimeout(check, 1);
      if (dest._len > 0) dest.flushSync();
      return resolve();
    };
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
