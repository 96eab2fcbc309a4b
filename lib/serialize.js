'use strict';
// JSON for log objects: like JSON.stringify, but errors keep their type,
// message, stack and cause; circular references, BigInt, Map and Set are
// handled; configured paths are redacted; and nesting is bounded. Strings go
// through JSON.stringify, so every control character is escaped and no value
// can break a line.

const { invalidArgType, invalidArgValue } = require('./errors');

const MAX_DEPTH = 10;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

// A redacted member: its censor's JSON text, or REMOVE to leave it out.
const REMOVE = Symbol('ambient.redact.remove');

/**
 * Compiles redaction paths into a tree walked alongside the value. Paths
 * are written as pino writes them: "password", "req.headers.authorization",
 * 'req.headers["x-api-key"]', "users[0].token", "users.*.token" or
 * "users[*].token". `option` is the paths, or pino's { paths, censor,
 * remove }. Leaves hold what the member becomes (the censor's JSON text, or
 * REMOVE).
 */
function compileRedaction(option) {
  if (option === undefined) return undefined;
  let paths = option;
  let leaf = '"[Redacted]"';
  if (!Array.isArray(option)) {
    if (option === null || typeof option !== 'object') throw invalidArgType('options.redact', 'Array or an object', option);
    paths = option.paths;
    if (!Array.isArray(paths)) throw invalidArgType('options.redact.paths', 'Array', paths);
    const { censor = '[Redacted]', remove = false } = option;
    if (typeof censor !== 'string') throw invalidArgType('options.redact.censor', 'string', censor);
    if (typeof remove !== 'boolean') throw invalidArgType('options.redact.remove', 'boolean', remove);
    leaf = remove ? REMOVE : JSON.stringify(censor);
  }
  const root = new Map();
  for (const path of paths) {
    const keys = pathKeys(path);
    let node = root;
    for (let i = 0; i < keys.length - 1 && node !== leaf; i++) {
      let next = node.get(keys[i]);
      if (next === undefined) node.set(keys[i], next = new Map());
      node = next;
    }
    if (node !== leaf) node.set(keys[keys.length - 1], leaf);
  }
  return root.size === 0 ? undefined : withWildcards(root);
}

// The keys of one path: dotted names, and bracketed quoted names, indices
// or `*`. A path that does not parse throws: left as it is, it would leave
// the value it meant to hide in the line.
function pathKeys(path) {
  const refuse = () => invalidArgValue('options.redact', path, 'must hold paths such as "a.b", \'a["b-c"]\', "a[0]" or "a[*].b"');
  if (typeof path !== 'string') throw refuse();
  const keys = [];
  let at = 0;
  while (at < path.length) {
    if (path[at] === '[') {
      const found = /^\[(?:"([^"]*)"|'([^']*)'|(\d+|\*))\]/.exec(path.slice(at));
      if (found === null) throw refuse();
      keys.push(found[1] ?? found[2] ?? found[3]);
      at += found[0].length;
    } else {
      const found = /^[^.[\]]+/.exec(path.slice(at));
      if (found === null) throw refuse();
      keys.push(found[0]);
      at += found[0].length;
    }
    if (path[at] === '.') {
      at += 1;
      if (at === path.length || path[at] === '[') throw refuse();
    } else if (at < path.length && path[at] !== '[') {
      throw refuse();
    }
  }
  if (keys.length === 0) throw refuse();
  return keys;
}

// A key and `*` beside it both apply to that key's member: "user.name" and
// "*.password" redact user.password too. So each node's `*` subtree is
// merged into its siblings here, and a lookup takes the key's rule, or `*`.
function withWildcards(node) {
  const any = node.get('*');
  for (const [key, rule] of node) {
    const merged = key === '*' || any === undefined ? rule : mergeRules(rule, any);
    node.set(key, merged instanceof Map ? withWildcards(merged) : merged);
  }
  return node;
}

function mergeRules(a, b) {
  if (!(a instanceof Map)) return a;
  if (!(b instanceof Map)) return b;
  const out = new Map(a);
  for (const [key, rule] of b) out.set(key, out.has(key) ? mergeRules(out.get(key), rule) : rule);
  return out;
}

/**
 * What Rust needs to redact the context's fields, which it writes from the
 * store's record (they are scalars, so only one-key paths reach them): the
 * redacted keys ('*' for all) and the censor (undefined: leave them out).
 * Undefined when no field is redacted.
 */
