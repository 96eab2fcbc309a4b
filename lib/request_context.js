'use strict';
// RequestContext: the structured context of one request (or job), kept in
// Rust so every thread of the process sees the same record, and carried in
// JS by one variable of the shared frame. Crossings into Rust happen at begin,
// end, field writes, and when another thread changed the fields; field reads
// are served from a JS cache that a shared version counter keeps honest.
const native = require('./native');
// Node's own clock object, not the global: the global is a lazy getter
// read on every use, and fake timers in tests replace it.
const { performance } = require('node:perf_hooks');
const { AsyncResource: NativeAsyncResource } = require('node:async_hooks');
const { allocateIndex, currentFrame, valueIn, runScopeWithValue, v8Major } = require('./frame');
const { invalidArgType, invalidArgValue, validateBoolean, validateFunction, validateObject } = require('./errors');
const { newRequestId } = require('./trace_context');

// The current context: one variable of the shared frame (lib/frame.js),
// used directly rather than through an AsyncLocalStorage, so run() and
// current() go through no extra layer and no rest-argument copy.
const CURRENT = Object.freeze({ name: 'ambient.RequestContext' });
const CURRENT_INDEX = allocateIndex(CURRENT);

function currentContext() {
  return valueIn(currentFrame(), CURRENT, CURRENT_INDEX, undefined);
}

function runAsCurrent(ctx, fn, args) {
  return runScopeWithValue(CURRENT, CURRENT_INDEX, undefined, ctx, fn, args);
}
const CONSTRUCT = Symbol('construct');
const TASK = 'ambient.task/v1';
const TOKEN = 'ambient.context/v1';

const settings = {
  lingerGraceMs: 30_000,
  warnOnUseAfterEnd: true,
  generateRequestId: undefined,
};

// Root contexts begin in JS, with ids from a pool that Rust fills in
// batches, and get a Rust record only once something needs one: a field, a
// worker, a scope, a deadline, or living long enough to be listed in flight
// (see publish()). A request that needs none of these never crosses into
// Rust for its context; its begin and end are counted in batches.
//
// A pool entry is the traceparent of a new sampled root,
// `00-{traceId(32)}-{spanId(16)}-03` (55 characters), then a request id
// (36); see src/ids.rs. A root's ids keep that layout (the offsets below),
// so the traceparent the middleware echoes and every id are slices of the
// pool: nothing is built per request.
const POOL_ENTRY = 91;
const TRACEPARENT_END = 55;
// Where each part of a traceparent lies, in a pool entry and in any valid
// W3C header alike (src/ids.rs names the same ranges).
const TRACE_ID_AT = 3;
const TRACE_ID_END = 35;
const SPAN_ID_AT = 36;
const SPAN_ID_END = 52;
const FLAGS_AT = 53;
// UUIDv7 request ids carry their pool's creation time: a pool older than
// this is replaced, so ids stay within it of when their request began.
const POOL_MAX_AGE_MS = 100;
const pool = { text: '', at: 0, end: 0, nextId: 0, bornAt: -Infinity, size: 8 };
// Wall clock minus performance.now(), re-read with every pool: a begin and
// an end then read one clock, not two, and wall times stay within a pool's
// age of Date.now().
let wallOffset = Date.now() - performance.now();

function refillPool(now) {
  // The batch follows the traffic: doubled when a pool is used up before it
  // ages, halved when it ages with entries left.
  if (pool.at >= pool.end) {
    if (now - pool.bornAt < POOL_MAX_AGE_MS) pool.size = Math.min(pool.size * 2, 1024);
  } else {
    pool.size = Math.max(pool.size >> 1, 4);
  }
  const text = native.contextReserve(pool.size);
  const newline = text.indexOf('\n');
  pool.nextId = +text.slice(0, newline);
  pool.text = text;
  pool.at = newline + 1;
  pool.end = text.length;
  pool.bornAt = now;
  wallOffset = Date.now() - performance.now();
}

// Takes one pool entry (now: performance.now()); its id is pool.nextId - 1
// afterwards.
function takePoolEntry(now) {
  if (pool.at >= pool.end || now - pool.bornAt > POOL_MAX_AGE_MS) refillPool(now);
  const at = pool.at;
  pool.at += POOL_ENTRY;
  pool.nextId++;
  return at;
}

// Counts for contexts without a record, sent to Rust in one crossing.
const unrecorded = { created: 0, ended: 0, released: 0, usesAfterEnd: 0 };
// Ended contexts without a record whose objects may still be alive, in a
// table of slots (typed arrays, reused through a free list) rather than an
// object or a map entry each: a short request then leaves nothing behind for
// the garbage collector to copy. Those still ENDED after the grace period are
// lingering. A slot is freed when its context is collected.
const SLOT_FREE = 0;
const SLOT_ENDED = 1;
// Given a record after it ended: Rust tracks it from then on.
const SLOT_ADOPTED = 2;
const endedSlots = { count: 0, ids: new Float64Array(64), endedAt: new Float64Array(64), state: new Uint8Array(64) };
const freeEndedSlots = [];

