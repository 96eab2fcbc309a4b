'use strict';
// The request logging of each variant of the Express benchmarks, added to
// an app: every variant that logs writes one line per request to
// /dev/null. Used by express-server.js (over loopback) and by
// middleware.js (in-process).
const fs = require('node:fs');
const { randomUUID } = require('node:crypto');
const { checkoutOf, variantList } = require('./harness');

const devNull = () => fs.createWriteStream('/dev/null');
// ambient's middleware logging to /dev/null, from this checkout or another.
const useAmbient = (app, from = '..', options = {}, loggerOptions = {}) => {
  const ambient = require(from);
  app.use(ambient.middleware({ logger: ambient.createLogger({ destination: '/dev/null', ...loggerOptions }), ...options }));
};

const setups = {
  bare() {},
  ambient(app) {
    useAmbient(app);
  },
  'pino-http'(app) {
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
  'cls-rtracer + pino'(app) {
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
  'express-http-context + winston'(app) {
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
  'ambient-no-echo'(app) {
    useAmbient(app, '..', { echoHeaders: false });
  },
  'ambient-no-log'(app) {
    useAmbient(app, '..', {}, { level: 'silent' });
  },
  // With a deadline on every request (not one that passes): what the
  // option costs, a record in Rust and a watchdog entry per request.
  'ambient-deadline'(app) {
    useAmbient(app, '..', { deadlineMs: 60_000 });
  },
  'native-als-only'(app) {
    const { AsyncLocalStorage } = require('node:async_hooks');
    const als = new AsyncLocalStorage();
    app.use((req, res, next) => als.run({ id: 1 }, next));
  },
  'begin-end-only'(app) {
    const { RequestContext } = require('..');
    app.use((req, res, next) => {
      RequestContext.begin().end();
      next();
    });
  },
  'run-only'(app) {
    const { RequestContext } = require('..');
    const ctx = RequestContext.begin();
    app.use((req, res, next) => ctx.run(next));
  },
  'context-only'(app) {
    const { RequestContext } = require('..');
    app.use((req, res, next) => {
      const ctx = RequestContext.begin();
      res.on('finish', () => ctx.end());
      ctx.run(next);
    });
  },
  // One middleware that only calls next(): what a layer of Express's router
  // costs, which every variant pays once or more.
  'noop-layer'(app) {
    app.use((req, res, next) => next());
  },
  // ambient loaded and its req/res prototype hooks installed, with no
  // middleware in the app: what the hooks cost every request.
  'hooks-only'() {
    const ambient = require('..');
    ambient.middleware({ logger: ambient.createLogger({ destination: '/dev/null' }) });
  },
  // Plain Express setting the two headers the middleware echoes, with
  // constant values: what echoing costs before any context work.
  'echo-headers-only'(app) {
    app.use((req, res, next) => {
      res.setHeader('x-request-id', '0192f7a8-7b3c-7def-8123-456789abcdef');
      res.setHeader('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
      next();
    });
  },
  morgan(app) {
    const morgan = require('morgan');
    app.use(morgan('combined', { stream: devNull() }));
  },
};

// `spin-N` busy-waits N µs in a middleware: what a known amount of extra
// work per request costs in a setup, for reading the other variants.
function spin(app, us) {
  const ns = BigInt(us * 1000);
  app.use((req, res, next) => {
    const until = process.hrtime.bigint() + ns;
    while (process.hrtime.bigint() < until);
    next();
  });
}

// Adds `variant`'s middleware to `app`. `ambient@DIR` loads ambient from
// another checkout, to compare two builds side by side in one run.
function applyVariant(app, variant) {
  if (/^spin-\d+$/.test(variant)) spin(app, Number(variant.slice(5)));
  else if (variant.startsWith('ambient@')) useAmbient(app, checkoutOf(variant));
  else if (Object.hasOwn(setups, variant)) setups[variant](app);
  else throw new Error(`unknown variant ${variant}`);
}

// The hello-world app both runners serve, with `variant`'s logging.
function helloApp(variant) {
  const app = require('express')();
  applyVariant(app, variant);
  app.get('/', (req, res) => res.send('hello world'));
  return app;
}

// The variants a run compares: `--variants a,b,c` (e.g. the diagnostic ones
// above) or the list, bare first either way.
const COMPARED = ['bare', 'ambient', 'pino-http', 'cls-rtracer + pino', 'express-http-context + winston', 'morgan'];
function variantsFrom(argv, compared = COMPARED) {
  return ['bare', ...variantList(argv, compared).filter((v) => v !== 'bare')];
}

module.exports = { applyVariant, helloApp, variantsFrom, COMPARED };
