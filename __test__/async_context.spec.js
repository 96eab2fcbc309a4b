'use strict';
// AsyncContext.Variable and AsyncContext.Snapshot, after the TC39 proposal.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { setImmediate: tick } = require('node:timers/promises');
const { AsyncContext, AsyncLocalStorage } = require('..');

describe('AsyncContext.Variable', () => {
  it('has name and defaultValue', () => {
    const v = new AsyncContext.Variable({ name: 'user', defaultValue: 'anonymous' });
    assert.equal(v.name, 'user');
    assert.equal(v.get(), 'anonymous');
    assert.equal(new AsyncContext.Variable().name, '');
    assert.equal(new AsyncContext.Variable().get(), undefined);
  });

  it('run() sets the value for the callback and what it schedules, then restores', async () => {
    const v = new AsyncContext.Variable();
    const seen = await v.run('a', async (x) => {
      assert.equal(x, 'arg');
      await tick();
      const inner = await v.run('b', async () => { await tick(); return v.get(); });
      return [v.get(), inner];
    }, 'arg');
    assert.deepEqual(seen, ['a', 'b']);
    assert.equal(v.get(), undefined);
  });

  it('restores after a throw', () => {
    const v = new AsyncContext.Variable({ defaultValue: 0 });
    v.run(1, () => {
      assert.throws(() => v.run(2, () => { throw new Error('x'); }), /x/);
      assert.equal(v.get(), 1);
    });
    assert.equal(v.get(), 0);
  });

  it('shares the frame with AsyncLocalStorage instances', async () => {
    const v = new AsyncContext.Variable();
    const als = new AsyncLocalStorage();
    await v.run('var', () => als.run('als', async () => {
      await tick();
      assert.equal(v.get(), 'var');
      assert.equal(als.getStore(), 'als');
    }));
  });
});

