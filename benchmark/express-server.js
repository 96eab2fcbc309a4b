'use strict';
// One Express hello-world server for the throughput benchmark, with the
// request logging of one variant; every variant that logs writes one line
// per request to /dev/null. Prints the port once listening.
// Usage: node express-server.js <variant>   (or ambient@DIR)
const fs = require('node:fs');
const { randomUUID } = require('node:crypto');
const express = require('express');

const variant = process.argv[2];
const app = express();
const devNull = () => fs.createWriteStream('/dev/null');
// ambient's middleware logging to /dev/null, from this checkout or another.
const useAmbient = (from = '..', options = {}, loggerOptions = {}) => {
  const ambient = require(from);
  app.use(ambient.middleware({ logger: ambient.createLogger({ destination: '/dev/null', ...loggerOptions }), ...options }));
};

const setups = {
  bare() {},
  ambient() {
    useAmbient();
  },
  'pino-http'() {
    const pino = require('pino');
    const pinoHttp = require('pino-http');
    app.use(pinoHttp({
      logger: pino(pino.destination({ dest: '/dev/null', sync: false })),
      genReqId: (req, res) => {
        const id = req.headers['x-request-id'] ?? randomUUID();
        res.setHeader('x-request-id', id);
        return id;
      },
    }));
  },
  'cls-rtracer + pino'() {
    const rTracer = require('cls-rtracer');
    const pino = require('pino');
    const log = pino({ mixin: () => ({ requestId: rTracer.id() }) }, pino.destination({ dest: '/dev/null', sync: false }));
    app.use(rTracer.expressMiddleware({ echoHeader: true, useHeader: true }));
    app.use((req, res, next) => {
      const start = process.hrtime.bigint();
      res.on('finish', () => log.info({ method: req.method, url: req.url, status: res.statusCode, durationMs: Number(process.hrtime.bigint() - start) / 1e6 }, 'request completed'));
      next();
    });
  },
  'express-http-context + winston'() {
    const httpContext = require('express-http-context');
    const winston = require('winston');
    const log = winston.createLogger({
      format: winston.format.combine(winston.format((info) => Object.assign(info, { requestId: httpContext.get('requestId') }))(), winston.format.json()),
      transports: [new winston.transports.Stream({ stream: devNull() })],
    });
    app.use(httpContext.middleware);
    app.use((req, res, next) => {
      const id = req.headers['x-request-id'] ?? randomUUID();
      httpContext.set('requestId', id);
      res.setHeader('x-request-id', id);
      const start = process.hrtime.bigint();
      res.on('finish', () => log.info('request completed', { method: req.method, url: req.url, status: res.statusCode, durationMs: Number(process.hrtime.bigint() - start) / 1e6 }));
      next();
    });
  },
  // Diagnostic variants: where the middleware's cost goes.
  'ambient-no-echo'() {
    useAmbient('..', { echoHeaders: false });
  },
  'ambient-no-log'() {
    useAmbient('..', {}, { level: 'silent' });
  },
  'native-als-only'() {
    const { AsyncLocalStorage } = require('node:async_hooks');
    const als = new AsyncLocalStorage();
    app.use((req, res, next) => als.run({ id: 1 }, next));
  },
  'begin-end-only'() {
    const { RequestContext } = require('..');
    app.use((req, res, next) => {
      RequestContext.begin().end();
      next();
    });
  },
  'run-only'() {
    const { RequestContext } = require('..');
    const ctx = RequestContext.begin();
    app.use((req, res, next) => ctx.run(next));
  },
  'context-only'() {
    const { RequestContext } = require('..');
    app.use((req, res, next) => {
      const ctx = RequestContext.begin();
      res.on('finish', () => ctx.end());
      ctx.run(next);
    });
  },
  // ambient loaded and its req/res prototype hooks installed, with no
  // middleware in the app: what the hooks cost every request.
  'hooks-only'() {
    const ambient = require('..');
    ambient.middleware({ logger: ambient.createLogger({ destination: '/dev/null' }) });
  },
  // Plain Express setting the two headers the middleware echoes, with
  // constant values: what echoing costs before any context work.
  'echo-headers-only'() {
    app.use((req, res, next) => {
      res.setHeader('x-request-id', '0192f7a8-7b3c-7def-8123-456789abcdef');
      res.setHeader('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
      next();
    });
  },
  morgan() {
    const morgan = require('morgan');
    app.use(morgan('combined', { stream: devNull() }));
  },
};

// `spin-N` busy-waits N µs in a middleware: what a known amount of extra
// work per request costs in this setup, for reading the other variants.
if (/^spin-\d+$/.test(variant)) {
  const ns = BigInt(Number(variant.slice(5)) * 1000);
  app.use((req, res, next) => {
    const until = process.hrtime.bigint() + ns;
    while (process.hrtime.bigint() < until);
    next();
  });
} else if (variant.startsWith('ambient@')) {
  // The ambient variant loaded from another checkout, to compare two builds
  // side by side in one run.
  useAmbient(require('node:path').resolve(variant.slice('ambient@'.length)));
} else {
  setups[variant]();
}
// Exit cleanly on SIGINT, so `node --cpu-prof` can write its profile.
process.once('SIGINT', () => process.exit(0));
app.get('/', (req, res) => res.send('hello world'));
const server = app.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
