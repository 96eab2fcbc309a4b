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

/** A field value: what the Rust store keeps, typed. BigInt must fit in 64 bits. */
export type FieldValue = string | number | bigint | boolean | null

export interface RequestContextOptions {
  /** Use this request id (1–128 visible ASCII characters) instead of a generated UUIDv7. */
  requestId?: string
  /** An incoming W3C `traceparent` to continue; an invalid one starts a new trace. */
  traceparent?: string
  /** The incoming `tracestate`; kept only next to a valid `traceparent`. */
  tracestate?: string
  /** An incoming W3C `baggage` header. */
  baggage?: string
  /** A label: a route, a job name. */
  name?: string
  /** Initial fields; the same keys as `set()` are refused. */
  fields?: Record<string, FieldValue>
  /** Milliseconds until the deadline watchdog reports this context: 0 to 2^32 - 1, as `AbortSignal.timeout()`. */
  deadlineMs?: number
  /** Called by the watchdog, inside the request's async context, when the deadline passes while open. */
  onDeadline?: (ctx: RequestContext, error: DeadlineExceededError) => void
  /** Whether a new trace (no valid `traceparent`) is sampled. Default true. */
  sampled?: boolean
}

export interface ScopeOptions {
  name?: string
  deadlineMs?: number
  onDeadline?: (ctx: RequestContext, error: DeadlineExceededError) => void
}

export interface EndResult {
  /** The status that stands: the first one given. */
  status: string
  /** Monotonic duration from begin to end. */
  durationMs: number
  /** Wall-clock end, milliseconds since the epoch. */
  endedAt: number
}

export interface ContextIds {
  requestId: string
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  traceFlags: number
}

/** A structured-cloneable hand-off of a context to a worker thread. */
export interface ContextToken {
  type: 'ambient.context/v1'
  id: number
  requestId: string
  traceId: string
  spanId: string
  /** What a follow-up needs should the context have ended when the token is used. */
  traceFlags: number
  tracestate: string
  baggage: Array<{ key: string; value: string; properties: string[] }>
  fields: Record<string, FieldValue>
}

/** Task data wrapped by `RequestContext.task()`. */
export interface ContextTask<T> {
  type: 'ambient.task/v1'
  context: ContextToken | undefined
  data: T
}

export interface ContextStats {
  created: number
  open: number
  ended: number
  /** Contexts let go of: ended, and no JS object on any thread refers to them. */
  released: number
  /**
   * Ended, but still referenced by live JS objects after the grace period:
   * contexts with a Rust record on any thread, plus this thread's others.
   */
  lingering: number
  /** Field writes and log calls made in ended contexts. */
  useAfterEnd: number
  /** Rust records in memory: open, plus ended and still referenced. A context gets one when it needs it (fields, a worker, a scope, a deadline under 10 ms, or being open for 10 ms). */
  live: number
}

export interface InFlightContext {
  id: number
  requestId: string
  name: string | null
  traceId: string
  ageMs: number
  fields: Record<string, FieldValue>
}

export interface RequestContextSettings {
  maxFields?: number
  maxKeyBytes?: number
  maxValueBytes?: number
  maxTotalBytes?: number
  /** How long an ended context may stay referenced before it counts as lingering. Default 30000. */
  lingerGraceMs?: number
  /** Emit an `AmbientWarning` the first time an ended context is written or logged to. Default true. */
  warnOnUseAfterEnd?: boolean
  /** Replaces UUIDv7 request ids; null restores them. */
  generateRequestId?: (() => string) | null
}

/**
 * The structured context of one request or job, kept in Rust so every thread
 * of the process sees the same record. Field reads are served from a JS
 * cache; writes go through Rust so other threads see them.
 */
