'use strict';
// Request middleware for Express 4/5 and plain node:http: one request context
// per request, its ids echoed on the response, req/res listeners bound to it,
// and one "request completed" line logged with it. Koa and Fastify adapters
// wrap the same middleware.
const http = require('node:http');
// Node's own clock object, not the global: the global is a lazy getter
// read on every use, and fake timers in tests replace it.
const { performance } = require('node:perf_hooks');
const {
  RequestContext, isValidRequestId, generateRequestId, beginRoot, elapsedOf, endAt, wallTimeAt, deadlineSettings, newDeadline, withDeadline,
} = require('./request_context');
const { bindToCurrentContext, v8Major } = require('./frame');
const { createLogger, LEVELS, WRITE_IN, WRITE_ACCESS, ERROR_KEY, accessMessage } = require('./logger');
const { serializeObject } = require('./serialize');
const { requestIdHeaderOption } = require('./propagation');
const { invalidArgType, invalidArgValue, invalidReturnValue, validateBoolean, validateFunction, validateObject } = require('./errors');

// Listeners for these run in the async context they were added in, so body
// parsers and handlers waiting for 'end' or 'finish' keep the request's
// context (Node emits socket events in the context of the server's
// listen()). The hook sits on the prototypes, installed once: patching each
// request's own methods would give every req/res object a new shape and
// slow down all of Node's code that touches them. It binds only listeners
// added while a request context is current (lib/frame.js,
// bindToCurrentContext).
const BOUND_EVENTS = new Set(['data', 'end', 'finish', 'close', 'error', 'readable', 'aborted']);
// ServerResponse#on as it was before the hook, for the middleware's own
// listeners: they are handed their context, so they need no binding.
let addResponseListener;

function hookListeners(prototypes) {
  const bindsNow = (event, listener) => typeof listener === 'function' && BOUND_EVENTS.has(event) && RequestContext.current() !== undefined;
  for (const proto of prototypes) {
    const adds = { on: proto.on, addListener: proto.addListener, prependListener: proto.prependListener };
    for (const [method, add] of Object.entries(adds)) {
      proto[method] = function addInRequestContext(event, listener) {
        if (!bindsNow(event, listener)) return add.call(this, event, listener);
        const bound = bindToCurrentContext(listener);
        // removeListener(original) and listeners() find it through this.
        bound.listener = listener;
        return add.call(this, event, bound);
      };
    }
    // EventEmitter's once() wraps the listener and adds the wrapper through
    // on(), whose hook would then bind the wrapper: removeListener(original)
    // would no longer find it (Readable#pipe's unpipe() would leave its 'end'
    // listener, which ends the destination). So the listener is bound first
    // and wrapped here the way EventEmitter wraps it: the wrapper removes
    // itself by identity and carries the original.
    for (const [method, add] of [['once', adds.on], ['prependOnceListener', adds.prependListener]]) {
      const addOnce = proto[method];
      proto[method] = function addOnceInRequestContext(event, listener) {
        if (!bindsNow(event, listener)) return addOnce.call(this, event, listener);
        return add.call(this, event, onceInContext(this, event, listener));
      };
    }
  }
}

function onceInContext(emitter, event, listener) {
  const bound = bindToCurrentContext(listener);
  let fired = false;
  function onceWrapper(...args) {
    if (fired) return undefined;
    emitter.removeListener(event, onceWrapper);
    fired = true;
    return Reflect.apply(bound, emitter, args);
  }
  onceWrapper.listener = listener;
  return onceWrapper;
}

// Per-response state beside the response, for the prototype hooks and the
// access line. Where V8 shares hidden classes between Express's responses
// (V8 13 on, Node >= 24) that is a symbol property, about 30 ns to add. On
// older V8 (Node <= 22) every response whose prototype Express replaced
// keeps a hidden class of its own, so adding a property to one costs 3-4 µs
// (its descriptor array is copied) and each read misses the inline caches;
// a WeakMap entry costs 0.4-0.7 µs there. Both offer get(res) and
// set(res, value).
const propertiesAreCheap = v8Major >= 13;
function perResponse(name) {
  if (!propertiesAreCheap) return new WeakMap();
  const key = Symbol(name);
  return {
    get: (res) => res[key],
    set: (res, value) => {
      res[key] = value;
    },
  };
}

// Body bytes per response, counted by a prototype hook like the listeners:
// content-length is often absent (streams, chunked responses).
const bodyBytes = perResponse('ambient.bodyBytes');
// The error errorLogger() saw for a response, for its access line.
const failedWith = perResponse('ambient.failedWith');

