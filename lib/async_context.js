'use strict';
// The TC39 AsyncContext API (Stage 2): Variable and Snapshot. Variables share
// the frame with ambient's AsyncLocalStorage instances, so a Snapshot captures
// both and one propagated store carries all of them.
const { allocateIndex, currentFrame, valueIn, withValue, runInFrame, runsInCurrentFrame } = require('./frame');
const { validateFunction } = require('./errors');

class Variable {
  #index;
  #name;
  #defaultValue;

  constructor(options = undefined) {
    this.#name = options?.name === undefined ? '' : `${options.name}`;
    this.#defaultValue = options?.defaultValue;
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

  get [Symbol.toStringTag]() {
    return 'AsyncContext.Variable';
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
    Object.defineProperty(wrapped, 'name', { value: `wrapped ${fn.name}`, configurable: true });
    Object.defineProperty(wrapped, 'length', { value: fn.length, configurable: true });
    return wrapped;
  }

  get [Symbol.toStringTag]() {
    return 'AsyncContext.Snapshot';
  }
}

const AsyncContext = Object.freeze({ __proto__: null, Variable, Snapshot });

module.exports = { AsyncContext, Variable, Snapshot };
