'use strict';
// The structured logger: pino's line format with the request context added,
// safe serialization, levels, destinations, and no line lost however the
// process ends.
const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const { createLogger, RequestContext } = require('..');

const tempFile = require('./fixtures/log_dir').logFiles('ambient-log-');

function readLines(file) {
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.endsWith('\n') || text === '', 'the file ends with a complete line');
  return text.split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

function logTo(options = {}) {
  const file = tempFile();
  return { file, log: createLogger({ destination: file, ...options }) };
}

describe('line format', () => {
  it('writes one pino-compatible JSON object per line', async () => {
    const { file, log } = logTo({ name: 'api' });
    log.info('hello');
    log.warn({ user: 'ada' }, 'user %s did %d things', 'ada', 3);
    await log.flush();
    const [a, b] = readLines(file);
    assert.equal(a.level, 30);
    assert.equal(typeof a.time, 'number');
    assert.ok(Math.abs(a.time - Date.now()) < 10_000);
    assert.equal(a.pid, process.pid);
    assert.equal(a.hostname, os.hostname());
    assert.equal(a.name, 'api');
    assert.equal(a.msg, 'hello');
    assert.equal(a.requestId, undefined, 'no context, no ids');
    assert.equal(b.level, 40);
    assert.equal(b.user, 'ada');
    assert.equal(b.msg, 'user ada did 3 things');
  });

  it('adds the current context ids and fields to every line', async () => {
    const { file, log } = logTo({ base: null });
    await RequestContext.run({ requestId: 'req-42', fields: { tenant: 'acme', attempt: 2 } }, async () => {
      const ctx = RequestContext.require();
      await new Promise((resolve) => setTimeout(resolve, 1));
      log.child({ component: 'db' }).info({ rows: 3 }, 'query');
      ctx.set('tenant', 'globex');
      log.info('after a field change');
    });
    await log.flush();
    const [query, later] = readLines(file);
    assert.equal(query.requestId, 'req-42');
    assert.match(query.traceId, /^[0-9a-f]{32}$/);
    assert.match(query.spanId, /^[0-9a-f]{16}$/);
    assert.equal(query.tenant, 'acme');
    assert.equal(query.attempt, 2);
    assert.equal(query.component, 'db');
    assert.equal(query.rows, 3);
    assert.equal(later.tenant, 'globex');
    assert.equal(query.pid, undefined, 'base: null leaves pid and hostname out');
  });

  it('cannot be forged: messages, keys and values are escaped', async () => {
    const { file, log } = logTo();
    const evil = 'x"}\n{"level":60,"msg":"forged\r\n\u2028';
    log.info({ [evil]: evil }, evil);
    await RequestContext.run({ requestId: 'ok-id', fields: { [evil]: evil } }, () => log.info(evil));
    await log.flush();
    const lines = readLines(file);
    assert.equal(lines.length, 2);
    assert.equal(lines[0].msg, evil);
    assert.equal(lines[0][evil], evil);
    assert.equal(lines[1][evil], evil);
    assert.ok(lines.every((l) => l.level === 30));
  });
});

describe('the access line', () => {
  it('keeps a url with NUL, quotes and line breaks whole and escaped, and a method or route with NUL too', async () => {
    // The middleware's own path (node:http rejects such urls before it, but
    // a wrapped handler may be given anything).
    const { WRITE_ACCESS, accessMessage } = require('../lib/logger');
    const { beginRoot, endAt } = require('../lib/request_context');
    const { file, log } = logTo();
    const message = accessMessage('request completed');
    const url = '/a\0b"},"forged":1\n{"level":60}\0';
    const ctx = beginRoot('nul-1', undefined, undefined, undefined, 'GET', true);
    log[WRITE_ACCESS](ctx, 30, 'GET', '/r', url, 200, 1.5, 7, message);
    log[WRITE_ACCESS](ctx, 30, 'GET', '/r\0x', url, 201, 2, 8, message);
    log[WRITE_ACCESS](ctx, 30, 'G\0T', '/r', url, 202, 3, 9, message);
    endAt(ctx, 'ok', performance.now());
    await log.flush();
    const lines = readLines(file);
    assert.equal(lines.length, 3);
    assert.deepEqual(lines.map((l) => [l.requestId, l.method, l.route, l.url, l.status, l.bytes]), [
      ['nul-1', 'GET', '/r', url, 200, 7],
      ['nul-1', 'GET', '/r\0x', url, 201, 8],
      ['nul-1', 'G\0T', '/r', url, 202, 9],
    ]);
    assert.ok(lines.every((l) => l.forged === undefined && l.msg === 'request completed'));
  });
});

