'use strict';
// 1,000 interleaved contexts, each walking every async primitive in its own
// random order with random delays. Every context carries three variables (an
// ambient AsyncLocalStorage, an AsyncContext.Variable and a native
// AsyncLocalStorage) and checks all of them after each step.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const asyncHooks = require('node:async_hooks');
const dc = require('node:diagnostics_channel');
const events = require('node:events');
const fs = require('node:fs');
const http = require('node:http');
const stream = require('node:stream');
const { MessageChannel, Worker } = require('node:worker_threads');
const { AsyncLocalStorage, AsyncContext, AsyncResource } = require('..');

const CONTEXTS = 1000;
const seed = Number(process.env.AMBIENT_TEST_SEED ?? Date.now() % 2 ** 31);

// mulberry32: small seeded PRNG so a failing interleaving can be replayed.
function prng(a) {
  return () => {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(seed);
const delay = () => Math.floor(random() * 4);

const requestStore = new AsyncLocalStorage({ name: 'request' });
const tenant = new AsyncContext.Variable({ name: 'tenant', defaultValue: 'none' });
const nativeStore = new asyncHooks.AsyncLocalStorage();
const spanChannel = dc.channel('ambient.isolation.span');
const spanStore = new AsyncLocalStorage({ name: 'span' });
spanChannel.bindStore(spanStore, (id) => `span-${id}`);

let server;
let agent;
let port;

function check(id, step) {
  const got = [requestStore.getStore(), tenant.get(), nativeStore.getStore()];
  assert.deepEqual(got, [id, `tenant-${id}`, id], `context ${id} after ${step} (seed ${seed})`);
}

const steps = {
  setTimeout: () => new Promise((resolve) => setTimeout(resolve, delay())),
  setImmediate: () => new Promise((resolve) => setImmediate(resolve)),
  nextTick: () => new Promise((resolve) => process.nextTick(resolve)),
  queueMicrotask: () => new Promise((resolve) => queueMicrotask(resolve)),
  fs: () => new Promise((resolve, reject) => fs.stat(__filename, (err) => (err ? reject(err) : resolve()))),
  fsPromises: () => fs.promises.readFile(__filename),
  http: (id) => new Promise((resolve, reject) => {
    const req = http.get({ port, host: '127.0.0.1', agent, path: `/${id}` }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => {
        try {
          check(id, 'http response end');
          assert.equal(body, `server saw ${id}`);
          resolve();
        } catch (err) { reject(err); }
      });
    });
    req.on('error', reject);
  }),
  streamFinished: (id) => new Promise((resolve, reject) => {
    const s = new stream.PassThrough();
    stream.finished(s, (err) => {
      // Node 20 calls back in the context of whoever ended the stream; it is
      // ended from this context below, so the check holds on every major.
      try { check(id, 'stream.finished callback'); resolve(err); } catch (e) { reject(e); }
    });
    s.resume();
    setTimeout(() => s.end('x'), delay());
  }),
  thenable: () => ({ then(resolve) { setTimeout(resolve, delay()); } }),
  asyncGenerator: async (id) => {
    async function* produce() {
      for (let i = 0; i < 3; i++) {
        await new Promise((resolve) => setTimeout(resolve, delay()));
        check(id, 'async generator body');
        yield i;
      }
    }
    for await (const _ of produce()) check(id, 'for await body');
  },
  eventEmitterAsyncResource: (id) => new Promise((resolve, reject) => {
    const emitter = new events.EventEmitterAsyncResource({ name: 'IsolationProbe' });
    emitter.once('ping', () => {
      try { check(id, 'EventEmitterAsyncResource listener'); resolve(); } catch (e) { reject(e); }
      emitter.emitDestroy();
    });
    // Emitted from outside any context: the listener must still see ours.
    requestStore.exit(() => nativeStore.exit(() => setTimeout(() => emitter.emit('ping'), delay())));
  }),
  asyncResource: (id) => new Promise((resolve, reject) => {
    const resource = new AsyncResource('IsolationQuery');
    requestStore.exit(() => setTimeout(() => resource.runInAsyncScope(() => {
      try { check(id, 'AsyncResource.runInAsyncScope'); resolve(); } catch (e) { reject(e); }
    }), delay()));
  }),
  messagePort: (id) => new Promise((resolve, reject) => {
    const { port1, port2 } = new MessageChannel();
    port1.once('message', (msg) => {
      port1.close();
      try { check(id, 'MessagePort message'); assert.equal(msg, id); resolve(); } catch (e) { reject(e); }
    });
    setTimeout(() => port2.postMessage(id), delay());
  }),
  diagnosticsChannel: (id) => {
    spanChannel.runStores(id, () => {
      assert.equal(spanStore.getStore(), `span-${id}`);
      check(id, 'diagnostics_channel runStores');
    });
    assert.equal(spanStore.getStore(), undefined);
  },
  snapshot: (id) => new Promise((resolve, reject) => {
    const wrapped = AsyncContext.Snapshot.wrap(() => check(id, 'Snapshot.wrap'));
    tenant.run('someone else', () => setTimeout(() => {
      try { wrapped(); resolve(); } catch (e) { reject(e); }
    }, delay()));
  }),
};

// Worker threads are costly, so every 50th context also starts one.
function workerStep(id) {
  return new Promise((resolve, reject) => {
    const worker = new Worker('require("node:worker_threads").parentPort.postMessage("ready")', { eval: true });
    worker.once('message', () => {
      try { check(id, 'Worker message'); } catch (e) { reject(e); }
    });
    worker.once('error', reject);
    worker.once('exit', () => {
      try { check(id, 'Worker exit'); resolve(); } catch (e) { reject(e); }
    });
  });
}

function shuffled(list) {
  const copy = list.slice();
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

async function walk(id) {
  const order = shuffled(Object.keys(steps));
  await new Promise((resolve) => setTimeout(resolve, delay()));
  check(id, 'start');
  for (const name of order) {
    await steps[name](id);
    check(id, name);
  }
  if (id % 50 === 0) {
    await workerStep(id);
    check(id, 'worker');
  }
  return id;
}

describe(`isolation of ${CONTEXTS} interleaved contexts (seed ${seed})`, () => {
  before(async () => {
    agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    server = http.createServer((req, res) => {
      // A random delay per request so responses come back out of order.
      setTimeout(() => res.end(`server saw ${req.url.slice(1)}`), delay());
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = server.address().port;
  });

  after(() => {
    agent.destroy();
    server.close();
  });

  it('every context sees only its own values after every step', async () => {
    const ids = Array.from({ length: CONTEXTS }, (_, i) => i);
    const finished = await Promise.all(ids.map((id) => requestStore.run(id, () =>
      tenant.run(`tenant-${id}`, () => nativeStore.run(id, () => walk(id))))));
    assert.deepEqual(finished, ids);
    assert.equal(requestStore.getStore(), undefined);
    assert.equal(tenant.get(), 'none');
    assert.equal(nativeStore.getStore(), undefined);
  });
});
