'use strict';
// JSON for log objects: like JSON.stringify, but errors keep their type,
// message, stack and cause; circular references, BigInt, Map and Set are
// handled; configured paths are redacted; and nesting is bounded. Strings go
// through JSON.stringify, so every control character is escaped and no value
// can break a line.

const { invalidArgType, invalidArgValue } = require('./errors');

const MAX_DEPTH = 10;
const REDACTED = '"[Redacted]"';
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Compiles redaction paths ("password", "req.headers.authorization",
 * "users.*.token") into a tree walked alongside the value.
 */
function compileRedaction(paths = []) {
  if (!Array.isArray(paths)) throw invalidArgType('options.redact', 'Array', paths);
  const root = new Map();
  for (const path of paths) {
    if (typeof path !== 'string' || path === '') throw invalidArgValue('options.redact', paths, 'must hold dotted paths, each a non-empty string');
    let node = root;
    const parts = path.split('.');
    parts.forEach((part, i) => {
      if (i === parts.length - 1) {
        node.set(part, true);
      } else {
        let next = node.get(part);
        if (next === true) return;
        if (next === undefined) node.set(part, next = new Map());
        node = next;
      }
    });
  }
  return root.size === 0 ? undefined : root;
}

function errorToObject(err, safe) {
  const out = {
    type: (safe ? readOrReason(err, 'name') : err.name) ?? err.constructor?.name ?? 'Error',
    message: safe ? readOrReason(err, 'message') : err.message,
    stack: safe ? readOrReason(err, 'stack') : err.stack,
  };
  for (const key of Object.keys(err)) {
    if (!(key in out)) out[key] = safe ? readOrReason(err, key) : err[key];
  }
  const cause = safe ? readOrReason(err, 'cause') : err.cause;
  if (cause !== undefined) out.cause = cause;
  if (err instanceof AggregateError) out.errors = safe ? readOrReason(err, 'errors') : err.errors;
  return out;
}

// What stands in the line for a value whose reading threw (a getter,
// toJSON, a Proxy trap), so that the line and the rest of its members are
// still written: a log call in a catch block must not throw a second time.
function unserializableText(err) {
  try {
    return `[Unserializable: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}]`;
  } catch {
    return '[Unserializable]';
  }
}

function readOrReason(object, key) {
  try {
    return object[key];
  } catch (err) {
    return unserializableText(err);
  }
}

// Values are first serialized with no guard, which costs nothing while
// nothing throws. Only when something does is the value serialized again
// with each member guarded (`safe`), as fast-safe-stringify retries; a
// getter that threw is then read a second time. `asMembers`: the root's
// members without braces (bindings), where a root that cannot be read at
// all leaves its placeholder under `bindings`.
function serializeGuarded(object, redact, seen, asMembers) {
  const depthOfSeen = seen.length;
  try {
    return serializeRoot(object, redact, seen, asMembers, false);
  } catch {
    seen.length = depthOfSeen;
    try {
      return serializeRoot(object, redact, seen, asMembers, true);
    } catch (err) {
      const placeholder = JSON.stringify(unserializableText(err));
      return asMembers ? `"bindings":${placeholder}` : placeholder;
    }
  }
}

function serializeRoot(object, redact, seen, asMembers, safe) {
  return asMembers ? serializeMembers(object, redact, seen, 1, safe) : serializeValue(object, redact, seen, 0, safe);
}

// A member in the guarded pass: reading it, its toJSON() or its own
// members (even an instanceof, on a revoked Proxy) may throw.
function serializeMemberSafely(object, key, redact, seen, depth) {
  const depthOfSeen = seen.length;
  try {
    return serializeValue(object[key], redact, seen, depth, true);
  } catch (err) {
    seen.length = depthOfSeen;
    return JSON.stringify(unserializableText(err));
  }
}

// `fromToJSON`: the value is what a toJSON() returned, whose own toJSON is
// not called again (as in JSON.stringify, so `toJSON() { return this; }`
// and a chain of them end).
function serializeValue(value, redact, seen, depth, safe, fromToJSON = false) {
  switch (typeof value) {
    case 'string': return JSON.stringify(value);
    case 'number': return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean': return value ? 'true' : 'false';
    case 'bigint':
      // Beyond 2^53 a JSON number would be read back wrong: keep the digits.
      return value <= MAX_SAFE && value >= -MAX_SAFE ? value.toString() : `"${value}"`;
    case 'undefined':
    case 'function':
    case 'symbol':
      return undefined;
    default:
      break;
  }
  if (value === null) return 'null';
  const isError = value instanceof Error;
  if (!isError && !fromToJSON && typeof value.toJSON === 'function') {
    return serializeValue(value.toJSON(), redact, seen, depth, safe, true);
  }
  if (seen.includes(value)) return '"[Circular]"';
  if (depth >= MAX_DEPTH) return Array.isArray(value) ? '"[Array]"' : '"[Object]"';
  // The original goes on `seen`, not what it is turned into, so an error
  // that is its own cause reads as "[Circular]".
  seen.push(value);
  let object = value;
  if (isError) object = errorToObject(value, safe);
  else if (value instanceof Map) object = Object.fromEntries(value);
  else if (value instanceof Set) object = [...value];
  let out;
  if (Array.isArray(object)) {
    const parts = [];
    for (let i = 0; i < object.length; i++) {
      const rule = redact?.get(String(i)) ?? redact?.get('*');
      const text = rule === true ? REDACTED :
        safe ? serializeMemberSafely(object, i, rule, seen, depth + 1) : serializeValue(object[i], rule, seen, depth + 1, false);
      parts.push(text ?? 'null');
    }
    out = `[${parts.join(',')}]`;
  } else {
    out = `{${serializeMembers(object, redact, seen, depth + 1, safe)}}`;
  }
  seen.pop();
  return out;
}

function serializeMembers(object, redact, seen, depth, safe) {
  let out = '';
  for (const key of Object.keys(object)) {
    const rule = redact?.get(key) ?? redact?.get('*');
    const text = rule === true ? REDACTED :
      safe ? serializeMemberSafely(object, key, rule, seen, depth) : serializeValue(object[key], rule, seen, depth, false);
    if (text === undefined) continue;
    out += `${out === '' ? '' : ','}${JSON.stringify(key)}:${text}`;
  }
  return out;
}

/** An object as JSON text. */
function serializeObject(object, redact) {
  // Not always an object: an array, what a toJSON() returned, or the
  // placeholder of an object that could not be read. The line puts those
  // under `value` (src/log.rs, push_object_members, and prettyLine):
  // looking at the text's first character here would flatten the string,
  // which the crossing into Rust does anyway.
  return serializeGuarded(object, redact, [], false) ?? '{}';
}

/** An object's members as JSON text without braces (`"a":1,"b":2`), for bindings. */
function serializeBindings(object, redact) {
  return serializeGuarded(object, redact, [object], true);
}

module.exports = { compileRedaction, serializeObject, serializeBindings };
