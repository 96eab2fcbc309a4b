/// <reference types="node" />
// Types for ambient's public entry. The AsyncLocalStorage and AsyncResource
// shapes follow Node 26's `node:async_hooks` so code typed against Node keeps
// compiling after switching the import.

import type { AsyncResource as NodeAsyncResource } from 'node:async_hooks'

export interface AsyncLocalStorageOptions<T> {
  /** Returned by `getStore()` where no value was set. */
  defaultValue?: T
  /** A label for debugging; converted to a string. */
  name?: string
}

/** What `withScope()` returns: restores the previous store on the first dispose. */
export interface RunScope extends Disposable {
  /** Restores the store that was current before `withScope()`; later calls do nothing. */
  dispose(): void
}

/**
 * Drop-in for Node's `AsyncLocalStorage`, with Node 26's API and semantics on
 * every Node >= 20. Every instance lives in one shared frame carried by a single
 * native store, so K instances cost what one does per promise.
 */
export declare class AsyncLocalStorage<T> {
  /**
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object.
   */
  constructor(options?: AsyncLocalStorageOptions<T>)
  /** The `name` option as a string, or `''`. */
  readonly name: string
  /** Binds `fn` to the current context (every store, ambient and native). */
  static bind<Func extends (...args: any[]) => any>(fn: Func): Func
  /** Captures the current context; the returned function runs callbacks in it. */
  static snapshot(): <R, TArgs extends any[]>(fn: (...args: TArgs) => R, ...args: TArgs) => R
  /** The current store, or `defaultValue` where none was set. */
  getStore(): T | undefined
  /** Runs `callback` with `store` current, for it and everything it schedules. */
  run<R>(store: T, callback: () => R): R
  run<R, TArgs extends any[]>(store: T, callback: (...args: TArgs) => R, ...args: TArgs): R
  /** Runs `callback` with an undefined store (not the default). */
  exit<R, TArgs extends any[]>(callback: (...args: TArgs) => R, ...args: TArgs): R
  /** Sets the store for the rest of the current synchronous execution and what it schedules. */
  enterWith(store: T): void
  /** Enters `store` until the returned scope is disposed; works with `using`. */
  withScope(store: T): RunScope
  /** Removes this instance's store from the current context (Node 26 semantics). */
  disable(): void
}

/** Node's own `AsyncResource`: it restores ambient's and native stores alike. */
export declare const AsyncResource: typeof NodeAsyncResource
export type AsyncResource = NodeAsyncResource

export declare namespace AsyncContext {
  interface VariableOptions<T> {
    name?: string
    defaultValue?: T
  }
  /** TC39 AsyncContext.Variable; shares the frame with AsyncLocalStorage. */
  class Variable<T> {
    constructor(options?: VariableOptions<T>)
    readonly name: string
    get(): T | undefined
    run<R, TArgs extends any[]>(value: T, fn: (...args: TArgs) => R, ...args: TArgs): R
  }
  /** TC39 AsyncContext.Snapshot: captures every ambient variable. */
  class Snapshot {
    constructor()
    run<R, TArgs extends any[]>(fn: (...args: TArgs) => R, ...args: TArgs): R
    /** @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `fn` is not a function. */
    static wrap<T, R, TArgs extends any[]>(fn: (this: T, ...args: TArgs) => R): (this: T, ...args: TArgs) => R
  }
}

/** The version of the compiled Rust addon; equals the package version. */
export declare function nativeVersion(): string
