'use strict';
// The frame: every ambient variable (AsyncLocalStorage instance or
// AsyncContext.Variable) lives in one immutable frame, and one native
// AsyncLocalStorage (the carrier) propagates it. Node therefore tracks a single
// store however many variables exist: K variables cost what one does per
// promise, on async_hooks (Node <= 22) and AsyncContextFrame (Node >= 24).
//
// A frame is one binding (owner -> value) over a flat array of the others.
// In the flat array, variable number n owns positions 2n (owner) and 2n+1
// (value); a variable is bound when its owner position holds the variable
// itself, so an explicitly stored `undefined` and "never set" stay distinct
// without a sentinel. run() thus allocates one small object, not a copy of
// every binding: the flat array is shared, and only built (once per frame,
// memoized) when a different variable is bound on top of a frame.
//
// Frames never change once made, except through disable(), which mirrors
// Node 26 and clears the binding from the current frame in place.
const {
  AsyncLocalStorage: NativeAsyncLocalStorage,
  AsyncResource: NativeAsyncResource,
  executionAsyncResource,
} = require('node:async_hooks');

// A second copy of ambient in the same realm (two versions in node_modules)
// must share the carrier, the frame class and the slot numbering, or neither
// would see the other's contexts. Bump the version when the layout changes.
const SHARED_KEY = Symbol.for('ambient.frame.v2');

function createShared() {
  const carrier = new NativeAsyncLocalStorage();
  // Node <= 22 enables an async_hooks store lazily on first use, so promises
  // created before that carry no store and an enterWith() after an await could
  // leak into the caller (nodejs/node#53037). Enable it up front. Not with
  // AsyncContextFrame (Node >= 24): it needs no enabling, and a non-empty
  // frame at the top level would be captured by every server and socket, and
  // so be saved and restored (with a persistent handle) around every native
  // callback of the whole process.
  if (typeof carrier.kResourceStore === 'symbol') carrier.enterWith(carrier.getStore());

  class Frame {
    constructor(base, index, owner, value) {
      this.base = base;
      this.index = index;
      this.owner = owner;
      this.value = value;
      this.flat = undefined;
    }
  }

  const freeSlots = [];
  return {
    carrier,
    Frame,
    nextSlot: 0,
    freeSlots,
    // A frame holds its owners strongly, so once an owner is collected no live
    // frame mentions it and its slot can serve a new variable.
    slotRegistry: new FinalizationRegistry((index) => freeSlots.push(index)),
    // Bumped by disable(); run() uses it to notice an in-place clear.
    disables: 0,
  };
}

// The V8 major, for the few choices that follow the engine's collector or
// hidden classes rather than Node's API (lib/middleware.js,
// lib/request_context.js).
const v8Major = Number(process.versions.v8.split('.')[0]);

const shared = globalThis[SHARED_KEY] ??= createShared();
const { carrier, Frame } = shared;

// Where the current frame is read and written. With the async_hooks carrier
// (Node <= 22) that is a property of the current async resource, exactly what
// the native run() touches: one executionAsyncResource() call serves a whole
// run(). With AsyncContextFrame (Node >= 24, or 22 with the flag) it is the
// carrier's public API, behind a constant accessor object so both share the
// code below.
const framesLiveOnResources = typeof carrier.kResourceStore === 'symbol';
const STORE = framesLiveOnResources ? carrier.kResourceStore : Symbol('frame');
const holderOf = framesLiveOnResources ? executionAsyncResource : (() => {
  const holder = {
    get [STORE]() { return carrier.getStore(); },
    set [STORE](frame) { carrier.enterWith(frame); },
  };
  return () => holder;
})();

function allocateIndex(owner) {
  const index = shared.freeSlots.length > 0 ? shared.freeSlots.pop() : 2 * shared.nextSlot++;
  shared.slotRegistry.register(owner, index);
  return index;
}

function currentFrame() {
  return holderOf()[STORE];
}

// enterWith(): binds one variable in the current frame, with one lookup of
// where the frame lives.
function enterValue(owner, index, value) {
  const holder = holderOf();
  holder[STORE] = withValue(holder[STORE], owner, index, value);
}

function valueIn(frame, owner, index, defaultValue) {
  if (frame === undefined) return defaultValue;
  if (frame.owner === owner) return frame.value;
  const base = frame.base;
  return base !== undefined && base[index] === owner ? base[index + 1] : defaultValue;
}

// Every binding of `frame` as one flat array (shared: never mutate it).
function flatten(frame) {
  if (frame === undefined) return undefined;
  if (frame.flat !== undefined) return frame.flat;
  let flat = frame.base;
  if (frame.owner !== undefined) {
    flat = flat === undefined ? [] : flat.slice();
    flat[frame.index] = frame.owner;
    flat[frame.index + 1] = frame.value;
  }
  frame.flat = flat;
  return flat;
}

function withValue(frame, owner, index, value) {
  // Rebinding the frame's own variable reuses its base: the new binding
  // shadows any older one there.
  const base = frame === undefined ? undefined : frame.owner === owner ? frame.base : flatten(frame);
  return new Frame(base, index, owner, value);
}

const ABSENT = Symbol('absent');

function withoutValue(frame, owner, index) {
  if (valueIn(frame, owner, index, ABSENT) === ABSENT) return frame;
  const flat = flatten(frame).slice();
  flat[index] = undefined;
  flat[index + 1] = undefined;
  return new Frame(flat, 0, undefined, undefined);
}

