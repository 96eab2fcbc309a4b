'use strict';
// The W3C codecs as JS sees them (the Rust unit tests cover the edge cases).
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { traceContext, newRequestId } = require('..');

describe('traceContext', () => {
  it('parses and formats traceparent', () => {
    const parsed = traceContext.parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    assert.deepEqual(parsed, { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', parentId: '00f067aa0ba902b7', traceFlags: 1 });
    assert.equal(traceContext.formatTraceparent(parsed.traceId, parsed.parentId, parsed.traceFlags),
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    // A future version is read as version 00 and re-emitted as 00.
    assert.equal(traceContext.parseTraceparent('cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra').traceId,
      '4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it('returns null for invalid traceparent and throws only on wrong types', () => {
    for (const bad of ['', 'x', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01']) {
      assert.equal(traceContext.parseTraceparent(bad), null);
    }
    assert.throws(() => traceContext.parseTraceparent(1), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => traceContext.formatTraceparent('zz', '00f067aa0ba902b7'), /lowercase hex/);
    assert.throws(() => traceContext.formatTraceparent('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', 256), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('parses tracestate and drops an invalid one whole', () => {
    assert.deepEqual(traceContext.parseTracestate('rojo=00f067aa0ba902b7, congo=t61rcWkgMzE'), [['rojo', '00f067aa0ba902b7'], ['congo', 't61rcWkgMzE']]);
    assert.deepEqual(traceContext.parseTracestate('rojo=1,rojo=2'), []);
  });

  it('round-trips baggage with percent-encoding and skips invalid members', () => {
    const header = traceContext.formatBaggage([{ key: 'user', value: 'Ada Lovelace, Esq.' }, { key: 'tier', value: 'gold', properties: ['ttl=60'] }]);
    assert.equal(header, 'user=Ada%20Lovelace%2C%20Esq.,tier=gold;ttl=60');
    assert.deepEqual(traceContext.parseBaggage(`${header},bad key=1`), [
      { key: 'user', value: 'Ada Lovelace, Esq.', properties: [] },
      { key: 'tier', value: 'gold', properties: ['ttl=60'] },
    ]);
  });

  it('newRequestId() gives distinct UUIDv7 ids across pool refills', () => {
    const ids = Array.from({ length: 200 }, () => newRequestId());
    assert.equal(new Set(ids).size, 200);
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
