'use strict';
// An ambient AsyncLocalStorage works wherever Node's does. Each scenario runs
// an ambient and a native instance side by side and expects both to see the
// same, correct store.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const asyncHooks = require('node:async_hooks');
const dc = require('node:diagnostics_channel');
const events = require('node:events');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const stream = require('node:stream');
const { MessageChannel, Worker } = require('node:worker_threads');
const { AsyncLocalStorage } = require('..');

const ours = new AsyncLocalStorage();
const theirs = new asyncHooks.AsyncLocalStorage();

function inBoth(value, fn) {
  return ours.run(value, () => theirs.run(value, fn));
}

function outsideBoth(fn) {
  return ours.exit(() => theirs.exit(fn));
}

// Records [label, ambient store, native store] so one assertion shows all.
function recorder() {
  const seen = [];
  const record = (label) => seen.push([label, ours.getStore(), theirs.getStore()]);
  return { seen, record };
}

const expectAll = (label, value) => [label, value, value];

describe('timers and microtasks', () => {
  it('setTimeout, setInterval, setImmediate, nextTick, queueMicrotask', async () => {
    const { seen, record } = recorder();
    await inBoth('ctx', () => new Promise((resolve) => {
      setTimeout(() => record('setTimeout'), 1);
      const interval = setInterval(() => { record('setInterval'); clearInterval(interval); }, 1);
      setImmediate(() => record('setImmediate'));
      process.nextTick(() => record('nextTick'));
      queueMicrotask(() => record('queueMicrotask'));
      setTimeout(resolve, 20);
    }));
    seen.sort((a, b) => a[0].localeCompare(b[0]));
    assert.deepEqual(seen, ['nextTick', 'queueMicrotask', 'setImmediate', 'setInterval', 'setTimeout']
      .map((label) => expectAll(label, 'ctx')));
  });

  it('timers/promises and the timer after an exit', async () => {
    const timers = require('node:timers/promises');
    const got = await inBoth('p', async () => {
      await timers.setTimeout(1);
      await timers.setImmediate();
      return [ours.getStore(), theirs.getStore()];
    });
    assert.deepEqual(got, ['p', 'p']);
  });
});

describe('fs', () => {
  it('callbacks and promises keep the caller context', async () => {
    const { seen, record } = recorder();
    await inBoth('fs', () => new Promise((resolve, reject) => {
      fs.readFile(__filename, (err) => {
        if (err) return reject(err);
        record('readFile');
        fs.stat(__filename, () => {
          record('stat');
          fs.promises.readFile(__filename).then(() => { record('promises.readFile'); resolve(); }, reject);
        });
      });
    }));
    assert.deepEqual(seen, ['readFile', 'stat', 'promises.readFile'].map((l) => expectAll(l, 'fs')));
  });
});

