'use strict';
// The Express middleware (Express 4 and 5), the node:http wrapper, outgoing
// propagation and the logger adapters, against real servers on loopback.
const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const { setTimeout: sleep } = require('node:timers/promises');
const ambient = require('..');

const { RequestContext, createLogger } = ambient;

const tempFile = require('./fixtures/log_dir').logFiles('ambient-mw-');
function tempLog() {
  const file = tempFile();
  return { file, logger: createLogger({ destination: file, level: 'debug' }) };
}

async function linesOf({ file, logger }) {
  await logger.flush();
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function request(port, { method = 'GET', path: urlPath = '/', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

for (const [label, expressModule] of [['Express 4', 'express4'], ['Express 5', 'express']]) {
  describe(`middleware with ${label}`, () => {
    const express = require(expressModule);
    const bodyParser = require('body-parser');
    const multer = require('multer');
    let server;
    let port;
    let log;

    before(async () => {
      log = tempLog();
      const app = express();
      app.use(ambient.middleware({ logger: log.logger }));
      app.use(bodyParser.json());
      app.use(bodyParser.urlencoded({ extended: false }));
      const nativeStore = new (require('node:async_hooks').AsyncLocalStorage)();
      app.post('/bound', (req, res) => nativeStore.run(`native-${req.headers['x-request-id']}`, () => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk) => { body += chunk; });
        req.on('end', async () => {
          await sleep(Math.random() * 5);
          res.json({ body, requestId: RequestContext.require().requestId, native: nativeStore.getStore() ?? null });
        });
      }));
      app.post('/json', (req, res) => res.json({ body: req.body, requestId: RequestContext.require().requestId }));
      app.post('/form', (req, res) => res.json({ body: req.body, requestId: RequestContext.require().requestId }));
      app.post('/upload', multer().single('file'), (req, res) => res.json({ size: req.file.size, name: req.body.name, requestId: RequestContext.require().requestId }));
      app.get('/users/:id', async (req, res) => {
        await sleep(Math.random() * 5);
        RequestContext.require().set('userId', req.params.id);
        log.logger.info('loading user');
        res.send(`user ${req.params.id}`);
      });
      app.get('/fail', async (req, res, next) => {
        await sleep(1);
        next(new Error('database down'));
      });
      // What http-errors makes, and a validation error with statusCode.
      app.get('/client-error/:kind', async (req, res, next) => {
        await sleep(Math.random() * 5);
        const kind = req.params.kind;
        if (kind === 'status') next(Object.assign(new Error('no such order'), { status: 404, expose: true }));
        else if (kind === 'statusCode') next(Object.assign(new Error('bad amount'), { statusCode: 422 }));
        else if (kind === 'both') next(Object.assign(new Error('teapot first'), { status: 418, statusCode: 503 }));
        else next(Object.assign(new Error('not an http status'), { status: 200, statusCode: 'x' }));
      });
      app.use(ambient.errorLogger({ logger: log.logger }));
      // Errors reach Express's own final handler, which picks the status;
      // 'test' keeps it from printing each one.
      app.set('env', 'test');
      server = http.createServer(app);
      port = await listen(server);
    });

    after(() => server.close());

    it('uses a valid incoming request id and echoes it with a traceparent', async () => {
      const res = await request(port, { path: '/users/7', headers: { 'x-request-id': 'abc-123', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-request-id'], 'abc-123');
      const tp = ambient.traceContext.parseTraceparent(res.headers.traceparent);
      assert.equal(tp.traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'the incoming trace continues');
      assert.notEqual(tp.parentId, '00f067aa0ba902b7');
      const lines = (await linesOf(log)).filter((l) => l.requestId === 'abc-123');
      const handlerLine = lines.find((l) => l.msg === 'loading user');
      const completed = lines.find((l) => l.msg === 'request completed');
      assert.equal(handlerLine.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.equal(completed.userId, '7');
      assert.equal(completed.method, 'GET');
      assert.equal(completed.route, '/users/:id');
      assert.equal(completed.url, '/users/7');
      assert.equal(completed.status, 200);
      assert.equal(completed.bytes, Buffer.byteLength('user 7'));
      assert.ok(completed.durationMs >= 0);
    });

    it('escapes what the client sent in the access line: it cannot forge a field or a line', async () => {
      const forged = '/nothing"},"level":60,"msg":"forged\\x{"a":1}';
      const res = await request(port, { path: forged, headers: { 'x-request-id': 'forge-1' } });
      assert.equal(res.status, 404);
      const lines = (await linesOf(log)).filter((l) => l.requestId === 'forge-1');
      assert.equal(lines.length, 1);
      assert.equal(lines[0].url, forged);
      assert.equal(lines[0].level, 30);
      assert.equal(lines[0].msg, 'request completed');
      assert.equal(lines[0].status, 404);
      assert.equal(lines[0].route, undefined);
    });

    it('replaces hostile request ids, never echoing or logging them', async () => {
      const hostile = ['x'.repeat(129), 'has space', 'quote"and{json}\u0007', 'ünïcode'];
      for (const value of hostile) {
        const res = await request(port, { path: '/users/1', headers: { 'x-request-id': encodeURIComponent(value) === value ? value : value } }).catch(() => null);
        if (res === null) continue; // a header Node itself refuses to send
        assert.notEqual(res.headers['x-request-id'], value);
        assert.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/);
      }
      const text = fs.readFileSync(log.file, 'utf8');
      for (const value of hostile) assert.equal(text.includes(value), false, 'the raw value never reaches the log');
      const reasons = (await linesOf(log)).filter((l) => l.msg === 'incoming request id replaced by a generated one');
      assert.ok(reasons.length >= 2);
      assert.ok(reasons.every((l) => typeof l.reason === 'string' && l.level === 20));
    });

    it('keeps the context in body parsers: json, urlencoded and multipart', async () => {
      const json = await request(port, { method: 'POST', path: '/json', headers: { 'content-type': 'application/json', 'x-request-id': 'json-1' }, body: JSON.stringify({ a: 1 }) });
      assert.deepEqual(JSON.parse(json.body), { body: { a: 1 }, requestId: 'json-1' });
      const form = await request(port, { method: 'POST', path: '/form', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-request-id': 'form-1' }, body: 'b=2' });
      assert.deepEqual(JSON.parse(form.body), { body: { b: '2' }, requestId: 'form-1' });
      const boundary = '----ambient';
      const multipart = [
        `--${boundary}`, 'Content-Disposition: form-data; name="name"', '', 'report', `--${boundary}`,
        'Content-Disposition: form-data; name="file"; filename="a.txt"', 'Content-Type: text/plain', '', 'x'.repeat(5000), `--${boundary}--`, '',
      ].join('\r\n');
      const upload = await request(port, { method: 'POST', path: '/upload', headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'x-request-id': 'upload-1' }, body: multipart });
      assert.deepEqual(JSON.parse(upload.body), { size: 5000, name: 'report', requestId: 'upload-1' });
    });

    it('logs errors from async handlers with the request id', async () => {
      const res = await request(port, { path: '/fail', headers: { 'x-request-id': 'fail-1' } });
      assert.equal(res.status, 500);
      const lines = (await linesOf(log)).filter((l) => l.requestId === 'fail-1');
      const failed = lines.find((l) => l.msg === 'request failed');
      assert.equal(failed.err.message, 'database down');
      assert.equal(failed.level, 50);
      const completed = lines.find((l) => l.msg === 'request completed');
      assert.equal(completed.status, 500);
      assert.equal(completed.err.message, 'database down');
    });

    it('logs an error meant for the client (a 4xx status, as Express answers it) at warn, a server error at error', async () => {
      const cases = [['status', 404, 40], ['statusCode', 422, 40], ['both', 418, 40], ['neither', 500, 50]];
      const sent = Array.from({ length: 24 }, (_, i) => ({ id: `client-${i}`, kind: cases[i % 4] }));
      const replies = await Promise.all(sent.map(({ id, kind: [kind] }) => request(port, { path: `/client-error/${kind}`, headers: { 'x-request-id': id } })));
      const lines = await linesOf(log);
      sent.forEach(({ id, kind: [kind, status, level] }, i) => {
        assert.equal(replies[i].status, status, `Express answers ${kind} with ${status}`);
        const mine = lines.filter((l) => l.requestId === id);
        const failed = mine.find((l) => l.msg === 'request failed');
        assert.equal(failed.level, level, kind);
        assert.equal(mine.find((l) => l.msg === 'request completed').err.message, failed.err.message);
      });
    });

    it('runs listeners the request code adds in its context: ambient on every Node, native stores too on Node 24+', async () => {
      // The 'end' event comes from the socket's context, where neither the
      // request context nor the handler's native store is current; only the
      // binding brings them. On Node <= 22 the binding carries ambient's
      // frame alone (lib/frame.js, bindToCurrentContext).
      const major = Number(process.versions.node.split('.')[0]);
      const ids = Array.from({ length: 50 }, (_, i) => `bound-${i}`);
      const results = await Promise.all(ids.map((id) => request(port, { method: 'POST', path: '/bound', headers: { 'x-request-id': id }, body: id })));
      results.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.deepEqual(JSON.parse(r.body), { body: ids[i], requestId: ids[i], native: major >= 24 ? `native-${ids[i]}` : null });
      });
    });

    it('isolates 200 concurrent requests', async () => {
      const ids = Array.from({ length: 200 }, (_, i) => `c-${i}`);
      const results = await Promise.all(ids.map((id, i) => request(port, { path: `/users/${i}`, headers: { 'x-request-id': id } })));
      results.forEach((r, i) => assert.equal(r.headers['x-request-id'], ids[i]));
      const lines = await linesOf(log);
      for (let i = 0; i < ids.length; i++) {
        const mine = lines.filter((l) => l.requestId === ids[i]);
        assert.equal(mine.find((l) => l.msg === 'request completed').userId, String(i));
        assert.equal(mine.find((l) => l.msg === 'loading user').requestId, ids[i]);
      }
    });
  });
}

describe('middleware options', () => {
  it('are checked when the middleware is made, with Node-style errors, not in each request', () => {
    assert.throws(() => ambient.middleware(null), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => ambient.middleware({ requestIdHeader: 5 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    for (const name of ['bad header', '', 'x-id\r\n']) {
      assert.throws(() => ambient.middleware({ requestIdHeader: name }), { name: 'TypeError', code: 'ERR_INVALID_HTTP_TOKEN' });
    }
    assert.throws(() => ambient.middleware({ logger: 'console' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => ambient.middleware({ logger: {} }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.logger' has no warn\(\) method/ });
    assert.throws(() => ambient.middleware({ logger: { warn() {}, debug() {} } }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.level/ });
    assert.throws(() => ambient.middleware({ level: 'loud' }), { code: 'ERR_INVALID_ARG_VALUE', message: /options\.level/ });
    assert.throws(() => ambient.middleware({ completedMessage: 1 }), { code: 'ERR_INVALID_ARG_TYPE' });
    for (const name of ['echoHeaders', 'logStart']) {
      assert.throws(() => ambient.middleware({ [name]: 'false' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: new RegExp(`"options\\.${name}" argument must be of type boolean`) });
    }
    assert.throws(() => ambient.errorLogger({ logger: { info() {} } }), { code: 'ERR_INVALID_ARG_VALUE', message: /has no error\(\) method/ });
  });

  it('reads and echoes a custom request id header, whatever its case', async () => {
    const log = tempLog();
    const handler = ambient.wrapHandler((req, res) => res.end(RequestContext.require().requestId), {
      logger: log.logger, requestIdHeader: 'X-Correlation-ID',
    });
    const server = http.createServer(handler);
    const port = await listen(server);
    try {
      const ids = Array.from({ length: 20 }, (_, i) => `corr-${i}`);
      const responses = await Promise.all(ids.map(async (id, i) => {
        await sleep(Math.random() * 5);
        return request(port, { headers: i % 2 ? { 'X-Correlation-Id': id } : { 'x-correlation-id': id, 'x-request-id': 'ignored' } });
      }));
      assert.deepEqual(responses.map((r) => [r.body, r.headers['x-correlation-id'], r.headers['x-request-id']]), ids.map((id) => [id, id, undefined]));
      const completed = (await linesOf(log)).filter((l) => l.msg === 'request completed');
      assert.deepEqual(completed.map((l) => l.requestId).sort(), [...ids].sort());
    } finally {
      server.close();
    }
  });
});

describe('wrapHandler with an async handler that rejects', () => {
  for (const errorKey of [undefined, 'error']) {
    it(`logs the error with its request id, puts it on the access line, and leaves the rejection unhandled (errorKey ${errorKey})`, async () => {
      const { spawn } = require('node:child_process');
      const path = require('node:path');
      const file = tempFile();
      const requests = 30;
      const args = [path.join(__dirname, 'fixtures', 'serve_failing_handler.js'), file, String(requests), ...(errorKey ? [errorKey] : [])];
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
      let stderr = '';
      child.stderr.on('data', (d) => { stderr += d; });
      const [report, code] = await Promise.all([new Promise((resolve) => child.once('message', resolve)), new Promise((resolve) => child.on('exit', resolve))]);
      assert.equal(code, 0, stderr);
      const ids = Array.from({ length: requests }, (_, i) => `handler-${i}`);
      const failing = ids.filter((_, i) => i % 2);
      assert.deepEqual(report.bodies, ids);
      assert.deepEqual([...report.unhandled].sort(), failing.map((id) => `failed in ${id}`).sort(), 'each rejection still reaches unhandledRejection');
      const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const key = errorKey ?? 'err';
      for (const id of ids) {
        const mine = lines.filter((l) => l.requestId === id);
        if (!failing.includes(id)) {
          assert.deepEqual(mine.map((l) => [l.msg, l.status, l[key]]), [['request completed', 200, undefined]]);
          continue;
        }
        assert.deepEqual(mine.map((l) => [l.msg, l.level]), [['request failed', 50], ['request completed', 30]]);
        for (const line of mine) assert.equal(line[key].message, `failed in ${id}`);
        if (key !== 'err') for (const line of mine) assert.equal(line.err, undefined);
        assert.equal(mine[1].status, 500);
      }
    });
  }
});

describe('a level function', () => {
  it("picks each request's level from how it ended, and 'silent' leaves a request unlogged but ended", async () => {
    const log = tempLog();
    const seen = new Map();
    const level = (req, res, err) => {
      seen.set(RequestContext.require().requestId, [req.url, res.statusCode, err?.message]);
      if (req.url === '/health') return 'silent';
      return err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info';
    };
    const express = require('express');
    const app = express();
    app.use(ambient.middleware({ logger: log.logger, level, logStart: true }));
    app.get('/health', (req, res) => res.send('up'));
    app.get('/:outcome/:n', async (req, res, next) => {
      await sleep(Math.random() * 10);
      if (req.params.outcome === 'missing') res.status(404).send('none');
      else if (req.params.outcome === 'boom') next(new Error(`boom ${req.params.n}`));
      else res.send('ok');
    });
    app.use(ambient.errorLogger({ logger: log.logger }));
    app.use((err, req, res, next) => res.status(500).send('failed'));
    const server = http.createServer(app);
    const port = await listen(server);
    const endedBefore = RequestContext.stats().ended;
    const outcomes = ['ok', 'missing', 'boom', 'health'];
    const sent = Array.from({ length: 40 }, (_, i) => ({ id: `lvl-${i}`, outcome: outcomes[i % 4], path: i % 4 === 3 ? '/health' : `/${outcomes[i % 4]}/${i}` }));
    await Promise.all(sent.map(async ({ id, path: urlPath }) => {
      await sleep(Math.random() * 5);
      return request(port, { path: urlPath, headers: { 'x-request-id': id } });
    }));
    server.close();
    const lines = await linesOf(log);
    const expected = { ok: [30, 200], missing: [40, 404], boom: [50, 500] };
    for (const { id, outcome, path: urlPath } of sent) {
      const mine = lines.filter((l) => l.requestId === id && l.msg !== 'request failed');
      if (outcome === 'health') {
        assert.deepEqual(mine, [], 'a silent request writes no line');
        continue;
      }
      assert.deepEqual(mine.map((l) => [l.msg, l.level]), [['request started', 30], ['request completed', expected[outcome][0]]]);
      assert.equal(mine[1].status, expected[outcome][1]);
      assert.deepEqual(seen.get(id), [urlPath, expected[outcome][1], outcome === 'boom' ? `boom ${urlPath.split('/')[2]}` : undefined]);
    }
    assert.equal(RequestContext.stats().ended - endedBefore, sent.length, 'every request ended, the silent ones too');
  });

  it("may pick the logger's custom levels, ambient's or pino's, for access lines batched or written at once", async () => {
    const pino = require('pino');
    const express = require('express');
    const customLevels = { http: 25, audit: 35 };
    const pinoLines = [];
    const loggers = {
      batched: { ...tempLog(), logger: undefined },
      sync: { ...tempLog(), logger: undefined },
      pino: pino({ customLevels, level: 'http', mixin: ambient.pinoMixin() }, { write: (line) => pinoLines.push(JSON.parse(line)) }),
    };
    loggers.batched.logger = createLogger({ destination: loggers.batched.file, customLevels, level: 'http' });
    loggers.sync.logger = createLogger({ destination: loggers.sync.file, customLevels, level: 'http', sync: true });
    const servers = [];
    const sent = [];
    for (const [kind, log] of Object.entries(loggers)) {
      const logger = kind === 'pino' ? log : log.logger;
      const app = express();
      app.use(ambient.middleware({ logger, level: (req, res) => (req.url.startsWith('/admin') ? 'audit' : res.statusCode >= 400 ? 'warn' : 'http') }));
      app.get('/admin/:n', async (req, res) => { await sleep(Math.random() * 5); res.send('done'); });
      app.get('/item/:n', async (req, res) => { await sleep(Math.random() * 5); res.status(req.params.n % 3 ? 200 : 404).send('x'); });
      const server = http.createServer(app);
      servers.push(server);
      const port = await listen(server);
      for (let i = 0; i < 15; i++) sent.push({ kind, port, id: `${kind}-${i}`, path: i % 2 ? `/admin/${i}` : `/item/${i}` });
    }
    // A fixed level names a custom one too.
    const fixed = tempLog();
    fixed.logger = createLogger({ destination: fixed.file, customLevels, level: 'http' });
    const fixedServer = http.createServer(ambient.wrapHandler((req, res) => res.end('ok'), { logger: fixed.logger, level: 'http' }));
    servers.push(fixedServer);
    const fixedPort = await listen(fixedServer);
    try {
      await Promise.all([
        ...sent.map(async ({ port, id, path: urlPath }) => {
          await sleep(Math.random() * 5);
          return request(port, { path: urlPath, headers: { 'x-request-id': id } });
        }),
        request(fixedPort, { headers: { 'x-request-id': 'fixed-http' } }),
      ]);
    } finally {
      for (const server of servers) server.close();
    }
    const written = { batched: await linesOf(loggers.batched), sync: await linesOf(loggers.sync), pino: pinoLines };
    for (const { kind, id, path: urlPath } of sent) {
      const mine = written[kind].filter((l) => l.requestId === id);
      const n = Number(urlPath.split('/')[2]);
      const expected = urlPath.startsWith('/admin') ? 35 : n % 3 ? 25 : 40;
      assert.deepEqual(mine.map((l) => [l.msg, l.level, l.url]), [['request completed', expected, urlPath]], `${kind} ${id}`);
    }
    assert.deepEqual((await linesOf(fixed)).map((l) => [l.requestId, l.level]), [['fixed-http', 25]]);
    // A name the logger does not have is still refused.
    const other = tempLog();
    assert.throws(() => ambient.middleware({ logger: other.logger, level: 'http' }), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('that returns no level throws ERR_INVALID_RETURN_VALUE, and the request still ends', () => {
    const { Writable } = require('node:stream');
    for (const [logger, returned] of [[tempLog().logger, 'loud'], [tempLog().logger, undefined], [require('pino')({ level: 'silent' }), 'verbose']]) {
      const handle = ambient.middleware({ logger, level: () => returned });
      const socket = new Writable({ write(chunk, encoding, cb) { cb(); } });
      const req = new http.IncomingMessage(socket);
      req.method = 'GET';
      req.url = '/';
      const res = new http.ServerResponse(req);
      let ctx;
      handle(req, res, () => { ctx = RequestContext.require(); });
      assert.throws(() => res.emit('finish'), { name: 'TypeError', code: 'ERR_INVALID_RETURN_VALUE', message: /"options\.level" function/ });
      assert.equal(ctx.ended, true);
    }
  });
});

// What pino-http users reach for, and where ambient has it: genReqId is the
// process-wide request-id generator, customProps are context fields (on the
// access line because it is written inside the context), customSuccessMessage
// is completedMessage.
describe('coming from pino-http', () => {
  it('a custom id generator, fields set by an earlier middleware and a custom message land on each access line', async () => {
    let generated = 0;
    RequestContext.configure({ generateRequestId: () => `gen-${++generated}` });
    try {
      const log = tempLog();
      const express = require('express');
      const app = express();
      app.use(ambient.middleware({ logger: log.logger, completedMessage: 'http' }));
      app.use(async (req, res, next) => {
        await sleep(Math.random() * 5);
        RequestContext.require().set('user', req.headers['x-user']);
        next();
      });
      app.get('/orders/:n', async (req, res) => {
        await sleep(Math.random() * 10);
        RequestContext.require().set('order', Number(req.params.n));
        res.send('ok');
      });
      const server = http.createServer(app);
      const port = await listen(server);
      const replies = await Promise.all(Array.from({ length: 30 }, async (_, n) => {
        await sleep(Math.random() * 5);
        const headers = { 'x-user': `user-${n}` };
        if (n % 3 === 0) headers['x-request-id'] = `given-${n}`;
        return { n, reply: await request(port, { path: `/orders/${n}`, headers }) };
      }));
      server.close();
      const lines = await linesOf(log);
      const ids = new Set();
      for (const { n, reply } of replies) {
        const id = reply.headers['x-request-id'];
        assert.match(id, n % 3 === 0 ? new RegExp(`^given-${n}$`) : /^gen-\d+$/);
        ids.add(id);
        const access = lines.filter((l) => l.requestId === id);
        assert.equal(access.length, 1);
        assert.equal(access[0].msg, 'http');
        assert.equal(access[0].user, `user-${n}`, 'a field set before the route is on the line');
        assert.equal(access[0].order, n, 'and one set in the route');
        assert.equal(access[0].status, 200);
      }
      assert.equal(ids.size, 30);
      assert.equal(generated, 20, 'the generator made exactly the ids no valid header gave');
    } finally {
      RequestContext.configure({ generateRequestId: null });
    }
  });
});

describe("a logger's msgPrefix", () => {
  it('is on every line the middleware and errorLogger write, as pino-http writes through a pino logger with one', async () => {
    for (const redact of [undefined, ['secret']]) {
      const file = tempFile();
      const root = createLogger({ destination: file, level: 'debug', msgPrefix: '[app] ', redact });
      const logger = root.child({ component: 'http' }, { msgPrefix: '[http] ' });
      const express = require('express');
      const app = express();
      // Express's final handler answers the error without printing it.
      app.set('env', 'test');
      app.use(ambient.middleware({ logger }));
      app.get('/work/:n', async (req, res, next) => {
        await sleep(Math.random() * 5);
        root.info('working on %d', Number(req.params.n));
        if (req.params.n % 4 === 0) next(new Error('no luck'));
        else res.send('ok');
      });
      app.use(ambient.errorLogger({ logger }));
      const server = http.createServer(app);
      const port = await listen(server);
      const replies = await Promise.all(Array.from({ length: 24 }, async (_, n) => {
        await sleep(Math.random() * 5);
        const headers = { 'x-request-id': n % 3 === 0 ? 'bad\tid' : `prefixed-${n}` };
        return { n, reply: await request(port, { path: `/work/${n}`, headers }) };
      }));
      server.close();
      const lines = await linesOf({ file, logger: root });
      for (const { n, reply } of replies) {
        const mine = lines.filter((l) => l.requestId === reply.headers['x-request-id']);
        const expected = [`[app] working on ${n}`, '[app] [http] request completed'];
        if (n % 3 === 0) expected.push('[app] [http] incoming request id replaced by a generated one');
        if (n % 4 === 0) expected.push('[app] [http] request failed');
        assert.deepEqual(mine.map((l) => l.msg).sort(), expected.sort(), `request ${n}, redact ${redact}`);
        for (const line of mine) assert.equal(line.component, line.msg.startsWith('[app] [http]') ? 'http' : undefined);
      }
    }
  });
});

describe("a logger's errorKey", () => {
  it('names the error member on the lines the middleware and errorLogger write (wrapHandler: above)', async () => {
    const express = require('express');
    const file = tempFile();
    const logger = createLogger({ destination: file, errorKey: 'error' });
    const app = express();
    app.set('env', 'test');
    app.use(ambient.middleware({ logger }));
    app.get('/work/:n', async (req, res, next) => {
      await sleep(Math.random() * 5);
      const n = Number(req.params.n);
      if (n % 3 === 0) next(new Error(`failed ${n}`));
      else if (n % 3 === 1) next(Object.assign(new Error(`refused ${n}`), { status: 403 }));
      else res.send('ok');
    });
    app.use(ambient.errorLogger({ logger }));
    const server = http.createServer(app);
    const port = await listen(server);
    try {
      await Promise.all(Array.from({ length: 18 }, async (_, n) => {
        await sleep(Math.random() * 5);
        return request(port, { path: `/work/${n}`, headers: { 'x-request-id': `errkey-${n}` } });
      }));
    } finally {
      server.close();
    }
    const lines = await linesOf({ file, logger });
    for (let n = 0; n < 18; n++) {
      const mine = lines.filter((l) => l.requestId === `errkey-${n}`);
      const failure = n % 3 === 0 ? `failed ${n}` : n % 3 === 1 ? `refused ${n}` : undefined;
      assert.deepEqual(mine.map((l) => [l.msg, l.error?.message, l.err]).sort(),
        [...(failure ? [['request failed', failure, undefined]] : []), ['request completed', failure, undefined]].sort(), `request ${n}`);
    }
  });
});

describe("a logger's messageKey, timestamp, formatters.level and mixin", () => {
  it('shape the access lines too, batched or written at once', async () => {
    const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    for (const sync of [false, true]) {
      for (const [timestamp, nestedKey] of [['iso', undefined], [false, 'payload']]) {
        const file = tempFile();
        const logger = createLogger({
          destination: file, messageKey: 'message', timestamp, sync, nestedKey, formatters: { level: (label) => ({ severity: label.toUpperCase() }) },
          // The access line is written with the request's context in hand, not entered: the mixin still sees it.
          mixin: nestedKey === undefined ? (object) => ({ mixedFor: RequestContext.current()?.requestId, sawStatus: object.status }) : undefined,
        });
        const server = http.createServer(ambient.wrapHandler(async (req, res) => {
          await sleep(Math.random() * 5);
          logger.info('handling');
          res.end('ok');
        }, { logger }));
        const port = await listen(server);
        const ids = Array.from({ length: 20 }, (_, i) => `shaped-${i}`);
        await Promise.all(ids.map(async (id) => {
          await sleep(Math.random() * 5);
          return request(port, { headers: { 'x-request-id': id } });
        }));
        server.close();
        const lines = await linesOf({ file, logger });
        const label = `sync ${sync}, timestamp ${timestamp}, nestedKey ${nestedKey}`;
        assert.equal(lines.length, 40, label);
        for (const id of ids) {
          const mine = lines.filter((l) => l.requestId === id);
          assert.deepEqual(mine.map((l) => l.message).sort(), ['handling', 'request completed'], label);
          for (const line of mine) {
            assert.deepEqual([line.msg, line.level, line.severity], [undefined, undefined, 'INFO'], label);
            if (nestedKey === undefined) {
              assert.equal(line.mixedFor, id, label);
              assert.equal(line.sawStatus, line.message === 'request completed' ? 200 : undefined, label);
            } else if (line.message === 'request completed') {
              assert.deepEqual([line.status, line[nestedKey].status, line[nestedKey].method], [undefined, 200, 'GET'], label);
            }
            if (timestamp === 'iso') assert.match(line.time, ISO, label);
            else assert.equal('time' in line, false, label);
          }
        }
      }
    }
  });

  it("sees the request in the lines of requests the client left, which end outside the request's context", async () => {
    const file = tempFile();
    const logger = createLogger({ destination: file, mixin: () => ({ mixedFor: RequestContext.current()?.requestId ?? null }) });
    const arrived = new Map();
    const closed = [];
    // Each request waits until its client has gone: no response can race the abort.
    const server = http.createServer(ambient.wrapHandler((req, res) => {
      closed.push(new Promise((resolve) => res.on('close', resolve)));
      arrived.get(req.headers['x-request-id'])();
    }, { logger }));
    const port = await listen(server);
    const ids = Array.from({ length: 8 }, (_, i) => `left-${i}`);
    await Promise.all(ids.map((id) => new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, headers: { 'x-request-id': id }, agent: false });
      req.on('error', () => resolve());
      arrived.set(id, () => setTimeout(() => req.destroy(), Math.random() * 20));
    })));
    await Promise.all(closed);
    server.close();
    const lines = await linesOf({ file, logger });
    for (const id of ids) {
      const mine = lines.filter((l) => l.requestId === id);
      assert.deepEqual(mine.map((l) => [l.msg, l.mixedFor]), [['request aborted', id]]);
    }
  });
});

describe('node:http2 compatibility API', () => {
  it('keeps each stream\'s context in its body listeners and counts its bytes, many streams on one connection', async () => {
    const http2 = require('node:http2');
    const log = tempLog();
    const server = http2.createServer(ambient.wrapHandler((req, res) => {
      const seen = [];
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk) => {
        body += chunk;
        seen.push(RequestContext.current()?.requestId);
      });
      req.once('end', async () => {
        seen.push(RequestContext.current()?.requestId);
        await sleep(Math.random() * 5);
        res.write(JSON.stringify({ body, seen }));
        res.end('\n');
      });
    }, { logger: log.logger }));
    const port = await listen(server);
    const client = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const ids = Array.from({ length: 30 }, (_, i) => `h2-${i}`);
      const replies = await Promise.all(ids.map((id) => new Promise((resolve, reject) => {
        const stream = client.request({ ':method': 'POST', ':path': `/items/${id}`, 'x-request-id': id });
        let text = '';
        let echoed;
        stream.setEncoding('utf8');
        stream.on('response', (headers) => { echoed = headers['x-request-id']; });
        stream.on('data', (chunk) => { text += chunk; });
        stream.on('end', () => resolve({ echoed, length: Buffer.byteLength(text), ...JSON.parse(text) }));
        stream.on('error', reject);
        // The body arrives in two parts at random times, interleaved across streams.
        setTimeout(() => {
          stream.write(`${id}:`);
          setTimeout(() => stream.end('payload'), Math.random() * 10);
        }, Math.random() * 10);
      })));
      for (const [i, reply] of replies.entries()) {
        assert.equal(reply.echoed, ids[i]);
        assert.equal(reply.body, `${ids[i]}:payload`);
        assert.ok(reply.seen.length >= 2);
        assert.deepEqual(reply.seen, reply.seen.map(() => ids[i]), 'data and end ran in the stream\'s own context');
      }
      const completed = (await linesOf(log)).filter((l) => l.msg === 'request completed');
      assert.equal(completed.length, ids.length);
      for (const line of completed) {
        const reply = replies[ids.indexOf(line.requestId)];
        assert.equal(line.url, `/items/${line.requestId}`);
        assert.equal(line.status, 200);
        assert.equal(line.bytes, reply.length, 'bytes written through write() and end() are counted once');
      }
    } finally {
      client.close();
      server.close();
    }
  });
});

describe('body bytes', () => {
  it('counts what each response wrote, streamed in strings of any encoding and buffers, with no content-length', async () => {
    const log = tempLog();
    const chunks = (n) => ['héllo ', Buffer.from([1, 2, 3, n]), ['aGk=', 'base64'], '✓'.repeat(n)];
    const expected = (n) => Buffer.byteLength('héllo ') + 4 + 2 + Buffer.byteLength('✓'.repeat(n));
    const server = http.createServer(ambient.wrapHandler(async (req, res) => {
      const n = Number(req.url.slice(1));
      const [text, buffer, [encoded, encoding], tail] = chunks(n);
      res.write(text);
      await sleep(Math.random() * 10);
      res.write(buffer, () => {});
      res.write(encoded, encoding);
      await sleep(Math.random() * 10);
      res.end(tail);
    }, { logger: log.logger }));
    const port = await listen(server);
    const ns = Array.from({ length: 30 }, (_, i) => i + 1);
    const responses = await Promise.all(ns.map((n) => request(port, { path: `/${n}`, headers: { 'x-request-id': `bytes-${n}` } })));
    server.close();
    for (const res of responses) assert.equal(res.headers['content-length'], undefined, 'chunked, so the count cannot come from a header');
    const lines = await linesOf(log);
    for (const n of ns) {
      const line = lines.find((l) => l.requestId === `bytes-${n}` && l.msg === 'request completed');
      assert.equal(line.bytes, expected(n), `request ${n}`);
    }
  });

  it('counts no body for HEAD, 204 and 304, whose body node:http does not send', async () => {
    const log = tempLog();
    const server = http.createServer(ambient.wrapHandler(async (req, res) => {
      await sleep(Math.random() * 10);
      res.statusCode = Number(req.url.split('/')[1]);
      res.end('a body the handler wrote anyway');
    }, { logger: log.logger }));
    const port = await listen(server);
    const cases = Array.from({ length: 40 }, (_, i) => ({ method: i % 4 === 0 ? 'HEAD' : 'GET', status: [200, 204, 304, 200][i % 4], id: `bodyless-${i}` }));
    const responses = await Promise.all(cases.map(({ method, status, id }) => request(port, { method, path: `/${status}/${id}`, headers: { 'x-request-id': id } })));
    server.close();
    const lines = await linesOf(log);
    cases.forEach(({ method, status, id }, i) => {
      const sent = Buffer.byteLength(responses[i].body);
      assert.equal(sent, method === 'GET' && status === 200 ? 31 : 0, `${method} ${status}`);
      const line = lines.find((l) => l.requestId === id && l.msg === 'request completed');
      assert.deepEqual([line.method, line.status, line.bytes], [method, status, sent], id);
    });
  });
});

describe('a logger that redacts', () => {
  it("hides the request's redacted fields on its access line and in the handler's lines", async () => {
    const file = tempFile();
    const logger = createLogger({ destination: file, redact: ['session', 'url'] });
    const server = http.createServer(ambient.wrapHandler(async (req, res) => {
      RequestContext.require().set('session', `session-of-${req.url.slice(1)}`);
      RequestContext.require().set('tenant', 'acme');
      await sleep(Math.random() * 10);
      logger.info('handled');
      res.end('ok');
    }, { logger }));
    const port = await listen(server);
    const ids = Array.from({ length: 30 }, (_, i) => `redacting-${i}`);
    await Promise.all(ids.map((id) => request(port, { path: `/${id}`, headers: { 'x-request-id': id } })));
    server.close();
    const lines = await linesOf({ file, logger });
    assert.equal(lines.length, 60);
    assert.ok(!fs.readFileSync(file, 'utf8').includes('session-of-'), 'no session value is written');
    for (const id of ids) {
      const mine = lines.filter((l) => l.requestId === id);
      assert.deepEqual(mine.map((l) => l.msg).sort(), ['handled', 'request completed']);
      for (const line of mine) assert.deepEqual([line.session, line.tenant], ['[Redacted]', 'acme']);
      const completed = mine.find((l) => l.msg === 'request completed');
      assert.deepEqual([completed.url, completed.status], ['[Redacted]', 200], 'the access line\'s own members too');
    }
  });
});

describe('a logger with serializers', () => {
  it("applies them to the access line's members and to errors, each request with its own", async () => {
    const file = tempFile();
    const logger = createLogger({
      destination: file,
      serializers: { url: (url) => url.split('?')[0], err: (err) => ({ kind: err.name, text: err.message }) },
    });
    const express = require('express');
    const app = express();
    app.use(ambient.middleware({ logger }));
    app.get('/items/:id', async (req, res, next) => {
      await sleep(Math.random() * 10);
      if (req.params.id.endsWith('7')) next(new RangeError(`no item ${req.params.id}`));
      else res.send('ok');
    });
    app.use(ambient.errorLogger({ logger }));
    app.use((err, req, res, next) => res.status(404).send('none'));
    const server = http.createServer(app);
    const port = await listen(server);
    const ids = Array.from({ length: 30 }, (_, i) => `item-${i}`);
    await Promise.all(ids.map((id) => request(port, { path: `/items/${id}?token=secret-${id}`, headers: { 'x-request-id': id } })));
    server.close();
    const lines = await linesOf({ file, logger });
    assert.ok(!fs.readFileSync(file, 'utf8').includes('secret-'), 'no query string is written');
    for (const id of ids) {
      const mine = lines.filter((l) => l.requestId === id);
      const completed = mine.find((l) => l.msg === 'request completed');
      assert.equal(completed.url, `/items/${id}`);
      if (id.endsWith('7')) {
        const failed = mine.find((l) => l.msg === 'request failed');
        assert.deepEqual(failed.err, { kind: 'RangeError', text: `no item ${id}` });
        assert.deepEqual(completed.err, failed.err, 'the access line carries the same error');
        assert.equal(completed.status, 404);
      } else {
        assert.deepEqual([mine.length, completed.status, completed.err], [1, 200, undefined]);
      }
    }
  });
});

describe('once() listeners added in a request', () => {
  it('run once, in the request context, and removeListener(original) and listeners() see them as EventEmitter does', async () => {
    const log = tempLog();
    const server = http.createServer(ambient.wrapHandler(async (req, res) => {
      const id = RequestContext.require().requestId;
      await sleep(Math.random() * 10);
      const seen = [];
      const removed = () => seen.push('removed');
      req.once('aborted', removed);
      const listed = req.listeners('aborted').includes(removed);
      const countAfterOnce = req.listenerCount('aborted');
      req.removeListener('aborted', removed);
      const countAfterRemove = req.listenerCount('aborted');
      // Fired twice, run once, and from outside any request context: the
      // listener still sees the request that added it.
      req.prependOnceListener('aborted', () => seen.push(RequestContext.current()?.requestId));
      const emit = () => req.emit('aborted');
      await new Promise((resolve) => setImmediate(() => RequestContext.run({ requestId: 'elsewhere' }, () => {
        emit();
        emit();
        resolve();
      })));
      // Readable#pipe adds once('end') and unpipe() removes it by the
      // original: after unpipe the destination must not be ended by it.
      const { PassThrough } = require('node:stream');
      const dest = new PassThrough();
      req.pipe(dest);
      req.unpipe(dest);
      const endListeners = req.listenerCount('end');
      req.resume();
      await new Promise((resolve) => req.on('end', resolve));
      await sleep(1);
      res.end(JSON.stringify({ id, listed, countAfterOnce, countAfterRemove, seen, endListeners, destEnded: dest.writableEnded }));
    }, { logger: log.logger }));
    const port = await listen(server);
    const ids = Array.from({ length: 30 }, (_, i) => `once-${i}`);
    const results = await Promise.all(ids.map((id) => request(port, { method: 'POST', headers: { 'x-request-id': id }, body: 'x' })));
    server.close();
    results.forEach((r, i) => {
      assert.deepEqual(JSON.parse(r.body), {
        id: ids[i], listed: true, countAfterOnce: 1, countAfterRemove: 0, seen: [ids[i]], endListeners: 0, destEnded: false,
      });
    });
  });
});

describe('an app mounted in another, both with the middleware', () => {
  it("gives the inner pass a child of the outer pass's context, in the same trace, with a line of its own", async () => {
    const express = require('express');
    const outerLog = tempLog();
    const innerLog = tempLog();
    const spans = new Map();
    const inner = express();
    // Echoing too: the response must keep the outer pass's ids.
    inner.use(ambient.middleware({ logger: innerLog.logger }));
    inner.get('/ok/:n', async (req, res) => {
      const ctx = RequestContext.require();
      spans.get(req.headers['x-request-id']).inner = { span: ctx.spanId, parent: ctx.parentSpanId, trace: ctx.traceId, kind: ctx.kind };
      await sleep(Math.random() * 10);
      res.write('x'.repeat(Number(req.params.n)));
      await sleep(Math.random() * 5);
      res.end('!');
    });
    inner.get('/fail', async (req, res, next) => {
      await sleep(Math.random() * 5);
      next(new Error('inner failure'));
    });
    inner.use(ambient.errorLogger({ logger: innerLog.logger }));
    // eslint-disable-next-line no-unused-vars
    inner.use((err, req, res, next) => res.status(500).send('failed'));
    const outer = express();
    outer.use(ambient.middleware({ logger: outerLog.logger }));
    outer.use(async (req, res, next) => {
      const ctx = RequestContext.require();
      spans.set(req.headers['x-request-id'], { outer: { span: ctx.spanId, trace: ctx.traceId } });
      await sleep(Math.random() * 5);
      next();
    });
    outer.use('/inner', inner);
    const server = http.createServer(outer);
    const port = await listen(server);
    const ns = Array.from({ length: 20 }, (_, i) => i + 1);
    const [responses, failed] = await Promise.all([
      Promise.all(ns.map((n) => request(port, { path: `/inner/ok/${n}`, headers: { 'x-request-id': `nest-${n}` } }))),
      request(port, { path: '/inner/fail', headers: { 'x-request-id': 'nest-fail' } }),
    ]);
    server.close();
    assert.equal(failed.status, 500);
    const outerLines = (await linesOf(outerLog)).filter((l) => l.msg === 'request completed');
    const innerLines = (await linesOf(innerLog)).filter((l) => l.msg === 'request completed');
    const traces = new Set();
    for (const [i, n] of ns.entries()) {
      const id = `nest-${n}`;
      const [outerLine, ...moreOuter] = outerLines.filter((l) => l.requestId === id);
      const [innerLine, ...moreInner] = innerLines.filter((l) => l.requestId === id);
      assert.deepEqual([moreOuter, moreInner], [[], []], `one line per pass for ${id}`);
      assert.equal(responses[i].body, `${'x'.repeat(n)}!`);
      for (const line of [outerLine, innerLine]) {
        assert.equal(line.bytes, n + 1, id);
        assert.equal(line.status, 200, id);
        assert.equal(line.route, '/inner/ok/:n', id);
      }
      const { outer: outerPass, inner: innerPass } = spans.get(id);
      assert.equal(innerPass.kind, 'child');
      assert.equal(innerPass.parent, outerPass.span, 'the inner pass is a child span of the outer one');
      assert.equal(innerPass.trace, outerPass.trace, 'one trace per request');
      assert.deepEqual([outerLine.spanId, outerLine.traceId], [outerPass.span, outerPass.trace]);
      assert.deepEqual([innerLine.spanId, innerLine.traceId], [innerPass.span, outerPass.trace]);
      const echoed = ambient.traceContext.parseTraceparent(responses[i].headers.traceparent);
      assert.deepEqual([echoed.traceId, echoed.parentId], [outerPass.trace, outerPass.span], "the response carries the outer pass's ids");
      assert.equal(responses[i].headers['x-request-id'], id);
      traces.add(outerPass.trace);
    }
    assert.equal(traces.size, ns.length, 'each request a trace of its own');
    for (const lines of [outerLines, innerLines]) {
      const line = lines.find((l) => l.requestId === 'nest-fail');
      assert.equal(line.status, 500);
      assert.equal(line.err.message, 'inner failure');
    }
    const failedLines = outerLines.concat(innerLines).filter((l) => l.requestId === 'nest-fail');
    assert.equal(new Set(failedLines.map((l) => l.traceId)).size, 1);
  });

  it("keeps the inner app's own deadline: its line, in the inner pass's span, and an aborted signal", async () => {
    const express = require('express');
    const outerLog = tempLog();
    const innerLog = tempLog();
    const inner = express();
    inner.use(ambient.middleware({ logger: innerLog.logger, deadlineMs: 100 }));
    const seen = new Map();
    inner.get('/work/:ms', async (req, res) => {
      const ctx = RequestContext.require();
      let outcome = 'done';
      try {
        await sleep(Number(req.params.ms), undefined, { signal: ctx.signal });
      } catch (err) {
        outcome = ctx.signal.reason.name;
      }
      seen.set(ctx.requestId, { span: ctx.spanId, outcome });
      res.send(outcome);
    });
    const outer = express();
    outer.use(ambient.middleware({ logger: outerLog.logger }));
    outer.use('/inner', inner);
    const server = http.createServer(outer);
    const port = await listen(server);
    const plans = Array.from({ length: 16 }, (_, i) => ({ id: `inner-dl-${i}`, ms: i % 4 === 0 ? 300 : Math.round(Math.random() * 10) }));
    await Promise.all(plans.map(async (plan) => {
      await sleep(Math.random() * 10);
      return request(port, { path: `/inner/work/${plan.ms}`, headers: { 'x-request-id': plan.id } });
    }));
    server.close();
    const innerLines = await linesOf(innerLog);
    const outerLines = await linesOf(outerLog);
    for (const plan of plans) {
      const slow = plan.ms === 300;
      const { span, outcome } = seen.get(plan.id);
      assert.equal(outcome, slow ? 'DeadlineExceededError' : 'done', plan.id);
      const late = innerLines.filter((l) => l.requestId === plan.id && l.msg === 'request exceeded its deadline');
      assert.equal(late.length, slow ? 1 : 0, plan.id);
      if (slow) assert.deepEqual([late[0].spanId, late[0].route, late[0].deadlineMs], [span, '/inner/work/:ms', 100], plan.id);
      assert.deepEqual(outerLines.filter((l) => l.requestId === plan.id).map((l) => l.msg), ['request completed'], plan.id);
    }
  });

  it('an Express app with the middleware, served through wrapHandler(), logs one request in one trace', async () => {
    const express = require('express');
    const { logger, file } = tempLog();
    const app = express();
    app.use(ambient.middleware({ logger, level: 'debug' }));
    app.get('/n/:n', async (req, res) => {
      await sleep(Math.random() * 10);
      logger.info({ n: req.params.n }, 'handled');
      res.send(req.params.n);
    });
    const debugLog = createLogger({ destination: file, level: 'debug' });
    const server = http.createServer(ambient.wrapHandler(app, { logger: debugLog }));
    const port = await listen(server);
    // Half of them with a request id the middleware must replace: the
    // replacement is logged once, by the first pass.
    const ns = Array.from({ length: 24 }, (_, i) => i);
    const responses = await Promise.all(ns.map((n) => request(port, { path: `/n/${n}`, headers: { 'x-request-id': n % 2 ? `wrapped-${n}` : 'bad id' } })));
    server.close();
    await debugLog.flush();
    const lines = await linesOf({ file, logger });
    for (const [i, n] of ns.entries()) {
      const requestId = responses[i].headers['x-request-id'];
      if (n % 2) assert.equal(requestId, `wrapped-${n}`);
      else assert.match(requestId, /^[0-9a-f-]{36}$/);
      const own = lines.filter((l) => l.requestId === requestId);
      assert.deepEqual(own.map((l) => l.msg).sort(), [
        ...(n % 2 ? [] : ['incoming request id replaced by a generated one']),
        'handled', 'request completed', 'request completed',
      ].sort(), requestId);
      assert.equal(new Set(own.map((l) => l.traceId)).size, 1, `one trace for ${requestId}`);
      assert.equal(ambient.traceContext.parseTraceparent(responses[i].headers.traceparent).traceId, own[0].traceId);
      assert.equal(own.find((l) => l.msg === 'handled').n, String(n));
    }
  });
});

describe('a deadline for each request', () => {
  it('reports each request still open after deadlineMs in its own context, and aborts its signal', async () => {
    const express = require('express');
    const log = tempLog();
    const app = express();
    app.use(ambient.middleware({ logger: log.logger, deadlineMs: 150 }));
    const aborted = new Map();
    app.get('/work/:ms', async (req, res) => {
      const ctx = RequestContext.require();
      try {
        // Work that takes the request's signal stops at its deadline.
        await sleep(Number(req.params.ms), undefined, { signal: ctx.signal });
        res.send('done');
      } catch (err) {
        aborted.set(ctx.requestId, { name: err.name, cause: ctx.signal.reason });
        res.status(503).send('gave up');
      }
    });
    const server = http.createServer(app);
    const port = await listen(server);
    // Interleaved: fast requests (under 10 ms) and slow ones (300-400 ms).
    const plans = Array.from({ length: 30 }, (_, i) => ({ id: `dl-${i}`, slow: i % 3 === 0, ms: i % 3 === 0 ? 300 + Math.random() * 100 : Math.random() * 10 }));
    const responses = await Promise.all(plans.map(async (plan) => {
      await sleep(Math.random() * 20);
      return request(port, { path: `/work/${Math.round(plan.ms)}`, headers: { 'x-request-id': plan.id } });
    }));
    server.close();
    const lines = await linesOf(log);
    for (const [i, plan] of plans.entries()) {
      const own = lines.filter((l) => l.requestId === plan.id);
      const late = own.filter((l) => l.msg === 'request exceeded its deadline');
      const completed = own.find((l) => l.msg === 'request completed');
      if (plan.slow) {
        assert.equal(responses[i].status, 503, plan.id);
        assert.equal(late.length, 1, plan.id);
        assert.equal(late[0].level, 40);
        assert.deepEqual([late[0].method, late[0].route, late[0].url, late[0].deadlineMs], ['GET', '/work/:ms', `/work/${Math.round(plan.ms)}`, 150]);
        assert.ok(late[0].durationMs >= 150 && late[0].durationMs < plan.ms, `${plan.id} reported at ${late[0].durationMs} ms`);
        assert.equal(late[0].traceId, completed.traceId);
        const { name, cause } = aborted.get(plan.id);
        assert.equal(name, 'AbortError');
        assert.deepEqual([cause.name, cause.code, cause.message], ['DeadlineExceededError', 'ERR_AMBIENT_DEADLINE_EXCEEDED', `request ${plan.id} exceeded its deadline`]);
        assert.equal(completed.status, 503);
      } else {
        assert.equal(responses[i].status, 200, plan.id);
        assert.deepEqual(late, [], plan.id);
        assert.equal(aborted.has(plan.id), false);
      }
    }
  });

  it('calls onDeadline(req, res, err) in the request context instead, which may answer for the request', async () => {
    const log = tempLog();
    const seen = [];
    const handler = ambient.wrapHandler(async (req, res) => {
      // Never answers on its own unless it is quick.
      const ms = Number(req.url.slice(1));
      await sleep(ms);
      if (!res.headersSent) res.end('on time');
    }, {
      logger: log.logger,
      deadlineMs: 100,
      onDeadline(req, res, err) {
        seen.push({ url: req.url, requestId: RequestContext.require().requestId, header: req.headers['x-request-id'], code: err.code });
        res.statusCode = 504;
        res.end('timed out');
      },
    });
    const server = http.createServer(handler);
    const port = await listen(server);
    const plans = Array.from({ length: 16 }, (_, i) => ({ id: `od-${i}`, ms: i % 2 ? 250 : Math.round(Math.random() * 10) }));
    const responses = await Promise.all(plans.map((plan) => request(port, { path: `/${plan.ms}`, headers: { 'x-request-id': plan.id } })));
    server.close();
    const lines = await linesOf(log);
    for (const [i, plan] of plans.entries()) {
      const late = plan.ms === 250;
      assert.deepEqual([responses[i].status, responses[i].body], late ? [504, 'timed out'] : [200, 'on time'], plan.id);
      assert.equal(lines.find((l) => l.requestId === plan.id && l.msg === 'request completed').status, late ? 504 : 200);
    }
    assert.deepEqual(seen.map((s) => s.requestId).sort(), plans.filter((p) => p.ms === 250).map((p) => p.id).sort());
    for (const s of seen) assert.deepEqual([s.requestId, s.code], [s.header, 'ERR_AMBIENT_DEADLINE_EXCEEDED']);
    assert.equal(lines.filter((l) => l.msg === 'request exceeded its deadline').length, 0, 'onDeadline replaces the line');
  });

  it('refuses a bad deadlineMs or onDeadline when the middleware is made', () => {
    for (const deadlineMs of [-1, NaN, '50', 2 ** 32]) {
      assert.throws(() => ambient.middleware({ deadlineMs }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: /options\.deadlineMs/ });
    }
    assert.throws(() => ambient.middleware({ deadlineMs: 10, onDeadline: 'log' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => ambient.koa({ onDeadline() {} }), { code: 'ERR_INVALID_ARG_VALUE', message: /needs options\.deadlineMs/ });
  });
});

describe('aborted requests', () => {
  it('are logged and ended when the client disconnects', async () => {
    const log = tempLog();
    const before = RequestContext.stats();
    const server = http.createServer(ambient.wrapHandler(async (req, res) => {
      await sleep(100);
      res.end('too late');
    }, { logger: log.logger }));
    const port = await listen(server);
    await new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/slow', headers: { 'x-request-id': 'gone-1' }, agent: false });
      req.on('error', () => resolve());
      setTimeout(() => req.destroy(), 20);
    });
    await sleep(150);
    server.close();
    const aborted = (await linesOf(log)).find((l) => l.requestId === 'gone-1');
    assert.equal(aborted.msg, 'request aborted');
    assert.equal(aborted.aborted, true);
    assert.equal(aborted.level, 40);
    assert.equal(RequestContext.stats().open, before.open);
  });
});

describe('outgoing propagation', () => {
  let downstream;
  let downstreamPort;
  const received = [];

  before(async () => {
    downstream = http.createServer((req, res) => {
      received.push({ traceparent: req.headers.traceparent, requestId: req.headers['x-request-id'], tracestate: req.headers.tracestate, baggage: req.headers.baggage, path: req.url });
      res.end('ok');
    });
    downstreamPort = await listen(downstream);
  });

  after(() => {
    ambient.disableOutgoingPropagation();
    downstream.close();
  });

  it('http.request (Node 22.12+) and fetch carry traceparent (a child span) and x-request-id', async () => {
    ambient.enableOutgoingPropagation();
    received.length = 0;
    const major = Number(process.versions.node.split('.')[0]);
    assert.equal(ambient.httpPropagation, major >= 22);
    const ctx = await RequestContext.run({ requestId: 'up-1', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'rojo=1' }, async () => {
      await request(downstreamPort, { path: '/via-http' });
      await fetch(`http://127.0.0.1:${downstreamPort}/via-fetch`).then((r) => r.text());
      return RequestContext.require();
    });
    assert.equal(received.length, 2);
    if (!ambient.httpPropagation) {
      // Node 20 publishes node:http requests only after their headers left.
      assert.equal(received[0].traceparent, undefined);
      received.shift();
    }
    for (const got of received) {
      assert.equal(got.requestId, 'up-1');
      assert.equal(got.tracestate, 'rojo=1');
      const tp = ambient.traceContext.parseTraceparent(got.traceparent);
      assert.equal(tp.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.notEqual(tp.parentId, ctx.spanId, 'each outgoing call gets its own span');
    }
    if (received.length === 2) assert.notEqual(received[0].traceparent, received[1].traceparent);
  });

  it("the npm undici package's request() and fetch() carry them too, in each of many interleaved contexts", async () => {
    // Same diagnostics channels as the global fetch, so apps that call undici
    // directly for speed keep their ids.
    const undici = require('undici');
    ambient.enableOutgoingPropagation();
    received.length = 0;
    const base = `http://127.0.0.1:${downstreamPort}`;
    const sent = await Promise.all(Array.from({ length: 20 }, (_, i) => RequestContext.run({ requestId: `undici-${i}` }, async () => {
      await sleep(Math.random() * 5);
      const ctx = RequestContext.require();
      if (i % 2) await (await undici.request(`${base}/undici-request/${i}`)).body.text();
      else await (await undici.fetch(`${base}/undici-fetch/${i}`)).text();
      return { requestId: ctx.requestId, traceId: ctx.traceId };
    })));
    assert.equal(received.length, 20);
    const byRequest = new Map(received.map((got) => [got.requestId, got]));
    for (const { requestId, traceId } of sent) {
      const got = byRequest.get(requestId);
      assert.ok(got, `${requestId} arrived with its id`);
      assert.equal(ambient.traceContext.parseTraceparent(got.traceparent).traceId, traceId);
    }
  });

  it("passes each request's W3C baggage on as the codec normalized it, never raw, over many interleaved requests", async () => {
    const express = require('express');
    ambient.enableOutgoingPropagation();
    received.length = 0;
    const app = express();
    app.use(ambient.middleware({ logger: tempLog().logger }));
    app.get('/call/:i', async (req, res) => {
      await sleep(Math.random() * 10);
      const i = req.params.i;
      await fetch(`http://127.0.0.1:${downstreamPort}/fetch/${i}`).then((r) => r.text());
      await sleep(Math.random() * 5);
      if (ambient.httpPropagation) await request(downstreamPort, { path: `/http/${i}` });
      // A header the caller set itself stays as it is.
      await fetch(`http://127.0.0.1:${downstreamPort}/own/${i}`, { headers: { baggage: `mine=${i}` } }).then((r) => r.text());
      res.end();
    });
    const server = http.createServer(app);
    const port = await listen(server);
    const incoming = [
      ['tenant=acme, user = alice ;p=1, bad entry, k=%20v', 'tenant=acme,user=alice;p=1,k=%20v'],
      ['only bad entries, ;;', undefined],
      [undefined, undefined],
      ['plan=pro', 'plan=pro'],
    ];
    await Promise.all(Array.from({ length: 24 }, (_, i) => {
      const [header] = incoming[i % incoming.length];
      return request(port, { path: `/call/${i}`, headers: header === undefined ? {} : { baggage: header } });
    }));
    server.close();
    for (let i = 0; i < 24; i++) {
      const [, expected] = incoming[i % incoming.length];
      const paths = ambient.httpPropagation ? [`/fetch/${i}`, `/http/${i}`] : [`/fetch/${i}`];
      for (const path of paths) {
        const got = received.find((r) => r.path === path);
        assert.ok(got, path);
        assert.equal(got.baggage, expected, path);
      }
      assert.equal(received.find((r) => r.path === `/own/${i}`).baggage, `mine=${i}`);
    }
  });

  it('passes no baggage with baggage: false, and refuses a baggage option that is not a boolean', async () => {
    assert.throws(() => ambient.enableOutgoingPropagation({ baggage: 'no' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    ambient.enableOutgoingPropagation({ baggage: false });
    received.length = 0;
    await RequestContext.run({ requestId: 'no-baggage', baggage: 'tenant=acme' }, async () => {
      assert.equal(RequestContext.require().outgoingBaggage(), 'tenant=acme');
      await fetch(`http://127.0.0.1:${downstreamPort}/quiet`).then((r) => r.text());
    });
    assert.equal(received.length, 1);
    assert.equal(received[0].requestId, 'no-baggage');
    assert.equal(received[0].baggage, undefined);
    ambient.enableOutgoingPropagation();
  });

  it('adds nothing outside a context, under withoutPropagation, or to hosts off the allow-list', async () => {
    received.length = 0;
    ambient.enableOutgoingPropagation({ allowHosts: ['localhost'] });
    await RequestContext.run(() => request(downstreamPort, { path: '/not-allowed' }));
    ambient.enableOutgoingPropagation();
    await request(downstreamPort, { path: '/no-context' });
    await RequestContext.run(() => ambient.withoutPropagation(() => fetch(`http://127.0.0.1:${downstreamPort}/opted-out`).then((r) => r.text())));
    assert.equal(received.length, 3);
    assert.ok(received.every((r) => r.traceparent === undefined && r.requestId === undefined));
  });

  it('matches the allow-list the same way for http and fetch: any case, IPv6 without brackets', async () => {
    // What each request carries is read as it is made, before it connects:
    // none of these hosts needs to answer (port 8: fetch refuses port 9).
    const dc = require('node:diagnostics_channel');
    const seen = [];
    const onFetch = ({ request }) => seen.push(['fetch', request.origin, request.headers.some((h) => String(h).toLowerCase() === 'traceparent')]);
    // A global RegExp would alternate between matching and not.
    ambient.enableOutgoingPropagation({ allowHosts: ['::1', 'Api.Internal', /^10\./g] });
    dc.subscribe('undici:request:create', onFetch);
    try {
      await RequestContext.run(async () => {
        const targets = ['http://[::1]:8/', 'http://API.internal:8/', 'http://10.0.0.1:8/', 'http://10.0.0.2:8/', 'http://api.internal.evil:8/', 'http://[::2]:8/'];
        await Promise.all(targets.map((url) => fetch(url, { signal: AbortSignal.timeout(100) }).catch(() => {})));
        if (ambient.httpPropagation) {
          // Where it goes, not what its Host header says.
          for (const [options, expected] of [[{ host: '::1' }, true], [{ host: 'API.INTERNAL' }, true], [{ host: 'api.internal.evil' }, false],
            [{ host: '127.0.0.1', headers: { host: 'api.internal' } }, false]]) {
            const req = http.request({ port: 8, ...options });
            req.on('error', () => {});
            seen.push(['http', options.host, req.hasHeader('traceparent'), expected]);
            req.destroy();
          }
        }
      });
    } finally {
      dc.unsubscribe('undici:request:create', onFetch);
      ambient.enableOutgoingPropagation();
    }
    const fetched = Object.fromEntries(seen.filter(([kind]) => kind === 'fetch').map(([, origin, has]) => [origin, has]));
    assert.deepEqual(fetched, { 'http://[::1]:8': true, 'http://api.internal:8': true, 'http://10.0.0.1:8': true, 'http://10.0.0.2:8': true, 'http://api.internal.evil:8': false, 'http://[::2]:8': false });
    for (const [kind, host, has, expected] of seen.filter(([kind]) => kind === 'http')) assert.equal(has, expected, `${kind} ${host}`);
  });

  it('refuses bad options up front rather than in every request', () => {
    assert.throws(() => ambient.enableOutgoingPropagation({ requestIdHeader: 5 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => ambient.enableOutgoingPropagation({ requestIdHeader: 'bad header' }), { name: 'TypeError', code: 'ERR_INVALID_HTTP_TOKEN' });
    assert.throws(() => ambient.enableOutgoingPropagation({ allowHosts: ['ok', 5] }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"options\.allowHosts\[1\]" argument must be of type string or an instance of RegExp/ });
    assert.throws(() => ambient.enableOutgoingPropagation({ allowHosts: 'ok' }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => ambient.withoutPropagation('fetch'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"fn" argument must be of type function/ });
  });

  it('keeps the headers a caller set itself, in any case, on http.request and fetch', async () => {
    ambient.enableOutgoingPropagation();
    received.length = 0;
    const own = { traceparent: '00-11111111111111111111111111111111-2222222222222222-01', requestId: 'callers-own', tracestate: 'mine=1' };
    const headers = { TraceParent: own.traceparent, 'X-Request-ID': own.requestId, tracestate: own.tracestate };
    const url = `http://127.0.0.1:${downstreamPort}`;
    await RequestContext.run({ requestId: 'ctx-own', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'rojo=1' }, () => Promise.all([
      request(downstreamPort, { path: '/own-http', headers }),
      fetch(`${url}/own-fetch`, { headers }).then((r) => r.text()),
      fetch(new Request(`${url}/own-request`, { headers: new Headers(headers) })).then((r) => r.text()),
      // Only some set: ambient adds the others.
      fetch(`${url}/own-some`, { headers: { 'x-request-id': 'only-the-id' } }).then((r) => r.text()),
    ]));
    assert.equal(received.length, 4);
    const some = received.find((r) => r.requestId === 'only-the-id');
    assert.ok(some, 'the caller\'s request id, alone');
    assert.equal(ambient.traceContext.parseTraceparent(some.traceparent).traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(some.tracestate, 'rojo=1');
    for (const { traceparent, requestId, tracestate, baggage } of received.filter((r) => r !== some)) {
      assert.deepEqual({ traceparent, requestId, tracestate }, own);
      assert.equal(baggage, undefined, 'the context has no baggage');
    }

    // undici 5 (the npm package) keeps a request's headers as one string.
    const added = [];
    const undici5Request = { origin: url, headers: `X-Request-Id: ${own.requestId}\r\nhost: x\r\n`, addHeader: (name, value) => added.push([name, value]) };
    RequestContext.run({ requestId: 'ctx-own' }, () => require('node:diagnostics_channel').channel('undici:request:create').publish({ request: undici5Request }));
    assert.deepEqual(added.map(([name]) => name), ['traceparent']);
  });
});

for (const framework of ['Koa', 'Fastify']) {
  describe(`${framework} adapter`, () => {
    let server;
    let port;
    let log;
    let app;

    before(async () => {
      log = tempLog();
      const handler = async (fail) => {
        const ctx = RequestContext.require();
        await sleep(Math.random() * 5);
        ctx.set('step', 'handled');
        log.logger.info('in the handler');
        await sleep(Math.random() * 5);
        if (fail) throw new Error('handler failed');
        return RequestContext.require().requestId;
      };
      const refused = () => Object.assign(new Error('not yours'), { status: 403, statusCode: 403, expose: true });
      if (framework === 'Koa') {
        const Koa = require('koa');
        const Router = require('@koa/router');
        app = new Koa();
        app.silent = true;
        app.use(ambient.koa({ logger: log.logger }));
        const router = new Router({ prefix: '/api' });
        router.get('/orders/:id', async (kctx) => { kctx.body = await handler(false); });
        router.get('/fail', async (kctx) => { kctx.body = await handler(true); });
        router.get('/refused', () => { throw refused(); });
        app.use(router.routes());
        server = http.createServer(app.callback());
        port = await listen(server);
      } else {
        app = require('fastify')();
        await app.register(ambient.fastify, { logger: log.logger });
        await app.register(async (api) => {
          api.get('/orders/:id', () => handler(false));
          api.get('/fail', () => handler(true));
          api.get('/refused', async () => { throw refused(); });
        }, { prefix: '/api' });
        await app.listen({ port: 0, host: '127.0.0.1' });
        port = app.server.address().port;
      }
    });

    after(() => (framework === 'Koa' ? server.close() : app.close()));

    it('runs every request in its own context, downstream awaits included, and logs it', async () => {
      const ids = Array.from({ length: 100 }, (_, i) => `${framework.toLowerCase()}-${i}`);
      const responses = await Promise.all(ids.map((id, i) => request(port, { path: `/api/orders/${i}`, headers: { 'x-request-id': id } })));
      assert.deepEqual(responses.map((r) => r.body), ids, 'each handler saw its own request id');
      assert.ok(responses.every((r, i) => r.headers['x-request-id'] === ids[i] && /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[13]$/.test(r.headers.traceparent)));
      const lines = await linesOf(log);
      for (const id of ids) {
        const mine = lines.filter((l) => l.requestId === id);
        assert.deepEqual(mine.map((l) => l.msg).sort(), ['in the handler', 'request completed']);
        const completed = mine.find((l) => l.msg === 'request completed');
        assert.equal(completed.status, 200);
        assert.equal(completed.route, '/api/orders/:id', 'the route pattern, prefix included');
        assert.equal(completed.url, `/api/orders/${ids.indexOf(id)}`);
        assert.equal(completed.step, 'handled', 'a field set downstream is on the access line');
        assert.equal(mine[0].traceId, completed.traceId);
      }
    });

    if (framework === 'Fastify') {
      it('ends and logs requests made with inject(), whose responses never emit close', async () => {
        const open = RequestContext.stats().open;
        const ids = Array.from({ length: 50 }, (_, i) => `inject-${i}`);
        const responses = await Promise.all(ids.map((id) => app.inject({ method: 'GET', url: '/api/orders/1', headers: { 'x-request-id': id } })));
        assert.deepEqual(responses.map((r) => r.body), ids);
        assert.equal(RequestContext.stats().open, open, 'every injected request ended');
        const lines = await linesOf(log);
        for (const id of ids) {
          const completed = lines.filter((l) => l.requestId === id && l.msg === 'request completed');
          assert.equal(completed.length, 1, `one access line for ${id}`);
          assert.equal(completed[0].status, 200);
          assert.equal(completed[0].step, 'handled');
        }
      });
      it("Fastify's own logger, given pinoMixin(), tags request.log lines with the request's ids", async () => {
        const chunks = [];
        const Fastify = require('fastify');
        const own = Fastify({ logger: { mixin: ambient.pinoMixin(), stream: { write: (s) => chunks.push(JSON.parse(s)) } }, logController: new Fastify.LogController({ disableRequestLogging: true }) });
        await own.register(ambient.fastify, { logger: own.log });
        own.get('/work', async (request) => {
          await sleep(Math.random() * 5);
          request.log.info('working');
          await sleep(Math.random() * 5);
          request.log.info('done working');
          return RequestContext.require().requestId;
        });
        try {
          const ids = Array.from({ length: 40 }, (_, i) => `own-log-${i}`);
          const responses = await Promise.all(ids.map((id) => own.inject({ url: '/work', headers: { 'x-request-id': id } })));
          assert.deepEqual(responses.map((r) => r.body), ids);
          for (const id of ids) {
            const mine = chunks.filter((l) => l.requestId === id);
            assert.deepEqual(mine.map((l) => l.msg), ['working', 'done working', 'request completed'], id);
            // request.log's own binding stays beside it (the access line goes through own.log).
            assert.match(mine[0].reqId, /^req-/);
            assert.equal(mine[1].reqId, mine[0].reqId);
            assert.equal(mine[2].route, '/work');
            assert.match(mine[0].traceId, /^[0-9a-f]{32}$/);
          }
        } finally {
          await own.close();
        }
      });
      it("ambient's own logger serves as Fastify's loggerInstance: request.log lines carry the context, a route's logLevel applies", async () => {
        const Fastify = require('fastify');
        const own = tempLog();
        const app = Fastify({
          loggerInstance: own.logger,
          genReqId: ambient.fastifyRequestId(),
          logController: new Fastify.LogController({ disableRequestLogging: true }),
        });
        await app.register(ambient.fastify, { logger: own.logger });
        app.get('/work/:n', async (request) => {
          await sleep(Math.random() * 5);
          request.log.info({ n: Number(request.params.n) }, 'working');
          await sleep(Math.random() * 5);
          return RequestContext.require().requestId;
        });
        app.get('/quiet', { logLevel: 'warn' }, async (request) => {
          request.log.info('filtered by the route');
          request.log.warn('kept');
          return 'ok';
        });
        try {
          const ids = Array.from({ length: 30 }, (_, i) => `instance-${i}`);
          const responses = await Promise.all(ids.map(async (id, n) => {
            await sleep(Math.random() * 5);
            return app.inject({ url: n % 5 === 4 ? '/quiet' : `/work/${n}`, headers: { 'x-request-id': id } });
          }));
          const lines = await linesOf(own);
          ids.forEach((id, n) => {
            assert.equal(responses[n].statusCode, 200);
            const mine = lines.filter((l) => l.requestId === id);
            const quiet = n % 5 === 4;
            assert.deepEqual(mine.map((l) => l.msg), [quiet ? 'kept' : 'working', 'request completed'], id);
            assert.equal(mine[0].reqId, id, "Fastify's child binding");
            assert.equal(mine[0].traceId, mine[1].traceId);
            if (!quiet) assert.equal(mine[0].n, n);
          });
          assert.ok(!lines.some((l) => l.msg === 'filtered by the route'));
        } finally {
          await app.close();
        }
      });
      it("with genReqId: fastifyRequestId(), Fastify's reqId is the request's requestId, hostile headers replaced", async () => {
        const chunks = [];
        const Fastify = require('fastify');
        const own = Fastify({
          genReqId: ambient.fastifyRequestId(),
          logger: { level: 'debug', mixin: ambient.pinoMixin(), stream: { write: (s) => chunks.push(JSON.parse(s)) } },
          logController: new Fastify.LogController({ disableRequestLogging: true }),
        });
        await own.register(ambient.fastify, { logger: own.log });
        own.get('/work', async (request) => {
          await sleep(Math.random() * 5);
          request.log.info('working');
          return RequestContext.require().requestId;
        });
        try {
          const sent = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? `gen-${i}` : i % 3 === 1 ? undefined : `hostile-${i}\u0007`));
          const responses = await Promise.all(sent.map((id) => own.inject({ url: '/work', headers: id === undefined ? {} : { 'x-request-id': id } })));
          const requestIds = responses.map((r) => r.body);
          assert.equal(new Set(requestIds).size, sent.length, 'one id per request');
          sent.forEach((id, i) => {
            if (id?.startsWith('gen-')) assert.equal(requestIds[i], id);
            else assert.match(requestIds[i], /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a generated UUIDv7');
            assert.equal(responses[i].headers['x-request-id'], requestIds[i]);
            const mine = chunks.filter((l) => l.requestId === requestIds[i]);
            const replaced = id?.startsWith('hostile-') ? ['incoming request id replaced by a generated one'] : [];
            assert.deepEqual(mine.map((l) => l.msg), [...replaced, 'working', 'request completed']);
            const working = mine.find((l) => l.msg === 'working');
            assert.equal(working.reqId, requestIds[i], "request.log's reqId is the same id");
          });
          assert.ok(!JSON.stringify(chunks).includes('hostile-'), 'no hostile value is logged');
        } finally {
          await own.close();
        }
      });
      it('fastifyRequestId() refuses a bad header option up front', () => {
        assert.throws(() => ambient.fastifyRequestId({ requestIdHeader: 'bad header' }), { code: 'ERR_INVALID_HTTP_TOKEN' });
        assert.throws(() => ambient.fastifyRequestId(null), { code: 'ERR_INVALID_ARG_TYPE' });
      });
    }

    it('logs a request that failed with a server error, with its request id, and puts the error on its access line', async () => {
      const res = await request(port, { path: '/api/fail', headers: { 'x-request-id': `${framework}-fail` } });
      assert.equal(res.status, 500);
      const mine = (await linesOf(log)).filter((l) => l.requestId === `${framework}-fail`);
      const failed = mine.find((l) => l.msg === 'request failed');
      assert.equal(failed.level, 50);
      assert.equal(failed.err.message, 'handler failed');
      assert.match(failed.err.stack, /handler failed/);
      const completed = mine.find((l) => l.msg === 'request completed');
      assert.equal(completed.status, 500);
      assert.equal(completed.route, '/api/fail');
      assert.equal(completed.err.message, 'handler failed');
    });

    it('does not report an error meant for the client, and logs none with logErrors: false', async () => {
      const res = await request(port, { path: '/api/refused', headers: { 'x-request-id': `${framework}-refused` } });
      assert.equal(res.status, 403);
      const mine = (await linesOf(log)).filter((l) => l.requestId === `${framework}-refused`);
      assert.deepEqual(mine.map((l) => l.msg), ['request completed']);
      assert.equal(mine[0].status, 403);
      assert.equal(mine[0].err.message, 'not yours');

      const quiet = tempLog();
      let quietPort;
      let close;
      if (framework === 'Koa') {
        const quietApp = new (require('koa'))();
        quietApp.silent = true;
        quietApp.use(ambient.koa({ logger: quiet.logger, logErrors: false }));
        quietApp.use(() => { throw new Error('quietly'); });
        const quietServer = http.createServer(quietApp.callback());
        quietPort = await listen(quietServer);
        close = () => quietServer.close();
      } else {
        const quietApp = require('fastify')();
        await quietApp.register(ambient.fastify, { logger: quiet.logger, logErrors: false });
        quietApp.get('/', async () => { throw new Error('quietly'); });
        await quietApp.listen({ port: 0, host: '127.0.0.1' });
        quietPort = quietApp.server.address().port;
        close = () => quietApp.close();
      }
      try {
        assert.equal((await request(quietPort, { headers: { 'x-request-id': 'quiet-1' } })).status, 500);
        const lines = await linesOf(quiet);
        assert.deepEqual(lines.map((l) => l.msg), ['request completed']);
        assert.equal(lines[0].err.message, 'quietly');
      } finally {
        await close();
      }
    });

    it('refuses a logErrors option that is not a boolean', async () => {
      const attempt = framework === 'Koa' ?
        async () => ambient.koa({ logErrors: 'no' }) :
        () => require('fastify')().register(ambient.fastify, { logErrors: 'no' }).ready();
      await assert.rejects(attempt, { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /"options\.logErrors" argument must be of type boolean/ });
    });
  });
}

describe('Koa and Fastify adapters with a deadline, used twice on one app', () => {
  for (const framework of ['Koa', 'Fastify']) {
    it(`${framework}: reports slow requests at their deadline, and the second use nests in the first's trace`, async () => {
      const log = tempLog();
      const work = async (ms) => {
        const { signal } = RequestContext.require();
        try {
          await sleep(ms, undefined, { signal });
          return 'done';
        } catch {
          return 'gave up';
        }
      };
      let close;
      let port;
      if (framework === 'Koa') {
        const Koa = require('koa');
        const Router = require('@koa/router');
        const app = new Koa();
        app.use(ambient.koa({ logger: log.logger, deadlineMs: 100 }));
        app.use(ambient.koa({ logger: log.logger }));
        const router = new Router();
        router.get('/work/:ms', async (kctx) => { kctx.body = await work(Number(kctx.params.ms)); });
        app.use(router.routes());
        const server = http.createServer(app.callback());
        port = await listen(server);
        close = () => server.close();
      } else {
        const app = require('fastify')();
        await app.register(ambient.fastify, { logger: log.logger, deadlineMs: 100 });
        await app.register(ambient.fastify, { logger: log.logger });
        app.get('/work/:ms', (req) => work(Number(req.params.ms)));
        await app.listen({ port: 0, host: '127.0.0.1' });
        port = app.server.address().port;
        close = () => app.close();
      }
      const plans = Array.from({ length: 16 }, (_, i) => ({ id: `${framework}-dl-${i}`, ms: i % 4 === 0 ? 400 : Math.round(Math.random() * 10) }));
      const responses = await Promise.all(plans.map(async (plan) => {
        await sleep(Math.random() * 10);
        return request(port, { path: `/work/${plan.ms}`, headers: { 'x-request-id': plan.id } });
      }));
      await close();
      const lines = await linesOf(log);
      for (const [i, plan] of plans.entries()) {
        const slow = plan.ms === 400;
        assert.equal(responses[i].body, slow ? 'gave up' : 'done', plan.id);
        const own = lines.filter((l) => l.requestId === plan.id);
        const late = own.filter((l) => l.msg === 'request exceeded its deadline');
        assert.equal(late.length, slow ? 1 : 0, plan.id);
        if (slow) assert.deepEqual([late[0].level, late[0].route, late[0].deadlineMs], [40, '/work/:ms', 100]);
        const completed = own.filter((l) => l.msg === 'request completed');
        assert.equal(completed.length, 2, `one access line per use for ${plan.id}`);
        assert.equal(new Set(own.map((l) => l.traceId)).size, 1, `one trace for ${plan.id}`);
        assert.notEqual(completed[0].spanId, completed[1].spanId);
        const echoed = ambient.traceContext.parseTraceparent(responses[i].headers.traceparent);
        assert.equal(echoed.traceId, completed[0].traceId);
        assert.ok(completed.some((l) => l.spanId === echoed.parentId), "the echoed span is the first use's");
        if (slow) assert.equal(late[0].spanId, echoed.parentId, "the deadline is the first use's");
      }
    });
  }
});

describe('adapters for pino and winston', () => {
  it('pino mixin adds the context fields', async () => {
    const pino = require('pino');
    const chunks = [];
    const logger = pino({ mixin: ambient.pinoMixin(), base: null }, { write: (s) => chunks.push(s) });
    RequestContext.run({ requestId: 'pino-1', fields: { tenant: 'acme' } }, () => logger.info('hello'));
    logger.info('outside');
    const [inside, outside] = chunks.map((c) => JSON.parse(c));
    assert.equal(inside.requestId, 'pino-1');
    assert.match(inside.traceId, /^[0-9a-f]{32}$/);
    assert.equal(inside.tenant, 'acme');
    assert.equal(outside.requestId, undefined);
  });

  it('the middleware logs its access line through a pino logger, inside the request context', async () => {
    const pino = require('pino');
    const express = require('express');
    const chunks = [];
    const logger = pino({ mixin: ambient.pinoMixin(), base: null }, { write: (s) => chunks.push(JSON.parse(s)) });
    const app = express();
    app.use(ambient.middleware({ logger }));
    app.get('/orders/:id', (req, res) => res.send('ok'));
    const server = http.createServer(app);
    const port = await listen(server);
    try {
      const res = await request(port, { path: '/orders/7', headers: { 'x-request-id': 'pino-access-1' } });
      assert.equal(res.status, 200);
      for (let i = 0; i < 20 && chunks.length === 0; i++) await sleep(5);
    } finally {
      server.close();
    }
    assert.equal(chunks.length, 1);
    const [line] = chunks;
    assert.equal(line.msg, 'request completed');
    assert.equal(line.requestId, 'pino-access-1');
    assert.match(line.traceId, /^[0-9a-f]{32}$/);
    assert.deepEqual([line.method, line.route, line.url, line.status, line.bytes], ['GET', '/orders/:id', '/orders/7', 200, 2]);
  });

  it('the middleware and errorLogger write through a winston logger its way: message first, then the fields', async () => {
    const winston = require('winston');
    const express = require('express');
    const { Writable } = require('node:stream');
    const lines = [];
    const logger = winston.createLogger({
      level: 'debug',
      format: winston.format.combine(ambient.winstonFormat(), winston.format.json()),
      transports: [new winston.transports.Stream({ stream: new Writable({ write(c, e, cb) { lines.push(JSON.parse(c)); cb(); } }) })],
    });
    const app = express();
    app.use(ambient.middleware({ logger }));
    app.get('/orders/:id', (req, res) => res.send('ok'));
    app.get('/fail', () => { throw new Error('it broke', { cause: new Error('underneath') }); });
    app.use(ambient.errorLogger({ logger }));
    app.use((err, req, res, next) => res.status(500).send('no'));
    const server = http.createServer(app);
    const port = await listen(server);
    try {
      await Promise.all([
        request(port, { path: '/orders/7', headers: { 'x-request-id': 'winston-access-1' } }),
        request(port, { path: '/fail', headers: { 'x-request-id': 'winston-fail-1' } }),
        request(port, { path: '/orders/8', headers: { 'x-request-id': 'bad id' } }),
      ]);
      for (let i = 0; i < 20 && lines.length < 5; i++) await sleep(5);
    } finally {
      server.close();
    }
    const completed = lines.find((l) => l.requestId === 'winston-access-1');
    assert.equal(completed.message, 'request completed');
    assert.equal(completed.level, 'info');
    assert.deepEqual([completed.method, completed.route, completed.url, completed.status, completed.bytes], ['GET', '/orders/:id', '/orders/7', 200, 2]);
    const failed = lines.filter((l) => l.requestId === 'winston-fail-1');
    assert.deepEqual(failed.map((l) => l.message).sort(), ['request completed', 'request failed']);
    for (const line of failed) {
      assert.equal(line.err.message, 'it broke');
      assert.match(line.err.stack, /^Error: it broke/);
      assert.equal(line.err.cause.message, 'underneath');
    }
    const replaced = lines.find((l) => l.message === 'incoming request id replaced by a generated one');
    assert.equal(replaced.level, 'debug');
    assert.match(replaced.reason, /visible ASCII/);
  });

  it('winston format adds the context fields', async () => {
    const winston = require('winston');
    const { Writable } = require('node:stream');
    const chunks = [];
    const logger = winston.createLogger({
      format: winston.format.combine(ambient.winstonFormat(), winston.format.json()),
      transports: [new winston.transports.Stream({ stream: new Writable({ write(c, e, cb) { chunks.push(String(c)); cb(); } }) })],
    });
    RequestContext.run({ requestId: 'winston-1', fields: { tenant: 'acme', message: 'a field', plan: 'pro' } }, () => {
      logger.info('hello');
      logger.warn('from the call', { plan: 'free' });
    });
    await sleep(10);
    const [line, second] = chunks.map((c) => JSON.parse(c));
    assert.equal(line.requestId, 'winston-1');
    assert.equal(line.tenant, 'acme');
    assert.equal(line.plan, 'pro');
    assert.equal(line.message, 'hello', 'a field does not replace the message');
    assert.equal(line.level, 'info');
    // As with pino's mixin, what the log call gives wins over a field.
    assert.deepEqual([second.message, second.level, second.plan, second.tenant], ['from the call', 'warn', 'free', 'acme']);
  });
});
