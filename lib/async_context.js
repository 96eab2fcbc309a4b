'use strict';
// The TC39 AsyncContext API (Stage 2): Variable and Snapshot. Variables share
// the frame with ambient's AsyncLocalStorage instances, so a Snapshot captures
// both and one propagated store carries all of them. Shapes (property
// attributes, name and length of wrapped functions, what the constructor
// reads from its options) follow the proposal's spec text, so code written
// against a native AsyncContext sees the same objects.
const { allocateIndex, currentFrame, valueIn, withValue, runInFrame, runsInCurrentFrame } = require('./frame');
const { validateFunction } = require('./errors');

class Variable {
  #index;
  #name = '';
  #defaultValue;

  // The proposal reads `name` only when present (so `{ name: undefined }` is
  // named "undefined"), converts it as ToString does, then reads
  // `defaultValue`; anything but an object is no options at all.
  constructor(options) {
    if ((typeof options === 'object' && options !== null) || typeof options === 'function') {
      if ('name' in options) this.#name = `${options.name}`;
      this.#defaultValue = options.defaultValue;
    }
    this.#index = allocateIndex(this);
  }

  get name() {
    return this.#name;
  }

  get() {
    return valueIn(currentFrame(), this, this.#index, this.#defaultValue);
  }

  // The whole mapping that was current before is restored afterwards, as the
  // proposal specifies.
  run(value, fn, ...args) {
    const prior = currentFrame();
    return runInFrame(withValue(prior, this, this.#index, value), fn, undefined, args);
  }
}

class Snapshot {
  #frame = currentFrame();

  run(fn, ...args) {
    return runInFrame(this.#frame, fn, undefined, args);
  }

  static wrap(fn) {
    validateFunction(fn, 'fn');
    const wrapped = runsInCurrentFrame(fn);
    copyNameAndLength(wrapped, fn, 'wrapped');
    return wrapped;
  }
}

// The spec's CopyNameAndLength, as Function.prototype.bind uses it: only an
// own numeric `length` counts, and a name that is not a string becomes ''.
function copyNameAndLength(target, source, prefix) {
  let length = 0;
  if (Object.hasOwn(source, 'length')) {
    const sourceLength = source.length;
    if (typeof sourceLength === 'number') {
      length = sourceLength === Infinity ? Infinity : Math.max(Math.trunc(sourceLength) || 0, 0);
    }
  }
  const name = source.name;
  Object.defineProperty(target, 'length', { value: length, configurable: true });
  Object.defineProperty(target, 'name', { value: `${prefix} ${typeof name === 'string' ? name : ''}`, configurable: true });
}

// Data properties, as the proposal defines them (not writable, not
// enumerable, configurable).
const tag = (object, value) => Object.defineProperty(object, Symbol.toStringTag, { value, configurable: true });
tag(Variable.prototype, 'AsyncContext.Variable');
tag(Snapshot.prototype, 'AsyncContext.Snapshot');

// A namespace object like Math or Reflect: writable, configurable,
// non-enumerable members.
const AsyncContext = tag(Object.defineProperties({}, {
  Variable: { value: Variable, writable: true, configurable: true },
  Snapshot: { value: Snapshot, writable: true, configurable: true },
}), 'AsyncContext');

module.exports = { AsyncContext, Variable, Snapshot };
