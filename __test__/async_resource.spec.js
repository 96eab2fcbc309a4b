'use strict';
// AsyncResource restores ambient and native stores alike, and async_hooks
// observers still see its lifecycle.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const asyncHooks = require('node:async_hooks');
const { AsyncResource, AsyncLocalStorage } = require('..');

describe('AsyncResource', () => {
  it('runInAsyncScope restores ambient and native stores from construction time', () => {
    const ours = new AsyncLocalStorage();
    const theirs = new asyncHooks.AsyncLocalStorage();
    const resource = ours.run('ours', () => theirs.run('theirs', () => new AsyncResource('Query')));
    const seen = ours.run('elsewhere', () => resource.runInAsyncScope(function (x) {
      return [ours.getStore(), theirs.getStore(), this, x];
    }, 'thisArg', 'arg'));
    assert.deepEqual(seen, ['ours', 'theirs', 'thisArg', 'arg']);
    assert.equal(ours.getStore(), undefined);
  });

  it('bind and static bind keep the construction context', () => {
    const als = new AsyncLocalStorage();
    const [bound, staticBound] = als.run('ctx', () => [
      new AsyncResource('Bound').bind(() => als.getStore()),
      AsyncResource.bind(() => als.getStore()),
    ]);
    assert.equal(bound(), 'ctx');
    assert.equal(staticBound(), 'ctx');
  });

  it('exposes asyncId and triggerAsyncId, and honours the triggerAsyncId option', () => {
    const resource = new AsyncResource('WithTrigger', { triggerAsyncId: 1234 });
    assert.equal(typeof resource.asyncId(), 'number');
    assert.equal(resource.triggerAsyncId(), 1234);
  });

  it('is visible to async_hooks observers: init, before, after and destroy', async () => {
    const events = [];
    const hook = asyncHooks.createHook({
      init(id, type) { if (type === 'AmbientProbe') events.push(['init', id]); },
      before(id) { if (events.some(([, e]) => e === id)) events.push(['before', id]); },
      after(id) { if (events.some(([, e]) => e === id)) events.push(['after', id]); },
      destroy(id) { if (events.some(([, e]) => e === id)) events.push(['destroy', id]); },
    }).enable();
    const resource = new AsyncResource('AmbientProbe', { requireManualDestroy: true });
    resource.runInAsyncScope(() => {});
    resource.emitDestroy();
    await new Promise((resolve) => setImmediate(resolve));
    hook.disable();
    const id = resource.asyncId();
    assert.deepEqual(events, [['init', id], ['before', id], ['after', id], ['destroy', id]]);
  });

  it('rejects a missing type like Node', () => {
    assert.throws(() => new AsyncResource(), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('is usable as a base class (DB query pattern)', async () => {
    const als = new AsyncLocalStorage();
    class Query extends AsyncResource {
      constructor() { super('DBQuery'); }
      get(callback) { setTimeout(() => this.runInAsyncScope(callback, null, 'row'), 1); }
    }
    const seen = await als.run('request-7', () => new Promise((resolve) => {
      const query = new Query();
      als.exit(() => query.get((row) => resolve([als.getStore(), row])));
    }));
    assert.deepEqual(seen, ['request-7', 'row']);
  });
});
