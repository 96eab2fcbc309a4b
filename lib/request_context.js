'use strict';
// RequestContext: the structured context of one request (or job), kept in
// Rust so every thread of the process sees the same record, and carried in
// JS by one ambient AsyncLocalStorage. Crossings into Rust happen at begin,
// end, field writes, and when another thread changed the fields; field reads
// are served from a JS cache that a shared version counter keeps honest.
const native = require('./native');
const { AsyncLocalStorage } = require('./async_local_storage');
const { invalidArgType, invalidArgValue, validateFunction, validateObject } = require('./errors');

const currentContext = new AsyncLocalStorage({ name: 'ambient.RequestContext' });
const CONSTRUCT = Symbol('construct');
const TASK = 'ambient.task/v1';
const TOKEN = 'ambient.context/v1';

const settings = {
  lingerGraceMs: 30_000,
  warnOnUseAfterEnd: true,
  generateRequestId: undefined,
};

// The record stays in Rust until its JS objects on every thread are gone.
// Collected ids are given back in one crossing per batch of finalizations.
let released = [];
function flushReleased() {
  const ids = released;
  released = [];
  native.contextReleaseMany(Float64Array.from(ids));
}
const handles = new FinalizationRegistry((id) => {
  if (released.push(id) === 1) queueMicrotask(flushReleased);
});
let versions;

const REQUEST_ID_MAX = 128;
// Visible ASCII only: no spaces, no control characters, nothing a log line
// or a header could be forged with.
const REQUEST_ID_PATTERN = /^[\x21-\x7e]+$/;

function isValidRequestId(id) {
  return typeof id === 'string' && id.length > 0 && id.length <= REQUEST_ID_MAX && REQUEST_ID_PATTERN.test(id);
}

function checkRequestId(id, name) {
  if (typeof id !== 'string') throw invalidArgType(name, 'string', id);
  if (!isValidRequestId(id)) {
    throw invalidArgValue(name, id, `must be 1 to ${REQUEST_ID_MAX} visible ASCII characters`);
  }
  return id;
}

function checkFieldKey(key) {
  if (typeof key !== 'string') throw invalidArgType('key', 'string', key);
  if (key.length === 0) throw invalidArgValue('key', key, 'must not be empty');
}

function checkFieldValue(value) {
  const type = typeof value;
  if (value === null || type === 'string' || type === 'number' || type === 'boolean' || type === 'bigint') return;
  throw invalidArgType('value', 'string, number, bigint, boolean or null', value);
}

// Limit and lookup failures from Rust, as Node-style errors.
function fromNative(err) {
  if (err && err.code === 'InvalidArg') {
    const limit = new RangeError(err.message);
    limit.code = 'ERR_AMBIENT_FIELD_LIMIT';
    return limit;
  }
  if (err && /does not exist/.test(err.message)) {
    const gone = new Error(err.message);
    gone.code = 'ERR_AMBIENT_CONTEXT_RELEASED';
    return gone;
  }
  return err;
}

function fieldEntries(fields) {
  if (fields === undefined) return undefined;
  validateObject(fields, 'options.fields');
  const entries = Object.entries(fields);
  for (const [, value] of entries) checkFieldValue(value);
  return entries;
}

// Field names come back from Rust as new strings each time; every cache
// holds the same few names, so share one copy of each (bounded, like the
// Rust side's interning).
const knownKeys = new Map();
function sharedKey(key) {
  const known = knownKeys.get(key);
  if (known !== undefined) return known;
  if (knownKeys.size < 4096) knownKeys.set(key, key);
  return key;
}

// Exact size: push() would leave spare capacity in every open context.
function flattenFields(entries) {
  const flat = new Array(entries.length * 2);
  for (let i = 0; i < entries.length; i++) {
    flat[2 * i] = sharedKey(entries[i].key);
    flat[2 * i + 1] = entries[i].value;
  }
  return flat;
}

const VERSION_MASK = 0xffff;
const AFTER_END = 2 ** 32;

