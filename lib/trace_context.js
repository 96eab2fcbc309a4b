'use strict';
// W3C trace context and request ids for JS callers. Parsing and formatting
// happen in Rust (src/trace_context.rs, src/baggage.rs); this file shapes
// the results and batches id generation so a crossing serves many ids.
const native = require('./native');
const { invalidArgType, invalidArgValue } = require('./errors');

function checkString(value, name) {
  if (typeof value !== 'string') throw invalidArgType(name, 'string', value);
}

/** Parses a `traceparent`; null when invalid (never throws on bad input). */
function parseTraceparent(header) {
  checkString(header, 'header');
  // Rust validates; the fields sit at fixed offsets, so JS slices them.
  const checked = native.checkTraceparent(header);
  if (checked < 0) return null;
  const at = checked >> 8;
  return {
    traceId: header.slice(at + 3, at + 35),
    parentId: header.slice(at + 36, at + 52),
    traceFlags: checked & 0xff,
  };
}

const KNOWN_FLAGS = 0x03;

/** Formats a version-00 `traceparent`; throws on ids that are not valid. */
function formatTraceparent(traceId, spanId, traceFlags = 1) {
  checkString(traceId, 'traceId');
  checkString(spanId, 'spanId');
  if (!Number.isInteger(traceFlags) || traceFlags < 0 || traceFlags > 255) throw invalidArgType('traceFlags', 'integer from 0 to 255', traceFlags);
  if (!native.checkTraceIds(traceId, spanId)) {
    throw invalidArgValue('traceId/spanId', `${traceId}/${spanId}`, 'must be 32 and 16 lowercase hex digits, not all zero');
  }
  const flags = traceFlags & KNOWN_FLAGS;
  return `00-${traceId}-${spanId}-0${flags}`;
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
