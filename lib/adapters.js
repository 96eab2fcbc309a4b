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
      const fields = contextFields();
      // What the log call gave wins, as with pino's mixin: a field named
      // `message` must not replace the message.
      for (const key of Object.keys(fields)) {
        if (!Object.hasOwn(info, key)) info[key] = fields[key];
      }
      return info;
    },
  };
}

module.exports = { contextFields, pinoMixin, winstonFormat };