export declare class RequestContext {
  private constructor()
  /** Runs `fn` in a new context and ends it when `fn` returns or its promise settles ('ok' or 'error'). */
  static run<R>(fn: () => R): R
  static run<R, TArgs extends any[]>(options: RequestContextOptions, fn: (...args: TArgs) => R, ...args: TArgs): R
  /** Begins a context without entering it: enter with `run(fn)`, finish with `end()`. */
  static begin(options?: RequestContextOptions): RequestContext
  /** The current context, or undefined outside one. */
  static current(): RequestContext | undefined
  /**
   * The current context.
   * @throws {Error} `ERR_AMBIENT_NO_CONTEXT` outside a context.
   */
  static require(): RequestContext
  /**
   * A context handed over from another thread.
   * @throws {Error} `ERR_AMBIENT_CONTEXT_RELEASED` once nothing holds the context, or for a token from another process.
   */
  static fromToken(token: ContextToken): RequestContext
  /**
   * Runs fn in the token's context; once that has ended, in a follow-up
   * ended when fn settles: same request id and trace, a new span whose
   * parent is the token's, and the tracestate, baggage and fields of the
   * token.
   */
  static runWithToken<R, TArgs extends any[]>(token: ContextToken, fn: (...args: TArgs) => R, ...args: TArgs): R
  /** Wraps task data for a worker (workerData, postMessage, piscina) with the current context. */
  static task<T>(data: T): ContextTask<T>
  /** Wraps a worker-side handler: runs it in the context of each `task()` (see `runWithToken`), with the task's data. */
  static handleTask<T, R>(handler: (data: T) => R): (task: ContextTask<T> | T) => R
  /** Process-wide counters (all threads: this thread's exactly, others' within about 10 ms). */
  static stats(): ContextStats
  /** Open contexts, oldest first (another thread's appear within about 10 ms of their begin). */
  static inFlight(options?: { limit?: number; maxFields?: number }): InFlightContext[]
  /** Process-wide settings; returns those in force. */
  static configure(settings?: RequestContextSettings): Required<Omit<RequestContextSettings, 'generateRequestId'>>

  readonly id: number
  readonly kind: 'root' | 'child' | 'independent'
  readonly name: string | undefined
  readonly requestId: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly traceFlags: number
  readonly tracestate: string
  readonly startedAt: number
  readonly ended: boolean
  readonly baggage: Record<string, string>
  /** This context's span as a `traceparent` header, to echo on a response. */
  readonly traceparent: string
  /** Aborts when the deadline passes: this context's own or, for a child scope, its parent's too. Undefined without either. */
  readonly signal: AbortSignal | undefined
  /** All ids in one read. */
  ids(): ContextIds
  /** A `traceparent` for an outgoing call: same trace, a new child span. */
  outgoingTraceparent(): string
  /** The `baggage` header for a call leaving this context, normalized by the codec ('' without baggage). */
  outgoingBaggage(): string
  get(key: string): FieldValue | undefined
  has(key: string): boolean
  fields(): Record<string, FieldValue>
  /**
   * @throws {TypeError} `ERR_INVALID_ARG_VALUE` for an empty key or one each log line writes itself
   * (`level`, `time`, `msg`, `requestId`, `traceId`, `spanId`).
   * @throws {RangeError} `ERR_AMBIENT_FIELD_LIMIT` past a limit; nothing stored is lost.
   */
  set(key: string, value: FieldValue): this
  delete(key: string): void
  /** Runs `fn` with this context current. */
  run<R, TArgs extends any[]>(fn: (...args: TArgs) => R, ...args: TArgs): R
  /** A child scope: same request and trace, its own span, a copy of the fields. */
  child(options?: ScopeOptions): RequestContext
  child<R, TArgs extends any[]>(fn: (...args: TArgs) => R, ...args: TArgs): R
  child<R, TArgs extends any[]>(options: ScopeOptions, fn: (...args: TArgs) => R, ...args: TArgs): R
  /** An independent scope: same request and trace, its own span, no inherited fields, its own outcome. */
  independent(options?: ScopeOptions): RequestContext
  independent<R, TArgs extends any[]>(fn: (...args: TArgs) => R, ...args: TArgs): R
  independent<R, TArgs extends any[]>(options: ScopeOptions, fn: (...args: TArgs) => R, ...args: TArgs): R
  /** Ends the context; the first status given stands. */
  end(status?: string): EndResult
  /** Counts a use of this context after it ended (a log line), warning once. */
  noteUse(what?: string): void
  toToken(): ContextToken
  toJSON(): ContextIds & { name: string | undefined; fields: Record<string, FieldValue> }
}

export declare class DeadlineExceededError extends Error {
  readonly code: 'ERR_AMBIENT_DEADLINE_EXCEEDED'
}