function takeEndedSlot(id, endedAt) {
  const table = endedSlots;
  let slot = freeEndedSlots.pop();
  if (slot === undefined) {
    slot = table.count++;
    if (slot === table.ids.length) {
      const grown = (Type, from) => {
        const to = new Type(from.length * 2);
        to.set(from);
        return to;
      };
      table.ids = grown(Float64Array, table.ids);
      table.endedAt = grown(Float64Array, table.endedAt);
      table.state = grown(Uint8Array, table.state);
    }
  }
  table.ids[slot] = id;
  table.endedAt[slot] = endedAt;
  table.state[slot] = SLOT_ENDED;
  return slot;
}

function lingeringSince(cutoff) {
  const { count, endedAt, state } = endedSlots;
  let lingering = 0;
  for (let slot = 0; slot < count; slot++) if (state[slot] === SLOT_ENDED && endedAt[slot] <= cutoff) lingering++;
  return lingering;
}

function flushCounts() {
  const { created, ended, released, usesAfterEnd } = unrecorded;
  if (created + ended + released + usesAfterEnd === 0) return;
  unrecorded.created = unrecorded.ended = unrecorded.released = unrecorded.usesAfterEnd = 0;
  native.contextCountUnrecorded(created, ended, released, usesAfterEnd);
}

// A record stays in Rust until its JS objects on every thread are gone.
// Collected ids are given back in one crossing per batch of finalizations.
// On V8 13.6 (Node 24) and older, the young-generation collector keeps a
// registered object alive, so a registered context was promoted with
// everything it references and waited for a full collection: about 1 µs
// per request. There the registry gets the context's lifetime token
// instead, an empty object that only the context references, so both
// become unreachable together and only the token is promoted. V8 14
// (Node 26) collects registered objects young, and the token's allocation
// would only add to the cost.
// Holdings: the id of a context with a record (ids start at 1), or minus
// one more than the ended slot of a root begun in JS that ended without one.
// A root is registered once it has a record or has ended, not at its begin:
// while open without a record, the list of open roots holds it, so it
// cannot be collected, and a short request pays for no registration until
// its end.
let released = [];
function flushReleased() {
  const ids = released;
  released = [];
  native.contextReleaseMany(Float64Array.from(ids));
  flushCounts();
}
const registerTokens = v8Major < 14;
const handles = new FinalizationRegistry((holding) => {
  let id = holding;
  if (holding < 0) {
    const slot = -holding - 1;
    const state = endedSlots.state[slot];
    id = endedSlots.ids[slot];
    endedSlots.state[slot] = SLOT_FREE;
    freeEndedSlots.push(slot);
    if (state === SLOT_ENDED) {
      unrecorded.released++;
      return;
    }
  }
  if (released.push(id) === 1) queueMicrotask(flushReleased);
});
let versions;

// Roots begun in JS that are open and have no record, in no order (each
// knows its slot, so ending one is a swap with the last). While there are
// any, a timer checks every PUBLISH_AFTER_MS and gives those open that long
// a record, so every thread sees them in flight. A short request is removed
// when it ends and never waits for the timer.
const PUBLISH_AFTER_MS = 10;
const openRoots = [];
let publishArmed = false;
let adoptIfOlder;
let unlist;

// The timer is armed from inside requests but must be made outside them,
// or it would keep a request's frame alive until it fires. It is made in
// the async context ambient was loaded in (at startup, as a rule: outside
// every request), entered through a resource made then. Leaving that
// resource puts the caller's AsyncContextFrame back as it was; writing the
// carrier there and back would leave a copy, and at the top level a
// non-empty frame, which every server and socket made afterwards would
// capture (see createShared in lib/frame.js).
const outsideRequests = new NativeAsyncResource('ambient.publish');

function schedulePublish() {
  setTimeout(publishTick, PUBLISH_AFTER_MS).unref();
}

function armPublish() {
  publishArmed = true;
  outsideRequests.runInAsyncScope(schedulePublish);
}

function publishTick() {
  publishArmed = false;
  adoptOlderThan(performance.now() - PUBLISH_AFTER_MS);
  flushCounts();
  if (openRoots.length > 0) armPublish();
}

// Backwards: adopting one moves the last entry, already visited, into its
// slot. This runs from a timer, where a throw would end the process: a
// context that cannot get a record is left unlisted instead (it still
// works, and its lines still carry its ids).
function adoptOlderThan(cutoff) {
  for (let i = openRoots.length - 1; i >= 0; i--) {
    if (i >= openRoots.length) continue;
    const ctx = openRoots[i];
    try {
      adoptIfOlder(ctx, cutoff);
    } catch {
      unlist(ctx);
    }
  }
}

// Gives every open context of this thread that has no record one (stats()
// and inFlight() ask for exact figures), and sends the counts.
function publish() {
  adoptOlderThan(Infinity);
  flushCounts();
}

