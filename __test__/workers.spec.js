'use strict';
// Handing a request context to worker threads: a plain Worker, a long-lived
// worker fed by postMessage, a piscina pool, and workers terminated abruptly.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { setTimeout: sleep } = require('node:timers/promises');
const { RequestContext } = require('..');

const fixture = (name) => path.join(__dirname, 'fixtures', name);

function once(worker, event) {
  return new Promise((resolve, reject) => {
    worker.once(event, resolve);
    if (event !== 'error') worker.once('error', reject);
  });
}

describe('worker threads', () => {
  it('a Worker started with RequestContext.task() runs in the same context and its writes reach the parent', async () => {
    await RequestContext.run({ fields: { user: 'ada' }, baggage: 'tenant=acme, bad member' }, async () => {
      const ctx = RequestContext.require();
      const worker = new Worker(fixture('context_worker.js'), {
        workerData: RequestContext.task({ reply: 'hello', add: { key: 'fromWorker', value: 42 } }),
      });
      // Listen for both now: 'message' and 'exit' can be emitted in the same
      // tick, before an await resumes.
      const exited = once(worker, 'exit');
      const result = await once(worker, 'message');
      await exited;
      assert.deepEqual(result, { reply: 'hello', requestId: ctx.requestId, traceId: ctx.traceId, spanId: ctx.spanId, parentSpanId: undefined, name: undefined, user: 'ada', baggage: 'tenant=acme' });
      assert.equal(ctx.get('fromWorker'), 42, 'a field set in the worker is visible to the parent');
    });
  });

  it('a long-lived worker serves tasks from many concurrent contexts, each in its own', async () => {
    const worker = new Worker(fixture('context_worker.js'));
    const pending = new Map();
    worker.on('message', (result) => pending.get(result.reply)(result));
    try {
      const ids = Array.from({ length: 100 }, (_, i) => i);
      await Promise.all(ids.map((i) => RequestContext.run({ fields: { user: `user-${i}` } }, async () => {
        await sleep(Math.random() * 5);
        const ctx = RequestContext.require();
        const reply = new Promise((resolve) => pending.set(`r${i}`, resolve));
        worker.postMessage(RequestContext.task({ reply: `r${i}`, add: { key: 'seenBy', value: 'worker' } }));
        const result = await reply;
        assert.equal(result.requestId, ctx.requestId);
        assert.equal(result.user, `user-${i}`);
        assert.equal(ctx.get('seenBy'), 'worker');
      })));
    } finally {
      await worker.terminate();
    }
  });

  it('a task sent from outside any context runs without one', async () => {
    const worker = new Worker(fixture('context_worker.js'), { workerData: RequestContext.task({ reply: 'none' }) });
    const error = await once(worker, 'error');
    assert.equal(error.code, 'ERR_AMBIENT_NO_CONTEXT');
  });

  it('works with a piscina pool', async () => {
    const { Piscina } = require('piscina');
    const pool = new Piscina({ filename: fixture('piscina_task.js'), maxThreads: 4 });
    try {
      const results = await Promise.all(Array.from({ length: 50 }, (_, n) => RequestContext.run({ fields: { user: `u${n}` } }, async () => {
        const ctx = RequestContext.require();
        const result = await pool.run(RequestContext.task({ n }));
        assert.deepEqual(result, { n, requestId: ctx.requestId, traceId: ctx.traceId, user: `u${n}` });
        assert.equal(ctx.get('computed'), n * 2);
        return result.requestId;
      })));
      assert.equal(new Set(results).size, 50);
    } finally {
      await pool.destroy();
    }
  });

  it('another thread sees this thread\'s open contexts in flight, and not its short ones', async () => {
    const open = RequestContext.begin({ name: 'long request' });
    const short = RequestContext.begin({ name: 'short request' });
    short.end();
    // Published within 10 ms of the begin, without this thread asking.
    await sleep(50);
    const worker = new Worker(`
      const { parentPort } = require('node:worker_threads');
      const { RequestContext } = require(${JSON.stringify(path.join(__dirname, '..'))});
      parentPort.postMessage(RequestContext.inFlight({ limit: 10000 }).map((c) => ({ id: c.id, requestId: c.requestId, name: c.name })));
    `, { eval: true });
    const exited = once(worker, 'exit');
    const listed = await once(worker, 'message');
    await exited;
    assert.deepEqual(listed.filter((c) => c.id === open.id), [{ id: open.id, requestId: open.requestId, name: 'long request' }]);
    assert.equal(listed.some((c) => c.id === short.id), false);
    open.end();
  });

  for (const [how, ends] of [['is terminated', 'terminate'], ['exits on its own', 'exit']]) {
    it(`a worker that ${how} with contexts still open leaves none in flight: they end as abandoned`, async () => {
      const worker = new Worker(`
        const { parentPort, workerData } = require('node:worker_threads');
        const { RequestContext } = require(${JSON.stringify(path.join(__dirname, '..'))});
        const open = Array.from({ length: 20 }, (_, i) => {
          const ctx = RequestContext.begin({ name: 'left open' });
          // Half get a record at once; the others once listed, 10 ms on.
          if (i % 2) ctx.set('i', i);
          return ctx;
        });
        const child = open[0].child({ name: 'left open' });
        RequestContext.begin({ name: 'ended in time' }).end();
        setTimeout(() => {
          parentPort.postMessage({ token: open[1].toToken(), ids: [...open, child].map((c) => c.id) });
          if (workerData.ends === 'exit') parentPort.once('message', () => process.exit(0));
          else setInterval(() => {}, 1000);
        }, 50);
      `, { eval: true, workerData: { ends } });
      const exited = once(worker, 'exit');
      const { token, ids } = await once(worker, 'message');
      const listed = () => RequestContext.inFlight({ limit: 100000 }).filter((c) => ids.includes(c.id)).length;
      assert.equal(listed(), 21, 'listed while the worker runs');
      // This thread holds one of them too: it stays readable once abandoned.
      const held = RequestContext.fromToken(token);
      const openBefore = RequestContext.stats().open;
      if (ends === 'terminate') await worker.terminate();
      else worker.postMessage('exit');
      await exited;
      assert.equal(listed(), 0, 'none listed once the worker is gone');
      assert.equal(RequestContext.stats().open, openBefore - 21);
      assert.equal(held.get('i'), 1);
      assert.equal(held.end('ok').status, 'abandoned', 'the outcome that stands');
    });
  }

  it('busy workers terminated mid-stream leave stats().open as it was', async () => {
    // Short requests begun and ended in JS alone, some open and some with
    // their counts not yet sent when terminate() comes; some get a record.
    const source = `
      const { parentPort } = require('node:worker_threads');
      const { RequestContext } = require(${JSON.stringify(path.join(__dirname, '..'))});
      setInterval(() => {
        for (let i = 0; i < 20; i++) {
          const ctx = RequestContext.begin();
          if (i === 0) ctx.set('recorded', true);
          setTimeout(() => ctx.end(), Math.random() * 8);
        }
      }, 1);
      setTimeout(() => parentPort.postMessage('busy'), 30 + Math.random() * 50);
    `;
    const before = RequestContext.stats();
    for (let round = 0; round < 6; round++) {
      const worker = new Worker(source, { eval: true });
      await once(worker, 'message');
      await worker.terminate();
    }
    const after = RequestContext.stats();
    assert.ok(after.created - before.created > 1000, `${after.created - before.created} contexts counted as begun`);
    assert.deepEqual({ open: after.open, live: after.live }, { open: before.open, live: before.live });
  });

  it('rejects a token that is not one', () => {
    assert.throws(() => RequestContext.fromToken({ id: 1 }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => RequestContext.fromToken(null), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => RequestContext.fromToken({ type: 'ambient.context/v1', id: 2 ** 50, requestId: 'r', spanId: 's' }), { code: 'ERR_AMBIENT_CONTEXT_RELEASED' });
    assert.throws(() => RequestContext.runWithToken({ id: 1 }, () => 1), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('tasks handled after their request ended run in a follow-up of it, among tasks handled while theirs is open', async () => {
    const worker = new Worker(fixture('context_worker.js'));
    const pending = new Map();
    worker.on('message', (result) => pending.get(result.reply)(result));
    try {
      const outcomes = await Promise.all(Array.from({ length: 80 }, async (_, i) => {
        // Even ones wait for their task; odd ones respond first, and the
        // worker takes their task only after they ended.
        const waits = i % 2 === 0;
        const reply = new Promise((resolve) => pending.set(`t${i}`, resolve));
        const request = await RequestContext.run({ fields: { user: `user-${i}` } }, async () => {
          await sleep(Math.random() * 5);
          const ctx = RequestContext.require();
          worker.postMessage(RequestContext.task({ reply: `t${i}`, delayMs: waits ? Math.random() * 5 : 20 + Math.random() * 10 }));
          if (waits) await reply;
          return { requestId: ctx.requestId, traceId: ctx.traceId, spanId: ctx.spanId, ended: () => ctx.ended };
        });
        assert.equal(request.ended(), true);
        return { waits, request, result: await reply, user: `user-${i}` };
      }));
      for (const { waits, request, result, user } of outcomes) {
        assert.equal(result.requestId, request.requestId);
        assert.equal(result.traceId, request.traceId);
        assert.equal(result.user, user, 'the fields it had when the task was made');
        if (waits) {
          assert.equal(result.spanId, request.spanId, 'the request\'s own context');
        } else {
          assert.notEqual(result.spanId, request.spanId, 'a span of its own');
          assert.equal(result.parentSpanId, request.spanId, 'whose parent is the request\'s span');
          assert.equal(result.name, 'follow-up');
        }
      }
    } finally {
      await worker.terminate();
    }
  });

  it('a task whose context was released, or whose token names another context, runs in a follow-up', async () => {
    const { setFlagsFromString } = require('node:v8');
    setFlagsFromString('--expose-gc');
    const gc = require('node:vm').runInNewContext('gc');
    const made = (() => {
      const ctx = RequestContext.begin({ requestId: 'queued-1', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'rojo=00f067aa0ba902b7', baggage: 'tenant=acme;p=1', fields: { user: 'ada' } });
      const task = ctx.run(() => RequestContext.task({ reply: 'late' }));
      ctx.end();
      return { task, spanId: ctx.spanId };
    })();
    // Released once the parent's object is collected.
    for (let i = 0; i < 50; i++) {
      gc();
      await sleep(10);
      try {
        RequestContext.fromToken(made.task.context);
      } catch (err) {
        if (err.code === 'ERR_AMBIENT_CONTEXT_RELEASED') break;
        throw err;
      }
    }
    assert.throws(() => RequestContext.fromToken(made.task.context), { code: 'ERR_AMBIENT_CONTEXT_RELEASED' });

    const worker = new Worker(fixture('context_worker.js'), { workerData: made.task });
    const result = await once(worker, 'message');
    await worker.terminate();
    assert.equal(result.requestId, 'queued-1');
    assert.equal(result.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(result.parentSpanId, made.spanId);
    assert.equal(result.user, 'ada');
    assert.equal(result.baggage, 'tenant=acme;p=1', 'outgoing calls from the follow-up carry the baggage');

    // In this thread: the follow-up carries the trace's state and ends with fn.
    const followUp = RequestContext.runWithToken(made.task.context, () => RequestContext.require());
    assert.equal(followUp.ended, true);
    assert.equal(followUp.tracestate, 'rojo=00f067aa0ba902b7');
    assert.deepEqual(followUp.baggage, { tenant: 'acme' });
    assert.equal(followUp.traceFlags, 1);

    // A token from another process names whatever context has its id here.
    const other = RequestContext.begin({ requestId: 'this-process' });
    const foreign = { ...other.toToken(), requestId: 'other-process', spanId: '1111111111111111', fields: {} };
    assert.throws(() => RequestContext.fromToken(foreign), { code: 'ERR_AMBIENT_CONTEXT_RELEASED', message: /not the token's/ });
    const ran = RequestContext.runWithToken(foreign, () => RequestContext.require());
    assert.equal(ran.requestId, 'other-process');
    assert.equal(ran.parentSpanId, '1111111111111111');
    assert.equal(other.fields().user, undefined);
    other.end();
  });
});

function checkParentsIntact(contexts) {
  for (const ctx of contexts) {
    assert.equal(ctx.get('owner'), 'parent');
    assert.ok(Object.keys(ctx.fields()).filter((k) => k.startsWith('w')).length > 0);
    assert.equal(ctx.ended, false);
  }
}

describe('stress: 32 workers terminated while they read and write', () => {
  it('no crash, no leaked handle, and the parent records stay intact', async () => {
    const { setFlagsFromString } = require('node:v8');
    setFlagsFromString('--expose-gc');
    const gc = require('node:vm').runInNewContext('gc');
    const native = require('../lib/native');
    const contexts = Array.from({ length: 8 }, (_, i) => RequestContext.begin({ name: `parent-${i}`, fields: { owner: 'parent' } }));
    const tokens = contexts.map((ctx) => ctx.toToken());
    const workers = Array.from({ length: 32 }, (_, index) => new Worker(fixture('stress_worker.js'), { workerData: { tokens, index } }));
    const errors = [];
    workers.forEach((w) => w.on('error', (err) => errors.push(err)));
    await Promise.all(workers.map((w) => once(w, 'message')));
    // Terminate at random moments while they run.
    await Promise.all(workers.map(async (w) => {
      await sleep(Math.random() * 100);
      await w.terminate();
    }));
    assert.deepEqual(errors, []);

    // The parent's records are intact and readable, with the workers' writes.
    // (Checked in a plain function: a suspended async function may keep its
    // loop variables alive, which would hold a context object.)
    checkParentsIntact(contexts);
    // Every handle the terminated workers held was given back: once the
    // parent ends its contexts and drops them, nothing stays in memory.
    const ids = contexts.map((ctx) => ctx.id);
    contexts.forEach((ctx) => ctx.end());
    contexts.length = 0;
    tokens.length = 0;
    const stillInMemory = () => ids.filter((id) => {
      try {
        native.contextFields(id);
        return true;
      } catch {
        return false;
      }
    });
    for (let i = 0; i < 50 && stillInMemory().length > 0; i++) {
      gc();
      await sleep(20);
    }
    assert.deepEqual(stillInMemory(), [], 'records still held after every worker was terminated');
  });
});

describe('workers terminated with deadlines still armed', () => {
  // The watchdog thread later reaches those contexts, to call their handler
  // or to free it, through a channel whose JS thread is gone. In a child
  // process: were that channel's freed function called, the process would
  // abort, and take the test runner with it.
  it('no crash when their deadlines come due, and the main thread\'s still fire', async () => {
    const { spawn } = require('node:child_process');
    const child = spawn(process.execPath, [fixture('deadlines_in_terminated_workers.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const [code, signal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])));
    assert.deepEqual({ code, signal, stdout }, { code: 0, signal: null, stdout: 'survived DeadlineExceededError\n' }, stderr);
  });
});