/** The W3C trace-context and baggage codecs (in Rust). */
export declare const traceContext: {
  /** null when invalid; never throws on bad input. */
  parseTraceparent(header: string): { traceId: string; parentId: string; traceFlags: number } | null
  /** @throws {TypeError} `ERR_INVALID_ARG_VALUE` on ids that are not valid. */
  formatTraceparent(traceId: string, spanId: string, traceFlags?: number): string
  /** [key, value] pairs; an invalid header yields []. */
  parseTracestate(header: string): Array<[string, string]>
  parseBaggage(header: string): Array<{ key: string; value: string; properties: string[] }>
  formatBaggage(entries: Array<{ key: string; value: string; properties?: string[] }>): string
}

/** A new request id: a time-ordered UUIDv7. */
export declare function newRequestId(): string

export type LevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'
/**
 * `T`, in a place TypeScript does not infer it from (what `NoInfer` does in TypeScript 5.4 and
 * later): the custom levels are inferred from `customLevels` (or the logger) alone, never from a
 * level given beside them.
 */
type Uninferred<T> = [T][T extends unknown ? 0 : never]
/** A built-in level or one of the custom levels a logger's type names. */
type LevelOf<CustomLevels extends string> = LevelName | Uninferred<CustomLevels>

/** pino's redact object. */
export interface RedactOptions {
  paths: string[]
  /** What a hidden value becomes. Default "[Redacted]". */
  censor?: string
  /** Leave hidden members out instead (an array element becomes null). Default false. */
  remove?: boolean
}

export interface LoggerOptions<CustomLevels extends string = never> {
  /** Lowest level written, by name or number. Default 'info'; 'silent' writes nothing. */
  level?: LevelOf<CustomLevels> | 'silent' | number
  /**
   * pino's: levels of your own, name to number (an integer from 0 to 2^32 - 1), each a method
   * of the logger: `{ audit: 35 }` gives `log.audit()`, whose lines carry `"level":35`. A name
   * must be an identifier other than 'silent', a built-in level or a logger member, and no two
   * levels may share a number; either throws `ERR_INVALID_ARG_VALUE`. A child has its parent's,
   * and may add its own.
   */
  customLevels?: Record<CustomLevels, number>
  /** pino's: only `customLevels`, without trace to fatal. Default false. */
  useOnlyCustomLevels?: boolean
  /** Written as `name` on every line. */
  name?: string
  /** 'stdout' (default), 'stderr', 1, 2, a file path or { path }. A file is created if missing and appended to; one that cannot be opened throws as `fs.openSync()` would (`code: 'ENOENT'`, `syscall: 'open'`, `path`). */
  destination?: 'stdout' | 'stderr' | 1 | 2 | string | { path: string }
  /** Write on the calling thread instead of the writer thread. Default false. */
  sync?: boolean
  /** When the buffer is full: 'block' (default) waits for room, 'drop' drops the line and counts it. */
  whenFull?: 'block' | 'drop'
  /** Bytes that may wait for the writer thread: an integer from 1 to 2^32 - 1. Default 4 MiB. */
  bufferBytes?: number
  /**
   * Paths to hide, written as pino writes them: 'password', 'req.headers.authorization',
   * 'req.headers["x-api-key"]', 'users[0].token', 'users.*.token' or 'users[*].token'
   * (`*` matches any key or index). Their values become "[Redacted]". They apply to the
   * logged object, the bindings, `base`, and (paths of one key) the context's fields; not
   * to the keys every line writes itself. A path that does not parse throws.
   */
  redact?: string[] | RedactOptions
  /**
   * pino's serializers: each turns the logged object's top-level member of its name
   * (and the bindings' and `base`'s) into what is written. `err` serializes errors,
   * including one logged as the first argument. Applied before redaction; a serializer
   * that throws leaves `"[Unserializable: …]"` in its member's place.
   */
  serializers?: Serializers
  /** One readable line per entry for development terminals, instead of JSON. */
  pretty?: boolean
  /** Fields on every line. Default { pid, hostname }; null for none. */
  base?: Record<string, unknown> | null
  /** Called when a line is dropped (whenFull: 'drop'). */
  onDropped?: () => void
  /** pino's: put before every message the logger is given (not before one an error stands in for). */
  msgPrefix?: string
  /** pino's: the key of the message in JSON lines. Default 'msg'. */
  messageKey?: string
  /**
   * pino's: the `time` member of JSON lines. true (default) writes epoch milliseconds, false
   * none; 'iso' writes an ISO 8601 string, as pino's `stdTimeFunctions.isoTime` does (pino's
   * functions themselves are not taken).
   */
  timestamp?: boolean | 'iso'
  /** pino's: false writes nothing, as level 'silent' does. Default true. */
  enabled?: boolean
  /**
   * pino's formatters, called when the logger is made. `level`: what a line writes in place of
   * `"level":N`, e.g. `(label) => ({ severity: label.toUpperCase() })`, called once per level.
   * `bindings`: what is written of the base members (`pid`, `hostname`, `name`), called once
   * when there is a base. pino's `log` formatter would run for every line, and throws
   * `ERR_INVALID_ARG_VALUE`.
   */
  formatters?: {
    level?: (label: LevelOf<CustomLevels>, number: number) => Record<string, unknown>
    bindings?: (bindings: Record<string, unknown>) => Record<string, unknown>
  }
  /**
   * pino's mixin: members for every line, before the logged object's (which win). Called with
   * the logged object, the level number and the logger, in the line's request context, the
   * middleware's lines included. Returning anything but an object throws `ERR_INVALID_RETURN_VALUE`.
   */
  mixin?: (object: Record<string, unknown>, level: number, logger: Logger<Uninferred<CustomLevels>>) => Record<string, unknown>
  /**
   * pino's: the logged members (the mixin's included) go under this key, when there are any.
   * Redaction paths and serializers apply to them as they would at the top of the line.
   */
  nestedKey?: string
  /**
   * pino's: where an error logged on its own goes (`log.error(err)`), whose message stands in
   * for a missing one; an `err` serializer applies to it too. The middleware's, errorLogger's
   * and wrapHandler's error lines use it. Default 'err'.
   */
  errorKey?: string
}

