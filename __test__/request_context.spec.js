'use strict';
// RequestContext: the Rust-backed request-context store as JS sees it.
const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { performance } = require('node:perf_hooks');
const { setImmediate: tick, setTimeout: sleep } = require('node:timers/promises');
const { RequestContext, AsyncLocalStorage, traceContext, newRequestId } = require('..');
const native = require('../lib/native');

const SPEC_TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

afterEach(() => {
  RequestContext.configure({ maxFields: 64, maxKeyBytes: 128, maxValueBytes: 4096, maxTotalBytes: 16384, generateRequestId: null });
});

describe('running a context', () => {
  it('gives every context an id, a UUIDv7 request id and a new trace', async () => {
    const seen = await RequestContext.run(async () => {
      await tick();
      const ctx = RequestContext.require();
      assert.equal(RequestContext.current(), ctx);
      return ctx;
    });
    assert.match(seen.requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.match(seen.traceId, /^[0-9a-f]{32}$/);
    assert.match(seen.spanId, /^[0-9a-f]{16}$/);
    assert.equal(seen.parentSpanId, undefined);
    assert.equal(seen.traceFlags & 1, 1, 'new traces are sampled by default');
    assert.equal(seen.ended, true, 'run() ends the context when fn settles');
    assert.equal(RequestContext.current(), undefined);
  });

  it('fails fast outside a context with a clear error', () => {
    assert.equal(RequestContext.current(), undefined);
    assert.throws(() => RequestContext.require(), {
      code: 'ERR_AMBIENT_NO_CONTEXT',
      message: /outside a request context/,
    });
  });

  it('continues an incoming trace and its tracestate and baggage', () => {
    RequestContext.run({
      traceparent: SPEC_TRACEPARENT,
      tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
      baggage: 'userId=alice,serverNode=DF%2028;prop',
      requestId: 'req-123',
      name: 'GET /orders',
    }, () => {
      const ctx = RequestContext.require();
      assert.equal(ctx.requestId, 'req-123');
      assert.equal(ctx.name, 'GET /orders');
      assert.equal(ctx.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.equal(ctx.parentSpanId, '00f067aa0ba902b7');
      assert.notEqual(ctx.spanId, '00f067aa0ba902b7');
      assert.equal(ctx.tracestate, 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
      assert.deepEqual(ctx.baggage, { userId: 'alice', serverNode: 'DF 28' });
      assert.equal(ctx.traceparent, `00-4bf92f3577b34da6a3ce929d0e0e4736-${ctx.spanId}-01`);
      const outgoing = traceContext.parseTraceparent(ctx.outgoingTraceparent());
      assert.equal(outgoing.traceId, ctx.traceId);
      assert.notEqual(outgoing.parentId, ctx.spanId, 'an outgoing call gets a span of its own');
    });
  });

  it('gives outgoing calls the baggage as the codec normalized it, from roots and their scopes, and none without', () => {
    const raw = 'userId=alice, serverNode=DF%2028;prop, not a member, =nokey';
    const normalized = 'userId=alice,serverNode=DF%2028;prop';
    const ctx = RequestContext.begin({ baggage: raw });
    assert.equal(ctx.outgoingBaggage(), normalized);
    assert.equal(ctx.outgoingBaggage(), normalized, 'the same once formatted');
    assert.equal(ctx.child().outgoingBaggage(), normalized, 'a child scope carries the trace\'s baggage');
    assert.equal(ctx.independent().outgoingBaggage(), normalized, 'so does an independent scope');
    ctx.end();
    const plain = RequestContext.begin();
    assert.equal(plain.outgoingBaggage(), '');
    assert.equal(plain.child().outgoingBaggage(), '');
    plain.end();
    assert.equal(RequestContext.begin({ baggage: 'only, bad;;' }).outgoingBaggage(), '');
  });

  it('starts an unsampled trace when asked, and keeps an incoming trace\'s own decision', () => {
    const unsampled = RequestContext.begin({ sampled: false });
    assert.equal(unsampled.traceFlags & 1, 0);
    assert.match(unsampled.traceparent, /-0[02]$/);
    assert.equal(traceContext.parseTraceparent(unsampled.outgoingTraceparent()).traceFlags & 1, 0, 'outgoing calls carry the decision');
    assert.equal(unsampled.child().traceFlags & 1, 0, 'a child scope keeps it');
    unsampled.end();
    const continued = RequestContext.begin({ sampled: false, traceparent: SPEC_TRACEPARENT });
    assert.equal(continued.traceFlags & 1, 1, 'the caller\'s sampled flag stands');
    continued.end();
    const notSampledUpstream = RequestContext.begin({ sampled: true, traceparent: SPEC_TRACEPARENT.replace(/01$/, '00') });
    assert.equal(notSampledUpstream.traceFlags & 1, 0);
    notSampledUpstream.end();
  });

  it('starts a new trace on an invalid traceparent, never throwing, and drops its tracestate', () => {
    for (const bad of ['', 'garbage', '00-00000000000000000000000000000000-00f067aa0ba902b7-01', `${SPEC_TRACEPARENT}\r\nx: 1`]) {
      RequestContext.run({ traceparent: bad, tracestate: 'rojo=1' }, () => {
        const ctx = RequestContext.require();
        assert.notEqual(ctx.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
        assert.equal(ctx.parentSpanId, undefined);
        assert.equal(ctx.tracestate, '');
      });
    }
  });

  it('rejects bad options with Node-style errors', () => {
    assert.throws(() => RequestContext.run(null, () => {}), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => RequestContext.run({}, 'not a function'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => RequestContext.run({ requestId: 5 }, () => {}), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => RequestContext.run({ requestId: 'has space' }, () => {}), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => RequestContext.run({ requestId: 'x'.repeat(129) }, () => {}), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => RequestContext.run({ fields: { bad: {} } }, () => {}), { code: 'ERR_INVALID_ARG_TYPE' });
    for (const sampled of ['no', 0, null]) {
      assert.throws(() => RequestContext.begin({ sampled }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"options\.sampled" argument must be of type boolean/ });
    }
    for (const deadlineMs of [-1, NaN, Infinity, 2 ** 32, Number.MAX_VALUE, '5']) {
      assert.throws(() => RequestContext.run({ deadlineMs }, () => {}), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /options\.deadlineMs' must be a number of milliseconds from 0 to 4294967295/ });
      assert.throws(() => RequestContext.run((ctx) => RequestContext.require().child({ deadlineMs }, () => {})), { code: 'ERR_INVALID_ARG_VALUE' });
    }
    const longest = RequestContext.begin({ deadlineMs: 2 ** 32 - 1 });
    assert.equal(longest.run(() => RequestContext.require()), longest);
    longest.end();
  });

  it('uses a configured request id generator', () => {
    let n = 0;
    RequestContext.configure({ generateRequestId: () => `job-${++n}` });
    assert.equal(RequestContext.run(() => RequestContext.require().requestId), 'job-1');
    assert.equal(RequestContext.run(() => RequestContext.require().requestId), 'job-2');
    RequestContext.configure({ generateRequestId: () => 'bad id' });
    assert.throws(() => RequestContext.run(() => {}), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('passes arguments and this-less calls through', () => {
    assert.equal(RequestContext.run((a, b) => a + b, 2, 3), 5);
    assert.equal(RequestContext.run({}, (a) => a, 'x'), 'x');
  });

  it('run() keeps the caller\'s native stores inside, puts the caller\'s context back, and keeps an ambient enterWith() made inside', async () => {
    const { AsyncLocalStorage: NativeStorage } = require('node:async_hooks');
    const nativeStore = new NativeStorage();
    const ambientStore = new AsyncLocalStorage();
    // 100 interleaved callers, each with its own native store, outer
    // context and awaits of random length on both sides of the run.
    await Promise.all(Array.from({ length: 100 }, (_, i) => nativeStore.run(`native-${i}`, () =>
      RequestContext.run({ requestId: `outer-${i}` }, async () => {
        await sleep(Math.random() * 5);
        const inner = RequestContext.run({ requestId: `inner-${i}` }, async () => {
          assert.equal(nativeStore.getStore(), `native-${i}`);
          ambientStore.enterWith(`entered-${i}`);
          await sleep(Math.random() * 5);
          assert.equal(RequestContext.require().requestId, `inner-${i}`);
          assert.equal(nativeStore.getStore(), `native-${i}`);
          return RequestContext.require().requestId;
        });
        // Back in the caller at once: its context and native store, and the
        // ambient variable entered inside (AsyncLocalStorage#run semantics).
        assert.equal(RequestContext.require().requestId, `outer-${i}`);
        assert.equal(nativeStore.getStore(), `native-${i}`);
        assert.equal(ambientStore.getStore(), `entered-${i}`);
        assert.equal(await inner, `inner-${i}`);
        await sleep(Math.random() * 5);
        assert.equal(RequestContext.require().requestId, `outer-${i}`);
        assert.equal(nativeStore.getStore(), `native-${i}`);
      }))));
    assert.equal(RequestContext.current(), undefined);
    assert.equal(nativeStore.getStore(), undefined);
  });

  it('run() puts the caller\'s context back when fn throws', () => {
    const outer = RequestContext.begin({ requestId: 'outer-throw' });
    outer.run(() => {
      assert.throws(() => RequestContext.run(() => { throw new Error('boom'); }), /boom/);
      assert.equal(RequestContext.require().requestId, 'outer-throw');
    });
    outer.end();
  });

  it('newRequestId() returns time-ordered UUIDv7 ids', () => {
    const ids = Array.from({ length: 50 }, () => newRequestId());
    assert.deepEqual([...ids].sort(), ids);
    assert.equal(new Set(ids).size, 50);
  });
});

describe('fields', () => {
  it('keep their types: string, number, BigInt, boolean and null', () => {
    RequestContext.run({ fields: { s: 'text', n: 1.5, i: 2n ** 40n, b: false, z: null } }, () => {
      const ctx = RequestContext.require();
      assert.deepEqual(ctx.fields(), { s: 'text', n: 1.5, i: 2n ** 40n, b: false, z: null });
      ctx.set('n', 42).set('late', 'yes');
      ctx.delete('s');
      assert.equal(ctx.get('n'), 42);
      assert.equal(ctx.has('s'), false);
      // Re-read from Rust: the cache and the store agree.
      const fromRust = Object.fromEntries(native.contextFields(ctx.id).fields.map(({ key, value }) => [key, value]));
      assert.deepEqual(fromRust, ctx.fields());
    });
  });

  it('reject other types and bad keys', () => {
    RequestContext.run(() => {
      const ctx = RequestContext.require();
      assert.throws(() => ctx.set('k', undefined), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => ctx.set('k', { a: 1 }), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => ctx.set(1, 'v'), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => ctx.set('', 'v'), { code: 'ERR_INVALID_ARG_VALUE' });
      assert.throws(() => ctx.set('big', 2n ** 64n), /64 bits/);
    });
  });

  it('refuse the keys each log line writes itself, so no field passes for the request id or the level', () => {
    const lineKeys = ['level', 'time', 'msg', 'requestId', 'traceId', 'spanId'];
    for (const key of lineKeys) {
      assert.throws(() => RequestContext.begin({ fields: { [key]: 'forged' } }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.fields/ });
    }
    RequestContext.run({ requestId: 'real-id', fields: { tenant: 'acme' } }, () => {
      const ctx = RequestContext.require();
      for (const key of lineKeys) assert.throws(() => ctx.set(key, 'forged'), { code: 'ERR_INVALID_ARG_VALUE' });
      // Keys that merely look alike are fields like any other.
      ctx.set('requestid', 'lower').set('Level', 'upper').set('__proto__', 'kept');
      assert.equal(ctx.requestId, 'real-id');
      const fields = ctx.fields();
      assert.deepEqual(Object.keys(fields), ['tenant', 'requestid', 'Level', '__proto__']);
      assert.equal(Object.getPrototypeOf(fields), Object.prototype);
      assert.equal(Object.getOwnPropertyDescriptor(fields, '__proto__').value, 'kept');
      assert.equal(ctx.get('__proto__'), 'kept');
    });
  });

  it('limits give a clear error and lose nothing already stored', () => {
    RequestContext.configure({ maxFields: 3, maxValueBytes: 10 });
    RequestContext.run({ fields: { a: 1, b: 2 } }, () => {
      const ctx = RequestContext.require();
      ctx.set('c', 3);
      assert.throws(() => ctx.set('d', 4), { name: 'RangeError', code: 'ERR_AMBIENT_FIELD_LIMIT', message: /at most 3 fields/ });
      assert.throws(() => ctx.set('a', 'x'.repeat(11)), { code: 'ERR_AMBIENT_FIELD_LIMIT', message: /at most 10 bytes/ });
      assert.deepEqual(ctx.fields(), { a: 1, b: 2, c: 3 });
      ctx.set('a', 'replaced');
      assert.equal(ctx.get('a'), 'replaced');
    });
    assert.throws(() => RequestContext.run({ fields: { a: 1, b: 2, c: 3, d: 4 } }, () => {}), { code: 'ERR_AMBIENT_FIELD_LIMIT' });
  });

  it('reads on the owning thread are served from the cache: one fetch fills it, writes keep it current', () => {
    RequestContext.run({ fields: { user: 'ada' } }, () => {
      const ctx = RequestContext.require();
      const original = native.contextFields;
      let calls = 0;
      native.contextFields = (...args) => { calls++; return original(...args); };
      try {
        for (let i = 0; i < 1000; i++) assert.equal(ctx.get('user'), 'ada');
        ctx.set('user', 'grace');
        ctx.set('role', 'admin');
        for (let i = 0; i < 1000; i++) assert.equal(ctx.get('user'), 'grace');
        assert.deepEqual(ctx.fields(), { user: 'grace', role: 'admin' });
      } finally {
        native.contextFields = original;
      }
      assert.equal(calls, 1, 'only the first read fetched the fields');
    });
  });
});

describe('child and independent scopes', () => {
  it('a child inherits fields and gets its own span; its writes stay in it', async () => {
    await RequestContext.run({ fields: { user: 'ada' } }, async () => {
      const root = RequestContext.require();
      const inner = await root.child({ name: 'db.transaction' }, async () => {
        await tick();
        const tx = RequestContext.require();
        assert.notEqual(tx, root);
        assert.equal(tx.kind, 'child');
        assert.equal(tx.get('user'), 'ada');
        assert.equal(tx.requestId, root.requestId);
        assert.equal(tx.traceId, root.traceId);
        assert.equal(tx.parentSpanId, root.spanId);
        assert.notEqual(tx.spanId, root.spanId);
        tx.set('txId', 7);
        return tx;
      });
      assert.equal(RequestContext.require(), root);
      assert.equal(root.has('txId'), false);
      assert.equal(inner.ended, true);
    });
  });

  it('an independent audit scope survives the transaction rolling back', async () => {
    const outcome = {};
    await RequestContext.run({ fields: { user: 'ada' } }, async () => {
      const root = RequestContext.require();
      await assert.rejects(root.child({ name: 'tx' }, async () => {
        const tx = RequestContext.require();
        const audit = tx.independent({ name: 'audit' });
        audit.set('action', 'transfer');
        outcome.audit = audit;
        outcome.tx = tx;
        throw new Error('rollback');
      }), /rollback/);
      assert.equal(outcome.tx.ended, true);
      assert.equal(outcome.audit.ended, false, 'the audit scope is not ended with the transaction');
      assert.equal(outcome.audit.get('user'), undefined, 'independent scopes do not inherit');
      assert.equal(outcome.audit.requestId, root.requestId);
      assert.equal(outcome.audit.end('committed').status, 'committed');
    });
    assert.equal(outcome.tx.end().status, 'error');
  });
});

describe('lifecycle and registry', () => {
  it('end keeps the first status and measures the duration', async () => {
    const beforeBegin = performance.now();
    const ctx = RequestContext.begin({ name: 'job' });
    const afterBegin = performance.now();
    // A timer counts from the event loop's cached time, which lags when the
    // loop is busy: sleep(20) can return after less than 20 ms, so the
    // duration is checked against the clock itself.
    await sleep(20);
    const beforeEnd = performance.now();
    const first = ctx.end('ok');
    const afterEnd = performance.now();
    const again = ctx.end('error');
    assert.equal(first.status, 'ok');
    assert.equal(again, first);
    // 1 ms of slack: a context with a Rust record is timed by Rust's clock.
    assert.ok(first.durationMs >= beforeEnd - afterBegin - 1 && first.durationMs <= afterEnd - beforeBegin + 1,
      `duration ${first.durationMs}, between ${beforeEnd - afterBegin} and ${afterEnd - beforeBegin}`);
    assert.ok(Math.abs(first.endedAt - Date.now()) < 5000);
    assert.ok(first.endedAt >= ctx.startedAt);
  });

  it('run() ends with error when fn throws or rejects', async () => {
    let sync;
    assert.throws(() => RequestContext.run(() => { sync = RequestContext.require(); throw new Error('x'); }), /x/);
    assert.equal(sync.end().status, 'error');
    let asyncCtx;
    await assert.rejects(RequestContext.run(async () => { asyncCtx = RequestContext.require(); await tick(); throw new Error('y'); }), /y/);
    assert.equal(asyncCtx.end().status, 'error');
  });

  it('generated ids are unique, and request ids are time-ordered UUIDv7s', async () => {
    const seen = { requestId: new Set(), traceId: new Set(), spanId: new Set(), id: new Set() };
    let previous = '';
    // Several pools, with pauses so that some expire before they are used up.
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 300; i++) {
        const before = Date.now();
        const ctx = RequestContext.begin();
        const { requestId, traceId, spanId } = ctx.ids();
        assert.match(requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        assert.match(traceId, /^[0-9a-f]{32}$/);
        assert.match(spanId, /^[0-9a-f]{16}$/);
        assert.ok(requestId > previous, `${requestId} sorts after ${previous}`);
        previous = requestId;
        for (const [key, value] of Object.entries({ requestId, traceId, spanId, id: ctx.id })) seen[key].add(value);
        // The UUIDv7 timestamp is its pool's, at most 100 ms before the begin.
        const ms = parseInt(requestId.replace(/-/g, '').slice(0, 12), 16);
        assert.ok(ms >= before - 110 && ms <= Date.now() + 1, `timestamp ${ms}, begin ${before}`);
        ctx.end();
      }
      if (round % 5 === 0) await sleep(120);
    }
    for (const set of Object.values(seen)) assert.equal(set.size, 6000);
  });

  it('a context that ends within the publish interval never gets a Rust record; one still open does', async () => {
    const before = RequestContext.stats();
    const ended = [];
    for (let i = 0; i < 100; i++) ended.push(RequestContext.begin());
    for (const ctx of ended) ctx.end();
    const open = RequestContext.begin({ name: 'still open' });
    await sleep(40);
    const after = RequestContext.stats();
    assert.equal(after.created - before.created, 101);
    assert.equal(after.ended - before.ended, 100);
    // The ended ones are still referenced here: with records they would all be live.
    assert.ok(after.live - before.live <= 1, `records grew by ${after.live - before.live}`);
    assert.ok(RequestContext.inFlight({ limit: 10000 }).some((c) => c.id === open.id));
    assert.equal(ended[0].requestId.length, 36);
    open.end();
  });

  it('a context the publish timer cannot give a record keeps working, and the process lives on', async () => {
    const adopt = native.contextAdopt;
    native.contextAdopt = () => { throw new Error('no record today'); };
    let ctx;
    try {
      ctx = RequestContext.begin({ requestId: 'unpublished-1' });
      await sleep(40);
    } finally {
      native.contextAdopt = adopt;
    }
    assert.equal(ctx.requestId, 'unpublished-1');
    assert.equal(RequestContext.inFlight({ limit: 10000 }).some((c) => c.id === ctx.id), false);
    ctx.set('later', 1);
    assert.equal(ctx.get('later'), 1);
    assert.ok(RequestContext.inFlight({ limit: 10000 }).some((c) => c.id === ctx.id));
    assert.equal(ctx.end().status, 'ok');
  });

  it('arms the publish timer outside every request, and leaves the caller\'s async context as it was', () => {
    // In a fresh process, so that this process's timer state and frames do
    // not matter. internal/async_context_frame shows the frame itself on
    // Node >= 24, where a copy left at the top level would be captured by
    // every server made afterwards.
    const script = `
      // Node 20 has no such module: it runs on async_hooks only.
      let frames = { enabled: false, current() {} };
      try { frames = require('internal/async_context_frame'); } catch {}
      const { AsyncLocalStorage } = require('node:async_hooks');
      const { RequestContext } = require(${JSON.stringify(require.resolve('..'))});
      const other = new AsyncLocalStorage();
      const armedIn = [];
      const realSetTimeout = globalThis.setTimeout;
      globalThis.setTimeout = function (fn, ...rest) {
        if (fn.name === 'publishTick') armedIn.push({ other: other.getStore() ?? null, context: RequestContext.current()?.name ?? null });
        return realSetTimeout.call(this, fn, ...rest);
      };
      const before = frames.current();
      RequestContext.begin({ name: 'at the top level' }).end();
      const topLevelKept = frames.current() === before;
      const http = require('node:http');
      const server = http.createServer((req, res) => {
        const inRequest = frames.current();
        res.end();
        server.close();
        console.log(JSON.stringify({ enabled: frames.enabled, topLevelKept, requestFrame: inRequest === undefined ? 'empty' : 'a frame', armedIn }));
      }).listen(0);
      // Once the first timer fired, a begin inside a request arms it again.
      realSetTimeout(() => {
        other.run('a request of another library', () => RequestContext.run({ name: 'request' }, () => {
          const open = RequestContext.begin({ name: 'open' });
          realSetTimeout(() => {
            open.end();
            http.get({ port: server.address().port, agent: false }, (r) => r.resume());
          }, 30);
        }));
      }, 30);
    `;
    const out = JSON.parse(require('node:child_process').execFileSync(process.execPath, ['--expose-internals', '-e', script], { encoding: 'utf8', timeout: 20_000 }));
    assert.equal(out.enabled, Number(process.versions.node.split('.')[0]) >= 24, 'AsyncContextFrame is what Node >= 24 runs on');
    assert.equal(out.topLevelKept, true, 'a begin at the top level leaves the top-level frame as it was');
    assert.equal(out.requestFrame, 'empty', 'a server made afterwards runs its requests in an empty frame');
    assert.ok(out.armedIn.length >= 2, `armed ${out.armedIn.length} times`);
    for (const armed of out.armedIn) assert.deepEqual(armed, { other: null, context: null });
  });

  it('lists in-flight contexts and counts created, open and ended', () => {
    const before = RequestContext.stats();
    const a = RequestContext.begin({ name: 'a', fields: { k: 1 } });
    const b = RequestContext.begin({ name: 'b' });
    const listed = RequestContext.inFlight({ limit: 1000 });
    const mine = listed.filter((c) => c.id === a.id || c.id === b.id);
    assert.deepEqual(mine.map((c) => c.name), ['a', 'b']);
    assert.deepEqual(mine[0].fields, { k: 1 });
    assert.equal(mine[0].requestId, a.requestId);
    assert.ok(mine[0].ageMs >= 0);
    const during = RequestContext.stats();
    assert.equal(during.created - before.created, 2);
    assert.equal(during.open - before.open, 2);
    a.end();
    b.end();
    const after = RequestContext.stats();
    assert.equal(after.ended - before.ended, 2);
    assert.equal(after.open, before.open);
  });

  it('inFlight() keeps to its limit and refuses counts that would wrap, with Node-style errors', () => {
    const contexts = Array.from({ length: 5 }, (_, i) => RequestContext.begin({ name: `limit-${i}`, fields: { a: 1, b: 2, c: 3 } }));
    try {
      assert.equal(RequestContext.inFlight({ limit: 3 }).length, 3);
      assert.equal(RequestContext.inFlight({ limit: 0 }).length, 0);
      const mine = RequestContext.inFlight({ limit: 1000, maxFields: 2 }).filter((c) => c.name?.startsWith('limit-'));
      assert.equal(mine.length, 5);
      assert.ok(mine.every((c) => Object.keys(c.fields).length === 2));
      // Before, -1 wrapped to 4294967295 and 2 ** 40 to 0 on the way into Rust.
      for (const limit of [-1, 1.5, NaN, 2 ** 40, '3', null]) {
        assert.throws(() => RequestContext.inFlight({ limit }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }, String(limit));
      }
      assert.throws(() => RequestContext.inFlight({ maxFields: -1 }), { code: 'ERR_INVALID_ARG_VALUE' });
      assert.throws(() => RequestContext.inFlight(null), { code: 'ERR_INVALID_ARG_TYPE' });
    } finally {
      for (const ctx of contexts) ctx.end();
    }
  });

  it('releases records when their JS objects are collected, and flags lingering ones', async () => {
    const { setFlagsFromString } = require('node:v8');
    setFlagsFromString('--expose-gc');
    const collect = require('node:vm').runInNewContext('gc');
    RequestContext.configure({ lingerGraceMs: 0 });
    const before = RequestContext.stats();
    const kept = RequestContext.begin({ name: 'kept' });
    kept.end();
    (() => {
      for (let i = 0; i < 50; i++) RequestContext.begin().end();
    })();
    for (let i = 0; i < 10 && RequestContext.stats().released - before.released < 50; i++) {
      collect();
      await sleep(10);
    }
    const after = RequestContext.stats();
    assert.ok(after.released - before.released >= 50, `released ${after.released - before.released}`);
    assert.ok(after.lingering >= 1, 'an ended context still referenced is lingering');
    assert.equal(kept.ended, true);
    RequestContext.configure({ lingerGraceMs: 30_000 });
  });

  it('counts exactly the ended contexts still held as lingering, across many ended ones and a record made after the end', async () => {
    const { setFlagsFromString } = require('node:v8');
    setFlagsFromString('--expose-gc');
    const collect = require('node:vm').runInNewContext('gc');
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        collect();
        await sleep(5);
      }
    };
    RequestContext.configure({ lingerGraceMs: 0 });
    try {
      await settle();
      const before = RequestContext.stats();
      // In a function of its own: a suspended async function may keep its
      // last loop variable alive.
      let kept = (() => {
        const held = [];
        for (let i = 0; i < 3000; i++) {
          const ctx = RequestContext.begin();
          ctx.end();
          // Three held among thousands dropped, so the list of ended ones is
          // swept while they are in it.
          if (i % 1000 === 500) held.push(ctx);
        }
        return held;
      })();
      // One gets its record after it ended: Rust counts it from then on.
      kept[1].toToken();
      await settle();
      const held = RequestContext.stats();
      assert.equal(held.lingering - before.lingering, 3);
      assert.equal(held.released - before.released, 2997);
      assert.ok(kept.every((ctx) => ctx.ended));
      kept = undefined;
      await settle();
      const after = RequestContext.stats();
      assert.equal(after.lingering, before.lingering);
      assert.equal(after.released - before.released, 3000);
      assert.equal(after.open, before.open);
    } finally {
      RequestContext.configure({ lingerGraceMs: 30_000 });
    }
  });

  it('10,000 request cycles leave nothing open and nothing in memory once collected', async () => {
    const { setFlagsFromString } = require('node:v8');
    setFlagsFromString('--expose-gc');
    const collect = require('node:vm').runInNewContext('gc');
    const before = RequestContext.stats();
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 1000; i++) {
        RequestContext.run({ name: 'cycle' }, () => {
          const ctx = RequestContext.require();
          ctx.set('i', i);
          if (i % 10 === 0) ctx.child(() => RequestContext.require().get('i'));
        });
      }
      await sleep(1);
    }
    for (let i = 0; i < 20 && RequestContext.stats().released - before.released < 11_000; i++) {
      collect();
      await sleep(10);
    }
    const after = RequestContext.stats();
    assert.equal(after.created - before.created, 11_000);
    assert.equal(after.open, before.open);
    // Everything this test made was released (earlier tests' leftovers may
    // be collected meanwhile too, so at least as many).
    assert.ok(after.released - before.released >= 11_000, `released ${after.released - before.released}`);
    assert.ok(after.live <= before.live, `records in memory grew from ${before.live} to ${after.live}`);
  });

  it('counts use after end and warns once per context', async () => {
    const warnings = [];
    const onWarning = (w) => { if (w.code === 'AMBIENT_USE_AFTER_END') warnings.push(w); };
    process.on('warning', onWarning);
    try {
      const before = RequestContext.stats().useAfterEnd;
      const ctx = RequestContext.begin();
      ctx.end();
      ctx.set('late', 1);
      ctx.set('later', 2);
      ctx.noteUse('a log line');
      await tick();
      assert.equal(RequestContext.stats().useAfterEnd - before, 3);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0].message, new RegExp(ctx.requestId));
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('deadlines and the scope runner', () => {
  // 5 ms: a record and a watchdog entry at once. 40 ms: the root waits for
  // its record until publish() finds it open, 10-20 ms after it began, and
  // its deadline still counts from its begin.
  for (const deadlineMs of [5, 40]) it(`calls onDeadline inside the request async context and aborts ctx.signal (${deadlineMs} ms)`, async () => {
    const tenant = new AsyncLocalStorage();
    const nodeStore = new (require('node:async_hooks').AsyncLocalStorage)();
    const began = performance.now();
    let work;
    const fired = await new Promise((resolve) => {
      tenant.run('acme', () => nodeStore.run('native-value', () => {
        work = RequestContext.begin({ deadlineMs, onDeadline: (ctx, err) => {
          resolve({
            current: RequestContext.current(),
            ctx,
            tenant: tenant.getStore(),
            native: nodeStore.getStore(),
            err,
            aborted: ctx.signal.aborted,
            after: performance.now() - began,
          });
        } }).run(() => sleep(300));
      }));
    });
    assert.ok(fired.after >= deadlineMs - 1, `fired after ${fired.after} ms`);
    assert.equal(fired.current, fired.ctx);
    assert.equal(fired.tenant, 'acme');
    assert.equal(fired.native, 'native-value');
    assert.equal(fired.err.code, 'ERR_AMBIENT_DEADLINE_EXCEEDED');
    assert.equal(fired.aborted, true);
    fired.ctx.end('timeout');
    // Its timer would otherwise run on into the next tests.
    await work;
  });

  it("gives a child scope its parent's deadline signal, joined with its own, and leaves an independent scope out", async () => {
    const aborts = [];
    const watch = (label, signal) => signal?.addEventListener('abort', () => aborts.push([label, signal.reason.message]));
    const root = RequestContext.begin({ requestId: 'dl-root', deadlineMs: 200, onDeadline: () => {} });
    await root.run(async () => {
      const plain = root.child();
      const shorter = root.child({ deadlineMs: 20, onDeadline: () => {} });
      const longer = root.child({ deadlineMs: 5_000, onDeadline: () => {} });
      const grandchild = plain.child();
      const audit = root.independent();
      assert.equal(plain.signal, root.signal, 'no deadline of its own: the parent\'s signal');
      assert.equal(grandchild.signal, root.signal);
      assert.equal(audit.signal, undefined, 'an independent scope is not stopped by the request');
      assert.equal(shorter.signal, shorter.signal, 'made once');
      for (const [label, scope] of Object.entries({ root, plain, grandchild, shorter, longer })) watch(label, scope.signal);
      // Each scope's own deadline is armed when it runs.
      for (const scope of [shorter, longer]) scope.run(() => {});
      await sleep(80);
      assert.deepEqual(aborts, [['shorter', 'request dl-root exceeded its deadline']], 'the shorter deadline first, alone');
      await sleep(250);
      assert.deepEqual(aborts.map(([label]) => label).sort(), ['grandchild', 'longer', 'plain', 'root', 'shorter']);
      assert.equal(longer.signal.aborted, true, "the parent's deadline stops a child with a later one");
      for (const scope of [plain, shorter, longer, grandchild, audit]) scope.end();
    });
    root.end();
  });

  it('gives no Rust record to requests with a deadline that end before publish() would list them', async () => {
    const held = [];
    const before = RequestContext.stats().live;
    // Interleaved, each ending within a few ms, as most requests do; the
    // objects stay referenced so that none is released while counting.
    await Promise.all(Array.from({ length: 200 }, (_, i) => RequestContext.run({ requestId: `short-${i}`, deadlineMs: 60_000 }, async () => {
      held.push(RequestContext.require());
      await sleep(Math.random() * 3);
    })));
    assert.ok(held.every((ctx) => ctx.ended && ctx.signal.aborted === false));
    assert.ok(RequestContext.stats().live - before < 20, `${RequestContext.stats().live - before} records for 200 short requests`);
    // One still open past the publish delay gets its record, and its deadline.
    let fired;
    await RequestContext.run({ requestId: 'long', deadlineMs: 40, onDeadline: (ctx) => { fired = RequestContext.current() === ctx; } }, () => sleep(120));
    assert.equal(fired, true);
  });

  it('does not fire for a context that ended in time', async () => {
    let fired = false;
    await RequestContext.run({ deadlineMs: 30, onDeadline: () => { fired = true; } }, () => sleep(1));
    await sleep(60);
    assert.equal(fired, false);
  });

  it('native callbacks: a plain ThreadsafeFunction loses the context on Node 24+, the scope runner keeps it', async () => {
    const ours = new AsyncLocalStorage();
    const theirs = new (require('node:async_hooks').AsyncLocalStorage)();
    const deliver = (fnName, id) => new Promise((resolve) => {
      ours.run(`ours-${id}`, () => theirs.run(`theirs-${id}`, () => {
        native[fnName](5 + Math.random() * 10, () => resolve([ours.getStore(), theirs.getStore()]));
      }));
    });
    const ids = Array.from({ length: 20 }, (_, i) => i);
    // Deliveries waiting on the watchdog thread do not keep the process
    // alive (the scope runner's channel is unref'd, as a deadline must not
    // hold a process open), so the test holds the event loop open itself.
    const keepAlive = setInterval(() => {}, 1000);
    let scoped;
    let plain;
    try {
      [scoped, plain] = await Promise.all([
        Promise.all(ids.map((i) => deliver('deliverLater', i))),
        Promise.all(ids.map((i) => deliver('deliverLaterUnscoped', i))),
      ]);
    } finally {
      clearInterval(keepAlive);
    }
    assert.deepEqual(scoped, ids.map((i) => [`ours-${i}`, `theirs-${i}`]));
    const major = Number(process.versions.node.split('.')[0]);
    if (major >= 24) {
      assert.deepEqual(plain, ids.map(() => [undefined, undefined]), 'a plain ThreadsafeFunction runs outside any context');
    } else {
      // On async_hooks, the threadsafe function's own resource carries the
      // context it was created in.
      assert.deepEqual(plain, ids.map((i) => [`ours-${i}`, `theirs-${i}`]));
    }
  });
});