describe('AsyncContext.Snapshot', () => {
  it('captures all variables at construction and runs callbacks in them', () => {
    const a = new AsyncContext.Variable();
    const b = new AsyncLocalStorage();
    const snapshot = a.run('A', () => b.run('B', () => new AsyncContext.Snapshot()));
    const seen = a.run('other', () => snapshot.run((x) => [a.get(), b.getStore(), x], 'arg'));
    assert.deepEqual(seen, ['A', 'B', 'arg']);
    assert.equal(a.get(), undefined);
  });

  it('restores the caller context after run, even when it throws', () => {
    const v = new AsyncContext.Variable();
    const empty = new AsyncContext.Snapshot();
    v.run('caller', () => {
      assert.throws(() => empty.run(() => {
        assert.equal(v.get(), undefined);
        throw new Error('boom');
      }), /boom/);
      assert.equal(v.get(), 'caller');
    });
  });

  it('wrap() binds a function to the current context and keeps `this`', () => {
    const v = new AsyncContext.Variable();
    const wrapped = v.run('wrapped', () => AsyncContext.Snapshot.wrap(function named(x) {
      return [v.get(), this, x];
    }));
    const receiver = { wrapped };
    assert.deepEqual(v.run('other', () => receiver.wrapped(1)), ['wrapped', receiver, 1]);
    assert.equal(wrapped.name, 'wrapped named');
    assert.equal(wrapped.length, 1);
  });

  it('wrap() throws a TypeError for non-functions', () => {
    assert.throws(() => AsyncContext.Snapshot.wrap(1), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('a snapshot taken in an async flow sees later-started flows untouched', async () => {
    const v = new AsyncContext.Variable();
    const snapshots = await Promise.all([1, 2, 3].map((i) => v.run(i, async () => {
      await tick();
      return new AsyncContext.Snapshot();
    })));
    assert.deepEqual(snapshots.map((s) => s.run(() => v.get())), [1, 2, 3]);
  });

  it('reports its toStringTag', () => {
    assert.equal(Object.prototype.toString.call(new AsyncContext.Snapshot()), '[object AsyncContext.Snapshot]');
    assert.equal(Object.prototype.toString.call(new AsyncContext.Variable()), '[object AsyncContext.Variable]');
  });
});

// What the proposal's spec text (and its test262 suite) pins down beyond
// behaviour: how options are read, property attributes, and the name, length
// and kind of a wrapped function.
describe('AsyncContext shapes, as the proposal specifies', () => {
  const builtIn = { writable: false, enumerable: false, configurable: true };
  const descriptor = (object, key) => {
    const { value, writable, enumerable, configurable } = Object.getOwnPropertyDescriptor(object, key);
    return { value, writable, enumerable, configurable };
  };

  it('Variable reads a present name through ToString, then defaultValue, from object options only', () => {
    assert.equal(new AsyncContext.Variable({ name: undefined }).name, 'undefined');
    assert.equal(new AsyncContext.Variable({ name: 42 }).name, '42');
    assert.equal(new AsyncContext.Variable({ name: { toString: () => 'bar' } }).name, 'bar');
    assert.throws(() => new AsyncContext.Variable({ name: Symbol('s') }), TypeError);
    assert.equal(new AsyncContext.Variable('not options').name, '');
    const reads = [];
    const options = new Proxy({ name: 'n', defaultValue: 'd' }, {
      has: (target, key) => { reads.push(`has ${String(key)}`); return key in target; },
      get: (target, key) => { reads.push(`get ${String(key)}`); return target[key]; },
    });
    assert.equal(new AsyncContext.Variable(options).get(), 'd');
    assert.deepEqual(reads, ['has name', 'get name', 'get defaultValue']);
    class Failure extends Error {}
    assert.throws(() => new AsyncContext.Variable({ get defaultValue() { throw new Failure(); } }), Failure);
    assert.equal(AsyncContext.Variable.length, 1);
    assert.equal(AsyncContext.Snapshot.length, 0);
  });

  it('the namespace and prototypes carry their tags and members as built-ins do', () => {
    assert.deepEqual(descriptor(AsyncContext, Symbol.toStringTag), { value: 'AsyncContext', ...builtIn });
    assert.equal(Object.prototype.toString.call(AsyncContext), '[object AsyncContext]');
    assert.equal(Object.getPrototypeOf(AsyncContext), Object.prototype);
    for (const name of ['Variable', 'Snapshot']) {
      assert.deepEqual(descriptor(AsyncContext, name), { value: AsyncContext[name], writable: true, enumerable: false, configurable: true });
      assert.deepEqual(descriptor(AsyncContext[name].prototype, Symbol.toStringTag), { value: `AsyncContext.${name}`, ...builtIn });
    }
    const name = Object.getOwnPropertyDescriptor(AsyncContext.Variable.prototype, 'name');
    assert.equal(typeof name.get, 'function');
    assert.equal(name.set, undefined);
    assert.throws(() => name.get.call(new AsyncContext.Snapshot()), TypeError);
    assert.throws(() => AsyncContext.Variable.prototype.run.call(new AsyncContext.Snapshot(), 1, () => {}), TypeError);
  });

  it('wrap() copies name and length as CopyNameAndLength does, and is not a constructor', () => {
    function callback(a, b) {}
    const wrap = () => AsyncContext.Snapshot.wrap(callback);
    assert.deepEqual(descriptor(wrap(), 'name'), { value: 'wrapped callback', ...builtIn });
    assert.deepEqual(descriptor(wrap(), 'length'), { value: 2, ...builtIn });
    assert.equal(Object.getPrototypeOf(wrap()), Function.prototype);
    assert.throws(() => new (wrap())(), TypeError);
    const lengths = [[42, 42], [-42, 0], [7.9, 7], [-0.2, 0], [Infinity, Infinity], [-Infinity, 0], [NaN, 0],
      [undefined, 0], ['42', 0], [42n, 0], [{ valueOf: () => 42 }, 0]];
    for (const [value, expected] of lengths) {
      Object.defineProperty(callback, 'length', { value, configurable: true });
      assert.equal(wrap().length, expected, `length ${String(value)}`);
    }
    delete callback.length;
    Object.setPrototypeOf(callback, Object.create(Function.prototype, { length: { value: 5 } }));
    assert.equal(wrap().length, 0, 'an inherited length is ignored');
    const names = [[42, 'wrapped '], [Symbol('s'), 'wrapped '], [{ toString() { throw new Error('called'); } }, 'wrapped '], ['foo', 'wrapped foo']];
    for (const [value, expected] of names) {
      Object.defineProperty(callback, 'name', { value, configurable: true });
      assert.equal(wrap().name, expected);
    }
    class Failure extends Error {}
    Object.defineProperty(callback, 'name', { get() { throw new Failure(); }, configurable: true });
    assert.throws(wrap, Failure, 'a throwing name getter propagates');
  });

  it('runs callbacks with an undefined this, and switches back synchronously even for a pending promise', () => {
    const v = new AsyncContext.Variable();
    v.run('outer', () => {
      v.run('inner', function () {
        assert.equal(this, undefined);
        return new Promise(() => {});
      });
      assert.equal(v.get(), 'outer');
      new AsyncContext.Snapshot().run(function () { assert.equal(this, undefined); });
    });
  });

  // The proposal has a generator capture the context when it is created. That
  // takes the engine; ambient, like Node's AsyncLocalStorage, resumes it in
  // the context of whoever calls next(). docs/semantics.md says so.
  it('resumes a generator in the caller\'s context, exactly as a native AsyncLocalStorage does', async () => {
    const { AsyncLocalStorage: NativeStorage } = require('node:async_hooks');
    const ours = new AsyncContext.Variable();
    const native = new NativeStorage();
    function* sync() { yield [ours.get(), native.getStore()]; yield [ours.get(), native.getStore()]; }
    async function* async() { await tick(); yield [ours.get(), native.getStore()]; await tick(); yield [ours.get(), native.getStore()]; }
    const both = (value, fn) => ours.run(value, () => native.run(value, fn));
    const g = both('created', () => sync());
    assert.deepEqual([both('first', () => g.next().value), both('second', () => g.next().value)], [['first', 'first'], ['second', 'second']]);
    const a = both('created', () => async());
    const seen = [await both('first', () => a.next()), await both('second', () => a.next())].map((r) => r.value);
    assert.deepEqual(seen, [['first', 'first'], ['second', 'second']]);
  });
});
