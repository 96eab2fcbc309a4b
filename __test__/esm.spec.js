'use strict';
// ES modules import ambient's names one by one. Node finds a CommonJS
// module's names by reading its source, so index.js must keep a shape it
// can read; these tests fail when a name is missing from the ESM view.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { pathToFileURL } = require('node:url');

const root = path.join(__dirname, '..');

describe('ES module imports', () => {
  it('offers every export of require() as a named import, bound to the same value', async () => {
    const required = require(root);
    const namespace = await import(pathToFileURL(path.join(root, 'index.js')).href);
    const named = Object.keys(namespace).filter((key) => key !== 'default' && key !== 'module.exports').sort();
    assert.deepEqual(named, Object.keys(required).sort());
    for (const key of named) assert.equal(namespace[key], required[key], key);
    assert.equal(namespace.default, required);
  });

  it('runs an ES module app that imports the context, the adapters and the codecs by name', () => {
    const out = execFileSync(process.execPath, [path.join(__dirname, 'fixtures', 'esm_app.mjs')], { encoding: 'utf8' });
    const seen = JSON.parse(out);
    assert.equal(seen.tenant, 'acme');
    assert.equal(seen.mixin.requestId, 'esm-1');
    assert.equal(seen.mixin.step, 'after-await');
    assert.match(seen.mixin.traceId, /^[0-9a-f]{32}$/);
    assert.equal(seen.winston.requestId, 'esm-1');
    assert.equal(seen.winston.message, 'hi');
    assert.equal(seen.fields.requestId, 'esm-1');
    assert.deepEqual(seen.parsed, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentId: '00f067aa0ba902b7', traceFlags: 1 });
    assert.equal(seen.idLength, 36);
    assert.equal(seen.version, 'string');
  });
});
