'use strict';
// Conformance of ambient's AsyncLocalStorage with Node 26's documented API and
// semantics, run unchanged on every supported Node major.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { setImmediate: tick } = require('node:timers/promises');
const nodeAsyncHooks = require('node:async_hooks');
const { AsyncLocalStorage } = require('..');

const invalidOptions = (received) => ({
  name: 'TypeError',
  code: 'ERR_INVALID_ARG_TYPE',
  message: `The "options" argument must be of type object.${received}`,
});

describe('constructor and options', () => {
  it('accepts no options, an empty object, and name/defaultValue', () => {
    assert.equal(new AsyncLocalStorage().name, '');
    assert.equal(new AsyncLocalStorage({}).getStore(), undefined);
    const als = new AsyncLocalStorage({ name: 'request', defaultValue: 42 });
    assert.equal(als.name, 'request');
    assert.equal(als.getStore(), 42);
  });

  it('stringifies name like Node does', () => {
    assert.equal(new AsyncLocalStorage({ name: 7 }).name, '7');
    assert.equal(new AsyncLocalStorage({ name: null }).name, 'null');
    assert.equal(new AsyncLocalStorage({ name: { toString: () => 'custom' } }).name, 'custom');
  });

  it('rejects options that are not objects with ERR_INVALID_ARG_TYPE', () => {
    assert.throws(() => new AsyncLocalStorage(null), invalidOptions(' Received null'));
    assert.throws(() => new AsyncLocalStorage([]), invalidOptions(' Received an instance of Array'));
    assert.throws(() => new AsyncLocalStorage('x'), invalidOptions(" Received type string ('x')"));
    assert.throws(() => new AsyncLocalStorage(1), invalidOptions(' Received type number (1)'));
    assert.throws(() => new AsyncLocalStorage(true), invalidOptions(' Received type boolean (true)'));
    assert.throws(() => new AsyncLocalStorage(function named() {}),
      invalidOptions(' Received function named'));
  });

  it('treats an explicit undefined as no options', () => {
    assert.equal(new AsyncLocalStorage(undefined).getStore(), undefined);
  });
});

describe('run', () => {
  it('makes the store visible synchronously and restores undefined afterwards', () => {
    const als = new AsyncLocalStorage();
    const store = { id: 1 };
    const result = als.run(store, (a, b) => {
      assert.equal(als.getStore(), store);
      return a + b;
    }, 2, 3);
    assert.equal(result, 5);
    assert.equal(als.getStore(), undefined);
  });

  it('calls the callback with this === null semantics (strict mode sees undefined-less null)', () => {
    const als = new AsyncLocalStorage();
    const seen = als.run(1, function strictThis() { 'use strict'; return this; });
    assert.equal(seen, null);
  });

  it('throws a TypeError when the callback is not a function, leaving the context unchanged', () => {
    const als = new AsyncLocalStorage();
    als.run('outer', () => {
      assert.throws(() => als.run('inner', 5), TypeError);
      assert.equal(als.getStore(), 'outer');
    });
  });

  it('restores the outer store when the callback throws', () => {
    const als = new AsyncLocalStorage();
    als.run('outer', () => {
      assert.throws(() => als.run('inner', () => {
        assert.equal(als.getStore(), 'inner');
        throw new Error('boom');
      }), /boom/);
      assert.equal(als.getStore(), 'outer');
    });
    assert.equal(als.getStore(), undefined);
  });

  it('nests 1,000 deep and unwinds in order', () => {
    const als = new AsyncLocalStorage();
    const depth = 1000;
    const seen = [];
    function descend(level) {
      assert.equal(als.getStore(), level);
      if (level < depth) als.run(level + 1, descend, level + 1);
      seen.push(als.getStore());
    }
    als.run(1, descend, 1);
    assert.equal(seen.length, depth);
    assert.deepEqual(seen, Array.from({ length: depth }, (_, i) => depth - i));
    assert.equal(als.getStore(), undefined);
  });

  it('nests 1,000 deep across awaits', async () => {
    const als = new AsyncLocalStorage();
    async function descend(level) {
      await tick();
      assert.equal(als.getStore(), level);
      if (level < 1000) await als.run(level + 1, descend, level + 1);
      assert.equal(als.getStore(), level);
    }
    await als.run(1, descend, 1);
  });

  it('propagates to promises, timers and immediates created inside', async () => {
    const als = new AsyncLocalStorage();
    const results = await als.run('ctx', () => Promise.all([
      new Promise((resolve) => setTimeout(() => resolve(als.getStore()), 5)),
      new Promise((resolve) => setImmediate(() => resolve(als.getStore()))),
      Promise.resolve().then(() => als.getStore()),
      (async () => { await null; return als.getStore(); })(),
    ]));
    assert.deepEqual(results, ['ctx', 'ctx', 'ctx', 'ctx']);
    assert.equal(als.getStore(), undefined);
  });

  it('keeps an enterWith() of another instance made inside run (as Node does)', () => {
    const a = new AsyncLocalStorage();
    const b = new AsyncLocalStorage();
    a.run(1, () => b.enterWith(2));
    assert.equal(a.getStore(), undefined);
    assert.equal(b.getStore(), 2);
    b.disable();
  });

  it('skips the switch when the store is already current', () => {
    const als = new AsyncLocalStorage({ defaultValue: 'd' });
    als.run('d', () => assert.equal(als.getStore(), 'd'));
    const store = {};
    als.run(store, () => als.run(store, () => assert.equal(als.getStore(), store)));
  });
});