describe('net and http', () => {
  let server;
  let port;
  const serverSeen = [];

  before(async () => {
    server = inBoth('listen', () => http.createServer((req, res) => {
      serverSeen.push(['request', ours.getStore(), theirs.getStore()]);
      // A handler that enters its own context sees it in what it schedules;
      // req's own events come from the socket, so they see listen()'s context.
      inBoth(req.headers['x-id'], () => {
        const scheduled = new Promise((resolve) => setImmediate(() => resolve(`${ours.getStore()}|${theirs.getStore()}`)));
        req.resume();
        req.on('end', async () => {
          serverSeen.push(['req end', ours.getStore(), theirs.getStore()]);
          res.setHeader('x-seen', await scheduled);
          res.end('ok');
        });
      });
    }));
    await new Promise((resolve) => inBoth('listen', () => server.listen(0, '127.0.0.1', () => {
      serverSeen.push(['listening', ours.getStore(), theirs.getStore()]);
      resolve();
    })));
    port = server.address().port;
  });

  after(() => server.close());

  for (const [name, agent] of [['a fresh socket', false], ['the keep-alive agent', undefined]]) {
    it(`client callbacks keep the request's context (${name})`, async () => {
      const { seen, record } = recorder();
      for (const id of ['first', 'second']) {
        const header = await inBoth(id, () => new Promise((resolve, reject) => {
          const req = http.request({ port, host: '127.0.0.1', method: 'POST', agent, headers: { 'x-id': id } }, (res) => {
            record(`${id} response`);
            res.on('data', () => {});
            res.on('end', () => { record(`${id} end`); resolve(res.headers['x-seen']); });
          });
          req.on('error', reject);
          req.on('finish', () => record(`${id} finish`));
          req.end('body');
        }));
        assert.equal(header, `${id}|${id}`);
      }
      assert.deepEqual(seen, ['first finish', 'first response', 'first end', 'second finish', 'second response', 'second end']
        .map((l) => expectAll(l, l.split(' ')[0])));
    });
  }

  it('server callbacks run in the context of listen(), as Node does', () => {
    assert.ok(serverSeen.length >= 2);
    for (const entry of serverSeen) assert.deepEqual(entry.slice(1), ['listen', 'listen']);
  });

  it('net socket events keep the connecting context', async () => {
    const echo = net.createServer((socket) => socket.pipe(socket));
    await new Promise((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const { seen, record } = recorder();
    await inBoth('net', () => new Promise((resolve) => {
      const socket = net.connect(echo.address().port, '127.0.0.1', () => {
        record('connect');
        socket.end('ping');
      });
      socket.on('data', () => record('data'));
      socket.on('close', () => { record('close'); resolve(); });
    }));
    echo.close();
    assert.deepEqual(seen, ['connect', 'data', 'close'].map((l) => expectAll(l, 'net')));
  });
});

describe('streams', () => {
  it('stream.finished calls back in the context it was called in', async () => {
    const s = new stream.PassThrough();
    const got = await inBoth('finished', () => new Promise((resolve) => {
      stream.finished(s, () => resolve([ours.getStore(), theirs.getStore()]));
      s.resume();
      setTimeout(() => outsideBoth(() => s.end()), 1);
    }));
    // Node 20 calls back in the context of whatever ended the stream; Node 22+
    // binds the callback to the caller's context. ambient matches either way.
    const expected = Number(process.versions.node.split('.')[0]) >= 22 ? 'finished' : undefined;
    assert.deepEqual(got, [expected, expected]);
  });
});

describe('events', () => {
  it('EventEmitterAsyncResource runs listeners in the context it was created in', () => {
    const emitter = inBoth('created', () => new events.EventEmitterAsyncResource({ name: 'Probe' }));
    const { seen, record } = recorder();
    emitter.on('ping', () => record('listener'));
    inBoth('emitting', () => emitter.emit('ping'));
    assert.deepEqual(seen, [expectAll('listener', 'created')]);
    emitter.emitDestroy();
  });

  it('a plain EventEmitter runs listeners in the emitting context', () => {
    const emitter = inBoth('created', () => new events.EventEmitter());
    const { seen, record } = recorder();
    emitter.on('ping', () => record('listener'));
    inBoth('emitting', () => emitter.emit('ping'));
    assert.deepEqual(seen, [expectAll('listener', 'emitting')]);
  });
});

describe('promises, thenables and async generators', () => {
  it('a thenable resolved later keeps the awaiting context', async () => {
    const { seen, record } = recorder();
    await inBoth('thenable', async () => {
      await { then(resolve) { setTimeout(() => { record('then'); resolve(); }, 1); } };
      record('after await');
    });
    assert.deepEqual(seen, [expectAll('then', 'thenable'), expectAll('after await', 'thenable')]);
  });

  it('async generators keep the context in the body and the consumer', async () => {
    const { seen, record } = recorder();
    async function* numbers() {
      record('body');
      yield 1;
      await new Promise((resolve) => setTimeout(resolve, 1));
      record('after yield');
      yield 2;
    }
    await inBoth('gen', async () => {
      for await (const n of numbers()) record(`consumer ${n}`);
    });
    assert.deepEqual(seen, ['body', 'consumer 1', 'after yield', 'consumer 2'].map((l) => expectAll(l, 'gen')));
  });

  it('promise chains started in concurrent contexts stay separate', async () => {
    const [a, b] = await Promise.all(['A', 'B'].map((id) => inBoth(id, () => Promise.resolve()
      .then(() => new Promise((resolve) => setTimeout(resolve, id === 'A' ? 5 : 1)))
      .then(() => [ours.getStore(), theirs.getStore()]))));
    assert.deepEqual([a, b], [['A', 'A'], ['B', 'B']]);
  });
});

describe('workers and message ports', () => {
  it('MessagePort messages run in the context the channel was created in', async () => {
    const { port1, port2 } = inBoth('channel', () => new MessageChannel());
    const got = await new Promise((resolve) => {
      inBoth('listener', () => port1.once('message', () => {
        resolve([ours.getStore(), theirs.getStore()]);
        port1.close();
      }));
      port2.postMessage('hi');
    });
    assert.deepEqual(got, ['channel', 'channel']);
  });

  it('Worker events run in the context the worker was created in', async () => {
    const { seen, record } = recorder();
    await inBoth('worker', () => new Promise((resolve, reject) => {
      const worker = new Worker('require("node:worker_threads").parentPort.postMessage("up")', { eval: true });
      worker.on('message', () => record('message'));
      worker.on('error', reject);
      worker.on('exit', () => { record('exit'); resolve(); });
    }));
    assert.deepEqual(seen, ['message', 'exit'].map((l) => expectAll(l, 'worker')));
  });
});

describe('diagnostics_channel', () => {
  it('channel.bindStore + runStores enter the transformed store and restore it', () => {
    const channel = dc.channel('ambient.test.bindStore');
    channel.bindStore(ours, (data) => ({ fromChannel: data.id }));
    channel.bindStore(theirs, (data) => ({ fromChannel: data.id }));
    const published = [];
    const onMessage = () => published.push([ours.getStore(), theirs.getStore()]);
    channel.subscribe(onMessage);
    try {
      const result = inBoth('outer', () => {
        const inner = channel.runStores({ id: 7 }, function (x) {
          return [ours.getStore(), theirs.getStore(), this, x];
        }, 'thisArg', 'arg');
        assert.equal(ours.getStore(), 'outer');
        assert.equal(theirs.getStore(), 'outer');
        return inner;
      });
      assert.deepEqual(result, [{ fromChannel: 7 }, { fromChannel: 7 }, 'thisArg', 'arg']);
      assert.deepEqual(published, [[{ fromChannel: 7 }, { fromChannel: 7 }]]);
    } finally {
      channel.unsubscribe(onMessage);
      channel.unbindStore(ours);
      channel.unbindStore(theirs);
    }
  });

  it('TracingChannel traceSync and tracePromise bind stores on start', async () => {
    const tracing = dc.tracingChannel('ambient.test.tracing');
    tracing.start.bindStore(ours, (ctx) => `span:${ctx.op}`);
    const seenEnd = [];
    const handlers = { start() {}, end() {}, asyncStart() {}, asyncEnd() { seenEnd.push(ours.getStore()); }, error() {} };
    tracing.subscribe(handlers);
    try {
      const syncResult = ours.run('outer', () => {
        const r = tracing.traceSync(() => ours.getStore(), { op: 'sync' });
        assert.equal(ours.getStore(), 'outer');
        return r;
      });
      assert.equal(syncResult, 'span:sync');
      const asyncResult = await ours.run('outer', () => tracing.tracePromise(async () => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        return ours.getStore();
      }, { op: 'async' }));
      assert.equal(asyncResult, 'span:async');
    } finally {
      tracing.unsubscribe(handlers);
      tracing.start.unbindStore(ours);
    }
  });
});
