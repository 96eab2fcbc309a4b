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