describe('getStore and defaultValue', () => {
  it('returns the defaultValue outside any run', () => {
    const als = new AsyncLocalStorage({ defaultValue: 'fallback' });
    assert.equal(als.getStore(), 'fallback');
    als.run('set', () => assert.equal(als.getStore(), 'set'));
    assert.equal(als.getStore(), 'fallback');
  });

  it('distinguishes an explicit undefined from the default', () => {
    const als = new AsyncLocalStorage({ defaultValue: 'fallback' });
    als.run(undefined, () => assert.equal(als.getStore(), undefined));
    als.run(null, () => assert.equal(als.getStore(), null));
  });
});

describe('exit', () => {
  it('runs the callback with an undefined store (not the default) and restores afterwards', () => {
    const als = new AsyncLocalStorage({ defaultValue: 'fallback' });
    als.run('outer', () => {
      const inner = als.exit((x) => [als.getStore(), x], 'arg');
      assert.deepEqual(inner, [undefined, 'arg']);
      assert.equal(als.getStore(), 'outer');
    });
  });

  it('keeps async work scheduled inside exit outside the store', async () => {
    const als = new AsyncLocalStorage();
    const seen = await als.run('outer', () => als.exit(() => new Promise((resolve) => {
      setTimeout(() => resolve(als.getStore()), 1);
    })));
    assert.equal(seen, undefined);
  });

  it('does not touch other instances', () => {
    const a = new AsyncLocalStorage();
    const b = new AsyncLocalStorage();
    a.run('a', () => b.run('b', () => a.exit(() => {
      assert.equal(a.getStore(), undefined);
      assert.equal(b.getStore(), 'b');
    })));
  });
});

describe('enterWith', () => {
  it('sets the store for the rest of the synchronous execution and what it schedules', async () => {
    const als = new AsyncLocalStorage();
    const seen = await new Promise((resolve) => {
      setImmediate(() => {
        als.enterWith('entered');
        assert.equal(als.getStore(), 'entered');
        setTimeout(() => resolve(als.getStore()), 1);
      });
    });
    assert.equal(seen, 'entered');
    assert.equal(als.getStore(), undefined);
  });

  it('does not leak into the caller when used after an await', async () => {
    const als = new AsyncLocalStorage({ defaultValue: 'default' });
    async function inner() {
      await null;
      als.enterWith('inner');
      assert.equal(als.getStore(), 'inner');
    }
    await inner();
    assert.equal(als.getStore(), 'default');
  });

  it('does not leak out of a promise continuation (nodejs/node#45848)', async () => {
    const als = new AsyncLocalStorage();
    const unrelated = new AsyncLocalStorage();
    unrelated.run('x', () => {});
    await Promise.resolve().then(() => als.enterWith('inside then'));
    assert.equal(als.getStore(), undefined);
  });

  it('is not stacked: exit() shows undefined, not the previously entered store (nodejs/node#36683)', async () => {
    const als = new AsyncLocalStorage();
    await tick();
    als.enterWith({ depth: 1 });
    als.enterWith({ depth: 2 });
    als.exit(() => assert.equal(als.getStore(), undefined));
    assert.deepEqual(als.getStore(), { depth: 2 });
  });
});

