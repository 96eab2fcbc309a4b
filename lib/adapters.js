'use strict';
// For teams that keep their logger: the same context fields ambient's own
// logger adds (requestId, traceId, spanId and the context's fields), as a
// pino mixin and a winston format.
const { RequestContext } = require('./request_context');

/** The current context's ids and fields as a plain object ({} outside one). */
function contextFields() {
  const ctx = RequestContext.current();
  if (ctx === undefined) return {};
  const { requestId, traceId, spanId } = ctx.ids();
  return { requestId, traceId, spanId, ...ctx.fields() };
}

/** For pino: `pino({ mixin: pinoMixin() })`. */
function pinoMixin() {
  return contextFields;
}

/**
 * For winston: `winston.createLogger({ format: winston.format.combine(
 * winstonFormat(), winston.format.json()) })`. A winston format is any object
 * with transform(info), so this needs no winston import.
 */
function winstonFormat() {
  return {
    transform(info) {
      return Object.assign(info, contextFields());
    },
  };
}

module.exports = { contextFields, pinoMixin, winstonFormat };
