'use strict';
// Drop-in AsyncLocalStorage with the Node 26 API and semantics on every
// Node >= 20. Values live in the shared frame (lib/frame.js); this class only
// knows its slot.
const { AsyncResource } = require('./async_resource');
const {
  allocateIndex, currentFrame, valueIn, enterValue, runWithValue, clearInCurrentFrame,
} = require('./frame');
const { validateObject, validateFunction } = require('./errors');

class AsyncLocalStorage {
  #index;
  #defaultValue;
  #name;

  constructor(options = {}) {
    validateObject(options, 'options');
    this.#defaultValue = options.defaultValue;
    this.#name = options.name === undefined ? '' : `${options.name}`;
    this.#index = allocateIndex(this);
  }

  get name() {
    return this.#name;
  }

  // Both capture every store, ambient and native, through an AsyncResource,
  // as Node does, but skip the deprecated `asyncResource` accessor Node
  // defines on each bound function, which makes Node's versions 10-100x
  // slower (see BENCHMARKS.md).
  static bind(fn) {
    validateFunction(fn, 'fn');
    const resource = new AsyncResource(fn.name || 'bound-anonymous-fn');
    const bound = function (...args) {
      return resource.runInAsyncScope(fn, this, ...args);
    };
    Object.defineProperty(bound, 'length', { value: fn.length, configurable: true });
    return bound;
  }

  static snapshot() {
    const resource = new AsyncResource('AsyncLocalStorageSnapshot');
    return (fn, ...args) => resource.runInAsyncScope(fn, undefined, ...args);
  }

  getStore() {
    return valueIn(currentFrame(), this, this.#index, this.#defaultValue);
  }

  run(store, callback, ...args) {
    return runWithValue(this, this.#index, this.#defaultValue, store, callback, args);
  }

  exit(callback, ...args) {
    return this.run(undefined, callback, ...args);
  }

  enterWith(store) {
    enterValue(this, this.#index, store);
  }

  withScope(store) {
    return new RunScope(this, store);
  }

  // As in Node 26: removes this instance's value from the current frame (and
  // so from every continuation that shares it); getStore() then returns the
  // default until the next run() or enterWith().
  disable() {
    clearInCurrentFrame(this, this.#index);
  }
}

// What withScope() returns: enters the store now, restores the previous one
// on the first dispose(). Works with `using` where the runtime has it, and is
// what diagnostics_channel's runStores uses on Node 26.
class RunScope {
  #storage;
  #previous;
  #disposed = false;

  constructor(storage, store) {
    this.#storage = storage;
    this.#previous = storage.getStore();
    storage.enterWith(store);
  }

  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#storage.enterWith(this.#previous);
  }

  [Symbol.dispose]() {
    this.dispose();
  }
}

module.exports = { AsyncLocalStorage };