// The identity string of src/context.rs (`compact`), fetched when a getter
// asks and not kept, so an open context holds no copy of its ids:
// id;startedAtMs;flags;traceId(32);spanId(16);parentSpanId(16 or 0);requestId\ntracestate
// Where traceId starts; from there the ids sit at fixed offsets.
function identityOffsets(identity) {
  const a = identity.indexOf(';');
  const b = identity.indexOf(';', a + 1);
  const c = identity.indexOf(';', b + 1);
  return c + 1;
}

function identityField(identity, field) {
  const trace = identityOffsets(identity);
  const parent = trace + 33 + 17;
  switch (field) {
    case 'startedAt': {
      const a = identity.indexOf(';');
      return +identity.slice(a + 1, identity.indexOf(';', a + 1));
    }
    case 'traceFlags': return +identity.slice(identity.lastIndexOf(';', trace - 2) + 1, trace - 1);
    case 'traceId': return identity.slice(trace, trace + 32);
    case 'spanId': return identity.slice(trace + 33, trace + 49);
    case 'parentSpanId': {
      const end = identity.indexOf(';', parent);
      return end === parent ? undefined : identity.slice(parent, end);
    }
    case 'requestId': {
      const start = identity.indexOf(';', parent) + 1;
      return identity.slice(start, identity.indexOf('\n', start));
    }
    case 'tracestate': return identity.slice(identity.indexOf('\n', parent) + 1);
  }
  return undefined;
}

// The `traceparent` header of a context's own span, from its ids().
function traceparentOf({ traceId, spanId, traceFlags }) {
  return `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`;
}

function optionalString(options, name) {
  const value = options[name];
  if (value !== undefined && typeof value !== 'string') throw invalidArgType(`options.${name}`, 'string', value);
  return value;
}

function noContextError(what) {
  const err = new Error(`${what} was called outside a request context. ` +
    'Run this code inside RequestContext.run() (or the ambient middleware), ' +
    'or use RequestContext.current() where having no context is normal.');
  err.code = 'ERR_AMBIENT_NO_CONTEXT';
  return err;
}

class DeadlineExceededError extends Error {
  constructor(ctx) {
    super(`request ${ctx.requestId} exceeded its deadline`);
    this.name = 'DeadlineExceededError';
    this.code = 'ERR_AMBIENT_DEADLINE_EXCEEDED';
  }
}

class RequestContext {
  #id;
  #kind;
  #name;
  // What few contexts need, in one object made on demand so an open context
  // stays small: `info` (a context attached from another thread: everything
  // about it; otherwise ids are read from Rust when asked, once per use as a
  // log line does), `deadline`, `endResult` and `warned`.
  #rare;
  // The field cache, [key0, value0, key1, value1, ...]: a context holds a
  // few fields, and a flat array is both smaller than a Map and as fast to
  // search at that size. Made by the first read, so a context whose fields
  // are only written (and read by the logger, in Rust) never holds one.
  #fields;
  #seen;
  #ended = false;

  constructor(token, source, deadline) {
    if (token !== CONSTRUCT) {
      throw new TypeError('RequestContext has no public constructor; use RequestContext.run() or RequestContext.begin()');
    }
    versions ??= native.contextVersions();
    const { id, kind, name, info } = source;
    if (info !== undefined) {
      // Attached from another thread: everything came as one object.
      this.#rareData().info = info;
      this.#id = info.id;
      this.#kind = info.kind;
      this.#fields = flattenFields(info.fields);
      this.#seen = info.version;
      this.#ended = info.ended;
    } else {
      this.#id = id;
      this.#kind = kind;
      this.#name = name;
      // A child starts with its parent's fields, which this cache has not
      // seen yet: force the first read to fetch them.
      this.#seen = kind === 'child' ? -1 : versions[this.#id & VERSION_MASK];
    }
    if (deadline !== undefined) this.#rareData().deadline = deadline;
    handles.register(this, this.#id);
  }

  #rareData() {
    return this.#rare ??= { info: undefined, deadline: undefined, endResult: undefined, warned: false };
  }