function fieldRedaction(tree) {
  if (tree === undefined) return undefined;
  const any = tree.get('*');
  const redactedFields = any !== undefined && !(any instanceof Map) ? ['*'] :
    [...tree].filter(([, rule]) => !(rule instanceof Map)).map(([key]) => key);
  if (redactedFields.length === 0) return undefined;
  const leaf = tree.get(redactedFields[0]);
  return { redactedFields, censor: leaf === REMOVE ? undefined : JSON.parse(leaf) };
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
// all leaves its placeholder under `bindings`. `serializers` apply to the
// root's own members only, as pino applies them.
function serializeGuarded(object, redact, seen, asMembers, serializers) {
  const depthOfSeen = seen.length;
  try {
    return serializeRoot(object, redact, seen, asMembers, false, serializers);
  } catch {
    seen.length = depthOfSeen;
    try {
      return serializeRoot(object, redact, seen, asMembers, true, serializers);
    } catch (err) {
      const placeholder = JSON.stringify(unserializableText(err));
      return asMembers ? `"bindings":${placeholder}` : placeholder;
    }
  }
}

function serializeRoot(object, redact, seen, asMembers, safe, serializers) {
  return asMembers ? serializeMembers(object, redact, seen, 1, safe, serializers) :
    serializeValue(object, redact, seen, 0, safe, false, serializers);
}

// A member in the guarded pass: reading it, its toJSON() or its own
// members (even an instanceof, on a revoked Proxy) may throw.
function serializeMemberSafely(object, key, redact, seen, depth, serializer) {
  const depthOfSeen = seen.length;
  try {
    return serializeValue(serializedMember(object, key, serializer), redact, seen, depth, true);
  } catch (err) {
    seen.length = depthOfSeen;
    return JSON.stringify(unserializableText(err));
  }
}

// `fromToJSON`: the value is what a toJSON() returned, whose own toJSON is
// not called again (as in JSON.stringify, so `toJSON() { return this; }`
// and a chain of them end). `serializers` only at the root (see above).
function serializeValue(value, redact, seen, depth, safe, fromToJSON = false, serializers = undefined) {
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
      // A removed element leaves its place, as a JSON hole does: null.
      const text = rule === REMOVE ? 'null' : typeof rule === 'string' ? rule :
        safe ? serializeMemberSafely(object, i, rule, seen, depth + 1) : serializeValue(object[i], rule, seen, depth + 1, false);
      parts.push(text ?? 'null');
    }
    out = `[${parts.join(',')}]`;
  } else {
    out = `{${serializeMembers(object, redact, seen, depth + 1, safe, isError ? undefined : serializers)}}`;
  }
  seen.pop();
  return out;
}

function serializeMembers(object, redact, seen, depth, safe, serializers) {
  let out = '';
  for (const key of Object.keys(object)) {
    const rule = redact?.get(key) ?? redact?.get('*');
    const serializer = serializers?.get(key);
    // A redacted member is censored whatever its serializer would return.
    const text = rule === REMOVE ? undefined : typeof rule === 'string' ? rule :
      safe ? serializeMemberSafely(object, key, rule, seen, depth, serializer) :
      serializeValue(serializedMember(object, key, serializer), rule, seen, depth, false);
    if (text === undefined) continue;
    out += `${out === '' ? '' : ','}${JSON.stringify(key)}:${text}`;
  }
  return out;
}

// A member as its serializer turns it (pino's `serializers`), which is
// given only what is defined. A serializer that throws is caught as a
// getter that throws is.
function serializedMember(object, key, serializer) {
  const value = object[key];
  return serializer === undefined || value === undefined ? value : serializer(value);
}

/**
 * pino's `serializers` option, checked: a Map of member name to function,
 * `inherited` (a parent logger's) overridden by `option`. Undefined for
 * none.
 */
function compileSerializers(option, inherited) {
  if (option === undefined) return inherited;
  if (option === null || typeof option !== 'object' || Array.isArray(option)) throw invalidArgType('options.serializers', 'object', option);
  const out = new Map(inherited);
  for (const [key, serializer] of Object.entries(option)) {
    if (typeof serializer !== 'function') throw invalidArgType(`options.serializers.${key}`, 'function', serializer);
    out.set(key, serializer);
  }
  return out.size === 0 ? undefined : out;
}

/** An object as JSON text. */
function serializeObject(object, redact, serializers) {
  // Not always an object: an array, what a toJSON() returned, or the
  // placeholder of an object that could not be read. The line puts those
  // under `value` (src/log.rs, push_object_members, and prettyLine):
  // looking at the text's first character here would flatten the string,
  // which the crossing into Rust does anyway.
  return serializeGuarded(object, redact, [], false, serializers) ?? '{}';
}

/** An object's members as JSON text without braces (`"a":1,"b":2`), for bindings. */
function serializeBindings(object, redact, serializers) {
  return serializeGuarded(object, redact, [object], true, serializers);
}

module.exports = { compileRedaction, compileSerializers, fieldRedaction, serializeObject, serializeBindings };
