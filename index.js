'use strict';
// ambient: async context for Node.js.
//
// The hot path (getStore, run, per-promise propagation) is JS on top of one
// native AsyncLocalStorage; see lib/frame.js. The Rust addon is loaded for the
// work done about once per request, per log line or per batch.
const { AsyncLocalStorage } = require('./lib/async_local_storage');
const { AsyncContext } = require('./lib/async_context');
const { AsyncResource } = require('./lib/async_resource');
const { RequestContext, DeadlineExceededError } = require('./lib/request_context');
const traceContext = require('./lib/trace_context');
const { createLogger, LEVELS } = require('./lib/logger');
const { ambientMiddleware, errorLogger, wrapHandler, koa, fastify, fastifyRequestId } = require('./lib/middleware');
const { enableOutgoingPropagation, disableOutgoingPropagation, withoutPropagation, httpPropagation } = require('./lib/propagation');
const adapters = require('./lib/adapters');
const native = require('./lib/native');

module.exports = {
  AsyncLocalStorage,
  // Node's own class (a subclass on Node <= 22, see lib/async_resource.js):
  // it restores the native store that carries ambient's frame, so ambient and
  // native stores alike, and stays visible to async_hooks observers.
  AsyncResource,
  AsyncContext,
  RequestContext,
  DeadlineExceededError,
  createLogger,
  levels: LEVELS,
  middleware: ambientMiddleware,
  errorLogger,
  wrapHandler,
  koa,
  fastify,
  fastifyRequestId,
  enableOutgoingPropagation,
  disableOutgoingPropagation,
  withoutPropagation,
  httpPropagation,
  contextFields: adapters.contextFields,
  pinoMixin: adapters.pinoMixin,
  winstonFormat: adapters.winstonFormat,
  traceContext: {
    parseTraceparent: traceContext.parseTraceparent,
    formatTraceparent: traceContext.formatTraceparent,
    parseTracestate: traceContext.parseTracestate,
    parseBaggage: traceContext.parseBaggage,
    formatBaggage: traceContext.formatBaggage,
  },
  newRequestId: traceContext.newRequestId,
  nativeVersion: native.nativeVersion,
};
