'use strict';
// Request middleware for Express 4/5 and plain node:http: one request context
// per request, its ids echoed on the response, req/res listeners bound to it,
// and one "request completed" line logged inside it.
const { AsyncLocalStorage } = require('./async_local_storage');
const { RequestContext, isValidRequestId } = require('./request_context');
const { createLogger } = require('./logger');
const { invalidArgValue, validateFunction, validateObject } = require('./errors');

// Listeners for these run in the context they were added in, so body parsers
// and handlers that wait for 'end' or 'finish' keep the request's context
// (Node runs socket events in the context of the server's listen()).
const BOUND_EVENTS = new Set(['data', 'end', 'finish', 'close', 'error', 'readable', 'aborted']);
const ADD_METHODS = ['on', 'addListener', 'once', 'prependListener', 'prependOnceListener'];

function bindEmitterListeners(emitter) {
  for (const method of ADD_METHODS) {
    const add = emitter[method];
    emitter[method] = function addBound(event, listener) {
      if (typeof listener === 'function' && BOUND_EVENTS.has(event)) {
        const bound = AsyncLocalStorage.bind(listener);
        // removeListener(original) still finds it, as it does for once().
        bound.listener = listener;
        return add.call(this, event, bound);
      }
      return add.call(this, event, listener);
    };
  }
}

// Why a request id header was not used. Never the value itself: it may be
// hostile, and it is never echoed or logged.
function requestIdProblem(raw) {
  if (Array.isArray(raw)) return 'the header was sent more than once';
  if (raw.length === 0) return 'the header is empty';
  if (raw.length > 128) return `the header is ${raw.length} characters long (at most 128)`;
  return 'the header contains characters other than visible ASCII';
}

function headerString(value) {
  return typeof value === 'string' ? value : undefined;
}

// Counts the body bytes a response writes (content-length is often absent).
function countBytes(res) {
  const state = { bytes: 0 };
  const { write, end } = res;
  const add = (chunk, encoding) => {
    if (chunk == null || typeof chunk === 'function') return;
    state.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding : 'utf8') : chunk.length;
  };
  res.write = function countedWrite(chunk, encoding, cb) {
    add(chunk, encoding);
    return write.call(this, chunk, encoding, cb);
  };
  res.end = function countedEnd(chunk, encoding, cb) {
    add(chunk, encoding);
    return end.call(this, chunk, encoding, cb);
  };
  return state;
}

function routeOf(req) {
  // Express sets req.route on the matched route; baseUrl covers routers.
  const path = req.route?.path;
  return typeof path === 'string' ? `${req.baseUrl ?? ''}${path}` : undefined;
}

/**
 * Options: logger (default: a new createLogger()), requestIdHeader
 * ('x-request-id'), echoHeaders (true), logStart (false), level ('info'),
 * completedMessage ('request completed').
 */
function ambientMiddleware(options = {}) {
  validateObject(options, 'options');
  const log = options.logger ?? createLogger();
  const header = (options.requestIdHeader ?? 'x-request-id').toLowerCase();
  const echo = options.echoHeaders !== false;
  const logStart = Boolean(options.logStart);
  const level = options.level ?? 'info';
  const completedMessage = options.completedMessage ?? 'request completed';
  if (typeof log[level] !== 'function') throw invalidArgValue('options.level', level, 'is not a level of the logger');

  return function ambientRequestContext(req, res, next) {
    const started = process.hrtime.bigint();
    const raw = req.headers[header];
    let requestId;
    let rejected;
    if (raw !== undefined) {
      if (isValidRequestId(raw)) requestId = raw;
      else rejected = requestIdProblem(raw);
    }
    const ctx = RequestContext.begin({
      requestId,
      traceparent: headerString(req.headers.traceparent),
      tracestate: headerString(req.headers.tracestate),
      baggage: headerString(req.headers.baggage),
      name: req.method,
    });
    if (echo) {
      const ids = ctx.ids();
      res.setHeader(header, ids.requestId);
      res.setHeader('traceparent', `00-${ids.traceId}-${ids.spanId}-${ids.traceFlags.toString(16).padStart(2, '0')}`);
    }
    const written = countBytes(res);
    let done = false;
    const finish = (aborted) => {
      if (done) return;
      done = true;
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const line = {
        method: req.method,
        route: routeOf(req),
        url: req.originalUrl ?? req.url,
        status: aborted ? undefined : res.statusCode,
        durationMs: Math.round(durationMs * 1000) / 1000,
        bytes: written.bytes,
      };
      if (res.locals?.ambientError) line.err = res.locals.ambientError;
      if (aborted) log.warn({ ...line, aborted: true }, 'request aborted');
      else log[level](line, completedMessage);
      ctx.end(aborted ? 'aborted' : res.statusCode >= 500 ? 'error' : 'ok');
    };
    ctx.run(() => {
      bindEmitterListeners(req);
      bindEmitterListeners(res);
      res.on('finish', () => finish(false));
      res.on('close', () => finish(!res.writableFinished));
      if (rejected !== undefined) log.debug({ reason: rejected }, 'incoming request id replaced by a generated one');
      if (logStart) log[level]({ method: req.method, url: req.originalUrl ?? req.url }, 'request started');
      next();
    });
  };
}

/**
 * Express error middleware: logs the error with the request's context and
 * passes it on. Put it after your routes.
 */
function errorLogger(options = {}) {
  validateObject(options, 'options');
  const log = options.logger ?? createLogger();
  return function ambientErrorLogger(err, req, res, next) {
    if (res.locals) res.locals.ambientError = err;
    log.error({ err }, 'request failed');
    next(err);
  };
}

/** Wraps a plain node:http request handler with the same per-request context. */
function wrapHandler(handler, options = {}) {
  validateFunction(handler, 'handler');
  const middleware = ambientMiddleware(options);
  return function ambientHandler(req, res) {
    middleware(req, res, () => handler.call(this, req, res));
  };
}

module.exports = { ambientMiddleware, errorLogger, wrapHandler };