export type Serializers = Record<string, (value: any) => unknown>

type LogFn = {
  (msg: string, ...args: unknown[]): void
  (obj: object | Error, msg?: string, ...args: unknown[]): void
}

/**
 * A pino-compatible JSON logger: one object per line with numeric `level`,
 * `time` and `msg`, plus the current request context's requestId, traceId,
 * spanId and fields. Each custom level is a method too.
 */
export type Logger<CustomLevels extends string = never> = LoggerMembers<CustomLevels> & { [Level in CustomLevels]: LogFn }

export interface LoggerMembers<CustomLevels extends string = never> {
  /** The level's name; set it by name or number. */
  get level(): LevelName | CustomLevels | 'silent'
  set level(level: LevelName | CustomLevels | 'silent' | number)
  trace: LogFn
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
  fatal: LogFn
  /** Whether a line at `level` would be written; false, as in pino, for a level this logger does not have. */
  isLevelEnabled(level: LevelName | CustomLevels | 'silent' | number | (string & {})): boolean
  /** pino's level maps: names to numbers and numbers to names, custom levels included. */
  readonly levels: {
    readonly values: Readonly<Record<LevelName | CustomLevels, number>>
    readonly labels: Readonly<Record<number, LevelName | CustomLevels>>
  }
  /** Writes nothing, as pino's `silent` does, for code that picks the method by level name. */
  silent(...args: unknown[]): void
  /** The bindings of this logger and its parents, as written (serialized and redacted). */
  bindings(): Record<string, unknown>
  /** pino's: adds `bindings` to this logger's later lines (a key it has already is written twice, the new value last). */
  setBindings(bindings: Record<string, unknown>): void
  /** What this logger puts before every message it is given; undefined for none. */
  readonly msgPrefix: string | undefined
  /**
   * A logger whose lines also carry `bindings`; shares the destination. Its `serializers` add to
   * this logger's, its `msgPrefix` is appended to this logger's, and its `customLevels` add to
   * this logger's levels (not with the root's `formatters.level`, which throws
   * `ERR_INVALID_ARG_VALUE`). Its `level` is typed as any string, as in pino, so that Fastify,
   * which gives a route's `logLevel` as a string, takes this logger as its `loggerInstance`; a
   * name that is not one of the child's levels throws `ERR_INVALID_ARG_VALUE`.
   */
  child<ChildLevels extends string = never>(
    bindings: Record<string, unknown>,
    options?: {
      level?: LevelName | CustomLevels | Uninferred<ChildLevels> | 'silent' | number | (string & {})
      serializers?: Serializers
      msgPrefix?: string
      customLevels?: Record<ChildLevels, number>
    },
  ): Logger<CustomLevels | ChildLevels>
  /** Resolves once every line logged so far is written. */
  flush(): Promise<void>
  /** pino's form: calls back once every line logged so far is written, with the write's error if it failed. */
  flush(callback: (err?: Error) => void): void
  /** Blocks until every line logged so far is written. */
  flushSync(): void
  /** Lines dropped because the buffer was full. */
  readonly dropped: number
}

