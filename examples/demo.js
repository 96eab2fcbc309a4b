'use strict';
// The demo: two Express services on loopback. Service A handles /orders/:id:
// it awaits a timer, calls service B over HTTP, and hands a task to a worker
// thread. A burst of concurrent requests hits A, and every log line, from A,
// from B and from the worker, carries its own request's id and trace.
const http = require('node:http');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { setTimeout: sleep } = require('node:timers/promises');
const express = require('express');
const ambient = require('..');

const { RequestContext, createLogger } = ambient;

if (require.main === module) main();

function startWorker() {
  const worker = new Worker(path.join(__dirname, 'demo-worker.js'));
  const pending = new Map();
  let next = 0;
  worker.on('message', ({ reply, result }) => {
    pending.get(reply)(result);
    pending.delete(reply);
  });
  worker.unref();
  return {
    run(data) {
      const reply = next++;
      return new Promise((resolve) => {
        pending.set(reply, resolve);
        worker.postMessage(RequestContext.task({ ...data, reply }));
      });
    },
    stop: () => worker.terminate(),
  };
}

function listen(app) {
  return new Promise((resolve) => {
    const server = http.createServer(app).listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function startServices(log) {
  const worker = startWorker();
  const b = express();
  b.use(ambient.middleware({ logger: log.child({ service: 'B' }) }));
  b.get('/stock/:id', async (req, res) => {
    await sleep(Math.random() * 15);
    log.child({ service: 'B' }).info({ item: req.params.id }, 'checked stock');
    res.json({ inStock: Number(req.params.id) % 3 !== 0 });
  });
  const serverB = await listen(b);
  const bUrl = `http://127.0.0.1:${serverB.address().port}`;

  const a = express();
  const logA = log.child({ service: 'A' });
  a.use(ambient.middleware({ logger: logA }));
  a.get('/orders/:id', async (req, res) => {
    const ctx = RequestContext.require();
    ctx.set('orderId', req.params.id);
    logA.info('loading order');
    await sleep(Math.random() * 20);
    const stock = await fetch(`${bUrl}/stock/${req.params.id}`).then((r) => r.json());
    const price = await worker.run({ id: Number(req.params.id) });
    setTimeout(() => logA.info({ price, ...stock }, 'order ready'), Math.random() * 10);
    await sleep(15);
    res.json({ id: req.params.id, price, ...stock });
  });
  const serverA = await listen(a);
  return {
    aPort: serverA.address().port,
    close: async () => {
      serverA.close();
      serverB.close();
      await worker.stop();
    },
  };
}

async function main() {
  const pretty = !process.argv.includes('--json');
  const log = createLogger({ pretty, base: null, sync: true });
  ambient.enableOutgoingPropagation();
  const services = await startServices(log);
  const burst = 8;
  log.info(`firing ${burst} concurrent requests at service A`);
  const replies = await Promise.all(Array.from({ length: burst }, (_, i) =>
    fetch(`http://127.0.0.1:${services.aPort}/orders/${100 + i}`, { headers: { 'x-request-id': `demo-${i}` } })
      .then(async (r) => ({ requestId: r.headers.get('x-request-id'), body: await r.json() }))));
  await services.close();
  ambient.disableOutgoingPropagation();
  const ok = replies.every((r, i) => r.requestId === `demo-${i}` && r.body.id === String(100 + i));
  log.info(`${replies.length} replies, each under its own request id: ${ok}`);
  if (!ok) process.exitCode = 1;
}

module.exports = { startServices };