// node:http (and http2) drop what a handler writes for these: the access
// line counts bytes sent.
function sendsNoBody(method, status) {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

function hookByteCount(proto, methods) {
  const add = (res, chunk, encoding) => {
    if (chunk == null || typeof chunk === 'function') return;
    const count = bodyBytes.get(res);
    if (count === undefined) return;
    bodyBytes.set(res, count + (typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding : 'utf8') : chunk.length));
  };
  for (const method of methods) {
    const original = proto[method];
    proto[method] = function countBodyBytes(chunk, encoding, cb) {
      add(this, chunk, encoding);
      return original.call(this, chunk, encoding, cb);
    };
  }
}

let httpHooked = false;
function hookHttp() {
  if (httpHooked) return;
  httpHooked = true;
  addResponseListener = http.ServerResponse.prototype.on;
  hookListeners([http.IncomingMessage.prototype, http.ServerResponse.prototype]);
  hookByteCount(http.ServerResponse.prototype, ['write', 'end']);
}

// node:http2's compatibility API (http2.createServer(handler), and Koa or
// Fastify on it) has request and response classes of its own. They are
// hooked when an adapter first sees one of its responses, before any
// listener of that request is added; the app has loaded node:http2 by then.
// Express does not run on it, so its middleware does not check (an
// instanceof costs 25-40 ns a request here).
let http2Hooked = false;
function hookHttp2For(res) {
  if (http2Hooked || res instanceof http.ServerResponse) return;
  http2Hooked = true;
  const { Http2ServerRequest, Http2ServerResponse } = require('node:http2');
  hookListeners([Http2ServerRequest.prototype, Http2ServerResponse.prototype]);
  // Its end() writes its chunk through this.write(): counted there.
  hookByteCount(Http2ServerResponse.prototype, ['write']);
}

// Why a request id header was not used. Never the value itself: it may be
// hostile, and it is never echoed or logged.
function requestIdProblem(raw) {
  if (Array.isArray(raw)) return 'the header was sent more than once';
  if (raw.length === 0) return 'the header is empty';
  if (raw.length > 128) return `the header is ${raw.length} characters long (at most 128)`;
  return 'the header contains characters other than visible ASCII';
}

// Milliseconds since the context began, to the µs, as access lines write it.
function durationOf(ctx, now) {
  return Math.round(elapsedOf(ctx, now) * 1000) / 1000;
}

// The URL as the client sent it: Express's originalUrl, which routers leave
// alone, or node:http's url.
function urlOf(req) {
  return req.originalUrl ?? req.url;
}

function asString(value) {
  return typeof value === 'string' ? value : undefined;
}

// The matched route's pattern, read when the request completes, from what
// the framework passes as the route source: Express sets req.route on the
// matched route (baseUrl covers routers), @koa/router sets _matchedRoute on
// Koa's context, and Fastify has request.routeOptions.url.
function expressRoute(req) {
  const path = req.route?.path;
  return typeof path === 'string' ? `${req.baseUrl ?? ''}${path}` : undefined;
}

function koaRoute(kctx) {
  return asString(kctx._matchedRoute);
}

function fastifyRoute(request) {
  return asString(request.routeOptions?.url);
}

function booleanOption(options, name, fallback) {
  const value = options[name] ?? fallback;
  validateBoolean(value, `options.${name}`);
  return value;
}

// options.logger, or a new logger. Any logger with the methods the caller
// uses will do (ambient's, pino, winston); the check is made here rather
// than on the first request.
function loggerOption(options, methods) {
  const log = options.logger ?? createLogger();
  if (typeof log !== 'object' && typeof log !== 'function') throw invalidArgType('options.logger', 'object', log);
  const missing = methods.find((method) => typeof log[method] !== 'function');
  if (missing !== undefined) throw invalidArgValue('options.logger', log, `has no ${missing}() method`);
  return log;
}

// How to hand a line to another logger. pino (and ambient) take the fields
// first: log.info({ status }, 'request completed'). winston takes the
// message first, the fields after it, and its json format writes an Error
// as {}, so errors go to it already serialized. A winston logger is the one
// with a format.
function lineWriter(log) {
  if (typeof log.log !== 'function' || typeof log.format?.transform !== 'function') {
    return (levelName, fields, msg) => log[levelName](fields, msg);
  }
  return (levelName, fields, msg) => {
    const meta = fields.err === undefined ? fields : { ...fields, err: JSON.parse(serializeObject(fields.err)) };
    log[levelName](msg, meta);
  };
}

