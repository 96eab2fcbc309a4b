'use strict';
// The Rust addon: loads on the main thread and in worker threads, and a panic
// inside it surfaces as a JS Error instead of aborting the process.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const ambient = require('..');
const native = require('../lib/native');

const pkg = require('../package.json');

describe('native addon', () => {
  it('loads on the main thread and matches the package version', () => {
    assert.equal(ambient.nativeVersion(), pkg.version);
  });

  it('loads inside worker threads, several at once', async () => {
    const versions = await Promise.all(Array.from({ length: 4 }, () => new Promise((resolve, reject) => {
      const worker = new Worker(
        `const { parentPort } = require('node:worker_threads');
         parentPort.postMessage(require(${JSON.stringify(path.join(__dirname, '..'))}).nativeVersion());`,
        { eval: true });
      worker.once('message', resolve);
      worker.once('error', reject);
    })));
    assert.deepEqual(versions, [pkg.version, pkg.version, pkg.version, pkg.version]);
  });

  it('turns a Rust panic into a JS Error and keeps working', () => {
    assert.throws(() => native.panicForTest('deliberate panic'), (err) => {
      assert.ok(err instanceof Error);
      assert.match(err.message, /deliberate panic/);
      return true;
    });
    assert.equal(ambient.nativeVersion(), pkg.version);
  });

  it('rejects a flush whose wait panics on its libuv worker thread, where napi-rs catches nothing (checked in a child process)', () => {
    const script = `
      const native = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'native'))});
      native.panicInFlushForTest('in the flush').then(
        () => console.log('resolved'),
        (e) => console.log('rejected:' + (e instanceof Error) + ':' + e.message),
      ).then(() => console.log('still alive:' + native.nativeVersion()));`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /^rejected:true:the log writer panicked while flushing: in the flush$/m);
    assert.match(child.stdout, new RegExp(`still alive:${pkg.version.replaceAll('.', '\\.')}`));
  });

  it('does not abort the process on a panic (checked in a child process)', () => {
    const script = `
      const native = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'native'))});
      try { native.panicForTest('in child'); } catch (e) { console.log('caught:' + e.message); }
      console.log('still alive');`;
    const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /caught:in child/);
    assert.match(child.stdout, /still alive/);
  });
});