export declare function createLogger<CustomLevels extends string = never>(options?: LoggerOptions<CustomLevels>): Logger<CustomLevels>
export declare const levels: Readonly<Record<LevelName, number>>

/** Another logger (pino, winston) the middleware can log through: the methods it calls. */
export interface LoggerLike {
  info(...args: any[]): unknown
  warn(...args: any[]): unknown
  debug(...args: any[]): unknown
  error(...args: any[]): unknown
}

/** The requests and responses the middleware and `wrapHandler()` serve: node:http's, or node:http2's compatibility API's. */
type ServerRequest = import('node:http').IncomingMessage | import('node:http2').Http2ServerRequest
type ServerReply = import('node:http').ServerResponse | import('node:http2').Http2ServerResponse

/**
 * `Req` and `Res` are what `level` and `onDeadline` are given: Express's own
 * request and response under Express. Annotate one callback's parameters
 * (`(req: express.Request, res: express.Response) => …`) and the other
 * callback gets those types too.
 */
export interface MiddlewareOptions<
  CustomLevels extends string = never,
  Req extends ServerRequest = import('node:http').IncomingMessage,
  Res extends ServerReply = import('node:http').ServerResponse,
> {
  /**
   * Default: a new `createLogger()`. pino and winston loggers are called their own way. The
   * logger's custom levels may be the access line's `level`.
   */
  logger?: Logger<CustomLevels> | LoggerLike
  /** Header carrying the request id. Default 'x-request-id'. */
  requestIdHeader?: string
  /** Echo the request id and traceparent on the response. Default true. */
  echoHeaders?: boolean
  /** Also log a 'request started' line. Default false. */
  logStart?: boolean
  /**
   * Level of the 'request completed' (and 'request started') line. Default 'info'. A function
   * (pino-http's customLogLevel) picks it per request, in the request's context, from the
   * request, the response and the error passed to `errorLogger()` (or the Koa or Fastify
   * adapter); 'silent' writes no line for that request (a health check). Returning anything
   * else throws `ERR_INVALID_RETURN_VALUE`.
   */
  level?: LevelOf<CustomLevels> | ((req: Req, res: Res, err: unknown) => LevelOf<CustomLevels> | 'silent')
  completedMessage?: string
  /**
   * Milliseconds a request may stay open: past it, the deadline watchdog aborts the request
   * context's `signal` and, in the request's context, logs 'request exceeded its deadline' at
   * 'warn' (method, route, url, deadlineMs, durationMs), or calls `onDeadline`. 0 to 2^32 - 1.
   */
  deadlineMs?: number
  /** Called in place of the warn line, in the request's context: to answer 503 or 504, say. Needs `deadlineMs`. */
  onDeadline?: (req: Req, res: Res, error: DeadlineExceededError) => void
}

export interface AdapterOptions<CustomLevels extends string = never> extends MiddlewareOptions<CustomLevels> {
  /**
   * Koa and Fastify have no place for an error middleware after the routes,
   * so their adapters log a request that failed with a server error (status
   * 500 or more) as 'request failed', with the error. Default true. Either
   * way the error is on the request's access line.
   */
  logErrors?: boolean
}

type RequestHandler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, next: (err?: unknown) => void) => void