let lineIdentityOf;
let elapsedOf;
let endAt;
// The wall-clock time of a performance.now() reading, in ms: one clock read
// serves a request's end and its access line.
const wallTimeAt = (now) => wallOffset + now;
let beginRoot;
let withDeadline;

const FLAG_SAMPLED = 1;
const FLAG_RANDOM = 2;
const GENERATED = 0x100;
const KIND_SHIFT = 9;
const KINDS = ['root', 'child', 'independent'];
const ENDED = 0x800;
const HEX_BYTE = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

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

/**
 * A request id for a context about to begin, as one begun without an id
 * gets: from configure()'s generateRequestId, or a new UUIDv7.
 */
function generateRequestId() {
  return settings.generateRequestId ? checkRequestId(settings.generateRequestId(), 'generated request id') : newRequestId();
}

// Keys each log line writes itself. A field of the same name would follow
// them in the line, and JSON readers keep the last of two equal keys: a
// field could pass for the request id or the level.
const LINE_KEYS = new Set(['level', 'time', 'msg', 'requestId', 'traceId', 'spanId']);

function checkFieldKey(key, name = 'key') {
  if (typeof key !== 'string') throw invalidArgType(name, 'string', key);
  if (key.length === 0) throw invalidArgValue(name, key, 'must not be empty');
  if (LINE_KEYS.has(key)) throw invalidArgValue(name, key, `is a key every log line writes itself (${[...LINE_KEYS].join(', ')})`);
}

function checkCount(value, name) {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw invalidArgValue(name, value, 'must be a non-negative integer');
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
  if (err && /does not exist/.test(err.message)) return contextGone(err.message);
  return err;
}

function contextGone(message) {
  const gone = new Error(message);
  gone.code = 'ERR_AMBIENT_CONTEXT_RELEASED';
  return gone;
}

