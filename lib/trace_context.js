'use strict';
// W3C trace context and request ids for JS callers. Parsing and formatting
// happen in Rust (src/trace_context.rs, src/baggage.rs); this file shapes
// the results and batches id generation so a crossing serves many ids.
const native = require('./native');
const { invalidArgType } = require('./errors');

function checkString(value, name) {
  if (typeof value !== 'string') throw invalidArgType(name, 'string', value);
}

/** Parses a `traceparent`; null when invalid (never throws on bad input). */
function parseTraceparent(header) {
  checkString(header, 'header');
  const normalized = native.normalizeTraceparent(header);
  if (normalized === null) return null;
  return {
    traceId: normalized.slice(3, 35),
    parentId: normalized.slice(36, 52),
    traceFlags: parseInt(normalized.slice(53, 55), 16),
  };
}

/** Formats a version-00 `traceparent`; throws on ids that are not valid. */
function formatTraceparent(traceId, spanId, traceFlags = 1) {
  checkString(traceId, 'traceId');
  checkString(spanId, 'spanId');
  if (!Number.isInteger(traceFlags) || traceFlags < 0 || traceFlags > 255) throw invalidArgType('traceFlags', 'integer from 0 to 255', traceFlags);
  return native.formatTraceparent(traceId, spanId, traceFlags);
}

/** Parses a `tracestate` into [key, value] pairs; an invalid header yields []. */
function parseTracestate(header) {
  checkString(header, 'header');
  return native.parseTracestate(header);
}

/** Parses a `baggage` header into {key, value, properties} entries, skipping invalid ones. */
function parseBaggage(header) {
  checkString(header, 'header');
  return native.parseBaggage(header);
}

/** Formats baggage entries, within the 180-member / 8192-byte limits. */
function formatBaggage(entries) {
  if (!Array.isArray(entries)) throw invalidArgType('entries', 'Array', entries);
  return native.formatBaggage(entries.map(({ key, value, properties = [] }) => ({ key: `${key}`, value: `${value}`, properties })));
}

const ID_LENGTH = 36;
const BATCH = 64;
let pool = '';
let offset = 0;

/** A new request id: a UUIDv7 (time-ordered), from a pool refilled 64 at a time. */
function newRequestId() {
  if (offset === pool.length) {
    pool = native.newRequestIds(BATCH);
    offset = 0;
  }
  const id = pool.slice(offset, offset + ID_LENGTH);
  offset += ID_LENGTH;
  return id;
}

module.exports = { parseTraceparent, formatTraceparent, parseTracestate, parseBaggage, formatBaggage, newRequestId };