describe('disable', () => {
  it('makes getStore return the default until the next run or enterWith', async () => {
    const als = new AsyncLocalStorage({ defaultValue: 'd' });
    await tick();
    als.enterWith('entered');
    als.disable();
    assert.equal(als.getStore(), 'd');
    als.run('again', () => assert.equal(als.getStore(), 'again'));
    als.enterWith('re-entered');
    assert.equal(als.getStore(), 're-entered');
    als.disable();
  });

  it('inside run: the store is gone for the rest of the callback, the outer one comes back', () => {
    const als = new AsyncLocalStorage();
    als.run('outer', () => {
      als.run('inner', () => {
        als.disable();
        assert.equal(als.getStore(), undefined);
      });
      assert.equal(als.getStore(), 'outer');
    });
  });

  it('only affects the instance it is called on', () => {
    const a = new AsyncLocalStorage();
    const b = new AsyncLocalStorage();
    a.run('a', () => b.run('b', () => {
      a.disable();
      assert.equal(a.getStore(), undefined);
      assert.equal(b.getStore(), 'b');
    }));
  });

  it('also clears the store for work already scheduled from the same frame (Node 26)', async () => {
    const a = new AsyncLocalStorage({ defaultValue: 'default' });
    const b = new AsyncLocalStorage();
    const [later, child] = await a.run('A', () => b.run('B', () => {
      const scheduled = new Promise((resolve) => setTimeout(() => resolve(a.getStore()), 1));
      // A frame derived before disable() keeps its own copy of the binding.
      const derived = b.run('B2', () => new Promise((resolve) => setTimeout(() => resolve(a.getStore()), 1)));
      a.disable();
      assert.equal(b.getStore(), 'B');
      return Promise.all([scheduled, derived]);
    }));
    assert.deepEqual([later, child], ['default', 'A']);
  });

  it('keeps a disable() of another instance inside run in effect afterwards', () => {
    const a = new AsyncLocalStorage();
    const b = new AsyncLocalStorage();
    b.run('b', () => {
      a.run('a', () => b.disable());
      assert.equal(b.getStore(), undefined);
    });
  });
});

describe('withScope', () => {
  it('enters the store until dispose, and dispose is idempotent', () => {
    const als = new AsyncLocalStorage({ defaultValue: 'd' });
    als.run('outer', () => {
      const scope = als.withScope('scoped');
      assert.equal(als.getStore(), 'scoped');
      scope.dispose();
      assert.equal(als.getStore(), 'outer');
      als.enterWith('later');
      scope.dispose();
      scope[Symbol.dispose]();
      assert.equal(als.getStore(), 'later');
    });
  });

  it('nests and restores in reverse order', () => {
    const als = new AsyncLocalStorage();
    als.run(0, () => {
      const one = als.withScope(1);
      const two = als.withScope(2);
      assert.equal(als.getStore(), 2);
      two.dispose();
      assert.equal(als.getStore(), 1);
      one.dispose();
      assert.equal(als.getStore(), 0);
    });
  });

  it('works with a try/finally shaped like `using`', () => {
    const als = new AsyncLocalStorage();
    als.run('outer', () => {
      const scope = als.withScope('inner');
      try {
        assert.equal(als.getStore(), 'inner');
      } finally {
        scope[Symbol.dispose]();
      }
      assert.equal(als.getStore(), 'outer');
    });
  });

  it('works with the `using` declaration where the runtime supports it', (t) => {
    let usingFn;
    try {
      // eslint-disable-next-line no-new-func
      usingFn = new Function('als', '{ using scope = als.withScope("using"); if (als.getStore() !== "using") throw new Error("not entered"); } return als.getStore();');
    } catch {
      t.skip('this runtime has no `using` syntax');
      return;
    }
    const als = new AsyncLocalStorage();
    als.run('outer', () => assert.equal(usingFn(als), 'outer'));
  });
});