function fieldEntries(fields) {
  if (fields === undefined) return undefined;
  validateObject(fields, 'options.fields');
  const entries = Object.entries(fields);
  for (const [key, value] of entries) {
    checkFieldKey(key, 'options.fields');
    checkFieldValue(value);
  }
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

// The identity string of a record made in Rust (src/context.rs,
// `compact`), read when a context with a record is asked for its ids:
// id;startedAtMs;flags;traceId(32);spanId(16);parentSpanId(16 or 0);requestId\ntracestate
function parseIdentity(identity) {
  const a = identity.indexOf(';');
  const b = identity.indexOf(';', a + 1);
  const trace = identity.indexOf(';', b + 1) + 1;
  const parent = trace + 33 + 17;
  const parentEnd = identity.indexOf(';', parent);
  const newline = identity.indexOf('\n', parentEnd);
  return {
    startedAt: +identity.slice(a + 1, b),
    ids: idsOf(identity.slice(trace, trace + 32), identity.slice(trace + 33, trace + 49), +identity.slice(b + 1, trace - 1),
      identity.slice(parentEnd + 1, newline)),
    parentSpanId: parentEnd === parent ? undefined : identity.slice(parent, parentEnd),
    tracestate: identity.slice(newline + 1),
  };
}

// A `traceparent` from ids this module holds (already valid), unlike
// traceContext.formatTraceparent, which checks what users give it.
function traceparent(traceId, spanId, flags) {
  return `00-${traceId}-${spanId}-${HEX_BYTE[flags & 0xff]}`;
}

// A context's ids in the layout of a pool entry: its traceparent, then its
// request id.
function idsOf(traceId, spanId, flags, requestId) {
  return `${traceparent(traceId, spanId, flags)}${requestId}`;
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
  #name;
  // Its traceparent, then its request id, as one string (see POOL_ENTRY):
  // for a root begun in JS a slice of the id pool, which the logger hands
  // to Rust as it is.
  #ids;
  // Bits 0-7: the W3C trace flags; 8: the request id came from the pool
  // (Rust keeps it as a UUID); 9-10: the kind; 11: ended. One small integer
  // rather than four fields keeps an open context small.
  #flags;
  // performance.now() at the begin, for the duration of a root begun in JS.
  #start;
  // What few contexts need, in one object made on demand so an open context
  // stays small: `info` (a context attached from another thread),
  // `parentSpanId`, `tracestate` and `baggage` (raw headers, until Rust has
  // the record), `outgoingBaggage` (the header for outgoing calls, once
  // formatted), `deadline`, `parentSignal` (a child scope's parent's
  // deadline signal), `signal` (both signals in one) and `warned`.
  #rare;
  // The field cache, [key0, value0, key1, value1, ...]: a context holds a
  // few fields, and a flat array is both smaller than a Map and as fast to
  // search at that size. Made by the first read of a recorded context.
  #fields;
  #seen;
  #outcome;
  // Index in openRoots, -1 when not there.
  #slot = -1;
  // Its slot in endedSlots, once it ended without a record.
  #endedSlot = -1;
  // See `handles`: registered in the context's place before V8 14.
  #lifetime;

  constructor(token, source) {
    if (token !== CONSTRUCT) {
      throw new TypeError('RequestContext has no public constructor; use RequestContext.run() or RequestContext.begin()');
    }
    // A root begun in JS: beginRoot() sets its fields, with no object in
    // between.
    if (source === undefined) return;
    this.#name = source.name;
    const info = source.info;
    versions ??= native.contextVersions();
    if (info !== undefined) {
      // Attached from another thread: everything came as one object.
      this.#rareData().info = info;
      this.#id = info.id;
      this.#name = info.name ?? undefined;
      this.#flags = info.traceFlags | (KINDS.indexOf(info.kind) << KIND_SHIFT) | (info.ended ? ENDED : 0);
      this.#fields = flattenFields(info.fields);
      this.#seen = info.version;
    } else {
      // A scope, made in Rust: its ids are read from there when asked.
      this.#id = source.id;
      this.#flags = source.flags | (KINDS.indexOf(source.kind) << KIND_SHIFT);
      // A child starts with its parent's fields, which this cache has not
      // seen yet: force the first read to fetch them.
      this.#seen = source.kind === 'child' ? -1 : versions[this.#id & VERSION_MASK];
    }
    this.#registerLifetime(this.#id);
  }

  // Once per context: at its construction with a record, at its adoption,
  // or at its end without one.
  #registerLifetime(holding) {
    handles.register(registerTokens ? (this.#lifetime = {}) : this, holding);
  }

  // Whether the Rust store holds a record for it: always, except for a root
  // begun in JS that nothing has needed one for yet (it alone keeps #ids).
  get #isRecorded() {
    return this.#ids === undefined;
  }

  #rareData() {
    return this.#rare ??= {
      info: undefined, identity: undefined, parentSpanId: undefined, tracestate: undefined, baggage: undefined, outgoingBaggage: undefined,
      deadline: undefined, parentSignal: undefined, signal: undefined, warned: false,
    };
  }

  // A recorded context's ids, start and tracestate live in Rust. They never
  // change, so the first read from JS keeps them: only contexts whose ids
  // JS reads pay for the copy, and they pay one crossing, not one a read.
  #identity() {
    const rare = this.#rareData();
    return rare.identity ??= parseIdentity(native.contextIdentity(this.#id));
  }

  static {
    lineIdentityOf = (ctx) => (ctx.#isRecorded ? null : ctx.#ids);
    // How long ago it began, in ms (the middleware's access line).
    elapsedOf = (ctx, now) => (ctx.#start !== undefined ? now - ctx.#start : native.contextElapsed(ctx.#id));
    adoptIfOlder = (ctx, cutoff) => {
      if (ctx.#start <= cutoff) ctx.#adopt();
    };
    unlist = (ctx) => {
      const slot = ctx.#slot;
      if (slot < 0) return;
      const last = openRoots.pop();
      if (last !== ctx) {
        openRoots[slot] = last;
        last.#slot = slot;
      }
      ctx.#slot = -1;
    };
    endAt = (ctx, status, now) => ctx.#end(status, now);
  }

  // Gives this root begun in JS its Rust record (once).
  #adopt() {
    if (this.#isRecorded) return;
    const rare = this.#rare;
    const outcome = this.#outcome;
    let version;
    try {
      version = native.contextAdopt(this.#id, this.#ids, (this.#flags & GENERATED) !== 0, this.#flags & 0xff, wallOffset + this.#start,
        performance.now() - this.#start, rare?.parentSpanId ?? null, rare?.tracestate ?? null, rare?.baggage ?? null,
        this.#name ?? null, rare?.deadline?.ms ?? null, outcome?.status ?? null, outcome?.durationMs ?? null,
        outcome?.endedAt ?? null);
    } catch (err) {
      throw fromNative(err);
    }
    versions ??= native.contextVersions();
    this.#seen = version;
    unlist(this);
    // Rust has the ids now; an open context keeps no copy until JS reads
    // them (#identity).
    this.#ids = undefined;
    this.#start = undefined;
    // From now on Rust tracks whether it lingers, and finalization releases
    // the record.
    if (this.#endedSlot >= 0) endedSlots.state[this.#endedSlot] = SLOT_ADOPTED;
    else this.#registerLifetime(this.#id);
    if (rare !== undefined) {
      // Rust has normalized them; read back when asked.
      rare.tracestate = undefined;
      rare.baggage = undefined;
      const deadline = rare.deadline;
      const waiting = deadline?.waiting;
      if (waiting !== undefined) {
        deadline.waiting = undefined;
        // Armed by run() while it had no record; an ended one no longer
        // needs watching.
        if (outcome === undefined) waiting.runInAsyncScope(() => this.#watchDeadline(deadline));
      }
    }
  }

  /**
   * Begins a context without entering it; enter with ctx.run(fn) and finish
   * with ctx.end(status).
   */
  static begin(options = {}) {
    validateObject(options, 'options');
    const requestId = options.requestId;
    if (requestId !== undefined) checkRequestId(requestId, 'options.requestId');
    const deadline = deadlineOptions(options);
    const name = optionalString(options, 'name');
    const fields = fieldEntries(options.fields);
    const sampled = options.sampled;
    if (sampled !== undefined) validateBoolean(sampled, 'options.sampled');
    const ctx = beginRoot(requestId, optionalString(options, 'traceparent'), optionalString(options, 'tracestate'),
      optionalString(options, 'baggage'), name, sampled !== false);
    if (deadline !== undefined) withDeadline(ctx, deadline);
    if (fields !== undefined) ctx.#setInitial(fields);
    return ctx;
  }

  static {
    // The watchdog works on the record; run() arms it. Most requests end
    // long before their deadline, and a record and a watchdog entry cost
    // about 6 µs a request, so a root waits for one until publish() finds
    // it still open (after PUBLISH_AFTER_MS); only a deadline sooner than
    // that gets its record now.
    withDeadline = (ctx, deadline) => {
      ctx.#rareData().deadline = deadline;
      if (deadline.ms < PUBLISH_AFTER_MS) ctx.#adopt();
    };
    // Begins a root in JS, headers already type-checked (the middleware's
    // path). An invalid traceparent starts a new trace, as W3C asks.
    beginRoot = (requestId, traceparent, tracestate, baggage, name, sampled) => {
      if (requestId === undefined && settings.generateRequestId) {
        checkRequestId(requestId = settings.generateRequestId(), 'generated request id');
      }
      const now = performance.now();
      const at = takePoolEntry(now);
      const text = pool.text;
      let ids;
      let flags = sampled ? FLAG_SAMPLED | FLAG_RANDOM : FLAG_RANDOM;
      let parentSpanId;
      if (traceparent !== undefined) {
        const checked = native.checkTraceparent(traceparent);
        if (checked >= 0) {
          const offset = Math.floor(checked / 256);
          flags = checked & 0xff;
          parentSpanId = traceparent.slice(offset + SPAN_ID_AT, offset + SPAN_ID_END);
          // The caller's trace, with a new span of this context's own.
          ids = idsOf(traceparent.slice(offset + TRACE_ID_AT, offset + TRACE_ID_END), text.slice(at + SPAN_ID_AT, at + SPAN_ID_END), flags,
            requestId ?? text.slice(at + TRACEPARENT_END, at + POOL_ENTRY));
        } else {
          tracestate = undefined;
        }
      } else {
        tracestate = undefined;
      }
      if (ids === undefined && sampled && requestId === undefined) {
        // The middleware's common case: the pool entry as it is (entries
        // are sampled roots, flags 03).
        ids = text.slice(at, at + POOL_ENTRY);
      } else if (ids === undefined) {
        const own = sampled ? text.slice(at, at + TRACEPARENT_END) : text.slice(at, at + FLAGS_AT) + HEX_BYTE[flags];
        ids = own + (requestId ?? text.slice(at + TRACEPARENT_END, at + POOL_ENTRY));
      }
      const ctx = new RequestContext(CONSTRUCT, undefined);
      ctx.#id = pool.nextId - 1;
      ctx.#ids = ids;
      // Bit 8: the request id came from the pool (Rust keeps it as a UUID).
      ctx.#flags = requestId === undefined ? flags | GENERATED : flags;
      ctx.#start = now;
      ctx.#name = name;
      if (parentSpanId !== undefined || tracestate || baggage) {
        const rare = ctx.#rareData();
        rare.parentSpanId = parentSpanId;
        if (tracestate) rare.tracestate = tracestate;
        if (baggage) rare.baggage = baggage;
      }
      unrecorded.created++;
      ctx.#slot = openRoots.push(ctx) - 1;
      if (!publishArmed) armPublish();
      return ctx;
    };
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
    return currentContext();
  }

  /** The current context; throws ERR_AMBIENT_NO_CONTEXT outside one. */
  static require() {
    const ctx = currentContext();
    if (ctx === undefined) throw noContextError('RequestContext.require()');
    return ctx;
  }

  /**
   * A context handed over from another thread (see toToken()). Throws
   * ERR_AMBIENT_CONTEXT_RELEASED once nothing holds the context any more, or
   * when the token comes from another process.
   */
  static fromToken(token) {
    checkToken(token);
    let ctx;
    try {
      ctx = new RequestContext(CONSTRUCT, { info: native.contextAttach(token.id) });
    } catch (err) {
      throw fromNative(err);
    }
    // Ids count up from 1 in every process: a token that crossed processes
    // (a job queue) can name another request's record here.
    if (ctx.spanId !== token.spanId || ctx.requestId !== token.requestId) {
      // Another request's ids stay out of the message.
      throw contextGone(`context ${token.id} of this process is not the token's (request ${token.requestId}): the token comes from another process`);
    }
    return ctx;
  }

  /**
   * Runs fn inside the context a token stands for. Once that context has
   * ended (a job handled after its request responded), fn runs in a
   * follow-up context instead, ended when fn settles: the same request id,
   * a new span of the same trace (its parent the token's span), and the
   * tracestate, baggage and fields the context had when the token was made.
   */
  static runWithToken(token, fn, ...args) {
    validateFunction(fn, 'fn');
    let ctx;
    try {
      ctx = RequestContext.fromToken(token);
    } catch (err) {
      if (err.code !== 'ERR_AMBIENT_CONTEXT_RELEASED') throw err;
    }
    if (ctx !== undefined && !ctx.ended) return ctx.run(fn, ...args);
    return RequestContext.run(followUpOptions(token), fn, ...args);
  }

  /**
   * Wraps task data for a worker (postMessage, workerData or a pool such as
   * piscina) so that RequestContext.handleTask() on the other side runs the
   * task in the current context.
   */
  static task(data) {
    return { type: TASK, context: currentContext()?.toToken(), data };
  }

  /**
   * Wraps a task handler: unwraps RequestContext.task() data and runs the
   * handler in its context, or in a follow-up once that has ended (see
   * runWithToken()).
   */
  static handleTask(handler) {
    validateFunction(handler, 'handler');
    return function handleContextTask(task, ...rest) {
      if (task === null || typeof task !== 'object' || task.type !== TASK) return handler.call(this, task, ...rest);
      if (task.context === undefined) return handler.call(this, task.data, ...rest);
      return RequestContext.runWithToken(task.context, () => handler.call(this, task.data, ...rest));
    };
  }

  /**
   * Counters for the whole process (all threads). Another thread's contexts
   * are counted within PUBLISH_AFTER_MS of their begin; this thread's at once.
   */
  static stats() {
    publish();
    const stats = native.contextStats(settings.lingerGraceMs);
    stats.lingering += lingeringSince(Date.now() - settings.lingerGraceMs);
    return stats;
  }

  /** Open contexts, oldest first. */
  static inFlight(options = {}) {
    validateObject(options, 'options');
    const { limit = 100, maxFields = 16 } = options;
    // Rust takes both as u32: a negative or fractional number would wrap.
    checkCount(limit, 'options.limit');
    checkCount(maxFields, 'options.maxFields');
    publish();
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
      checkCount(value, `options.${name}`);
    }
    return { ...native.contextConfigure(limits), lingerGraceMs: settings.lingerGraceMs, warnOnUseAfterEnd: settings.warnOnUseAfterEnd };
  }

  get id() { return this.#id; }
  get kind() { return KINDS[this.#flags >> KIND_SHIFT & 3]; }
  get name() { return this.#name; }
  // The ids in the layout of a pool entry: kept by a root until it has a
  // record, then read from Rust (or from what an attach brought).
  #idsText() {
    if (this.#ids !== undefined) return this.#ids;
    const info = this.#rare?.info;
    if (info !== undefined) return idsOf(info.traceId, info.spanId, this.#flags, info.requestId);
    return this.#identity().ids;
  }

  get requestId() { return this.#idsText().slice(TRACEPARENT_END); }
  get traceId() { return this.#idsText().slice(TRACE_ID_AT, TRACE_ID_END); }
  get spanId() { return this.#idsText().slice(SPAN_ID_AT, SPAN_ID_END); }
  get parentSpanId() {
    const rare = this.#rare;
    if (rare?.info !== undefined) return rare.info.parentSpanId ?? undefined;
    if (!this.#isRecorded || (this.#flags >> KIND_SHIFT & 3) === 0) return rare?.parentSpanId;
    return this.#identity().parentSpanId;
  }
  get traceFlags() { return this.#flags & 0xff; }
  get tracestate() {
    const rare = this.#rare;
    if (rare?.info !== undefined) return rare.info.tracestate;
    if (!this.#isRecorded) {
      // The raw header, normalized by the Rust codec once there is a record.
      if (rare?.tracestate === undefined) return '';
      this.#adopt();
    }
    return this.#identity().tracestate;
  }
  get startedAt() {
    if (!this.#isRecorded) return wallOffset + this.#start;
    return this.#rare?.info?.startedAt ?? this.#identity().startedAt;
  }
  get ended() { return (this.#flags & ENDED) !== 0; }
  /**
   * An AbortSignal that aborts when the deadline passes: this context's
   * own, or, for a child scope, its parent's (undefined without either).
   * A transaction begun in a request then stops at the request's deadline.
   */
  get signal() {
    const rare = this.#rare;
    if (rare === undefined) return undefined;
    const own = rare.deadline?.controller.signal;
    if (rare.parentSignal === undefined) return own;
    if (own === undefined) return rare.parentSignal;
    return rare.signal ??= AbortSignal.any([own, rare.parentSignal]);
  }

  /** Baggage entries, as an object of key to value. */
  get baggage() {
    return Object.fromEntries(this.#baggageEntries().map(({ key, value }) => [key, value]));
  }

  // A root begun in JS has baggage only from its raw header until Rust has
  // its record, so without one it has none, and Rust need not be asked.
  get #surelyWithoutBaggage() {
    return !this.#isRecorded && this.#rare?.baggage === undefined;
  }

  // { key, value, properties } each; the Rust codec normalized them, so
  // they are read from the record once there is one.
  #baggageEntries() {
    const rare = this.#rare;
    if (rare?.info !== undefined) return rare.info.baggage;
    if (this.#surelyWithoutBaggage) return [];
    this.#adopt();
    try {
      return native.contextBaggage(this.#id);
    } catch (err) {
      throw fromNative(err);
    }
  }

  /**
   * The `baggage` header for a call leaving this context, as the Rust codec
   * normalized it (an incoming header is never passed on raw); '' without
   * baggage.
   */
  outgoingBaggage() {
    if (this.#surelyWithoutBaggage) return '';
    // A context's baggage never changes: formatted once, for every call.
    const cached = this.#rare?.outgoingBaggage;
    if (cached !== undefined) return cached;
    this.#adopt();
    let header;
    try {
      header = native.contextOutgoingBaggage(this.#id);
    } catch (err) {
      throw fromNative(err);
    }
    this.#rareData().outgoingBaggage = header;
    return header;
  }

  /** requestId, traceId, spanId, parentSpanId and traceFlags in one read. */
  ids() {
    // A recorded context reads them from Rust once, all five together.
    const ids = this.#idsText();
    return {
      requestId: ids.slice(TRACEPARENT_END),
      traceId: ids.slice(TRACE_ID_AT, TRACE_ID_END),
      spanId: ids.slice(SPAN_ID_AT, SPAN_ID_END),
      parentSpanId: this.parentSpanId,
      traceFlags: this.#flags & 0xff,
    };
  }

  /** This context's own span, as a `traceparent` header (to echo on a response). */
  get traceparent() {
    return this.#idsText().slice(0, TRACEPARENT_END);
  }

  /** A `traceparent` for a call leaving this context: a new child span. */
  outgoingTraceparent() {
    // A new span id from the pool (its other ids go unused).
    const at = takePoolEntry(performance.now());
    return traceparent(this.traceId, pool.text.slice(at + SPAN_ID_AT, at + SPAN_ID_END), this.#flags);
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
    // Without a record nothing has set a field.
    if (!this.#isRecorded) return undefined;
    this.#sync();
    const fields = this.#fields;
    if (fields !== undefined) {
      for (let i = 0; i < fields.length; i += 2) if (fields[i] === key) return fields[i + 1];
    }
    return undefined;
  }

  has(key) {
    if (!this.#isRecorded) return false;
    this.#sync();
    return this.#fields !== undefined && this.#fields.indexOf(key) % 2 === 0;
  }

  /** All fields, as a plain object. */
  fields() {
    const out = {};
    if (!this.#isRecorded) return out;
    this.#sync();
    const fields = this.#fields;
    if (fields !== undefined) {
      for (let i = 0; i < fields.length; i += 2) {
        // An assignment to "__proto__" would set the prototype instead.
        if (fields[i] === '__proto__') Object.defineProperty(out, '__proto__', { value: fields[i + 1], enumerable: true, writable: true, configurable: true });
        else out[fields[i]] = fields[i + 1];
      }
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
    checkFieldValue(value);
    this.#adopt();
    const id = this.#id;
    let result;
    try {
      switch (typeof value) {
        case 'string': result = native.contextSetString(id, key, value); break;
        case 'number': result = native.contextSetNumber(id, key, value); break;
        case 'boolean': result = native.contextSetBoolean(id, key, value); break;
        case 'bigint': result = native.contextSetBigInt(id, key, value); break;
        default: result = native.contextSetNull(id, key);
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
    this.#adopt();
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
    if ((this.#flags & ENDED) === 0) return;
    if (!this.#isRecorded) {
      unrecorded.usesAfterEnd++;
    } else {
      try {
        native.contextNoteUseAfterEnd(this.#id);
      } catch {
        // Released already: nothing left to count against.
      }
    }
    this.#usedAfterEnd(what);
  }

  /** Runs fn with this context current. */
  run(fn, ...args) {
    validateFunction(fn, 'fn');
    if (this.#rare?.deadline !== undefined) this.#armDeadline();
    return runAsCurrent(this, fn, args);
  }

  #armDeadline() {
    const deadline = this.#rare.deadline;
    if (deadline.armed) return;
    deadline.armed = true;
    if (this.#isRecorded) {
      this.#watchDeadline(deadline);
      return;
    }
    // No record yet (see withDeadline): #adopt() tells the watchdog, from
    // inside this resource, which keeps the caller's async context for it.
    deadline.waiting = new NativeAsyncResource('ambient.deadline');
  }

  // Run in this context: the watchdog calls back in the async context the
  // callback was registered in.
  #watchDeadline(deadline) {
    runAsCurrent(this, () => native.contextOnDeadline(this.#id, () => {
      if ((this.#flags & ENDED) !== 0) return;
      const error = new DeadlineExceededError(this);
      deadline.controller.abort(error);
      if (deadline.onDeadline) deadline.onDeadline(this, error);
      else process.emitWarning(error.message, { type: 'AmbientWarning', code: 'AMBIENT_DEADLINE_EXCEEDED' });
    }), []);
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
    this.#adopt();
    let id;
    try {
      id = native.contextBeginScope(this.#id, independent, name, deadline?.ms);
    } catch (err) {
      throw fromNative(err);
    }
    const scope = new RequestContext(CONSTRUCT, { id, kind: independent ? 'independent' : 'child', name, flags: this.#flags & 0xff });
    if (deadline !== undefined) scope.#rareData().deadline = deadline;
    // An independent scope has an outcome of its own (an audit record that
    // must be written), so the request's deadline does not stop it.
    const parentSignal = independent ? undefined : this.signal;
    if (parentSignal !== undefined) scope.#rareData().parentSignal = parentSignal;
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
    return this.#end(status, undefined);
  }

  // `now`: performance.now() when the caller has just read it.
  #end(status, now) {
    if (this.#outcome !== undefined) return this.#outcome;
    this.#flags |= ENDED;
    if (!this.#isRecorded) {
      unlist(this);
      now ??= performance.now();
      const endedAt = wallOffset + now;
      this.#outcome = { status, durationMs: now - this.#start, endedAt };
      unrecorded.ended++;
      const slot = takeEndedSlot(this.#id, endedAt);
      this.#endedSlot = slot;
      this.#registerLifetime(-slot - 1);
      return this.#outcome;
    }
    try {
      const durationMs = native.contextEnd(this.#id, status);
      // -1: another handle (another thread) ended it first; ask how.
      this.#outcome = durationMs >= 0 ?
        { status, durationMs, endedAt: Date.now() } :
        native.contextOutcome(this.#id);
    } catch (err) {
      throw fromNative(err);
    }
    return this.#outcome;
  }

  /** A small structured-cloneable token for handing this context to a worker. */
  toToken() {
    this.#adopt();
    return {
      type: TOKEN, id: this.#id, requestId: this.requestId, traceId: this.traceId, spanId: this.spanId,
      // For a follow-up, should the context have ended when the token is used.
      traceFlags: this.traceFlags, tracestate: this.tracestate, baggage: this.#baggageEntries(), fields: this.fields(),
    };
  }

  toJSON() {
    return { ...this.ids(), name: this.name, fields: this.fields() };
  }
}

function checkToken(token) {
  if (token === null || typeof token !== 'object' || token.type !== TOKEN || typeof token.id !== 'number' ||
    typeof token.requestId !== 'string' || typeof token.spanId !== 'string') {
    throw invalidArgValue('token', token, 'is not a context token from RequestContext#toToken()');
  }
}

function followUpOptions(token) {
  const { requestId, traceId, spanId, traceFlags, tracestate, baggage, fields } = token;
  return {
    requestId,
    traceparent: traceparent(traceId, spanId, traceFlags),
    tracestate: tracestate || undefined,
    baggage: baggage?.length > 0 ? native.formatBaggage(baggage) : undefined,
    fields,
    name: 'follow-up',
  };
}

// options.deadlineMs and options.onDeadline, checked: { ms, onDeadline }, or
// undefined without a deadline. The middleware checks them once and makes
// each request's deadline from them.
function deadlineSettings(options) {
  const { deadlineMs, onDeadline } = options;
  if (deadlineMs === undefined) {
    if (onDeadline !== undefined) throw invalidArgValue('options.onDeadline', onDeadline, 'needs options.deadlineMs');
    return undefined;
  }
  // At most what AbortSignal.timeout() takes: 2^32 - 1 ms, about 49.7 days.
  if (typeof deadlineMs !== 'number' || !(deadlineMs >= 0 && deadlineMs <= 0xffffffff)) {
    throw invalidArgValue('options.deadlineMs', deadlineMs, 'must be a number of milliseconds from 0 to 4294967295');
  }
  if (onDeadline !== undefined) validateFunction(onDeadline, 'options.onDeadline');
  return { ms: deadlineMs, onDeadline };
}

function deadlineOptions(options) {
  const checked = deadlineSettings(options);
  return checked === undefined ? undefined : newDeadline(checked.ms, checked.onDeadline);
}

// One context's deadline: its own controller, armed once.
function newDeadline(ms, onDeadline) {
  return { ms, onDeadline, armed: false, waiting: undefined, controller: new AbortController() };
}

module.exports = {
  RequestContext, DeadlineExceededError, isValidRequestId, generateRequestId, beginRoot, lineIdentityOf, elapsedOf, endAt, wallTimeAt,
  deadlineSettings, newDeadline, withDeadline,
};
