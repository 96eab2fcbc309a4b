'use strict';
// Where a context gets lost in real code, how it shows, and the fixes the
// README gives: a pool that runs queued callbacks from its own timer (lost;
// fixed by AsyncResource.bind or util.promisify), and enterWith() in an event
// handler (leaks into the next handler; run() does not). Many interleaved
// requests with random delays, so a fix that only worked for one would fail.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { EventEmitter } = require('node:events');
const { promisify } = require('node:util');
const { setTimeout: sleep } = require('node:timers/promises');
const { AsyncLocalStorage, AsyncResource, RequestContext } = require('..');

const REQUESTS = 50;
const jitter = () => sleep(Math.random() * 5);

// What a connection pool without async-context support does: queries wait in
// a queue that a timer made at start-up drains, so each callback runs in the
// timer's context, not in the request that queued it.
class Pool {
  #queue = [];
  #timer;

  constructor() {
    this.#timer = setInterval(() => this.#drain(), 1);
  }

  query(sql, callback) {
    this.#queue.push({ sql, callback });
  }

  #drain() {
    for (const { sql, callback } of this.#queue.splice(0)) callback(null, `rows for ${sql}`);
  }

  close() {
    clearInterval(this.#timer);
  }
}

function inRequests(fn) {
  return Promise.all(Array.from({ length: REQUESTS }, (_, i) => RequestContext.run({ requestId: `req-${i}` }, async () => {
    await jitter();
    return fn(i);
  })));
}

describe('context loss in a callback API, and its fixes', () => {
  const pool = new Pool();
  const store = new AsyncLocalStorage();

  it('a queued callback runs in the pool\'s context: the request is gone, and require() says so', async () => {
    const seen = await inRequests((i) => store.run(i, () => new Promise((resolve) => {
      pool.query(`q${i}`, () => {
        let error;
        try { RequestContext.require(); } catch (err) { error = err; }
        resolve({ request: RequestContext.current(), store: store.getStore(), code: error?.code });
      });
    })));
    for (const s of seen) assert.deepEqual(s, { request: undefined, store: undefined, code: 'ERR_AMBIENT_NO_CONTEXT' });
  });

  it('AsyncResource.bind() gives each callback back its own request', async () => {
    const seen = await inRequests((i) => store.run(i, () => new Promise((resolve) => {
      pool.query(`q${i}`, AsyncResource.bind((err, rows) => resolve([RequestContext.require().requestId, store.getStore(), rows])));
    })));
    seen.forEach((s, i) => assert.deepEqual(s, [`req-${i}`, i, `rows for q${i}`]));
  });

  it('util.promisify() does too, for the code after await', async () => {
    const query = promisify(pool.query.bind(pool));
    const seen = await inRequests(async (i) => store.run(i, async () => {
      const rows = await query(`q${i}`);
      await jitter();
      return [RequestContext.require().requestId, store.getStore(), rows];
    }));
    seen.forEach((s, i) => assert.deepEqual(s, [`req-${i}`, i, `rows for q${i}`]));
    pool.close();
  });
});

describe('enterWith() against run() in an event handler', () => {
  it('enterWith() leaks into the handlers after it; run() keeps each to its own', async () => {
    const store = new AsyncLocalStorage();
    const results = await Promise.all(Array.from({ length: REQUESTS }, async (_, i) => {
      await jitter();
      const emitter = new EventEmitter();
      const seen = {};
      emitter.on('leaky', () => store.enterWith(`set by handler ${i}`));
      emitter.on('leaky', () => { seen.leaky = store.getStore(); });
      emitter.on('scoped', () => store.run(`set by handler ${i}`, () => {}));
      emitter.on('scoped', () => { seen.scoped = store.getStore(); });
      store.run(`request ${i}`, () => {
        emitter.emit('scoped');
        emitter.emit('leaky');
        seen.afterEmit = store.getStore();
      });
      return seen;
    }));
    results.forEach((seen, i) => assert.deepEqual(seen, {
      scoped: `request ${i}`,
      leaky: `set by handler ${i}`,
      afterEmit: `set by handler ${i}`,
    }));
  });
});