// Runs fn with `frame` current and puts the caller's frame back afterwards,
// whole: AsyncContext.Snapshot#run and Variable#run semantics.
function runInFrame(frame, fn, thisArg, args) {
  const holder = holderOf();
  const prior = holder[STORE];
  holder[STORE] = frame;
  try {
    return Reflect.apply(fn, thisArg, args);
  } finally {
    holder[STORE] = prior;
  }
}

// AsyncLocalStorage#run semantics (Node 26): set this variable, and afterwards
// put back only this variable's prior binding, so an enterWith() of another
// instance inside fn stays in effect, as it does natively. Like Node, it skips
// the switch when the value is already the current one.
function runWithValue(owner, index, defaultValue, value, fn, args) {
  const holder = holderOf();
  const prior = holder[STORE];
  if (Object.is(value, valueIn(prior, owner, index, defaultValue))) {
    return Reflect.apply(fn, null, args);
  }
  const next = withValue(prior, owner, index, value);
  const disables = shared.disables;
  holder[STORE] = next;
  try {
    return Reflect.apply(fn, null, args);
  } finally {
    holder[STORE] = frameAfterRun(holder[STORE], next, prior, disables, owner, index);
  }
}

// The frame to go on with once a run() that entered `next` over `prior`
// returns, `current` being the frame fn left: `prior` itself unless fn
// entered or disabled another variable, whose change then stays.
function frameAfterRun(current, next, prior, disables, owner, index) {
  return current === next && shared.disables === disables ? prior : restoreBinding(current, prior, owner, index);
}

// `current` with the binding `source` had for this variable (or none).
function restoreBinding(current, source, owner, index) {
  const value = valueIn(source, owner, index, ABSENT);
  return value === ABSENT ? withoutValue(current, owner, index) : withValue(current, owner, index, value);
}

// disable(): clears the binding from the current frame itself, so every
// continuation that captured this frame loses it too (Node 26). The shared
// base is never touched: the frame gets its own copy without the binding.
function clearInCurrentFrame(owner, index) {
  const frame = currentFrame();
  if (frame === undefined) return;
  let changed = false;
  if (frame.owner === owner) {
    frame.owner = undefined;
    frame.value = undefined;
    changed = true;
  }
  const base = frame.base;
  if (base !== undefined && base[index] === owner) {
    const copy = base.slice();
    copy[index] = undefined;
    copy[index + 1] = undefined;
    frame.base = copy;
    changed = true;
  }
  if (changed) {
    frame.flat = undefined;
    shared.disables++;
  }
}

// fn, bound to the current frame: it runs with the ambient variables that
// are current now (a closure, no AsyncResource). Snapshot.wrap without the
// checks, for hot paths. A method rather than a function, so it is not a
// constructor (as the proposal's Snapshot.wrap() requires) and has no
// prototype object to make.
function runsInCurrentFrame(fn) {
  const frame = currentFrame();
  return {
    inFrame(...args) {
      return runInFrame(frame, fn, this, args);
    },
  }.inFrame;
}

// On AsyncContextFrame (Node >= 24) every enterWith() copies the frame's
// map, so a switch there and back through the carrier copies it twice. An
// AsyncResource captures the current AsyncContextFrame as it is, and its
// runInAsyncScope() switches to it and back without a copy. The two
// functions below use that on the request path; on async_hooks (Node <= 22)
// a switch is a property write, which is cheaper than a resource.

// fn, bound to the whole current async context: ambient's frame, and on
// Node >= 24 native stores too, as AsyncResource.bind() binds (which also
// defines properties on every bound function, a cost paid per listener
// here). For listeners that the request's own code adds.
const bindToCurrentContext = framesLiveOnResources ? runsInCurrentFrame : (fn) => {
  const resource = new NativeAsyncResource('ambient.bound');
  return function inContext(...args) {
    return resource.runInAsyncScope(fn, this, ...args);
  };
};

// runWithValue for a scope that ends with fn (RequestContext#run): the
// same, except that on Node >= 24 the caller's native stores come back as
// they were before fn, so a native enterWith() inside fn stays inside it.
// An enterWith() or disable() of another ambient variable inside fn is kept,
// as runWithValue keeps it.
let leftWith;
function enterAndApply(next, fn, args) {
  carrier.enterWith(next);
  try {
    return Reflect.apply(fn, null, args);
  } finally {
    leftWith = carrier.getStore();
  }
}

const runScopeWithValue = framesLiveOnResources ? runWithValue : (owner, index, defaultValue, value, fn, args) => {
  const prior = carrier.getStore();
  if (Object.is(value, valueIn(prior, owner, index, defaultValue))) {
    return Reflect.apply(fn, null, args);
  }
  const next = withValue(prior, owner, index, value);
  const disables = shared.disables;
  leftWith = next;
  try {
    return new NativeAsyncResource('ambient.scope').runInAsyncScope(enterAndApply, null, next, fn, args);
  } finally {
    // The caller's AsyncContextFrame is back, so its frame is `prior`.
    // leftWith is cleared, or it would keep the last context alive.
    const after = frameAfterRun(leftWith, next, prior, disables, owner, index);
    leftWith = undefined;
    if (after !== prior) carrier.enterWith(after);
  }
};

module.exports = {
  runsInCurrentFrame,
  bindToCurrentContext,
  runScopeWithValue,
  allocateIndex,
  currentFrame,
  valueIn,
  withValue,
  enterValue,
  runInFrame,
  runWithValue,
  clearInCurrentFrame,
  framesLiveOnResources,
  v8Major,
  STORE,
};