  #identityField(field) {
    const info = this.#rare?.info;
    if (info !== undefined) return info[field] ?? undefined;
    return identityField(native.contextIdentity(this.#id), field);
  }

  /**
   * Begins a context without entering it; enter with ctx.run(fn) and finish
   * with ctx.end(status).
   */
  static begin(options = {}) {
    validateObject(options, 'options');
    let requestId = options.requestId;
    if (requestId !== undefined) checkRequestId(requestId, 'options.requestId');
    else if (settings.generateRequestId) checkRequestId(requestId = settings.generateRequestId(), 'generated request id');
    const deadline = deadlineOptions(options);
    const name = optionalString(options, 'name');
    const fields = fieldEntries(options.fields);
    let id;
    try {
      id = native.contextBegin(requestId, optionalString(options, 'traceparent'),
        optionalString(options, 'tracestate'), optionalString(options, 'baggage'), name,
        deadline?.ms, options.sampled !== false);
    } catch (err) {
      throw fromNative(err);
    }
    const ctx = new RequestContext(CONSTRUCT, { id, kind: 'root', name }, deadline);
    if (fields !== undefined) ctx.#setInitial(fields);
    return ctx;
  }

  #setInitial(fields) {
    try {
      for (const [key, value] of fields) this.set(key, value);
    } catch (err) {
      this.end('error');
      throw err;
    }
  }

  /**
   * Runs fn in a new context and ends the context when fn returns or its
   * promise settles (status 'ok', or 'error' when it throws or rejects).
   */
  static run(options, fn, ...args) {
    if (typeof options === 'function') {
      if (fn !== undefined || args.length > 0) args.unshift(fn);
      fn = options;
      options = {};
    }
    validateFunction(fn, 'fn');
    return RequestContext.begin(options).#runToEnd(fn, args);
  }

  /** The current context, or undefined outside one. */
  static current() {
    return currentContext.getStore();
  }

  /** The current context; throws ERR_AMBIENT_NO_CONTEXT outside one. */
  static require() {
    const ctx = currentContext.getStore();
    if (ctx === undefined) throw noContextError('RequestContext.require()');
    return ctx;
  }

  /** A context handed over from another thread (see toToken()). */
  static fromToken(token) {
    if (token === null || typeof token !== 'object' || token.type !== TOKEN || typeof token.id !== 'number') {
      throw invalidArgValue('token', token, 'is not a context token from RequestContext#toToken()');
    }
    try {
      return new RequestContext(CONSTRUCT, { info: native.contextAttach(token.id) });
    } catch (err) {
      throw fromNative(err);
    }
  }

  /** Runs fn inside the context a token stands for. */
  static runWithToken(token, fn, ...args) {
    return RequestContext.fromToken(token).run(fn, ...args);
  }

  /**
   * Wraps task data for a worker (postMessage, workerData or a pool such as
   * piscina) so that RequestContext.handleTask() on the other side runs the
   * task in the current context.
   */
  static task(data) {
    return { type: TASK, context: currentContext.getStore()?.toToken(), data };
  }

  /** Wraps a task handler: unwraps RequestContext.task() data and runs the handler in its context. */
  static handleTask(handler) {
    validateFunction(handler, 'handler');
    return function handleContextTask(task, ...rest) {
      if (task === null || typeof task !== 'object' || task.type !== TASK) return handler.call(this, task, ...rest);
      if (task.context === undefined) return handler.call(this, task.data, ...rest);
      return RequestContext.fromToken(task.context).run(() => handler.call(this, task.data, ...rest));
    };
  }

  /** Counters for the whole process (all threads). */
  static stats() {
    return native.contextStats(settings.lingerGraceMs);
  }

