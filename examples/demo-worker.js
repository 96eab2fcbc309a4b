'use strict';
// The demo's worker thread: prices an order inside the request context that
// service A handed over, and logs with that request's id.
const { parentPort } = require('node:worker_threads');
const { RequestContext, createLogger } = require('..');

const log = createLogger({ pretty: !process.argv.includes('--json'), base: null, sync: true }).child({ service: 'worker' });

parentPort.on('message', RequestContext.handleTask(({ id, reply }) => {
  // A little CPU work, the reason it runs in a worker.
  let price = 0;
  for (let i = 0; i < 200_000; i++) price = (price + id * i) % 997;
  RequestContext.require().set('pricedBy', 'worker');
  log.info({ id, price }, 'priced in the worker');
  parentPort.postMessage({ reply, result: price });
}));