// The member a request's error goes under: ambient's logger's errorKey;
// err for another logger, as pino-http writes it.
function errorKeyOf(log) {
  return typeof log[ERROR_KEY] === 'string' ? log[ERROR_KEY] : 'err';
}

/**
 * Options: logger (default: a new createLogger()), requestIdHeader
 * ('x-request-id'), echoHeaders (true), logStart (false), level ('info',
 * or a function of (req, res, err) returning a level name or 'silent'),
 * completedMessage ('request completed').
 */
function ambientMiddleware(options = {}) {
  const handle = requestHandler(options, expressRoute, false);
  return function ambientRequestContext(req, res, next) {
    handle(req, res, next, req);
  };
}

// The middleware for any framework: `routeSource` is what `routeOf` reads
// the matched route from when the request completes. Koa and Fastify have
// no place for an error middleware after the routes, as Express has for
// errorLogger(), so with `reportsErrors` their adapters log a request that
// failed with a server error (status 500 or more) themselves, unless
// options.logErrors is false. Either way its error goes on the access line.
function requestHandler(options, routeOf, reportsErrors) {
  validateObject(options, 'options');
  const logErrors = reportsErrors && booleanOption(options, 'logErrors', true);
  // Besides options.level: aborted requests and replaced ids.
  const log = loggerOption(options, logErrors ? ['warn', 'debug', 'error'] : ['warn', 'debug']);
  const headerKey = requestIdHeaderOption(options);
  // 'false' or 'no' from a config file would otherwise read as true.
  const echo = booleanOption(options, 'echoHeaders', true);
  const logStart = booleanOption(options, 'logStart', false);
  // A function (pino-http's customLogLevel) picks each request's level
  // from how it ended: warn for 4xx, error for 5xx, silent for health
  // checks.
  const levelOf = typeof options.level === 'function' ? options.level : undefined;
  const level = levelOf === undefined ? options.level ?? 'info' : undefined;
  const errorKey = errorKeyOf(log);
  const completedMessage = options.completedMessage ?? 'request completed';
  if (typeof completedMessage !== 'string') throw invalidArgType('options.completedMessage', 'string', completedMessage);
  if (levelOf === undefined && typeof log[level] !== 'function') throw invalidArgValue('options.level', level, 'is not a level of the logger');
  // A request still open after deadlineMs is reported by the watchdog, in
  // its context: onDeadline(req, res, err) if given (to answer 503, say),
  // else a warn line. Either way the context's signal aborts, so work
  // given RequestContext.require().signal stops.
  const deadline = deadlineSettings(options);
  hookHttp();

  // Another logger (pino, winston, ...) is called inside the context, where
  // its mixin or format finds the request; ambient's own takes it directly.
  const own = typeof log[WRITE_IN] === 'function';
  const completed = own ? accessMessage(completedMessage) : undefined;
  const writeLine = own ? undefined : lineWriter(log);
  // The logger's levels, custom ones included (pino's and ambient's
  // logger.levels); the built-in six for another logger.
  const levelValues = typeof log.levels?.values === 'object' && log.levels.values !== null ? log.levels.values : LEVELS;
  const write = own ?
    (ctx, levelName, line, msg) => log[WRITE_IN](ctx, levelValues[levelName], line, msg) :
    (ctx, levelName, line, msg) => ctx.run(writeLine, levelName, line, msg);
  // In the request's context, as the app's own code runs: it may read its fields.
  const levelFor = levelOf === undefined ? () => level : (ctx, req, res, err) => {
    const chosen = ctx.run(levelOf, req, res, err);
    if (chosen !== 'silent' && (typeof chosen !== 'string' || !Object.hasOwn(levelValues, chosen) || typeof log[chosen] !== 'function')) {
      throw invalidReturnValue('options.level', "a level name or 'silent'", chosen);
    }
    return chosen;
  };

  // What a request's deadline reports, called by the watchdog in the
  // context the deadline belongs to (the first argument).
  const deadlineReport = (req, res, routeSource) => (deadline.onDeadline !== undefined ?
    (_, err) => deadline.onDeadline(req, res, err) :
    (ctx) => {
      const line = { method: req.method, route: routeOf(routeSource), url: urlOf(req), deadlineMs: deadline.ms,
        durationMs: durationOf(ctx, performance.now()) };
      write(ctx, 'warn', line, 'request exceeded its deadline');
    });

  // `chosen`: the request id a framework already gave the request, from
  // the same header rules ({ requestId, rejected }, fastifyRequestId()).
  const handle = function handleInRequestContext(req, res, next, routeSource, chosen) {
    // A response that already has a byte count is in its second pass through
    // ambient: an app or router with the middleware, mounted in one that has
    // it too. That pass begins a child of the request's context, with a line
    // of its own in the same trace, rather than a second trace that nothing
    // links to the first. The first pass has echoed the request's ids and
    // counts the bytes for both.
    const outer = bodyBytes.get(res) === undefined ? undefined : RequestContext.current();
    let ctx;
    let rejected;
    if (outer !== undefined) {
      // This pass's own deadline, if it has one, beside the outer pass's.
      ctx = outer.child(deadline === undefined ? { name: req.method } :
        { name: req.method, deadlineMs: deadline.ms, onDeadline: deadlineReport(req, res, routeSource) });
    } else {
      const headers = req.headers;
      let requestId;
      if (chosen !== undefined) {
        ({ requestId, rejected } = chosen);
      } else {
        const raw = headers[headerKey];
        if (raw !== undefined) {
          if (isValidRequestId(raw)) requestId = raw;
          else rejected = requestIdProblem(raw);
        }
      }
      ctx = beginRoot(requestId, asString(headers.traceparent), asString(headers.tracestate),
        asString(headers.baggage), req.method, true);
      if (echo) {
        res.setHeader(headerKey, ctx.requestId);
        res.setHeader('traceparent', ctx.traceparent);
      }
      bodyBytes.set(res, 0);
      // After the echo: the ids are still slices of a JS string then, where
      // a context with a record would fetch them from Rust.
      if (deadline !== undefined) withDeadline(ctx, newDeadline(deadline.ms, deadlineReport(req, res, routeSource)));
    }
    // node:http emits 'close' after 'finish', and 'close' alone when the
    // client went away first; responses made without a socket (fastify's
    // inject(), light-my-request) emit 'finish' and never 'close'. So the
    // first of the two ends the request, and only a 'close' before the
    // response finished means the client went away. 'finish' passes no
    // argument, so `complete` serves it as it is. They take the context as
    // `ctx` rather than from where they run, so they are added around the
    // listener hook: nothing to bind.
    let ended = false;
    const complete = (aborted = false) => {
      if (ended) return;
      ended = true;
      const now = performance.now();
      const durationMs = durationOf(ctx, now);
      const url = urlOf(req);
      const err = failedWith.get(res);
      const bytes = sendsNoBody(req.method, res.statusCode) ? 0 : bodyBytes.get(res);
      // A write that fails (a sync destination on a full disk) throws from
      // here, as it would from a log call, and so does a level function
      // that throws; the request still ends.
      try {
        if (logErrors && err && res.statusCode >= 500) write(ctx, 'error', { [errorKey]: err }, 'request failed');
        const lineLevel = aborted ? 'warn' : levelFor(ctx, req, res, err);
        if (lineLevel === 'silent') {
          // The app asked for no line (a health check).
        } else if (own && !aborted && !err) {
          log[WRITE_ACCESS](ctx, levelValues[lineLevel], req.method, routeOf(routeSource), url, res.statusCode, durationMs,
            bytes, completed, wallTimeAt(now));
        } else {
          const line = { method: req.method, route: routeOf(routeSource), url, status: aborted ? undefined : res.statusCode, durationMs, bytes };
          if (err) line[errorKey] = err;
          if (aborted) line.aborted = true;
          write(ctx, lineLevel, line, aborted ? 'request aborted' : completedMessage);
        }
      } finally {
        endAt(ctx, aborted ? 'aborted' : res.statusCode >= 500 ? 'error' : 'ok', now);
      }
    };
    addResponseListener.call(res, 'finish', complete);
    addResponseListener.call(res, 'close', () => complete(!res.writableFinished));
    if (rejected !== undefined) write(ctx, 'debug', { reason: rejected }, 'incoming request id replaced by a generated one');
    if (logStart) {
      const startLevel = levelFor(ctx, req, res, undefined);
      if (startLevel !== 'silent') write(ctx, startLevel, { method: req.method, url: urlOf(req) }, 'request started');
    }
    ctx.run(next);
  };
  return handle;
}

