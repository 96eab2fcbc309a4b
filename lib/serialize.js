'use strict';
// JSON for log objects: like JSON.stringify, but errors keep their type,
// message, stack and cause; circular references, BigInt, Map and Set are
// handled; configured paths are redacted; and nesting is bounded. Strings go
// through JSON.stringify, so every control character is escaped and no value
// can break a line.

const MAX_DEPTH = 10;
const REDACTED = '"[Redacted]"';
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Compiles redaction paths ("password", "req.headers.authorization",
 * "users.*.token") into a tree walked alongside the value.
 */
function compileRedaction(paths = []) {
  if (!Array.isArray(paths)) throw new TypeError('redact must be an array of dotted paths');
  const root = new Map();
  for (const path of paths) {
    if (typeof path !== 'string' || path === '') throw new TypeError(`invalid redaction path: ${String(path)}`);
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

function errorToObject(err) {
  const out = { type: err.name ?? err.constructor?.name ?? 'Error', message: err.message, stack: err.stack };
  for (const key of Object.keys(err)) {
    if (!(key in out)) out[key] = err[key];
  }
  if (err.cause !== undefined) out.cause = err.cause;
  if (err instanceof AggregateError) out.errors = err.errors;
  return out;
}

function serializeValue(value, redact, seen, depth) {
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
  if (seen.includes(value)) return '"[Circular]"';
  if (depth >= MAX_DEPTH) return Array.isArray(value) ? '"[Array]"' : '"[Object]"';
  if (value instanceof Error) value = errorToObject(value);
  else if (typeof value.toJSON === 'function') return serializeValue(value.toJSON(), redact, seen, depth);
  else if (value instanceof Map) value = Object.fromEntries(value);
  else if (value instanceof Set) value = [...value];
  seen.push(value);
  let out;
  if (Array.isArray(value)) {
    const parts = [];
    for (let i = 0; i < value.length; i++) {
      const rule = redact?.get(String(i)) ?? redact?.get('*');
      parts.push(rule === true ? REDACTED : serializeValue(value[i], rule, seen, depth + 1) ?? 'null');
    }
    out = `[${parts.join(',')}]`;
  } else {
    out = `{${serializeMembers(value, redact, seen, depth + 1)}}`;
  }
  seen.pop();
  return out;
}

function serializeMembers(object, redact, seen, depth) {
  let out = '';
  for (const key of Object.keys(object)) {
    const rule = redact?.get(key) ?? redact?.get('*');
    const text = rule === true ? REDACTED : serializeValue(object[key], rule, seen, depth);
    if (text === undefined) continue;
    out += `${out === '' ? '' : ','}${JSON.stringify(key)}:${text}`;
  }
  return out;
}

/** An object as JSON text (`{...}`). */
function serializeObject(object, redact) {
  return serializeValue(object, redact, [], 0) ?? '{}';
}

/** An object's members as JSON text without braces (`"a":1,"b":2`), for bindings. */
function serializeBindings(object, redact) {
  return serializeMembers(object, redact, [object], 1);
}

module.exports = { compileRedaction, serializeObject, serializeBindings };