describe('static bind and snapshot', () => {
  it('bind() runs the function in the context where it was bound', async () => {
    const als = new AsyncLocalStorage();
    const bound = als.run('bound-here', () => AsyncLocalStorage.bind((x) => [als.getStore(), x]));
    assert.deepEqual(bound('arg'), ['bound-here', 'arg']);
    assert.deepEqual(als.run('elsewhere', () => bound(1)), ['bound-here', 1]);
  });

  it('bind() validates its argument like Node', () => {
    assert.throws(() => AsyncLocalStorage.bind(1), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
  });

  it('snapshot() captures every store, ambient and native', () => {
    const ours = new AsyncLocalStorage();
    const theirs = new nodeAsyncHooks.AsyncLocalStorage();
    const snapshot = ours.run('ours', () => theirs.run('theirs', () => AsyncLocalStorage.snapshot()));
    const seen = ours.run('other', () => snapshot(() => [ours.getStore(), theirs.getStore()]));
    assert.deepEqual(seen, ['ours', 'theirs']);
    assert.equal(ours.getStore(), undefined);
  });
});

describe('isolation between instances', () => {
  it('many instances hold independent values in one frame', async () => {
    const storages = Array.from({ length: 50 }, (_, i) => new AsyncLocalStorage({ name: `s${i}` }));
    function enterAll(i, fn) {
      if (i === storages.length) return fn();
      return storages[i].run(`v${i}`, () => enterAll(i + 1, fn));
    }
    await enterAll(0, async () => {
      await tick();
      storages.forEach((als, i) => assert.equal(als.getStore(), `v${i}`));
      await storages[10].run('changed', async () => {
        await tick();
        assert.equal(storages[10].getStore(), 'changed');
        assert.equal(storages[11].getStore(), 'v11');
      });
      assert.equal(storages[10].getStore(), 'v10');
    });
    storages.forEach((als) => assert.equal(als.getStore(), undefined));
  });

  it('reuses the slots of collected instances without exposing their values', async () => {
    const { setFlagsFromString } = require('node:v8');
    const { runInNewContext } = require('node:vm');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc');
    const shared = globalThis[Symbol.for('ambient.frame.v2')];
    const live = new AsyncLocalStorage();
    const slotsBefore = shared.nextSlot;
    for (let round = 0; round < 5; round++) {
      // Each round's instances and the frames that held them become garbage.
      await live.run(`round${round}`, async () => {
        const batch = Array.from({ length: 20 }, () => new AsyncLocalStorage());
        batch.forEach((als, i) => als.enterWith(`stale${i}`));
        await tick();
      });
      gc();
      await tick();
      await tick();
      const fresh = Array.from({ length: 20 }, () => new AsyncLocalStorage());
      live.run('current', () => {
        fresh.forEach((als) => assert.equal(als.getStore(), undefined));
        assert.equal(live.getStore(), 'current');
      });
    }
    // Without reuse, 5 rounds would have allocated 200 new slots.
    assert.ok(shared.nextSlot - slotsBefore < 200, `slots grew by ${shared.nextSlot - slotsBefore}`);
  });
});

describe('mixed with native AsyncLocalStorage', () => {
  it('ambient and native instances nest in any order and restore each other', async () => {
    const ours = new AsyncLocalStorage();
    const theirs = new nodeAsyncHooks.AsyncLocalStorage();
    await ours.run('o1', () => theirs.run('t1', async () => {
      await tick();
      assert.equal(ours.getStore(), 'o1');
      assert.equal(theirs.getStore(), 't1');
      await theirs.run('t2', () => ours.run('o2', async () => {
        await tick();
        assert.equal(ours.getStore(), 'o2');
        assert.equal(theirs.getStore(), 't2');
      }));
      assert.equal(ours.getStore(), 'o1');
      assert.equal(theirs.getStore(), 't1');
    }));
    assert.equal(ours.getStore(), undefined);
    assert.equal(theirs.getStore(), undefined);
  });
});

// Cases where Node majors disagree; ambient gives Node 26's answer on all of
// them (docs/semantics.md).
describe('where Node majors disagree', () => {
  it('enterWith inside AsyncResource#runInAsyncScope does not stick to the resource (nodejs/node#58204)', () => {
    const { AsyncResource } = require('..');
    const als = new AsyncLocalStorage();
    const seen = als.run(1, () => {
      const resource = new AsyncResource('test');
      const inner = [];
      resource.runInAsyncScope(() => {
        als.enterWith(2);
        resource.runInAsyncScope(() => inner.push(als.getStore()));
        inner.push(als.getStore());
      });
      resource.runInAsyncScope(() => inner.push(als.getStore()));
      return inner;
    });
    assert.deepEqual(seen, [1, 2, 1]);
  });

  it('enterWith inside a bound function does not carry over to the next call', () => {
    const als = new AsyncLocalStorage();
    const bound = als.run('bound', () => AsyncLocalStorage.bind(() => {
      const before = als.getStore();
      als.enterWith('changed');
      return before;
    }));
    assert.deepEqual([bound(), bound()], ['bound', 'bound']);
  });

  it('enterWith inside exit() is undone when exit returns (nodejs/node#62290)', async () => {
    const http = require('node:http');
    const als = new AsyncLocalStorage();
    const server = http.createServer((req, res) => als.run({ outer: true }, () => {
      als.exit(() => {
        als.enterWith({ inner: true });
        res.on('finish', () => server.emit('seen', als.getStore()));
      });
      res.end('ok');
    }));
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const seen = new Promise((resolve) => server.once('seen', resolve));
    await new Promise((resolve) => http.get({ port: server.address().port, host: '127.0.0.1' }, (res) => res.resume().on('end', resolve)));
    assert.deepEqual(await seen, { outer: true });
    server.close();
  });
});