/**
 * Express error middleware: logs the error with the request's context and
 * passes it on. Put it after your routes.
 */
function errorLogger(options = {}) {
  validateObject(options, 'options');
  const log = loggerOption(options, ['error', 'warn']);
  const writeLine = lineWriter(log);
  const errorKey = errorKeyOf(log);
  return function ambientErrorLogger(err, req, res, next) {
    failedWith.set(res, err);
    try {
      writeLine(asksForClientStatus(err) ? 'warn' : 'error', { [errorKey]: err }, 'request failed');
    } catch (writeFailed) {
      // Thrown here, Express would pass the write's error on in place of the
      // app's. The app's error goes on; the write's surfaces as the access
      // line's does, uncaught.
      process.nextTick(rethrow, writeFailed);
    }
    next(err);
  };
}

function rethrow(err) {
  throw err;
}

// Whether Express will answer with a 4xx for this error: finalhandler takes
// `status`, then `statusCode`, when it is a number from 400 to 599 (as
// http-errors sets it). Such an error was meant for the client: warn, so
// that a 404 or a failed validation does not read as a server failure.
function asksForClientStatus(err) {
  if (err === null || typeof err !== 'object') return false;
  for (const status of [err.status, err.statusCode]) {
    if (typeof status === 'number' && status >= 400 && status < 600) return status < 500;
  }
  return false;
}

