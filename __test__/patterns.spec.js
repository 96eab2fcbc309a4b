'use strict';
// examples/patterns.js under many interleaved requests with random delays:
// the authenticated user reaches the service layer of its own request only,
// code outside a request fails fast, and each transfer's transaction commits
// or rolls back on its own while its audit record stays either way.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const { setTimeout: sleep } = require('node:timers/promises');
const { RequestContext, createLogger } = require('..');
const { createApp, Database } = require('../examples/patterns');

const tempFile = require('./fixtures/log_dir').logFiles('ambient-patterns-');

describe('the article\'s patterns (examples/patterns.js)', () => {
  const file = tempFile();
  const log = createLogger({ destination: file, base: null });
  const db = new Database();
  db.accounts = new Map([['alice', 1_000], ['bob', 0], ['carol', 0]]);
  const { app, payments } = createApp({ db, log });
  let server;
  let port;

  before(async () => {
    server = http.createServer(app);
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = server.address().port;
  });

  after(() => server.close());

  function post(path, token, requestId) {
    const headers = { 'x-request-id': requestId };
    if (token) headers.authorization = `Bearer ${token}`;
    return fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers })
      .then(async (r) => ({ status: r.status, body: await r.json() }));
  }

  it('keeps each request\'s user, transaction and audit record its own', async () => {
    // alice pays 1..40 to bob or carol (some too much, rolled back); bob may
    // not pay; anonymous requests have no user.
    const sent = Array.from({ length: 60 }, (_, i) => {
      const kind = ['pay', 'pay', 'too-much', 'forbidden', 'anonymous'][i % 5];
      const to = i % 2 ? 'bob' : 'carol';
      const amount = kind === 'too-much' ? 5_000 : i + 1;
      const token = { pay: 'token-alice', 'too-much': 'token-alice', forbidden: 'token-bob', anonymous: undefined }[kind];
      return { id: `pattern-${i}`, kind, to, amount, token };
    });
    const replies = await Promise.all(sent.map(async (s) => {
      await sleep(Math.random() * 5);
      return post(`/transfer/${s.to}/${s.amount}`, s.token, s.id);
    }));
    await log.flush();
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

    let paid = 0;
    sent.forEach((s, i) => {
      const { status, body } = replies[i];
      const mine = lines.filter((l) => l.requestId === s.id);
      const access = mine.find((l) => l.msg === 'request completed');
      if (s.kind === 'pay') {
        paid += s.amount;
        assert.equal(status, 200);
        assert.deepEqual(body, { from: 'alice', to: s.to, amount: s.amount });
        assert.deepEqual(db.ledger.filter((e) => e.requestId === s.id), [{ from: 'alice', to: s.to, amount: s.amount, requestId: s.id }]);
      } else {
        assert.equal(status, { 'too-much': 409, forbidden: 403, anonymous: 401 }[s.kind], s.kind);
        assert.equal(db.ledger.filter((e) => e.requestId === s.id).length, 0, 'nothing of a failed transfer is written');
      }
      // The user the auth middleware set is on every line of its request,
      // the access line included, and on no other request's.
      const user = { 'token-alice': 'alice', 'token-bob': 'bob' }[s.token];
      assert.equal(access.userId, user);
      // The audit record survives a rollback, written by the request's own user.
      const audited = db.auditLog.filter((a) => a.requestId === s.id);
      if (s.kind === 'pay' || s.kind === 'too-much') {
        assert.deepEqual(audited, [{ requestId: s.id, user: 'alice', action: 'transfer', to: s.to, amount: s.amount }]);
        assert.equal(mine.find((l) => l.msg === 'audited').user, 'alice');
      } else {
        assert.deepEqual(audited, []);
      }
      if (s.kind === 'too-much') assert.ok(mine.some((l) => l.msg === 'transaction rolled back' && l.err.message === 'insufficient funds'));
    });
    assert.equal(db.accounts.get('alice'), 1_000 - paid);
    assert.equal(db.accounts.get('bob') + db.accounts.get('carol'), paid);
  });

  it('fails fast outside a request instead of running with no user', async () => {
    assert.equal(RequestContext.current(), undefined);
    await assert.rejects(payments.transfer('bob', 1), { message: 'no authenticated user in this request', status: 401 });
    // A request context alone is no user: refused the same way.
    const before = db.ledger.length;
    await assert.rejects(RequestContext.run(() => payments.transfer('bob', 1)), { status: 401 });
    assert.equal(db.ledger.length, before);
  });
});