  /** Open contexts, oldest first. */
  static inFlight({ limit = 100, maxFields = 16 } = {}) {
    return native.contextInFlight(limit, maxFields).map(({ fields, ...rest }) => ({
      ...rest,
      fields: Object.fromEntries(fields.map(({ key, value }) => [key, value])),
    }));
  }

  /**
   * Process-wide settings: field limits (maxFields, maxKeyBytes,
   * maxValueBytes, maxTotalBytes), lingerGraceMs, warnOnUseAfterEnd and
   * generateRequestId (a function returning a request id).
   */
  static configure(options = {}) {
    validateObject(options, 'options');
    const { lingerGraceMs, warnOnUseAfterEnd, generateRequestId, ...limits } = options;
    if (lingerGraceMs !== undefined) {
      if (typeof lingerGraceMs !== 'number' || !(lingerGraceMs >= 0)) throw invalidArgValue('options.lingerGraceMs', lingerGraceMs, 'must be a non-negative number');
      settings.lingerGraceMs = lingerGraceMs;
    }
    if (warnOnUseAfterEnd !== undefined) settings.warnOnUseAfterEnd = Boolean(warnOnUseAfterEnd);
    if (generateRequestId !== undefined) {
      if (generateRequestId !== null) validateFunction(generateRequestId, 'options.generateRequestId');
      settings.generateRequestId = generateRequestId ?? undefined;
    }
    for (const [name, value] of Object.entries(limits)) {
      if (!['maxFields', 'maxKeyBytes', 'maxValueBytes', 'maxTotalBytes'].includes(name)) {
        throw invalidArgValue(`options.${name}`, value, 'is not a known setting');
      }
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw invalidArgValue(`options.${name}`, value, 'must be a non-negative integer');
    }
    return { ...native.contextConfigure(limits), lingerGraceMs: settings.lingerGraceMs, warnOnUseAfterEnd: settings.warnOnUseAfterEnd };
  }