describe('use after end', () => {
  it('a line logged in an ended context is written, counted, and warned about once', async () => {
    const { file, log } = logTo();
    const warnings = [];
    const onWarning = (w) => { if (w.code === 'AMBIENT_USE_AFTER_END') warnings.push(w); };
    process.on('warning', onWarning);
    try {
      const before = RequestContext.stats().useAfterEnd;
      let ctx;
      await RequestContext.run({ requestId: 'late-1' }, async () => {
        ctx = RequestContext.require();
        setImmediate(() => {
          log.info('after the end');
          log.info('again');
        });
      });
      assert.equal(ctx.ended, true);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await log.flush();
      const lines = readLines(file);
      assert.deepEqual(lines.map((l) => [l.requestId, l.msg]), [['late-1', 'after the end'], ['late-1', 'again']]);
      assert.equal(RequestContext.stats().useAfterEnd - before, 2);
      assert.equal(warnings.length, 1);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('serialization', () => {
  it('keeps error type, message, stack and cause, and own properties', async () => {
    const { file, log } = logTo();
    const err = new TypeError('outer', { cause: new RangeError('inner') });
    err.code = 'E_OUTER';
    log.error(err);
    log.error({ err }, 'with message');
    await log.flush();
    const [first, second] = readLines(file);
    assert.equal(first.msg, 'outer');
    assert.equal(first.err.type, 'TypeError');
    assert.equal(first.err.message, 'outer');
    assert.match(first.err.stack, /TypeError: outer/);
    assert.equal(first.err.code, 'E_OUTER');
    assert.equal(first.err.cause.type, 'RangeError');
    assert.equal(first.err.cause.message, 'inner');
    assert.equal(second.msg, 'with message');
    assert.equal(second.err.type, 'TypeError');
  });

  it("applies pino's serializers to the logged object's members, errors, bindings and base", async () => {
    const calls = [];
    const { file, log } = logTo({
      base: { service: { name: 'billing', secret: 's' } },
      redact: ['user.token', 'card'],
      serializers: {
        user: (user) => ({ id: user.id, token: user.token }),
        service: (service) => service.name,
        err: (err) => ({ kind: err.name, text: err.message }),
        card: (card) => calls.push(card),
        nothing: (value) => calls.push(value),
        broken: () => { throw new Error('serializer failed'); },
      },
    });
    log.info({ user: { id: 7, password: 'pw', token: 't' }, nested: { user: { password: 'kept' } } }, 'member');
    log.error(new TypeError('bad input'));
    log.warn({ err: new RangeError('out of range') }, 'wrapped');
    log.info({ nothing: undefined, broken: 1, after: 2 }, 'edge');
    log.info({ card: '4111' }, 'redacted');
    const child = log.child({ user: { id: 9, password: 'pw' } }, { serializers: { user: (user) => `user-${user.id}`, extra: (n) => n * 2 } });
    child.info({ extra: 21 }, 'child');
    log.info({ extra: 21 }, 'parent keeps its own');
    await log.flush();
    const [member, error, wrapped, edge, redacted, childLine, parent] = readLines(file);
    assert.equal(member.service, 'billing', 'base goes through its serializer');
    assert.deepEqual(member.user, { id: 7, token: '[Redacted]' }, 'redaction applies to what the serializer returned');
    assert.deepEqual(member.nested, { user: { password: 'kept' } }, 'only the top-level members are serialized');
    assert.deepEqual([error.err, error.msg], [{ kind: 'TypeError', text: 'bad input' }, 'bad input']);
    assert.deepEqual([wrapped.err, wrapped.msg], [{ kind: 'RangeError', text: 'out of range' }, 'wrapped']);
    assert.deepEqual([edge.broken, edge.after, 'nothing' in edge], ['[Unserializable: Error: serializer failed]', 2, false]);
    assert.equal(redacted.card, '[Redacted]');
    assert.deepEqual(calls, [], 'undefined members and redacted ones are not handed to a serializer');
    assert.deepEqual([childLine.user, childLine.extra, childLine.service], ['user-9', 42, 'billing']);
    assert.equal(parent.extra, 21, "a child's serializers stay the child's");
  });

  it('refuses serializers that are not functions', () => {
    for (const [serializers, name] of [[[], 'options.serializers'], ['err', 'options.serializers'], [{ err: 'stdErr' }, 'options.serializers.err']]) {
      assert.throws(() => createLogger({ destination: tempFile(), serializers }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: new RegExp(`"${name.replace('.', '\\.')}"`) });
    }
    const log = createLogger({ destination: tempFile() });
    assert.throws(() => log.child({}, { serializers: { user: 1 } }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.serializers\.user/ });
    assert.throws(() => log.child({}, null), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it("takes an error's message only when the object has no msg of its own", async () => {
    const { file, log } = logTo({ base: null });
    const err = new Error('boom');
    log.error({ err, msg: 'charge failed' });
    log.error({ err });
    await log.flush();
    const raw = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    // JSON.parse keeps the last of two equal keys: count them in the text.
    assert.deepEqual(raw.map((line) => line.match(/"msg":/g).length), [1, 1]);
    assert.deepEqual(raw.map((line) => JSON.parse(line).msg), ['charge failed', 'boom']);
  });

  it('handles circular references, BigInt, undefined, Map, Set, Date and depth', async () => {
    const { file, log } = logTo();
    const circular = { name: 'loop' };
    circular.self = circular;
    let deep = {};
    const root = deep;
    for (let i = 0; i < 20; i++) deep = deep.next = {};
    log.info({
      circular, small: 7n, huge: 2n ** 80n, gone: undefined, list: [1, undefined, () => {}],
      map: new Map([['a', 1]]), set: new Set(['x']), when: new Date(0), root, nan: NaN,
    });
    await log.flush();
    const [line] = readLines(file);
    assert.deepEqual(line.circular, { name: 'loop', self: '[Circular]' });
    assert.equal(line.small, 7);
    assert.equal(line.huge, (2n ** 80n).toString());
    assert.equal('gone' in line, false);
    assert.deepEqual(line.list, [1, null, null]);
    assert.deepEqual(line.map, { a: 1 });
    assert.deepEqual(line.set, ['x']);
    assert.equal(line.when, '1970-01-01T00:00:00.000Z');
    assert.equal(line.nan, null);
    assert.match(JSON.stringify(line.root), /\[Object\]/);
  });

  it('writes the line when reading a value throws, and ends toJSON and cause loops', async () => {
    const { file, log } = logTo();
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const selfCaused = new Error('loops');
    selfCaused.cause = selfCaused;
    const badStack = new Error('no stack');
    Object.defineProperty(badStack, 'stack', { get() { throw new RangeError('stack gone'); } });
    const lines = [
      [{ get broken() { throw new Error('getter'); }, kept: 1 }, 'getter'],
      [{ j: { toJSON() { throw new TypeError('to json'); } }, kept: 2 }, 'toJSON throws'],
      [{ p: new Proxy({}, { ownKeys() { throw new Error('trap'); } }), r: revoked.proxy, kept: 3 }, 'proxies'],
      [{ self: { x: 1, toJSON() { return this; } }, chain: { toJSON: () => ({ toJSON: () => 'never' }) } }, 'toJSON loops'],
      [{ err: selfCaused, other: badStack }, 'errors'],
      [new Proxy({}, { ownKeys() { throw new Error('root trap'); } }), 'root'],
      [[1, 2], 'array'],
      [null, 'null object'],
    ];
    for (const [object, msg] of lines) assert.doesNotThrow(() => log.info(object, msg));
    log.child({ get who() { throw new Error('bound getter'); }, kept: 4 }).info('child');
    log.child(new Proxy({}, { ownKeys() { throw new Error('bound trap'); } })).info('child of a proxy');
    await log.flush();
    const [getter, toJSON, proxies, loops, errors, root, array, nullObject, child, childOfProxy] = readLines(file);
    assert.deepEqual([child.who, child.kept, child.msg], ['[Unserializable: Error: bound getter]', 4, 'child']);
    assert.deepEqual([childOfProxy.bindings, childOfProxy.msg], ['[Unserializable: Error: bound trap]', 'child of a proxy']);
    assert.deepEqual([getter.broken, getter.kept, getter.msg], ['[Unserializable: Error: getter]', 1, 'getter']);
    assert.deepEqual([toJSON.j, toJSON.kept], ['[Unserializable: TypeError: to json]', 2]);
    assert.equal(proxies.p, '[Unserializable: Error: trap]');
    assert.match(proxies.r, /^\[Unserializable: TypeError: .*revoked/);
    assert.equal(proxies.kept, 3);
    // As JSON.stringify does: a toJSON result's own toJSON is not called.
    assert.deepEqual(loops.self, { x: 1 });
    assert.deepEqual(loops.chain, {});
    assert.deepEqual([errors.err.message, errors.err.cause], ['loops', '[Circular]']);
    assert.deepEqual([errors.other.message, errors.other.stack], ['no stack', '[Unserializable: RangeError: stack gone]']);
    assert.deepEqual([root.value, root.msg], ['[Unserializable: Error: root trap]', 'root']);
    assert.deepEqual(array.value, [1, 2]);
    assert.equal(nullObject.msg, 'null object');
  });

  it('redacts configured paths, with wildcards', async () => {
    const { file, log } = logTo({ redact: ['password', 'req.headers.authorization', 'users.*.token'] });
    log.info({
      password: 'hunter2',
      req: { headers: { authorization: 'Bearer abc', host: 'example' } },
      users: [{ name: 'a', token: 't1' }, { name: 'b', token: 't2' }],
    });
    log.child({ password: 'in bindings' }).info('child');
    await log.flush();
    const [line, child] = readLines(file);
    assert.equal(line.password, '[Redacted]');
    assert.equal(line.req.headers.authorization, '[Redacted]');
    assert.equal(line.req.headers.host, 'example');
    assert.deepEqual(line.users, [{ name: 'a', token: '[Redacted]' }, { name: 'b', token: '[Redacted]' }]);
    assert.equal(child.password, '[Redacted]');
  });

  it("reads paths as pino writes them, and a key's rule and a wildcard's both apply", async () => {
    const { file, log } = logTo({
      base: { pid: 1, secret: 'in base' },
      redact: ['req.headers["x-api-key"]', "cookies['session.id']", 'list[*].pw', 'rows[1]', 'user.name', '*.password', '*.secret', 'secret'],
    });
    log.info({
      req: { headers: { 'x-api-key': 'k', host: 'h' } },
      cookies: { 'session.id': 's', session: { id: 'kept' } },
      list: [{ pw: 1, n: 1 }, { pw: 2, n: 2 }],
      rows: ['a', 'b', 'c'],
      user: { name: 'ada', password: 'p', id: 7 },
      db: { password: 'p', host: 'db' },
    });
    await log.flush();
    const [line] = readLines(file);
    assert.deepEqual(line.req.headers, { 'x-api-key': '[Redacted]', host: 'h' });
    assert.deepEqual(line.cookies, { 'session.id': '[Redacted]', session: { id: 'kept' } });
    assert.deepEqual(line.list, [{ pw: '[Redacted]', n: 1 }, { pw: '[Redacted]', n: 2 }]);
    assert.deepEqual(line.rows, ['a', '[Redacted]', 'c']);
    assert.deepEqual(line.user, { name: '[Redacted]', password: '[Redacted]', id: 7 }, 'user.name and *.password');
    assert.deepEqual(line.db, { password: '[Redacted]', host: 'db' });
    assert.equal(line.secret, '[Redacted]', 'base fields are redacted too');

    // A top-level `*` beside a deeper path still hides every member.
    const all = logTo({ redact: ['*', 'user.name'], base: null });
    all.log.info({ user: { name: 'ada', password: 'p' }, n: 1 });
    await all.log.flush();
    assert.deepEqual(readLines(all.file)[0], { ...readLines(all.file)[0], user: '[Redacted]', n: '[Redacted]' });
  });

  it("takes pino's { paths, censor, remove }", async () => {
    const censored = logTo({ redact: { paths: ['a.b', 'list[0]'], censor: '***' }, base: null });
    censored.log.info({ a: { b: 1, c: 2 }, list: [1, 2] });
    const removed = logTo({ redact: { paths: ['a.b', 'list[0]', 'gone'], remove: true }, base: null });
    removed.log.info({ a: { b: 1, c: 2 }, list: [1, 2], gone: 'x', kept: 'y' });
    await Promise.all([censored.log.flush(), removed.log.flush()]);
    const [c] = readLines(censored.file);
    assert.deepEqual([c.a, c.list], [{ b: '***', c: 2 }, ['***', 2]]);
    const [r] = readLines(removed.file);
    assert.deepEqual([r.a, r.list, 'gone' in r, r.kept], [{ c: 2 }, [null, 2], false, 'y'], 'a removed element leaves null, as JSON.stringify does for undefined');
  });

  it("redacts the context's fields, in JSON lines and pretty lines", async () => {
    const fields = { token: 'secret-token', tenant: 'acme' };
    const censored = logTo({ redact: ['token'] });
    const removed = logTo({ redact: { paths: ['token'], remove: true } });
    const everything = logTo({ redact: { paths: ['*'], censor: 'x' } });
    const plain = logTo();
    await Promise.all(Array.from({ length: 30 }, (_, i) => RequestContext.run({ requestId: `redact-${i}`, fields }, async () => {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
      for (const { log } of [censored, removed, everything, plain]) log.info('working');
    })));
    await Promise.all([censored, removed, everything, plain].map(({ log }) => log.flush()));
    const linesOf = ({ file }) => readLines(file).sort((a, b) => a.requestId.localeCompare(b.requestId));
    for (const [i, line] of linesOf(censored).entries()) {
      assert.match(line.requestId, /^redact-\d+$/, `line ${i} keeps its request id`);
      assert.deepEqual([line.token, line.tenant], ['[Redacted]', 'acme']);
    }
    assert.ok(linesOf(removed).every((line) => !('token' in line) && line.tenant === 'acme'));
    assert.ok(linesOf(everything).every((line) => line.token === 'x' && line.tenant === 'x' && /^redact-/.test(line.requestId)));
    assert.ok(linesOf(plain).every((line) => line.token === 'secret-token'), 'a logger without redaction writes the field');
    assert.equal(linesOf(censored).length, 30);

    const pretty = logTo({ pretty: true, redact: ['token'] });
    RequestContext.run({ requestId: 'pretty-redact', fields }, () => pretty.log.info('working'));
    await pretty.log.flush();
    const text = fs.readFileSync(pretty.file, 'utf8');
    assert.match(text, /\[pretty-redact trace:[0-9a-f]{8}\] working token="\[Redacted\]" tenant="acme"\n$/);
  });
});

describe('levels and children', () => {
  it('filters by level, and isLevelEnabled agrees', async () => {
    const { file, log } = logTo({ level: 'warn' });
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) log[level](level);
    assert.equal(log.isLevelEnabled('info'), false);
    assert.equal(log.isLevelEnabled('error'), true);
    assert.equal(log.isLevelEnabled(50), true);
    assert.equal(log.isLevelEnabled(20), false);
    // As pino answers a probe for a level it does not have.
    const theirs = require('pino')({ level: 'warn' }, { write() {} });
    for (const level of ['bogus', 'toString', '__proto__', 'silent', 'fatal', 'trace']) {
      assert.equal(log.isLevelEnabled(level), theirs.isLevelEnabled(level), level);
    }
    assert.equal(log.isLevelEnabled(35), false, 'a number that is no level');
    assert.throws(() => log.isLevelEnabled({}), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    log.level = 'debug';
    log.debug('now enabled');
    assert.equal(log.level, 'debug');
    await log.flush();
    assert.deepEqual(readLines(file).map((l) => [l.level, l.msg]), [[40, 'warn'], [50, 'error'], [60, 'fatal'], [20, 'now enabled']]);
    assert.throws(() => { log.level = 'loud'; }, { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('children add bindings and can have their own level', async () => {
    const { file, log } = logTo();
    const child = log.child({ component: 'db' });
    const grandchild = child.child({ table: 'orders' }, { level: 'error' });
    child.info('child');
    grandchild.info('filtered');
    grandchild.error('grandchild');
    await log.flush();
    const lines = readLines(file);
    assert.deepEqual(lines.map((l) => l.msg), ['child', 'grandchild']);
    assert.equal(lines[1].component, 'db');
    assert.equal(lines[1].table, 'orders');
    // A name that is not one of the child's levels is refused, naming the option.
    assert.throws(() => child.child({}, { level: 'loud' }), {
      name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /'options\.level' must be one of trace, debug, info, warn, error, fatal, silent\. Received 'loud'/,
    });
    assert.equal(child.child({}, { customLevels: { verbose: 15 }, level: 'verbose' }).level, 'verbose');
  });

  it("has pino's levels maps, a silent method and bindings(), for code written against pino", async () => {
    const { file, log } = logTo({ redact: ['token'] });
    assert.deepEqual(log.levels.values, { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 });
    assert.deepEqual(log.levels.labels, { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' });
    assert.equal(log.levels.labels[log.levels.values[log.level]], log.level);
    assert.deepEqual(log.bindings(), {});
    const child = log.child({ component: 'db', token: 'secret', big: 2n }).child({ table: 'orders' });
    assert.deepEqual(child.bindings(), { component: 'db', token: '[Redacted]', big: 2, table: 'orders' }, 'as written');
    const level = 'silent';
    child[level]('nothing');
    child.info('something');
    await log.flush();
    assert.deepEqual(readLines(file).map((l) => l.msg), ['something']);
  });
  it("has pino's msgPrefix and setBindings(), writing what pino writes", async () => {
    const pino = require('pino');
    const pinoLines = [];
    const { file, log } = logTo({ base: null, msgPrefix: '[api] ' });
    const theirs = pino({ base: null, timestamp: false, msgPrefix: '[api] ' }, { write: (line) => pinoLines.push(line) });
    const err = new Error('boom');
    err.stack = 'Error: boom';
    for (const logger of [log, theirs]) {
      logger.info('hello');
      logger.info({ a: 1 });
      logger.info({ a: 1 }, 'with %s', 'args');
      logger.info(42);
      logger.info(null, 'after null');
      logger.info({ msg: 'its own' });
      // A message stood in for by an error takes no prefix, as in pino.
      logger.error(err);
      logger.error(err, 'while %s', 'saving');
      const child = logger.child({ b: 2 }, { msgPrefix: '[db] ' });
      child.info('in the child');
      child.setBindings({ d: 4, b: 3 });
      child.info('after setBindings');
      child.child({ e: 5 }).warn('grandchild');
      logger.setBindings({ r: 1 });
      logger.info('root after setBindings');
    }
    await log.flush();
    const ours = fs.readFileSync(file, 'utf8').replace(/"time":\d+,/g, '').split('\n').filter(Boolean);
    assert.deepEqual(ours, pinoLines.map((line) => line.trimEnd()), 'line for line, duplicate keys included');
    assert.equal(ours.length, 12);
    assert.equal(log.msgPrefix, '[api] ');
    assert.equal(log.child({}, { msgPrefix: '[db] ' }).msgPrefix, '[api] [db] ');
    assert.equal(logTo().log.msgPrefix, undefined);
  });

  it("has pino's messageKey, timestamp, formatters and enabled options, writing what pino writes", async () => {
    const pino = require('pino');
    const err = new Error('boom');
    err.stack = 'Error: boom';
    const calls = (logger) => {
      logger.info('hello');
      logger.info({ message: 'its own' });
      logger.info({ err });
      logger.warn({ a: 1 }, 'with %s', 'args');
      logger.child({ b: 2 }).error(err, 'failed');
    };
    const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    for (const [ours, theirs] of [
      [{ messageKey: 'message', timestamp: false }, { messageKey: 'message', timestamp: false }],
      [{ timestamp: 'iso' }, { timestamp: pino.stdTimeFunctions.isoTime }],
      [{ messageKey: 'message', timestamp: 'iso', sync: true }, { messageKey: 'message', timestamp: pino.stdTimeFunctions.isoTime }],
      // Cloud Logging's severity, and a label with the number beside it.
      ...[
        { messageKey: 'message', timestamp: false, formatters: { level: (label) => ({ severity: label.toUpperCase() }) } },
        { timestamp: false, formatters: { level: (label, number) => ({ level: label, levelNumber: number }) } },
        { formatters: { level: (label) => ({ level: label }) } },
      ].map((options) => [options, options]),
      // pino's bindings formatter: once, on the base, name included.
      ...[
        { name: 'api', base: { pid: 1, hostname: 'h' }, timestamp: false, formatters: { bindings: ({ hostname, name }) => ({ host: hostname, service: name }) } },
        { base: { pid: 1 }, timestamp: false, formatters: { bindings: () => ({}), level: (label) => ({ level: label }) } },
      ].map((options) => [options, options]),
    ]) {
      const pinoLines = [];
      const { file, log } = logTo({ base: null, ...ours });
      const before = Date.now();
      calls(log);
      calls(pino({ base: null, ...theirs }, { write: (line) => pinoLines.push(line.trimEnd()) }));
      await log.flush();
      const text = fs.readFileSync(file, 'utf8');
      const times = [];
      const withoutTime = (line) => line.replace(/"time":("[^"]*"|\d+),/, (_, time) => {
        times.push(JSON.parse(time));
        return '';
      });
      const label = require('node:util').inspect(ours);
      assert.deepEqual(text.split('\n').filter(Boolean).map(withoutTime), pinoLines.map(withoutTime), label);
      if (ours.timestamp === false) {
        assert.deepEqual(times, [], `${label}: no line has a time`);
        continue;
      }
      assert.equal(times.length, 10, label);
      for (const time of times) {
        if (ours.timestamp === 'iso') assert.match(time, ISO, label);
        else assert.equal(typeof time, 'number', label);
        const ms = new Date(time).getTime();
        assert.ok(ms >= before - 1 && ms <= Date.now(), `${label}: ${time} is now`);
      }
    }
    // A formatter that leaves the level out, with no time: pino 9 writes
    // `{,"msg":…}` there, which does not parse.
    const bare = logTo({ base: null, timestamp: false, formatters: { level: () => ({}) } });
    bare.log.info('alone');
    bare.log.info({ a: 1 });
    await bare.log.flush();
    assert.equal(fs.readFileSync(bare.file, 'utf8'), '{"msg":"alone"}\n{"a":1}\n');

    const disabled = logTo({ enabled: false, level: 'trace' });
    assert.equal(disabled.log.level, 'silent');
    disabled.log.fatal('nothing');
    await disabled.log.flush();
    assert.equal(fs.readFileSync(disabled.file, 'utf8'), '');
  });

  it("has pino's mixin and nestedKey: members for every line, the logged object's winning, in the line's context", async () => {
    const pino = require('pino');
    const err = new Error('boom');
    err.stack = 'Error: boom';
    const mixin = (object, level, logger) => ({ app: 'v1', a: 'from the mixin', level10: level / 10, hasLogger: typeof logger.info === 'function' });
    const pinoLines = [];
    const { file, log } = logTo({ base: null, timestamp: false, mixin });
    for (const logger of [log, pino({ base: null, timestamp: false, mixin }, { write: (line) => pinoLines.push(line.trimEnd()) })]) {
      logger.info('message only');
      logger.info({ a: 'mine', b: 2 }, 'with an object');
      logger.child({ k: 1 }).warn('from a child');
      logger.error(err);
    }
    await log.flush();
    assert.deepEqual(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean), pinoLines);

    // Inside a request, it sees the request, as the app's code does.
    const seen = logTo({ mixin: () => ({ seenBy: RequestContext.current()?.requestId ?? 'none' }) });
    await Promise.all(Array.from({ length: 20 }, (_, i) => RequestContext.run({ requestId: `mixed-${i}` }, async () => {
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
      seen.log.info('in a request');
    })));
    seen.log.info('outside');
    await seen.log.flush();
    const lines = readLines(seen.file);
    assert.equal(lines.length, 21);
    for (const line of lines) assert.equal(line.seenBy, line.requestId ?? 'none');

    // nestedKey puts the logged members, the mixin's too, under one key.
    const nestedLines = [];
    const nested = logTo({ base: null, timestamp: false, mixin, nestedKey: 'payload' });
    const nestedPlain = logTo({ base: null, timestamp: false, nestedKey: 'payload' });
    for (const [ours, theirs] of [
      [nested.log, pino({ base: null, timestamp: false, mixin, nestedKey: 'payload' }, { write: (line) => nestedLines.push(line.trimEnd()) })],
      [nestedPlain.log, pino({ base: null, timestamp: false, nestedKey: 'payload' }, { write: (line) => nestedLines.push(line.trimEnd()) })],
    ]) {
      for (const logger of [ours, theirs]) {
        logger.info('message only');
        logger.info({ a: 'mine', deep: { b: [1, 2] } }, 'with an object');
        logger.info({}, 'an empty object');
        logger.child({ k: 1 }).error(err);
      }
    }
    await nested.log.flush();
    await nestedPlain.log.flush();
    const oursNested = [nested.file, nestedPlain.file].flatMap((file) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean));
    assert.deepEqual(oursNested, nestedLines);
    assert.throws(() => createLogger({ nestedKey: 5 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });

    // Under nestedKey, redaction paths and serializers still apply to the
    // logged members, as pino applies them: a secret is not let through.
    const guarded = { base: null, timestamp: false, nestedKey: 'payload', redact: ['password', 'user.token', 'cards[*].number'], serializers: { user: (u) => ({ ...u, id: `u${u.id}` }) } };
    const guardedLines = [];
    const redacting = logTo(guarded);
    for (const logger of [redacting.log, pino(guarded, { write: (line) => guardedLines.push(line.trimEnd()) })]) {
      logger.info({ password: 'hunter2', user: { id: 1, token: 'secret-1' }, cards: [{ number: '4111' }] }, 'signed in');
      logger.child({ password: 'in a binding' }).info({ user: { id: 2, token: 'secret-2' } });
    }
    await redacting.log.flush();
    const redactedText = fs.readFileSync(redacting.file, 'utf8');
    assert.deepEqual(redactedText.split('\n').filter(Boolean), guardedLines);
    for (const secret of ['hunter2', 'secret-1', 'secret-2', '4111', 'in a binding']) assert.ok(!redactedText.includes(secret), secret);
    const pretty = logTo({ ...guarded, pretty: true });
    pretty.log.info({ password: 'hunter2', user: { id: 3, token: 'tok3' } }, 'pretty');
    await pretty.log.flush();
    const prettyText = fs.readFileSync(pretty.file, 'utf8');
    assert.match(prettyText, /pretty payload=\{"password":"\[Redacted\]","user":\{"id":"u3","token":"\[Redacted\]"\}\}\n$/);

    const broken = logTo({ mixin: () => undefined });
    assert.throws(() => broken.log.info('x'), { name: 'TypeError', code: 'ERR_INVALID_RETURN_VALUE' });
    assert.throws(() => createLogger({ mixin: { app: 'v1' } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });

  it("has pino's customLevels and useOnlyCustomLevels: a method per level, its number on the line, as pino writes it", async () => {
    const pino = require('pino');
    const customLevels = { audit: 35, notice: 25, verbose: 15 };
    // With only custom levels, info() and the other built-in methods are
    // absent, in both.
    const calls = (logger) => {
      for (const level of ['trace', 'verbose', 'debug', 'notice', 'info', 'audit', 'warn']) logger[level]?.({ via: level }, `at ${level}`);
      logger.child({ c: 1 }).audit('from a child');
      logger.level = 'audit';
      logger.notice('now filtered');
      logger.info?.('filtered too');
      logger.audit('still written');
      logger.level = 'verbose';
      logger.verbose('written again');
    };
    for (const options of [
      { customLevels, level: 'notice' },
      { customLevels, level: 15 },
      { customLevels, useOnlyCustomLevels: true, level: 'verbose' },
      { customLevels, formatters: { level: (label, number) => ({ severity: label.toUpperCase(), number }) } },
      { customLevels, useOnlyCustomLevels: true, level: 'notice', formatters: { level: (label) => ({ level: label }) } },
    ]) {
      const label = require('node:util').inspect(options);
      const pinoLines = [];
      const theirs = pino({ base: null, timestamp: false, ...options }, { write: (line) => pinoLines.push(line.trimEnd()) });
      const { file, log } = logTo({ base: null, timestamp: false, ...options });
      assert.deepEqual(log.levels, theirs.levels, `${label}: pino's levels maps`);
      assert.equal(log.level, theirs.level, label);
      for (const level of ['trace', 'verbose', 'notice', 'info', 'audit', 'fatal']) {
        assert.equal(typeof log[level], typeof theirs[level], `${label}: ${level}()`);
        if (typeof theirs[level] === 'function') assert.equal(log.isLevelEnabled(level), theirs.isLevelEnabled(level), `${label}: isLevelEnabled(${level})`);
      }
      calls(log);
      calls(theirs);
      await log.flush();
      const ours = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
      assert.deepEqual(ours, pinoLines, label);
      assert.ok(ours.length >= 5, `${label}: ${ours.length} lines`);
    }

    // Pretty lines name a custom level as they name the built-in ones.
    const pretty = logTo({ customLevels, pretty: true, level: 'verbose' });
    pretty.log.audit('checked');
    pretty.log.verbose('detail');
    await pretty.log.flush();
    assert.match(fs.readFileSync(pretty.file, 'utf8'), /^\S+ AUDIT checked\n\S+ VERBOSE detail\n$/);
  });

  it("has pino's errorKey: an error logged alone goes under it, and an err serializer applies to it, as pino writes it", async () => {
    const pino = require('pino');
    // No cause: pino's err serializer flattens one into the message, where
    // ambient keeps it as a member (tested under serialization).
    const err = new TypeError('boom');
    err.stack = 'TypeError: boom';
    for (const options of [
      { errorKey: 'error' },
      { errorKey: 'error', serializers: { err: (e) => ({ text: e.message }) } },
      { errorKey: 'error', serializers: { err: (e) => ({ text: e.message }), error: (e) => `own ${e.message}` } },
      { errorKey: 'exception', messageKey: 'message', nestedKey: 'payload' },
    ]) {
      const label = require('node:util').inspect(options);
      const pinoLines = [];
      const { file, log } = logTo({ base: null, timestamp: false, ...options });
      for (const logger of [log, pino({ base: null, timestamp: false, ...options }, { write: (line) => pinoLines.push(line.trimEnd()) })]) {
        logger.error(err);
        logger.error(err, 'while %s', 'saving');
        logger.warn({ [options.errorKey]: err, orderId: 7 });
        logger.warn({ err, orderId: 8 });
        logger.child({ c: 1 }, { serializers: { err: (e) => `child ${e.message}` } }).fatal(err);
      }
      await log.flush();
      assert.deepEqual(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean), pinoLines, label);
    }
    assert.throws(() => createLogger({ errorKey: 5 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });

  it("a child's customLevels add to its parent's levels, for it and its own children", async () => {
    const pino = require('pino');
    const options = { customLevels: { audit: 35 }, base: null, timestamp: false, level: 'debug' };
    const pinoLines = [];
    const { file, log } = logTo(options);
    // Where a child with levels of its own uses a custom level of its
    // parent's, pino 9 writes `undefined,"c":1,…`, which does not parse;
    // ambient writes the line whole. Those calls are compared with what they
    // should be.
    const calls = [
      ['child', 'notice', true], ['child', 'audit', false], ['child', 'info', true], ['root', 'audit', true],
      ['child', 'debug', true], ['grandchild', 'notice', false], ['grandchild', 'audit', false], ['grandchild', 'verbose', true],
    ];
    for (const root of [log, pino(options, { write: (line) => pinoLines.push(line.trimEnd()) })]) {
      const loggers = { root, child: root.child({ c: 1 }, { customLevels: { notice: 33 } }) };
      loggers.grandchild = loggers.child.child({ g: 1 }, { customLevels: { verbose: 15 }, level: 'verbose' });
      assert.equal(typeof root.notice, 'undefined', "a child's level is not its parent's");
      assert.equal(loggers.child.isLevelEnabled('notice'), true);
      assert.equal(root.isLevelEnabled('notice'), false, "the parent does not have its child's level");
      for (const [who, level] of calls) loggers[who][level](`${who} at ${level}`);
    }
    await log.flush();
    const ours = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.equal(ours.length, calls.length);
    assert.deepEqual(ours.filter((_, i) => calls[i][2]), pinoLines.filter((_, i) => calls[i][2]));
    assert.deepEqual(ours.filter((_, i) => !calls[i][2]).map((line) => JSON.parse(line)), [
      { level: 35, c: 1, msg: 'child at audit' },
      { level: 33, c: 1, g: 1, msg: 'grandchild at notice' },
      { level: 35, c: 1, g: 1, msg: 'grandchild at audit' },
    ]);
    const child = log.child({}, { customLevels: { notice: 33 } });
    assert.deepEqual(child.levels.values, { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, audit: 35, notice: 33 });
    assert.equal(child.levels.labels[33], 'notice');
    child.level = 'notice';
    assert.equal(child.level, 'notice');

    const invalid = { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' };
    assert.throws(() => log.child({}, { customLevels: { audit: 36 } }), { ...invalid, message: /names a level 'audit'/ });
    assert.throws(() => log.child({}, { customLevels: { other: 35 } }), { ...invalid, message: /is level 'audit' already/ });
    // With formatters.level, each level's members are made with the root.
    const formatted = logTo({ formatters: { level: (label) => ({ severity: label }) } });
    assert.throws(() => formatted.log.child({}, { customLevels: { notice: 33 } }), { ...invalid, message: /formatters\.level/ });
    assert.throws(() => log.child({}, { useOnlyCustomLevels: true }), { ...invalid, message: /useOnlyCustomLevels/ });

    const pretty = logTo({ ...options, pretty: true });
    pretty.log.child({}, { customLevels: { notice: 33 } }).notice('pretty');
    await pretty.log.flush();
    assert.match(fs.readFileSync(pretty.file, 'utf8'), /^\S+ NOTICE pretty\n$/);
  });

  it('refuses custom levels that would make a line or a method ambiguous', () => {
    const invalid = { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' };
    for (const customLevels of [{ info: 35 }, { silent: 70 }, { child: 35 }, { flush: 35 }, { toString: 35 }, { 'two words': 35 }, { 'http-log': 35 }, { '': 35 }]) {
      assert.throws(() => createLogger({ customLevels }), { ...invalid, message: /a level's name must be/ }, Object.keys(customLevels)[0]);
    }
    assert.throws(() => createLogger({ customLevels: { loud: 40 } }), { ...invalid, message: /is level 'warn' already/ });
    assert.throws(() => createLogger({ customLevels: { a: 35, b: 35 } }), { ...invalid, message: /is level 'a' already/ });
    for (const value of [1.5, -1, 2 ** 32, '35', NaN]) {
      assert.throws(() => createLogger({ customLevels: { audit: value } }), { ...invalid, message: /customLevels\.audit' must be an integer/ }, String(value));
    }
    assert.throws(() => createLogger({ customLevels: 'audit' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => createLogger({ customLevels: {}, useOnlyCustomLevels: true }), { ...invalid, message: /at least one level/ });
    assert.throws(() => createLogger({ useOnlyCustomLevels: true }), { ...invalid, message: /needs options\.customLevels/ });
    assert.throws(() => createLogger({ customLevels: { audit: 35 }, useOnlyCustomLevels: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    // pino's default level, info, is gone with only custom levels.
    assert.throws(() => createLogger({ customLevels: { audit: 35 }, useOnlyCustomLevels: true }), { ...invalid, message: /'options\.level' must be one of audit, silent/ });
    const { log } = logTo({ customLevels: { audit: 35 } });
    assert.throws(() => { log.level = 'loud'; }, { ...invalid, message: /must be one of trace, debug, info, warn, error, fatal, audit, silent/ });
  });

  it('rejects a messageKey, timestamp, formatters or enabled option it would misread', () => {
    assert.throws(() => createLogger({ messageKey: 5 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    for (const timestamp of ['unix', 0, () => `,"time":${Date.now()}`]) {
      assert.throws(() => createLogger({ timestamp }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }, String(timestamp));
    }
    assert.throws(() => createLogger({ enabled: 'no' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    // pino options that would change what is written: refused, not ignored.
    for (const [key, value] of Object.entries({ transport: { target: 'pino-pretty' }, levelComparator: 'DESC', hooks: {} })) {
      assert.throws(() => createLogger({ [key]: value }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: new RegExp(`options\\.${key}`) }, key);
    }
    assert.throws(() => createLogger({ destination: tempFile() }).child({}, { redact: ['token'] }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.redact/ });
    // pino's other formatters run for every line: refused, not ignored.
    assert.throws(() => createLogger({ formatters: { log: (object) => object } }), { code: 'ERR_INVALID_ARG_VALUE', message: /formatters\.log/ });
    assert.throws(() => createLogger({ formatters: { level: 'info' } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => createLogger({ formatters: { level: (label) => label } }), { name: 'TypeError', code: 'ERR_INVALID_RETURN_VALUE' });
    assert.throws(() => createLogger({ formatters: { bindings: () => null } }), { name: 'TypeError', code: 'ERR_INVALID_RETURN_VALUE' });
    assert.throws(() => createLogger({ formatters: { bindings: {} } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => createLogger({ enabled: false, level: 'loud' }), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('rejects a msgPrefix that is not a string, and bindings that are not an object', () => {
    const { log } = logTo();
    assert.throws(() => createLogger({ msgPrefix: 5 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => log.child({}, { msgPrefix: null }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => log.setBindings('a=1'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('destinations', () => {
  it('sync mode writes before the call returns', () => {
    const { file, log } = logTo({ sync: true });
    log.info('now');
    assert.equal(readLines(file)[0].msg, 'now');
  });

  it('whenFull "block" loses nothing with a tiny buffer; "drop" counts what it drops', async () => {
    const blocking = logTo({ bufferBytes: 256 });
    for (let i = 0; i < 5000; i++) blocking.log.info({ i }, 'x');
    await blocking.log.flush();
    const lines = readLines(blocking.file);
    assert.equal(lines.length, 5000);
    assert.deepEqual(lines.map((l) => l.i), Array.from({ length: 5000 }, (_, i) => i));

    const dropping = logTo({ bufferBytes: 256, whenFull: 'drop' });
    for (let i = 0; i < 5000; i++) dropping.log.info({ i }, 'x');
    await dropping.log.flush();
    const kept = readLines(dropping.file).length;
    assert.equal(kept + dropping.log.dropped, 5000);
  });

  it('rejects bad options', () => {
    assert.throws(() => createLogger({ destination: 42 }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => createLogger({ whenFull: 'sometimes' }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => createLogger({ level: 'loud' }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => createLogger({ redact: 'password' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    // A path that does not parse would otherwise leave what it meant to hide in the line.
    for (const path of ['', 'a.', '.a', 'a..b', 'a[', 'a[b]', 'a]', 'a["b]', 'a[0]b', 5]) {
      assert.throws(() => createLogger({ redact: ['password', path] }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /options\.redact' must hold paths such as/ }, String(path));
    }
    assert.throws(() => createLogger({ redact: { paths: 'password' } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /options\.redact\.paths/ });
    assert.throws(() => createLogger({ redact: { paths: ['a'], censor: () => '*' } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /options\.redact\.censor/ });
    assert.throws(() => createLogger({ redact: { paths: ['a'], remove: 'yes' } }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /options\.redact\.remove/ });
    // Rust takes bufferBytes as a u32; onDropped would only fail on a drop.
    for (const bufferBytes of [0, -1, 1.5, 2 ** 32, '4096']) {
      assert.throws(() => createLogger({ bufferBytes }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /options\.bufferBytes' must be an integer from 1 to 4294967295/ });
    }
    assert.throws(() => createLogger({ onDropped: 'count' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => createLogger({ pretty: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => createLogger({ sync: 1 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('a destination that cannot be opened throws as fs.openSync() would', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ambient-open-'));
    try {
      for (const target of [path.join(dir, 'missing', 'x.log'), dir]) {
        let expected;
        try {
          fs.closeSync(fs.openSync(target, 'a'));
        } catch (err) {
          expected = err;
        }
        assert.ok(expected, `${target} opens`);
        for (const destination of [target, { path: target }]) {
          assert.throws(() => createLogger({ destination }), (err) => {
            assert.deepEqual({ ...err, message: err.message }, { ...expected, message: expected.message });
            return err instanceof Error;
          });
        }
      }
      // Rust would open the path cut short at the NUL.
      assert.throws(() => createLogger({ destination: path.join(dir, 'a\0b.log') }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /without null bytes/ });
      assert.deepEqual(fs.readdirSync(dir), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('pretty mode writes one readable line with the request id', async () => {
    const { file, log } = logTo({ pretty: true });
    RequestContext.run({ requestId: 'req-pretty' }, () => log.warn({ n: 1 }, 'careful\nnow'));
    log.info([1, 'two'], 'a list');
    await log.flush();
    const lines = fs.readFileSync(file, 'utf8').split(/(?<=\n)/);
    assert.equal(lines.length, 2);
    const [text, list] = lines;
    assert.match(text, /^\d\d:\d\d:\d\d\.\d{3} WARN  \[req-pretty trace:[0-9a-f]{8}\] careful\\nnow n=1\n$/);
    assert.match(list, /^\d\d:\d\d:\d\d\.\d{3} INFO  a list value=\[1,"two"\]\n$/);
  });

  it('pretty mode quotes a key that could forge a line or drive the terminal', async () => {
    const { file, log } = logTo({ pretty: true });
    RequestContext.run({ fields: { 'tenant\rid': 'acme' } }, () => {
      log.child({ 'b\nINFO  child': 1 }).info({ 'a\nINFO  forged': 1, 'red\x1b[31m': 2, plain_key: 3, 'dotted.key-x': 4 }, 'msg');
    });
    await log.flush();
    const text = fs.readFileSync(file, 'utf8');
    assert.equal(text.split('\n').length, 2, 'one line');
    assert.ok(!text.includes('\x1b') && !text.includes('\r'));
    assert.match(text, / msg "b\\nINFO  child"=1 "tenant\\rid"="acme" "a\\nINFO  forged"=1 "red\\u001b\[31m"=2 plain_key=3 dotted\.key-x=4\n$/);
  });
});

describe('access lines', () => {
  it('keep their place among other lines to the same destination', async () => {
    const { WRITE_ACCESS, accessMessage } = require('../lib/logger');
    const file = tempFile();
    const log = createLogger({ destination: file, base: null });
    const message = accessMessage('request completed');
    RequestContext.run({ requestId: 'order-1' }, () => {
      const ctx = RequestContext.require();
      log[WRITE_ACCESS](ctx, 30, 'GET', undefined, '/first', 200, 1, 5, message);
      log.info('second');
      log[WRITE_ACCESS](ctx, 30, 'POST', '/third', '/third', 201, 2, 0, message);
    });
    log.warn('fourth');
    await log.flush();
    const lines = readLines(file);
    assert.deepEqual(lines.map((l) => l.url ?? l.msg), ['/first', 'second', '/third', 'fourth']);
    assert.deepEqual(lines.map((l) => l.requestId), ['order-1', 'order-1', 'order-1', undefined]);
    assert.equal(lines[0].route, undefined);
    assert.equal(lines[2].status, 201);
  });

  it('carry the time they were logged, though written later in one batch', async () => {
    const { WRITE_ACCESS, accessMessage } = require('../lib/logger');
    const { beginRoot, endAt } = require('../lib/request_context');
    const { file, log } = logTo();
    const message = accessMessage('request completed');
    const ctx = beginRoot('time-1', undefined, undefined, undefined, 'GET', true);
    const loggedAt = Date.now();
    log[WRITE_ACCESS](ctx, 30, 'GET', '/t', '/t', 200, 1, 0, message);
    const busyUntil = Date.now() + 40;
    while (Date.now() < busyUntil);
    endAt(ctx, 'ok', performance.now());
    await log.flush();
    const [line] = readLines(file);
    assert.ok(line.time >= loggedAt && line.time <= loggedAt + 5, `time ${line.time} is when it was logged (${loggedAt}), not when written`);
  });

  it('keep every string whole across batches: non-ASCII, lone surrogates, child bindings, no route', async () => {
    const { WRITE_ACCESS, accessMessage } = require('../lib/logger');
    const { beginRoot, endAt } = require('../lib/request_context');
    const { file, log } = logTo({ base: null });
    const child = log.child({ svc: 'naïve "b"' });
    const message = accessMessage('requête terminée');
    const count = 1000; // several batches, written when full
    const urls = [];
    for (let i = 0; i < count; i++) {
      const ctx = beginRoot(`req-${i}-é`, undefined, undefined, undefined, 'GET', true);
      const url = `/é/${i}/😀/${'x'.repeat(i % 7)}${i % 100 === 0 ? '\ud800' : ''}`;
      urls.push(url);
      (i % 2 ? child : log)[WRITE_ACCESS](ctx, 30, i % 3 ? 'GET' : 'PÖST', i % 5 ? `/r/${i}` : undefined, url, 200 + (i % 4), i / 8, i, message);
      endAt(ctx, 'ok', performance.now());
    }
    await log.flush();
    const lines = readLines(file);
    assert.equal(lines.length, count);
    lines.forEach((l, i) => {
      assert.equal(l.requestId, `req-${i}-é`);
      assert.equal(l.url, urls[i].replace('\ud800', '\ufffd'));
      assert.equal(l.method, i % 3 ? 'GET' : 'PÖST');
      assert.equal(l.route, i % 5 ? `/r/${i}` : undefined);
      assert.equal(l.svc, i % 2 ? 'naïve "b"' : undefined);
      assert.deepEqual([l.status, l.durationMs, l.bytes, l.msg], [200 + (i % 4), i / 8, i, 'requête terminée']);
    });
  });

  it("keep a context's fields even when it ended and was collected before its batch was written", async () => {
    const { setFlagsFromString } = require('node:v8');
    setFlagsFromString('--expose-gc');
    const collect = require('node:vm').runInNewContext('gc');
    const { WRITE_ACCESS, accessMessage } = require('../lib/logger');
    const { beginRoot, endAt } = require('../lib/request_context');
    const { file, log } = logTo();
    const message = accessMessage('request completed');
    const count = 50;
    (() => {
      for (let i = 0; i < count; i++) {
        const ctx = beginRoot(`held-${i}`, undefined, undefined, undefined, 'GET', true);
        ctx.set('userId', `user-${i}`);
        log[WRITE_ACCESS](ctx, 30, 'GET', '/h', '/h', 200, 1, 0, message);
        endAt(ctx, 'ok', performance.now());
      }
    })();
    // Nothing else refers to the contexts: only the pending batch keeps them
    // (and so their records) until it is written.
    collect();
    await new Promise((resolve) => setImmediate(resolve));
    collect();
    await log.flush();
    const lines = readLines(file);
    assert.deepEqual(lines.map((l) => [l.requestId, l.userId]), Array.from({ length: count }, (_, i) => [`held-${i}`, `user-${i}`]));
  });

  it('go to the writer thread in order with the other lines; past a tiny buffer "block" loses none and "drop" counts', async () => {
    const { WRITE_ACCESS, accessMessage } = require('../lib/logger');
    const { beginRoot, endAt } = require('../lib/request_context');
    const message = accessMessage('request completed');
    // Roots without a record: their batches are formatted on the writer
    // thread, unless the buffer has no room for them.
    const logAll = async (log, count) => {
      for (let i = 0; i < count; i++) {
        const ctx = beginRoot(`q-${i}`, undefined, undefined, undefined, 'GET', true);
        log[WRITE_ACCESS](ctx, 30, 'GET', '/q/:n', `/q/${i}`, 200, 1, i, message);
        endAt(ctx, 'ok', performance.now());
        if (i % 97 === 0) log.info({ i }, 'between');
        if (i % 300 === 0) await new Promise(setImmediate);
      }
      await log.flush();
    };
    const expected = [];
    for (let i = 0; i < 3000; i++) {
      expected.push(`/q/${i}`);
      if (i % 97 === 0) expected.push(`between ${i}`);
    }
    const describeLine = (l) => (l.msg === 'between' ? `between ${l.i}` : l.url);
    for (const bufferBytes of [undefined, 512]) {
      const { file, log } = logTo({ bufferBytes });
      await logAll(log, 3000);
      assert.deepEqual(readLines(file).map(describeLine), expected, `bufferBytes ${bufferBytes}`);
    }
    const dropping = logTo({ bufferBytes: 512, whenFull: 'drop' });
    await logAll(dropping.log, 3000);
    const kept = readLines(dropping.file);
    assert.equal(kept.length + dropping.log.dropped, expected.length);
    assert.ok(dropping.log.dropped > 0);
    const positions = kept.map((l) => expected.indexOf(describeLine(l)));
    assert.ok(positions.every((at, n) => at >= 0 && (n === 0 || at > positions[n - 1])), 'what is kept keeps its order');
  });

  it('to a sync destination are written at once', () => {
    const { WRITE_ACCESS, accessMessage } = require('../lib/logger');
    const { beginRoot, endAt } = require('../lib/request_context');
    const { file, log } = logTo({ sync: true });
    const ctx = beginRoot('sync-1', undefined, undefined, undefined, 'GET', true);
    log[WRITE_ACCESS](ctx, 30, 'GET', '/s', '/s', 200, 1, 0, accessMessage('request completed'));
    endAt(ctx, 'ok', performance.now());
    assert.deepEqual(readLines(file).map((l) => [l.requestId, l.url]), [['sync-1', '/s']]);
  });
});

describe('no line lost when the process ends', () => {
  const cases = [
    ['natural end', 'natural', null],
    ['process.exit()', 'exit', null],
    ['an uncaught exception', 'throw', null],
    ['an unhandled rejection', 'reject', null],
    ['SIGTERM', 'signal', 'SIGTERM'],
    ['SIGINT', 'signal', 'SIGINT'],
  ];
  for (const [label, mode, signal] of cases) {
    it(label, async () => {
      const file = tempFile();
      const count = 20_000;
      const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'log_then_die.js'), file, mode, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      if (signal) {
        await new Promise((resolve) => child.stdout.once('data', resolve));
        child.kill(signal);
      }
      const [code, gotSignal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])));
      if (signal) assert.equal(gotSignal, signal, 'the signal still ends the process as it would have');
      else if (mode === 'exit') assert.equal(code, 3);
      else if (mode !== 'natural') assert.equal(code, 1, stderr);
      const lines = readLines(file);
      assert.equal(lines.length, count);
      assert.deepEqual(lines.map((l) => l.i), Array.from({ length: count }, (_, i) => i));
      assert.ok(lines.every((l) => l.requestId === `req-${l.i % 10}`));
    });

    it(`${label}: the middleware's access lines too`, async () => {
      const file = tempFile();
      const count = 5_000;
      const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'log_then_die.js'), file, mode, String(count), 'access'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      if (signal) {
        await new Promise((resolve) => child.stdout.once('data', resolve));
        child.kill(signal);
      }
      const [code, gotSignal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])));
      if (signal) assert.equal(gotSignal, signal);
      else if (mode === 'exit') assert.equal(code, 3);
      else if (mode !== 'natural') assert.equal(code, 1, stderr);
      const lines = readLines(file);
      assert.equal(lines.length, count);
      assert.deepEqual(lines.map((l) => l.bytes), Array.from({ length: count }, (_, i) => i));
      assert.ok(lines.every((l) => l.requestId === `req-${l.bytes % 10}` && l.url === `/r/${l.bytes}` && l.route === '/r/:n' && l.msg === 'request completed'));
      assert.ok(lines.every((l) => /^[0-9a-f]{32}$/.test(l.traceId) && /^[0-9a-f]{16}$/.test(l.spanId)));
    });
  }
});

describe("no line lost when the process ends while a worker's lines wait", () => {
  // The worker's logger handed its lines to its writer thread; the process
  // ends while that thread still waits on a full stdout pipe (the test
  // reads it only after a pause). The process's end must wait for them,
  // whichever thread created the logger.
  const cases = [
    ['the worker terminated, then a natural end', 'terminate', null, 0],
    ['process.exit() in the main thread', 'exit', null, 3],
    ['an uncaught exception in the main thread', 'throw', null, 1],
    ['SIGTERM, with a logger in the main thread too', 'signal', 'SIGTERM', null],
  ];
  for (const [label, mode, signal, exitCode] of cases) {
    it(label, async () => {
      const count = 5_000;
      const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'log_in_worker_then_die.js'), mode, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      const logged = new Promise((resolve) => child.stderr.on('data', (d) => {
        stderr += d;
        if (stderr.includes('logged\n')) resolve();
      }));
      const exited = new Promise((resolve) => child.on('exit', (code, gotSignal) => resolve([code, gotSignal])));
      const closed = new Promise((resolve) => child.stdout.once('close', resolve));
      await logged;
      if (signal) child.kill(signal);
      // Long enough for the process to have ended, had it not waited.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const chunks = [];
      child.stdout.on('data', (d) => chunks.push(d));
      const [code, gotSignal] = await exited;
      await closed;
      if (signal) assert.equal(gotSignal, signal, 'the signal still ends the process as it would have');
      else assert.equal(code, exitCode, stderr);
      const lines = Buffer.concat(chunks).toString().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.deepEqual(lines.map((l) => l.i), Array.from({ length: count }, (_, i) => i));
      assert.ok(lines.every((l) => l.requestId === `req-${l.i % 10}`));
    });
  }
});

describe('a non-blocking stdout', () => {
  // Lines the pipe refuses for now (EAGAIN) wait for room, as they would
  // on a blocking one: none are dropped.
  for (const [mode, sync] of [['natural', 'async'], ['exit', 'async'], ['natural', 'sync']]) {
    it(`a full pipe loses no line (${sync} writes, ${mode === 'exit' ? 'process.exit()' : 'a natural end'})`, async () => {
      const count = 50_000;
      const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'log_to_nonblocking_stdout.js'), mode, String(count), sync], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      // Let the pipe fill before reading any of it.
      child.stdout.pause();
      await new Promise((resolve) => setTimeout(resolve, 300));
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
      child.stdout.resume();
      const [code] = await Promise.all([exited, new Promise((resolve) => child.stdout.on('end', resolve))]);
      assert.equal(code, 0, stderr);
      assert.deepEqual(JSON.parse(stderr.split('\n')[0]), { nonBlocking: true }, 'the child\'s stdout was non-blocking');
      const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.equal(lines.length, count);
      assert.deepEqual(lines.map((l) => l.i), Array.from({ length: count }, (_, i) => i));
    });
  }
});

describe('a stdout pipe shared with other writers', () => {
  it('gets every line whole from loggers, worker threads and other processes at once', async () => {
    const lines = 20000;
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'log_from_many_writers.js'), 'parent', String(lines)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const counts = new Map();
    const broken = [];
    let rest = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text) => {
      const parts = (rest + text).split('\n');
      rest = parts.pop();
      for (const line of parts) {
        try {
          const { who } = JSON.parse(line);
          counts.set(who, (counts.get(who) ?? 0) + 1);
        } catch {
          broken.push(line.slice(0, 80));
        }
      }
    });
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0, stderr);
    assert.equal(rest, '', 'the output ends with a whole line');
    assert.deepEqual(broken.slice(0, 3), [], `${broken.length} lines were cut by another writer's`);
    const writers = ['parent', 'p1', 'p2'].flatMap((role) => ['a', 'b', 'worker'].map((w) => `${role}-${w}`));
    assert.deepEqual(Object.fromEntries([...counts].sort()), Object.fromEntries(writers.sort().map((w) => [w, lines])));
  });
});

// What the fixture's server reports after serving `requests` requests onto
// /dev/full; it must exit cleanly.
async function serveOntoFullDisk(requests, framework) {
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'serve_onto_full_disk.js'), String(requests), framework], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const [report, code] = await Promise.all([new Promise((resolve) => child.once('message', resolve)), new Promise((resolve) => child.on('exit', resolve))]);
  assert.equal(code, 0, stderr);
  return report;
}

describe('write failures', () => {
  for (const sync of ['async', 'sync']) {
    it(`a reader that went away (EPIPE) stops the lines, not the process (${sync} writes)`, async () => {
      const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'log_into_closed_pipe.js'), sync], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      const first = await new Promise((resolve) => child.stdout.once('data', resolve));
      assert.match(first.toString(), /^\{"level":30,/);
      child.stdout.destroy();
      // Long enough for the writer to have hit the closed pipe.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const reply = new Promise((resolve) => child.once('message', resolve));
      child.send('the reader left');
      const [message, code] = await Promise.all([reply, new Promise((resolve) => child.on('exit', resolve))]);
      assert.equal(code, 0, stderr);
      assert.deepEqual(message, { survived: true, dropped: 0 });
      assert.equal(stderr, '', 'nothing thrown or warned');
    });
  }

  it("the middleware's access line on a failing sync destination throws as a log call would, and its request still ends", async () => {
    const requests = 20;
    const report = await serveOntoFullDisk(requests, 'http');
    assert.deepEqual(report.bodies, Array.from({ length: requests }, (_, i) => `full-${i}`));
    assert.deepEqual(report.thrown, Array(requests).fill('ENOSPC'));
    assert.deepEqual([report.open, report.ended], [0, requests], 'no context is left open');
  });

  it("errorLogger on a failing sync destination passes the app's error on, not the write's", async () => {
    const requests = 20;
    const report = await serveOntoFullDisk(requests, 'express');
    assert.deepEqual(report.bodies, Array.from({ length: requests }, (_, i) => `failed in full-${i}`), "each client got its request's own error");
    assert.deepEqual(report.thrown, Array(requests * 2).fill('ENOSPC'), "errorLogger's write and the access line's, each surfaced");
    assert.deepEqual([report.open, report.ended], [0, requests]);
  });

  it('any other failure is reported as Node reports it: code, errno, syscall', async () => {
    const expected = { name: 'Error', code: 'ENOSPC', errno: os.constants.errno.ENOSPC * -1, syscall: 'write', message: 'ENOSPC: no space left on device, write' };
    const sync = createLogger({ destination: '/dev/full', sync: true });
    assert.throws(() => sync.info('a line'), expected);
    assert.throws(() => RequestContext.run(() => sync.error({ n: 1 }, 'in a context')), expected);
    const prettySync = createLogger({ destination: '/dev/full', sync: true, pretty: true });
    assert.throws(() => prettySync.info('a line'), expected);
    const queued = createLogger({ destination: '/dev/full' });
    queued.info('a line');
    await assert.rejects(queued.flush(), expected);
    assert.throws(() => queued.flushSync(), expected);
    queued.info('another line');
    const calledBack = await new Promise((resolve) => assert.equal(queued.flush(resolve), undefined));
    assert.throws(() => { throw calledBack; }, expected, "flush(callback), pino's form, gets the same error");
  });

  it("flush(callback), pino's form, calls back once the lines are written", async () => {
    const { file, log } = logTo({ base: null });
    for (let i = 0; i < 5000; i++) log.info({ i }, 'line');
    const args = await new Promise((resolve) => log.flush((...called) => resolve(called)));
    assert.deepEqual(args, [], 'no error');
    assert.equal(readLines(file).length, 5000);
    assert.throws(() => log.flush('done'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('worker threads', () => {
  it('a worker logging in a handed-off context writes the same request id', async () => {
    const file = tempFile();
    await RequestContext.run({ requestId: 'req-from-parent' }, async () => {
      const worker = new Worker(`
        const { workerData } = require('node:worker_threads');
        const { createLogger, RequestContext } = require(${JSON.stringify(path.join(__dirname, '..'))});
        const log = createLogger({ destination: workerData.data.file });
        RequestContext.handleTask(() => { RequestContext.require().set('inWorker', true); log.info('from the worker'); })(workerData);
      `, { eval: true, workerData: RequestContext.task({ file }) });
      await new Promise((resolve, reject) => { worker.on('exit', resolve); worker.on('error', reject); });
    });
    const [line] = readLines(file);
    assert.equal(line.requestId, 'req-from-parent');
    assert.equal(line.inWorker, true);
    assert.equal(line.msg, 'from the worker');
  });

  it("a worker's loggers close with it: its lines are written, its writer thread and file descriptor go", async () => {
    // What a pool that replaces its workers does to them: some end on
    // their own, some are terminated right after logging.
    const file = tempFile();
    const source = `
      const { workerData, parentPort } = require('node:worker_threads');
      const { createLogger } = require(${JSON.stringify(path.join(__dirname, '..'))});
      const log = createLogger({ destination: workerData.file });
      for (let i = 0; i < 2000; i++) log.info({ worker: workerData.index, i }, 'from a worker');
      if (workerData.terminated) { parentPort.postMessage('logged'); setInterval(() => {}, 1000); }
    `;
    const runWorker = async (index) => {
      const terminated = index % 2 === 1;
      const worker = new Worker(source, { eval: true, workerData: { file, index, terminated } });
      const exited = new Promise((resolve, reject) => { worker.on('exit', resolve); worker.on('error', reject); });
      if (terminated) {
        await new Promise((resolve) => worker.once('message', resolve));
        await worker.terminate();
      }
      await exited;
      // Its lines are out once it is gone, not only when the process ends.
      assert.equal(readLines(file).filter((l) => l.worker === index).length, 2000, `worker ${index}`);
    };
    const threadsAndFds = () => [fs.readdirSync('/proc/self/task').length, fs.readdirSync('/proc/self/fd').length];
    await runWorker(0);
    const [threads, fds] = threadsAndFds();
    for (let index = 1; index <= 20; index++) await runWorker(index);
    const [threadsAfter, fdsAfter] = threadsAndFds();
    // Twenty writer threads and files would stay open otherwise.
    assert.ok(threadsAfter <= threads + 2, `threads: ${threads} before, ${threadsAfter} after 20 workers`);
    assert.ok(fdsAfter <= fds + 2, `file descriptors: ${fds} before, ${fdsAfter} after 20 workers`);
  });
});