/**
 * Wraps a plain node:http request handler with the same per-request
 * context. An async handler that rejects has its error logged with the
 * request id and put on the access line; the rejection itself goes on
 * unhandled, as it would without the wrapper.
 */
function wrapHandler(handler, options = {}) {
  validateFunction(handler, 'handler');
  validateObject(options, 'options');
  const logger = loggerOption(options, ['warn', 'debug', 'error']);
  const middleware = ambientMiddleware({ ...options, logger });
  const writeLine = lineWriter(logger);
  const errorKey = errorKeyOf(logger);
  return function ambientHandler(req, res) {
    hookHttp2For(res);
    middleware(req, res, () => {
      const result = handler.call(this, req, res);
      // Settled in the request's context, where the line finds it.
      if (typeof result?.then === 'function') {
        result.then(undefined, (err) => {
          failedWith.set(res, err);
          writeLine('error', { [errorKey]: err }, 'request failed');
          throw err;
        });
      }
    });
  };
}

/**
 * Koa middleware with the same per-request context: everything downstream
 * runs inside it. `app.use(koa(options))` first.
 */
function koa(options = {}) {
  const handle = requestHandler(options, koaRoute, true);
  return function ambientKoa(kctx, next) {
    hookHttp2For(kctx.res);
    return new Promise((resolve, reject) => {
      // Called inside the context: Koa's downstream chain starts there, and
      // so does this rejection handler.
      handle(kctx.req, kctx.res, () => next().then(resolve, (err) => {
        failedWith.set(kctx.res, err);
        reject(err);
      }), kctx);
    });
  };
}

/**
 * Fastify plugin with the same per-request context, from the onRequest hook
 * on: `app.register(fastify, options)`. It applies to the whole app, not
 * only to routes registered inside it.
 */
function fastify(instance, options, done) {
  let handle;
  try {
    handle = requestHandler(options, fastifyRoute, true);
  } catch (err) {
    // Thrown here it would be uncaught; Fastify's register() and ready()
    // reject with what done() is given.
    done(err);
    return;
  }
  instance.addHook('onRequest', (request, reply, hookDone) => {
    hookHttp2For(reply.raw);
    const chosen = chosenIds.get(request.raw);
    // Unless an app's own genReqId changed what fastifyRequestId() chose.
    handle(request.raw, reply.raw, hookDone, request, chosen?.requestId === request.id ? chosen : undefined);
  });
  // Before the error handler, which picks the status: the access line
  // decides whether it was a server error.
  instance.addHook('onError', (request, reply, err, hookDone) => {
    failedWith.set(reply.raw, err);
    hookDone();
  });
  done();
}
// Fastify's own convention (what fastify-plugin sets): no encapsulation.
fastify[Symbol.for('skip-override')] = true;

// What fastifyRequestId() chose for a request, until the plugin begins its
// context.
const chosenIds = new WeakMap();

/**
 * A genReqId for Fastify: the request id the plugin would choose (a valid
 * incoming header, or a generated id), so Fastify's reqId on request.log
 * lines and ambient's requestId are the same. Options: requestIdHeader
 * ('x-request-id').
 */
function fastifyRequestId(options = {}) {
  validateObject(options, 'options');
  const headerKey = requestIdHeaderOption(options);
  return function genReqId(req) {
    const raw = req.headers[headerKey];
    let chosen;
    if (raw === undefined) chosen = { requestId: generateRequestId(), rejected: undefined };
    else if (isValidRequestId(raw)) chosen = { requestId: raw, rejected: undefined };
    else chosen = { requestId: generateRequestId(), rejected: requestIdProblem(raw) };
    chosenIds.set(req, chosen);
    return chosen.requestId;
  };
}

module.exports = { ambientMiddleware, errorLogger, wrapHandler, koa, fastify, fastifyRequestId };
