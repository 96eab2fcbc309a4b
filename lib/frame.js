'use strict';
// The frame: every ambient variable (AsyncLocalStorage instance or
// AsyncContext.Variable) lives in one immutable array, and one native
// AsyncLocalStorage (the carrier) propagates that array. Node therefore tracks
// a single store however many variables exist: K variables cost what one does
// per promise, on async_hooks (Node <= 22) and AsyncContextFrame (Node >= 24).
//
// Layout: variable number n owns positions 2n (owner) and 2n+1 (value). A
// variable is set in a frame when frame[2n] is the variable itself, so an
// explicitly stored `undefined` and "never set" stay distinct (defaultValue
// semantics) without a sentinel. Frames are copied, never changed, except by
// disable(), which mirrors Node 26 and clears the current frame in place.
const {
  AsyncLocalStorage: NativeAsyncLocalStorage,
  executionAsyncResource,
} = require('node:async_hooks');

// A second copy of ambient in the same realm (two versions in node_modules)
// must share the carrier and the slot numbering, or neither would see the
// other's contexts.
const SHARED_KEY = Symbol.for('ambient.frame.v1');

function createShared() {
  const carrier = new NativeAsyncLocalStorage();
  // Node <= 22 enables an async_hooks store lazily on first use, so promises
  // created before that carry no store and an enterWith() after an await could
  // leak into the caller (nodejs/node#53037). Enable it up front.
  carrier.enterWith(carrier.getStore());
  const freeSlots = [];
  return {
    carrier,
    nextSlot: 0,
    freeSlots,
    // A frame holds its owners strongly, so once an owner is collected no live
    // frame mentions it and its slot can serve a new variable.
    slotRegistry: new FinalizationRegistry((index) => freeSlots.push(index)),
    // Bumped by disable(); run() uses it to notice an in-place clear.
    disables: 0,
  };
}

const shared = globalThis[SHARED_KEY] ??= createShared();
const { carrier } = shared;

// Where the current frame is read and written. With the async_hooks carrier
// (Node <= 22) that is a property of the current async resource, exactly what
// the native run() touches: one executionAsyncResource() call serves a whole
// run(). With AsyncContextFrame (Node >= 24, or 22 with the flag) it is the
// carrier's public API, behind a constant accessor object so both share the
// code below.
const STORE = typeof carrier.kResourceStore === 'symbol' ? carrier.kResourceStore : Symbol('frame');
const holderOf = STORE === carrier.kResourceStore ? executionAsyncResource : (() => {
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

function enterFrame(frame) {
  holderOf()[STORE] = frame;
}

function valueIn(frame, owner, index, defaultValue) {
  return frame !== undefined && frame[index] === owner ? frame[index + 1] : defaultValue;
}

function withValue(frame, owner, index, value) {
  const next = frame === undefined ? [] : frame.slice();
  next[index] = owner;
  next[index + 1] = value;
  return next;
}

// `source`'s binding for this variable (or its absence), copied into `frame`.
function withBindingOf(frame, source, owner, index) {
  if (source !== undefined && source[index] === owner) {
    return withValue(frame, owner, index, source[index + 1]);
  }
  if (frame === undefined || frame[index] !== owner) return frame;
  const next = frame.slice();
  next[index] = undefined;
  next[index + 1] = undefined;
  return next;
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
    const current = holder[STORE];
    holder[STORE] = current === next && shared.disables === disables ?
      prior :
      withBindingOf(current, prior, owner, index);
  }
}

function clearInCurrentFrame(owner, index) {
  const frame = currentFrame();
  if (frame !== undefined && frame[index] === owner) {
    frame[index] = undefined;
    frame[index + 1] = undefined;
    shared.disables++;
  }
}

module.exports = {
  allocateIndex,
  currentFrame,
  valueIn,
  withValue,
  enterFrame,
  runInFrame,
  runWithValue,
  clearInCurrentFrame,
  carrier,
};