/** Express (4 and 5) middleware: one request context per request, logged when it completes. */
export declare function middleware<
  CustomLevels extends string = never,
  Req extends import('node:http').IncomingMessage = import('node:http').IncomingMessage,
  Res extends import('node:http').ServerResponse = import('node:http').ServerResponse,
>(options?: MiddlewareOptions<CustomLevels, Req, Res>): RequestHandler
/**
 * Express error middleware: logs the error in the request's context and passes it on; at 'warn' when its
 * `status` (or `statusCode`) makes Express answer with a 4xx, at 'error' otherwise.
 */
export declare function errorLogger(options?: { logger?: Logger | LoggerLike }): (err: unknown, req: unknown, res: unknown, next: (err?: unknown) => void) => void
/**
 * The same per-request context for a plain node:http handler. An async handler's rejection is
 * logged as 'request failed' with the request id, then left unhandled as it would be unwrapped.
 */
export declare function wrapHandler<
  Req extends ServerRequest = import('node:http').IncomingMessage,
  Res extends ServerReply = import('node:http').ServerResponse,
  CustomLevels extends string = never,
>(handler: (req: Req, res: Res) => unknown, options?: MiddlewareOptions<CustomLevels, Req, Res>): (req: Req, res: Res) => void
/** Koa middleware: one request context per request, everything downstream inside it, logged when it completes. */
export declare function koa<CustomLevels extends string = never>(options?: AdapterOptions<CustomLevels>): (ctx: { req: import('node:http').IncomingMessage; res: import('node:http').ServerResponse }, next: () => Promise<unknown>) => Promise<void>

type FastifyRaw = { raw: import('node:http').IncomingMessage }
type FastifyReplyRaw = { raw: import('node:http').ServerResponse }
interface FastifyHooks {
  addHook(name: 'onRequest', hook: (request: FastifyRaw, reply: FastifyReplyRaw, done: (err?: Error) => void) => void): unknown
  addHook(name: 'onError', hook: (request: FastifyRaw, reply: FastifyReplyRaw, error: Error, done: () => void) => void): unknown
}
/** Fastify plugin (`app.register(fastify, options)`): the same, from the onRequest hook on, for the whole app. */
export declare function fastify(instance: FastifyHooks, options: AdapterOptions | undefined, done: (err?: Error) => void): void
/**
 * Fastify's `genReqId`: the id the plugin chooses (a valid incoming header, or a generated one), so
 * Fastify's `reqId` and ambient's `requestId` are the same. Give it the plugin's `requestIdHeader`.
 */
export declare function fastifyRequestId(options?: { requestIdHeader?: string }): (req: import('node:http').IncomingMessage) => string

export interface PropagationOptions {
  /** Default 'x-request-id'. */
  requestIdHeader?: string
  /** Only these hosts get the headers (names, in any case; IPv6 without brackets; RegExps, or a function of the lower-case host). Default: all. */
  allowHosts?: Array<string | RegExp> | ((host: string) => boolean)
  /** Pass the context's W3C `baggage` on, as the codec normalized it. Default true. */
  baggage?: boolean
}

/** Outgoing http (Node 22.12+) and fetch requests made in a context carry traceparent, tracestate, baggage and the request id. Returns a function that stops it. */
export declare function enableOutgoingPropagation(options?: PropagationOptions): () => void
export declare function disableOutgoingPropagation(): void
/** Runs fn without adding propagation headers to the requests it makes. */
export declare function withoutPropagation<R, TArgs extends any[]>(fn: (...args: TArgs) => R, ...args: TArgs): R
/** Whether node:http requests are propagated on this Node (22.12+); fetch always is. */
export declare const httpPropagation: boolean

/** The current context's ids and fields ({} outside a context). */
export declare function contextFields(): Record<string, FieldValue>
/** For pino: `pino({ mixin: pinoMixin() })`. */
export declare function pinoMixin(): () => Record<string, FieldValue>
/**
 * For winston: `format.combine(winstonFormat(), format.json())`. It adds the
 * context's fields to the info object it is given and returns that object, so
 * it fits winston's `Format` without importing winston's types.
 */
export declare function winstonFormat(): { transform<Info extends object>(info: Info): Info }

/** The version of the compiled Rust addon; equals the package version. */
export declare function nativeVersion(): string
