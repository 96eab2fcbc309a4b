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
const traceContextCodec = require('./lib/trace_context');
const { createLogger, LEVELS } = require('./lib/logger');
const { ambientMiddleware, errorLogger, wrapHandler, koa, fastify, fastifyRequestId } = require('./lib/middleware');
const { enableOutgoingPropagation, disableOutgoingPropagation, withoutPropagation, httpPropagation } = require('./lib/propagation');
const { contextFields, pinoMixin, winstonFormat } = require('./lib/adapters');
const { nativeVersion } = require('./lib/native');

const traceContext = {
  parseTraceparent: traceContextCodec.parseTraceparent,
  formatTraceparent: traceContextCodec.formatTraceparent,
  parseTracestate: traceContextCodec.parseTracestate,
  parseBaggage: traceContextCodec.parseBaggage,
  formatBaggage: traceContextCodec.formatBaggage,
};
const { newRequestId } = traceContextCodec;

// Only `name` and `name: identifier` entries below: that is the shape Node's
// CommonJS export detection reads, so `import { pinoMixin } from 'ambient'`
// works in ES modules. The first entry of another shape (`a: b.c`) would
// hide every name after it from ESM importers.

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
  contextFields,
  pinoMixin,
  winstonFormat,
  traceContext,
  newRequestId,
  nativeVersion,
};
