'use strict';
// Two copies of ambient in one process (as when two versions sit in
// node_modules) share one carrier: each sees the other's contexts.
const { describe, it, before } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setImmediate: tick } = require('node:timers/promises');

const root = path.join(__dirname, '..');
let first;
let second;

before(() => {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'ambient-copy-'));
  for (const entry of ['index.js', 'lib', 'package.json']) {
    fs.cpSync(path.join(root, entry), path.join(copy, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(root, 'ambient.node'), path.join(copy, 'ambient.node'));
  first = require(root);
  second = require(copy);
  assert.notEqual(first.AsyncLocalStorage, second.AsyncLocalStorage, 'the copy must be a separate module instance');
});

describe('duplicate installs', () => {
  it('values set through one copy survive frame switches made by the other', async () => {
    const a = new first.AsyncLocalStorage();
    const b = new second.AsyncLocalStorage();
    await a.run('from-first', () => b.run('from-second', async () => {
      await tick();
      assert.equal(a.getStore(), 'from-first');
      assert.equal(b.getStore(), 'from-second');
      second.AsyncContext.Snapshot.wrap(() => {
        assert.equal(a.getStore(), 'from-first');
      })();
    }));
    assert.equal(a.getStore(), undefined);
    assert.equal(b.getStore(), undefined);
  });

  it('a snapshot from one copy restores variables of the other', () => {
    const v = new first.AsyncContext.Variable();
    const snapshot = v.run('captured', () => new second.AsyncContext.Snapshot());
    assert.equal(snapshot.run(() => v.get()), 'captured');
  });
});
