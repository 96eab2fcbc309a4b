'use strict';
// Three patterns from the article ambient grew from, in one small Express app:
//
// - authentication context: a middleware sets the user, and the service layer
//   reads it for authorization and auditing, with no parameter passing;
// - fail-fast: code that needs a request throws at once outside one, rather
//   than running with another request's (or no) data;
// - a request-scoped database transaction that the data layer finds on its
//   own, and an audit record, in an independent scope, that survives the
//   transaction rolling back.
//
// `node examples/patterns.js` runs a few requests and prints the log lines;
// __test__/patterns.spec.js drives it with many interleaved requests.
const http = require('node:http');
const { setTimeout: sleep } = require('node:timers/promises');
const express = require('express');
const ambient = require('..');

const { AsyncLocalStorage, RequestContext, createLogger } = ambient;

// An in-memory database with transactions: writes in a transaction are
// applied on commit only.
class Database {
  accounts = new Map([['alice', 100], ['bob', 50]]);
  ledger = [];
  auditLog = [];

  begin() {
    const pending = [];
    return {
      credit: (account, amount) => pending.push(() => this.accounts.set(account, this.accounts.get(account) + amount)),
      record: (entry) => pending.push(() => this.ledger.push(entry)),
      balance: (account) => this.accounts.get(account),
      commit: () => pending.splice(0).forEach((apply) => apply()),
      rollback: () => { pending.length = 0; },
    };
  }
}

const users = new Map([['token-alice', { id: 'alice', roles: ['payer'] }], ['token-bob', { id: 'bob', roles: [] }]]);
const currentUser = new AsyncLocalStorage({ name: 'user' });
const currentTransaction = new AsyncLocalStorage({ name: 'transaction' });

// Fail-fast accessors: what the service layer calls instead of taking the
// user or the transaction as a parameter.
function requireUser() {
  const user = currentUser.getStore();
  if (user === undefined) throw Object.assign(new Error('no authenticated user in this request'), { status: 401 });
  return user;
}

function requireTransaction() {
  const tx = currentTransaction.getStore();
  if (tx === undefined) throw new Error('data access outside a transaction');
  return tx;
}

function createApp({ db, log }) {
  // Runs a function in a transaction, as a child scope of the request: its
  // own span, the request's fields, and an outcome of its own.
  function inTransaction(fn) {
    return RequestContext.require().child({ name: 'db.transaction' }, async () => {
      const tx = db.begin();
      try {
        const result = await currentTransaction.run(tx, fn);
        tx.commit();
        return result;
      } catch (err) {
        tx.rollback();
        log.warn({ err }, 'transaction rolled back');
        throw err;
      }
    });
  }

  // Written outside the transaction, in an independent scope, so it stays
  // whatever the transaction does.
  function audit(action, detail) {
    const request = RequestContext.require();
    const { requestId } = request;
    request.independent({ name: 'audit' }, () => {
      const user = requireUser().id;
      db.auditLog.push({ requestId, user, action, ...detail });
      log.info({ action, user }, 'audited');
    });
  }

  // The service layer: no req, no user, no transaction in its signature.
  const payments = {
    async transfer(to, amount) {
      const user = requireUser();
      if (!user.roles.includes('payer')) throw Object.assign(new Error(`${user.id} may not pay`), { status: 403 });
      audit('transfer', { to, amount });
      return inTransaction(async () => {
        const tx = requireTransaction();
        tx.credit(user.id, -amount);
        tx.credit(to, amount);
        tx.record({ from: user.id, to, amount, requestId: RequestContext.require().requestId });
        await sleep(Math.random() * 5); // the database's round trip
        if (tx.balance(user.id) < amount) throw Object.assign(new Error('insufficient funds'), { status: 409 });
        return { from: user.id, to, amount };
      });
    },
  };

  const app = express();
  app.use(ambient.middleware({ logger: log }));
  // Authentication: sets the user for everything downstream, and puts its id
  // on every log line of the request.
  app.use((req, res, next) => {
    const user = users.get(String(req.headers.authorization).replace(/^Bearer /, ''));
    if (user === undefined) return next();
    RequestContext.require().set('userId', user.id);
    currentUser.run(user, next);
  });
  app.post('/transfer/:to/:amount', async (req, res, next) => {
    try {
      res.json(await payments.transfer(req.params.to, Number(req.params.amount)));
    } catch (err) {
      next(err);
    }
  });
  app.use(ambient.errorLogger({ logger: log }));
  app.use((err, req, res, next) => res.status(err.status ?? 500).json({ error: err.message }));
  return { app, payments };
}

async function main() {
  const db = new Database();
  const log = createLogger({ pretty: !process.argv.includes('--json'), base: null, sync: true });
  const { app, payments } = createApp({ db, log });
  const server = http.createServer(app);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const post = (path, token) => fetch(`http://127.0.0.1:${server.address().port}${path}`,
    { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} }).then((r) => r.status);
  const statuses = await Promise.all([
    post('/transfer/bob/30', 'token-alice'), // committed
    post('/transfer/bob/500', 'token-alice'), // rolled back, still audited
    post('/transfer/alice/5', 'token-bob'), // forbidden
    post('/transfer/alice/5'), // no user
  ]);
  server.close();
  try {
    await payments.transfer('bob', 1);
  } catch (err) {
    log.info(`outside a request: ${err.message}`);
  }
  log.info({ statuses: statuses.join(' '), balances: Object.fromEntries(db.accounts), ledger: db.ledger.length, audited: db.auditLog.length }, 'done');
}

if (require.main === module) main();

module.exports = { createApp, Database };
