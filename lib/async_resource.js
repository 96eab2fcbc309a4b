'use strict';
// AsyncResource. On AsyncContextFrame (Node >= 24) Node's own class already
// behaves as Node 26 specifies and is exported as is. On async_hooks
// (Node <= 22) the current frame is a property of the resource being run, so
// an enterWith() inside runInAsyncScope() would stick to the resource and show
// in its next runInAsyncScope() (nodejs/node#58204). The subclass enters the
// frame captured at construction every time and puts the caller's back when
// the callback returns, as Node 26 does.
const { AsyncResource: NodeAsyncResource } = require('node:async_hooks');
const { framesLiveOnResources, STORE } = require('./frame');

class AsyncResource extends NodeAsyncResource {
  #captured;

  constructor(type, options) {
    super(type, options);
    this.#captured = this[STORE];
  }

  runInAsyncScope(fn, thisArg, ...args) {
    const outer = this[STORE];
    this[STORE] = this.#captured;
    try {
      return super.runInAsyncScope(fn, thisArg, ...args);
    } finally {
      this[STORE] = outer;
    }
  }

  // Node's static bind() constructs its own class; build ours instead.
  static bind(fn, type, thisArg) {
    type = type || fn.name;
    return new AsyncResource(type || 'bound-anonymous-fn').bind(fn, thisArg);
  }
}

module.exports = { AsyncResource: framesLiveOnResources ? AsyncResource : NodeAsyncResource };