  get id() { return this.#id; }
  get kind() { return this.#kind; }
  get name() { const info = this.#rare?.info; return info !== undefined ? info.name ?? undefined : this.#name; }
  get requestId() { return this.#identityField('requestId'); }
  get traceId() { return this.#identityField('traceId'); }
  get spanId() { return this.#identityField('spanId'); }
  get parentSpanId() { return this.#identityField('parentSpanId'); }
  get traceFlags() { return this.#identityField('traceFlags'); }
  get tracestate() { return this.#identityField('tracestate'); }
  get startedAt() { return this.#identityField('startedAt'); }
  get ended() { return this.#ended; }
  /** An AbortSignal that aborts when the deadline passes (undefined without a deadline). */
  get signal() { return this.#rare?.deadline?.controller.signal; }

  /** Baggage entries, as an object of key to value. */
  get baggage() {
    const entries = this.#rare?.info?.baggage ?? native.contextBaggage(this.#id);
    return Object.fromEntries(entries.map(({ key, value }) => [key, value]));
  }

  /** requestId, traceId, spanId, parentSpanId and traceFlags in one read. */
  ids() {
    const info = this.#rare?.info;
    if (info !== undefined) {
      return { requestId: info.requestId, traceId: info.traceId, spanId: info.spanId, parentSpanId: info.parentSpanId ?? undefined, traceFlags: info.traceFlags };
    }
    const identity = native.contextIdentity(this.#id);
    return {
      requestId: identityField(identity, 'requestId'),
      traceId: identityField(identity, 'traceId'),
      spanId: identityField(identity, 'spanId'),
      parentSpanId: identityField(identity, 'parentSpanId'),
      traceFlags: identityField(identity, 'traceFlags'),
    };
  }

  /** This context's own span, as a `traceparent` header (to echo on a response). */
  get traceparent() {
    return traceparentOf(this.ids());
  }

  /** A `traceparent` for a call leaving this context: a new child span. */
  outgoingTraceparent() {
    return native.contextOutgoingTraceparent(this.#id);
  }

  #sync() {
    if (versions[this.#id & VERSION_MASK] === this.#seen) return;
    let snapshot;
    try {
      snapshot = native.contextFields(this.#id);
    } catch (err) {
      throw fromNative(err);
    }
    this.#fields = flattenFields(snapshot.fields);
    this.#seen = snapshot.version;
  }

  get(key) {
    this.#sync();
    const fields = this.#fields;
    if (fields !== undefined) {
      for (let i = 0; i < fields.length; i += 2) if (fields[i] === key) return fields[i + 1];
    }
    return undefined;
  }

  has(key) {
    this.#sync();
    return this.#fields !== undefined && this.#fields.indexOf(key) % 2 === 0;
  }

  /** All fields, as a plain object. */
  fields() {
    this.#sync();
    const out = {};
    const fields = this.#fields;
    if (fields !== undefined) {
      for (let i = 0; i < fields.length; i += 2) out[fields[i]] = fields[i + 1];
    }
    return out;
  }

  #cacheSet(key, value) {
    const fields = this.#fields;
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] === key) {
        fields[i + 1] = value;
        return;
      }
    }
    // A new array of the exact size: push() would over-allocate.
    this.#fields = [...fields, key, value];
  }

  #cacheDelete(key) {
    const fields = this.#fields;
    if (fields === undefined) return;
    for (let i = 0; i < fields.length; i += 2) {
      if (fields[i] === key) {
        fields.splice(i, 2);
        return;
      }
    }
  }

  set(key, value) {
    checkFieldKey(key);
    const id = this.#id;
    let result;
    try {
      switch (typeof value) {
        case 'string': result = native.contextSetString(id, key, value); break;
        case 'number': result = native.contextSetNumber(id, key, value); break;
        case 'boolean': result = native.contextSetBoolean(id, key, value); break;
        case 'bigint': result = native.contextSetBigInt(id, key, value); break;
        default:
          if (value !== null) throw invalidArgType('value', 'string, number, bigint, boolean or null', value);
          result = native.contextSetNull(id, key);
      }
    } catch (err) {
      throw fromNative(err);
    }
    if (this.#fields !== undefined) this.#cacheSet(key, value);
    this.#afterWrite(result);
    return this;
  }

  delete(key) {
    checkFieldKey(key);
    let result;
    try {
      result = native.contextDeleteField(this.#id, key);
    } catch (err) {
      throw fromNative(err);
    }
    this.#cacheDelete(key);
    this.#afterWrite(result);
  }

  #afterWrite(result) {
    const afterEnd = result >= AFTER_END;
    const version = afterEnd ? result - AFTER_END : result;
    // The cache (if there is one yet: it is made by the first read) took
    // this write. When no other thread wrote in between, it is current as
    // is; otherwise the next read refreshes it.
    if (this.#fields !== undefined && version === ((this.#seen + 1) >>> 0)) this.#seen = version;
    if (afterEnd) this.#usedAfterEnd('a field write');
  }

  #usedAfterEnd(what) {
    if (!settings.warnOnUseAfterEnd || this.#rare?.warned) return;
    this.#rareData().warned = true;
    process.emitWarning(`${what} in request ${this.requestId} after it ended`, {
      type: 'AmbientWarning',
      code: 'AMBIENT_USE_AFTER_END',
    });
  }

  /** Counts a use of this context after it ended (a log line), warning once. */
  noteUse(what = 'a use') {
    if (!this.#ended) return;
    try {
      native.contextNoteUseAfterEnd(this.#id);
    } catch {
      // Released already: nothing left to count against.
    }
    this.#usedAfterEnd(what);
  }

  /** Runs fn with this context current. */
  run(fn, ...args) {
    validateFunction(fn, 'fn');
    return currentContext.run(this, () => {
      this.#armDeadline();
      return Reflect.apply(fn, undefined, args);
    });
  }

  #armDeadline() {
    const deadline = this.#rare?.deadline;
    if (deadline === undefined || deadline.armed) return;
    deadline.armed = true;
    // Called inside the context: the watchdog calls back in this async context.
    native.contextOnDeadline(this.#id, () => {
      if (this.#ended) return;
      const error = new DeadlineExceededError(this);
      deadline.controller.abort(error);
      if (deadline.onDeadline) deadline.onDeadline(this, error);
      else process.emitWarning(error.message, { type: 'AmbientWarning', code: 'AMBIENT_DEADLINE_EXCEEDED' });
    });
  }

  #runToEnd(fn, args) {
    let result;
    try {
      result = this.run(fn, ...args);
    } catch (err) {
      this.end('error');
      throw err;
    }
    if (result !== null && typeof result?.then === 'function') {
      return Promise.resolve(result).then(
        (value) => { this.end('ok'); return value; },
        (err) => { this.end('error'); throw err; });
    }
    this.end('ok');
    return result;
  }

  #scope(independent, options = {}, fn, args) {
    if (typeof options === 'function') {
      if (fn !== undefined || args.length > 0) args.unshift(fn);
      fn = options;
      options = {};
    }
    validateObject(options, 'options');
    const deadline = deadlineOptions(options);
    const name = optionalString(options, 'name');
    let id;
    try {
      id = native.contextBeginScope(this.#id, independent, name, deadline?.ms);
    } catch (err) {
      throw fromNative(err);
    }
    const scope = new RequestContext(CONSTRUCT, { id, kind: independent ? 'independent' : 'child', name }, deadline);
    if (fn === undefined) return scope;
    validateFunction(fn, 'fn');
    return scope.#runToEnd(fn, args);
  }

  /**
   * A child scope (a transaction, a sub-operation): same request and trace,
   * its own span, a copy of this context's fields. With fn, runs it inside
   * the scope and ends the scope after; without, returns the scope.
   */
  child(options, fn, ...args) {
    return this.#scope(false, options, fn, args);
  }

  /**
   * An independent scope: same request and trace, its own span, no inherited
   * fields, and an outcome of its own (an audit record that must survive the
   * transaction rolling back).
   */
  independent(options, fn, ...args) {
    return this.#scope(true, options, fn, args);
  }

  /**
   * Ends the context and returns {status, durationMs, endedAt}. The first
   * status given stands; later calls return the same outcome.
   */
  end(status = 'ok') {
    if (typeof status !== 'string') throw invalidArgType('status', 'string', status);
    const rare = this.#rareData();
    if (rare.endResult !== undefined) return rare.endResult;
    this.#ended = true;
    let durationMs;
    try {
      durationMs = native.contextEnd(this.#id, status);
      // -1: another handle (another thread) ended it first; ask how.
      rare.endResult = durationMs >= 0 ?
        { status, durationMs, endedAt: Date.now() } :
        native.contextOutcome(this.#id);
    } catch (err) {
      throw fromNative(err);
    }
    return rare.endResult;
  }

  /** A small structured-cloneable token for handing this context to a worker. */
  toToken() {
    const { requestId, traceId, spanId } = this.ids();
    return { type: TOKEN, id: this.#id, requestId, traceId, spanId };
  }

  toJSON() {
    return { ...this.ids(), name: this.name, fields: this.fields() };
  }
}

function deadlineOptions(options) {
  const { deadlineMs, onDeadline } = options;
  if (deadlineMs === undefined) {
    if (onDeadline !== undefined) throw invalidArgValue('options.onDeadline', onDeadline, 'needs options.deadlineMs');
    return undefined;
  }
  if (typeof deadlineMs !== 'number' || !(deadlineMs >= 0) || !Number.isFinite(deadlineMs)) {
    throw invalidArgValue('options.deadlineMs', deadlineMs, 'must be a non-negative finite number');
  }
  if (onDeadline !== undefined) validateFunction(onDeadline, 'options.onDeadline');
  return { ms: deadlineMs, onDeadline, armed: false, controller: new AbortController() };
}

module.exports = { RequestContext, DeadlineExceededError, isValidRequestId, traceparentOf };
