'use strict';
// The structured logger: pino's API and line format, with the current
// request context's ids and fields added to every line. Each call crosses
// into Rust once (src/log.rs), which formats the line and hands it to an
// off-thread writer (src/writer.rs); the middleware's access lines cross in
// batches (AccessBatch). Disabled levels are no-op methods.
const os = require('node:os');
const { isMainThread } = require('node:worker_threads');
const { format, getSystemErrorMap, getSystemErrorName } = require('node:util');
const native = require('./native');
const { RequestContext, lineIdentityOf } = require('./request_context');
const { compileRedaction, compileSerializers, fieldRedaction, serializeObject, serializeBindings } = require('./serialize');
const { invalidArgType, invalidArgValue, invalidReturnValue, validateObject, validateFunction, validateBoolean } = require('./errors');

const LEVELS = Object.freeze({ trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 });
const WRITE_IN = Symbol('ambient.logger.writeIn');
const WRITE_ACCESS = Symbol('ambient.logger.writeAccess');
// pino's errorKey, for the middleware's error lines.
const ERROR_KEY = Symbol('ambient.logger.errorKey');
const USED_AFTER_END = 1;
const DROPPED = 2;

// The access batches of this thread's loggers, written on the way out.
const accessBatches = new Set();
let exitHooksInstalled = false;

function flushAll() {
  for (const batch of accessBatches) {
    try {
      batch.write();
    } catch {
      // As below.
    }
  }
  // A worker's destinations are written out as its environment closes
  // them (src/destinations.rs), and it need not wait for anyone else's.
  // The main thread writes every destination of the process, the workers'
  // too: a signal ends the process without exit(3), whose hook would.
  if (!isMainThread) return;
  try {
    native.flushAllDestinations();
  } catch {
    // Nothing left to report to on the way out.
  }
}

// No line is lost on process.exit(), an uncaught exception or an unhandled
// rejection (all end in 'exit'), nor on SIGTERM/SIGINT, whose default action
// would end the process without 'exit': flush, then let the signal do what
// it would have done.
function installExitHooks() {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', flushAll);
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    const onSignal = () => {
      flushAll();
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

function openDestination(options) {
  const { destination = 'stdout', sync = false, whenFull = 'block', bufferBytes, prefix, fieldCensor, time, messageKey, levelValues, levelMembers } = options;
  const config = { sync, whenFull, bufferBytes, prefix, time, messageKey, levelValues, levelMembers, ...fieldCensor };
  if (destination === 'stdout' || destination === 1) config.fd = 1;
  else if (destination === 'stderr' || destination === 2) config.fd = 2;
  else if (typeof destination === 'string') config.path = destination;
  else if (destination !== null && typeof destination === 'object' && typeof destination.path === 'string') config.path = destination.path;
  else throw invalidArgValue('options.destination', destination, "must be 'stdout', 'stderr', 1, 2, a file path or { path }");
  if (whenFull !== 'block' && whenFull !== 'drop') throw invalidArgValue('options.whenFull', whenFull, "must be 'block' or 'drop'");
  validateBoolean(sync, 'options.sync');
  // Rust takes it as a u32: anything else would be truncated or wrapped.
  if (bufferBytes !== undefined && (!Number.isInteger(bufferBytes) || bufferBytes < 1 || bufferBytes > 0xffffffff)) {
    throw invalidArgValue('options.bufferBytes', bufferBytes, 'must be an integer from 1 to 4294967295');
  }
  // As fs.openSync() refuses it; Rust would open the path cut at the NUL.
  if (config.path?.includes('\0')) {
    throw invalidArgValue('options.destination', destination, 'must be a path without null bytes');
  }
  let handle;
  try {
    handle = new native.NativeLogDestination(config);
  } catch (err) {
    const error = systemError(err, 'open', config.path);
    if (error !== err) throw error;
    const other = new Error(err.message);
    other.code = 'ERR_AMBIENT_LOG_DESTINATION';
    throw other;
  }
  installExitHooks();
  return handle;
}

// An OS error from Rust (its text ends in "(os error N)"), as Node's fs
// reports one: "ENOSPC: no space left on device, write", or "ENOENT: no such
// file or directory, open '/var/log/app.log'", with code, errno, syscall
// and path. Any other error is returned as it is.
function systemError(err, syscall, path) {
  const found = /\(os error (\d+)\)$/.exec(err?.message);
  if (found === null) return err;
  const errno = -Number(found[1]);
  const [code, description] = getSystemErrorMap().get(errno) ?? [getSystemErrorName(errno), 'unknown error'];
  const error = new Error(`${code}: ${description}, ${syscall}${path === undefined ? '' : ` '${path}'`}`);
  error.errno = errno;
  error.code = code;
  error.syscall = syscall;
  if (path !== undefined) error.path = path;
  return error;
}

function writeError(err) {
  return systemError(err, 'write');
}

function rethrowWriteError(err) {
  throw writeError(err);
}

// A logger's levels as pino's logger.levels has them, for code that maps
// between names and numbers: values (name to number) and labels (number to
// name).
function levelMaps(values) {
  return Object.freeze({
    values: Object.freeze({ ...values }),
    labels: Object.freeze(Object.fromEntries(Object.entries(values).map(([name, value]) => [value, name]))),
  });
}

const DEFAULT_LEVEL_MAPS = levelMaps(LEVELS);

// The number of `level` (a name, a number or 'silent') among `levels`;
// undefined when it is none of them.
function levelNumber(levels, level) {
  if (typeof level === 'number') return Object.hasOwn(levels.labels, level) ? level : undefined;
  if (level === 'silent') return Infinity;
  return typeof level === 'string' && Object.hasOwn(levels.values, level) ? levels.values[level] : undefined;
}

function levelValue(levels, level, name = 'level') {
  const value = levelNumber(levels, level);
  if (value === undefined) throw invalidArgValue(name, level, `must be one of ${[...Object.keys(levels.values), 'silent'].join(', ')}`);
  return value;
}

// The middleware's access lines, one per request, gathered per destination
// and crossed into Rust once per batch (src/access_log.rs, log_access_batch): a
// crossing per line cost more than formatting it. A batch is written at the
// end of the event loop's turn (setImmediate), when full, before any other
// line of its destination (so lines keep their order), on flush, and on the
// way out of the process; a sync destination writes each line at once. Its
// lines carry the time they were logged. Numbers go in a Float64Array,
// strings one after another in one string, cut by their lengths.
const ACCESS_SLOTS = 12;
const BATCH_LINES = 256;
const BATCH_TEXT = 64 * 1024;

class AccessBatch {
  text = '';
  count = 0;
  numbers = new Float64Array(ACCESS_SLOTS * BATCH_LINES);
  // Contexts with a record, kept reachable (so their record, read when the
  // line is formatted, stays) until their line is written.
  held = [];
  scheduled = false;

  constructor(handle, sync, onDropped) {
    this.handle = handle;
    this.limit = sync ? 1 : BATCH_LINES;
    this.onDropped = onDropped;
    accessBatches.add(this);
  }

  add(ctx, level, message, bindings, method, route, url, status, durationMs, bytes, time) {
    const identity = lineIdentityOf(ctx);
    const numbers = this.numbers;
    const at = this.count * ACCESS_SLOTS;
    numbers[at] = ctx.id;
    numbers[at + 1] = level;
    numbers[at + 2] = message;
    numbers[at + 3] = status;
    numbers[at + 4] = durationMs;
    numbers[at + 5] = bytes;
    numbers[at + 6] = time;
    numbers[at + 7] = identity === null ? -1 : identity.length;
    numbers[at + 8] = bindings === '' ? -1 : bindings.length;
    numbers[at + 9] = method.length;
    numbers[at + 10] = route === undefined ? -1 : route.length;
    numbers[at + 11] = url.length;
    if (identity === null) this.held.push(ctx);
    this.text += `${identity ?? ''}${bindings}${method}${route ?? ''}${url}`;
    if (++this.count >= this.limit || this.text.length >= BATCH_TEXT) {
      this.write();
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(writeScheduled, this);
    }
  }

  write() {
    const { text, count } = this;
    if (count === 0) return;
    this.text = '';
    this.count = 0;
    try {
      const dropped = native.logAccessBatch(this.handle, text, this.numbers, count);
      for (let i = 0; i < dropped; i++) this.onDropped?.();
    } catch (err) {
      throw writeError(err);
    } finally {
      this.held.length = 0;
    }
  }
}

function writeScheduled(batch) {
  batch.scheduled = false;
  batch.write();
}

function noop() {}

// The access line's members: a serializer for one of them sends the line
// the general way, where serializers apply.
const ACCESS_KEYS = ['method', 'route', 'url', 'status', 'durationMs', 'bytes'];

// pino's msgPrefix: a string, or absent. A child's is appended to its
// parent's.
function msgPrefixOption(options, inherited) {
  const prefix = options.msgPrefix;
  if (prefix === undefined) return inherited;
  if (typeof prefix !== 'string') throw invalidArgType('options.msgPrefix', 'string', prefix);
  return inherited + prefix;
}

function joinBindings(earlier, later) {
  return earlier && later ? `${earlier},${later}` : (earlier || later);
}

class Logger {
  #shared;
  #bindings;
  #level;
  // pino's logger.levels: the root's, and a child's own custom levels.
  #levels;
  #serializers;
  // What a line's object is serialized with: #serializers, with an err
  // serializer also applied to the errorKey member, as pino applies it.
  #lineSerializers;
  #accessTakesGeneralPath;
  #msgPrefix;
  // The middleware's access messages with this logger's prefix, registered
  // once each: message id to { text, id }.
  #prefixedAccessMessages;

  constructor(shared, bindings, level, serializers, msgPrefix, levels) {
    this.#shared = shared;
    this.#levels = levels;
    this.#bindings = bindings;
    this.#serializers = serializers;
    this.#lineSerializers = withErrorKey(serializers, shared.errorKey);
    this.#msgPrefix = msgPrefix;
    this.#accessTakesGeneralPath = shared.pretty || shared.redact !== undefined || shared.mixin !== undefined || shared.nestedKey !== undefined ||
      ACCESS_KEYS.some((key) => this.#lineSerializers?.has(key));
    this.level = level;
  }

  get level() {
    return this.#levels.labels[this.#level] ?? 'silent';
  }

  /** Disabled levels become no-op methods, so a filtered call costs nothing. */
  set level(level) {
    const { values } = this.#levels;
    this.#level = levelValue(this.#levels, level);
    for (const name of Object.keys(values)) {
      const value = values[name];
      this[name] = value >= this.#level ? (...args) => this.#write(value, args) : noop;
    }
  }

  /**
   * Whether a line at `level` (a name or a number) would be written. As in
   * pino, false for a level this logger does not have: code probing for a
   * level (a child's, another logger's) learns that it is not there.
   */
  isLevelEnabled(level) {
    if (typeof level !== 'string' && typeof level !== 'number') throw invalidArgType('level', 'string or number', level);
    const value = levelNumber(this.#levels, level);
    return value !== undefined && value >= this.#level;
  }

  /** pino's: the levels' names to numbers (values) and numbers to names (labels), custom ones included. */
  get levels() {
    return this.#levels;
  }

  /** pino's: logging at level 'silent' writes nothing. */
  silent() {}

  /** The bindings of this logger and its parents, as written (serialized and redacted). */
  bindings() {
    return JSON.parse(`{${this.#bindings}}`);
  }

  /**
   * pino's: adds `bindings` to this logger's, for its later lines. A key it
   * already has is written twice, the new value last, as pino writes it.
   * Children made before keep what they had.
   */
  setBindings(bindings) {
    validateObject(bindings, 'bindings');
    this.#bindings = joinBindings(this.#bindings, serializeBindings(bindings, this.#shared.redact, this.#serializers));
  }

  get [ERROR_KEY]() {
    return this.#shared.errorKey;
  }

  /** What this logger puts before every message it is given; undefined for none. */
  get msgPrefix() {
    return this.#msgPrefix === '' ? undefined : this.#msgPrefix;
  }

  /**
   * A logger whose lines also carry `bindings`; it shares the destination.
   * options.serializers adds to (or overrides) this logger's;
   * options.msgPrefix is appended to this logger's; options.customLevels
   * adds levels to this logger's, for the child and its own children.
   */
  child(bindings, options = {}) {
    validateObject(bindings, 'bindings');
    validateObject(options, 'options');
    const notTaken = CHILD_OPTIONS_NOT_TAKEN.find((key) => options[key] !== undefined);
    if (notTaken !== undefined) throw invalidArgValue(`options.${notTaken}`, options[notTaken], "is pino's, and ambient's child() does not take it");
    const serializers = compileSerializers(options.serializers, this.#serializers);
    const msgPrefix = msgPrefixOption(options, this.#msgPrefix);
    let levels = this.#levels;
    if (options.customLevels !== undefined) {
      // Each level's formatted members are written by the destination's
      // line shape, made with the root (src/line_shape.rs).
      if (this.#shared.formatsLevels) {
        throw invalidArgValue('options.customLevels', options.customLevels, 'cannot add levels to a logger with formatters.level: give them to the root logger');
      }
      levels = withCustomLevels(levels.values, options.customLevels);
    }
    // Checked here so the error names the option, not the level setter.
    if (options.level !== undefined) levelValue(levels, options.level, 'options.level');
    const text = serializeBindings(bindings, this.#shared.redact, serializers);
    return new Logger(this.#shared, joinBindings(this.#bindings, text), options.level ?? this.level, serializers, msgPrefix, levels);
  }

  /**
   * Resolves once every line logged so far is written. Given a callback
   * (pino's form), calls it with the write's error or none instead, and
   * returns nothing: code moving from pino often exits in that callback.
   */
  flush(callback) {
    if (callback !== undefined) validateFunction(callback, 'callback');
    let flushed;
    try {
      this.#shared.access.write();
      flushed = this.#shared.destination.flush().catch(rethrowWriteError);
    } catch (err) {
      flushed = Promise.reject(err);
    }
    if (callback === undefined) return flushed;
    flushed.then(() => callback(), callback);
    return undefined;
  }

  /** Blocks until every line logged so far is written. */
  flushSync() {
    this.#shared.access.write();
    try {
      this.#shared.destination.flushSync();
    } catch (err) {
      throw writeError(err);
    }
  }

  /** Lines dropped because the buffer was full (whenFull: 'drop'). */
  get dropped() {
    return this.#shared.destination.dropped;
  }

  #write(level, args) {
    let object;
    let msg;
    const first = args[0];
    let rest = 1;
    // A message stood in for by an error's takes no prefix, as in pino.
    if (first instanceof Error) {
      object = { [this.#shared.errorKey]: first };
      if (args.length === 1) msg = first.message;
    } else if (first !== null && typeof first === 'object') {
      object = first;
      // As in pino: an error's message stands in for a missing one, not for
      // the object's own msg (the line would carry two).
      const err = first[this.#shared.errorKey];
      if (err instanceof Error && args.length === 1 && first[this.#shared.messageKey] === undefined) msg = err.message;
    } else if (first === null && args.length > 1) {
      // As in pino: a null object leaves the message to what follows.
    } else {
      rest = 0;
    }
    if (rest < args.length) {
      msg = this.#msgPrefix + (rest === args.length - 1 && typeof args[rest] === 'string' ? args[rest] : format(...args.slice(rest)));
    }
    this.#writeIn(RequestContext.current(), level, object, msg);
  }

  // The middleware logs its access line with the request's context in hand,
  // without entering it.
  [WRITE_IN](ctx, level, object, msg) {
    if (level >= this.#level) this.#writeIn(ctx, level, object, this.#msgPrefix + msg);
  }

  #writeIn(ctx, level, object, msg) {
    const shared = this.#shared;
    if (shared.mixin !== undefined) object = this.#mixedIn(ctx, level, object);
    let members = object === undefined ? null : serializeObject(object, shared.redact, this.#lineSerializers);
    // pino's nestedKey: the logged members (the mixin's included), when there
    // are any, under one key. Serialized first, as at the top of the line, so
    // redaction paths and serializers apply to them as they would there.
    if (shared.nestedKey !== undefined && members !== null && members !== '{}') members = `{${shared.nestedKeyJson}:${members}}`;
    if (shared.access.count !== 0) shared.access.write();
    let result = 0;
    // Only a sync destination throws here: its write is made now.
    try {
      if (shared.pretty) {
        shared.destination.writeRaw(prettyLine(this.#levels.labels[level], ctx, this.#bindings, members, msg, shared.redact));
        return;
      }
      result = native.logWrite(shared.handle, level, ctx === undefined ? -1 : ctx.id,
        ctx === undefined ? null : lineIdentityOf(ctx), this.#bindings || null, members, msg ?? null);
    } catch (err) {
      throw writeError(err);
    }
    this.#afterWrite(ctx, result);
  }

  // pino's mixin: its members go before the logged object's, which win.
  // It runs in the line's context, as the app's own code does, even for the
  // middleware's lines, which are written with the context in hand.
  #mixedIn(ctx, level, object) {
    const mixin = this.#shared.mixin;
    const merged = object === undefined || Array.isArray(object) ? {} : object;
    const made = ctx === undefined || ctx === RequestContext.current() ? mixin(merged, level, this) : ctx.run(mixin, merged, level, this);
    if (made === null || typeof made !== 'object') throw invalidReturnValue('options.mixin', 'an object', made);
    if (object === undefined) return made;
    // As a line writes any other array: under `value`.
    return Array.isArray(object) ? { ...made, value: object } : { ...made, ...object };
  }

  #afterWrite(ctx, result) {
    if ((result & USED_AFTER_END) || ctx?.ended) ctx.noteUse('a log line');
    if (result & DROPPED) this.#shared.onDropped?.();
  }

  // The middleware's access line: its members go into the destination's
  // access batch as they are, with no object to serialize. `message` is
  // { text, id } from accessMessage(); `time` is the line's wall-clock time
  // in ms, when the caller has it. Pretty output, redaction and a
  // serializer of one of its members take the general path.
  [WRITE_ACCESS](ctx, level, method, route, url, status, durationMs, bytes, message, time = Date.now()) {
    if (level < this.#level) return;
    const shared = this.#shared;
    if (this.#msgPrefix !== '') message = this.#prefixedAccessMessage(message);
    if (this.#accessTakesGeneralPath) {
      this.#writeIn(ctx, level, { method, route, url, status, durationMs, bytes }, message.text);
      return;
    }
    if (ctx.ended) ctx.noteUse('a log line');
    shared.access.add(ctx, level, message.id, this.#bindings, method, route, url, status, durationMs, bytes, time);
  }

  #prefixedAccessMessage(message) {
    this.#prefixedAccessMessages ??= new Map();
    let prefixed = this.#prefixedAccessMessages.get(message.id);
    if (prefixed === undefined) {
      prefixed = accessMessage(this.#msgPrefix + message.text);
      this.#prefixedAccessMessages.set(message.id, prefixed);
    }
    return prefixed;
  }
}

const PLAIN_KEY = /^[\w.$@-]+$/;

function pad(n, width = 2) {
  return String(n).padStart(width, '0');
}

// One readable line for a development terminal:
// 12:04:05.123 INFO  [request id trace:first 8 of the trace id] message key=value ...
// `label`: the level's name; `members`: the logged object as JSON text, or null.
function prettyLine(label, ctx, bindings, members, msg, redact) {
  const now = new Date();
  const time = `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}.${pad(now.getMilliseconds(), 3)}`;
  const fields = ctx === undefined ? [] : [ctx.fields()];
  const parts = [time, label.toUpperCase().padEnd(5)];
  if (ctx !== undefined) {
    const { requestId, traceId } = ctx.ids();
    parts.push(`[${requestId} trace:${traceId.slice(0, 8)}]`);
  }
  // Messages may come from users: escape them like JSON, without quotes.
  if (msg !== undefined) parts.push(JSON.stringify(msg).slice(1, -1));
  const extra = [
    ...(bindings ? [`{${bindings}}`] : []),
    ...fields.map((m) => serializeObject(m, redact)),
    ...(members !== null ? [members] : []),
  ].map((json) => {
    // As in JSON lines: what is not an object goes under `value`.
    const group = JSON.parse(json);
    return group !== null && typeof group === 'object' && !Array.isArray(group) ? group : { value: group };
  });
  for (const group of extra) {
    for (const [key, value] of Object.entries(group)) {
      // Keys come from users too: one with a newline or an escape sequence
      // would start a forged line or drive the terminal. Quoted, then.
      parts.push(`${PLAIN_KEY.test(key) ? key : JSON.stringify(key)}=${JSON.stringify(value)}`);
    }
  }
  return `${parts.join(' ')}\n`;
}

/**
 * Creates a logger. Options: level ('info'), name, destination ('stdout',
 * 'stderr', 1, 2, a path or { path }), sync (false), whenFull ('block' or
 * 'drop'), bufferBytes (4 MiB), redact (dotted paths), serializers (pino's:
 * member name to function), pretty (false), base (fields on every line;
 * default pid and hostname; null for none), msgPrefix (put before every
 * message the logger is given), messageKey ('msg'), timestamp (true for
 * epoch ms, false for none, 'iso'), formatters (level and bindings), mixin
 * (members for every line), nestedKey (the logged members under one key),
 * enabled (false writes nothing), customLevels (name to number, each a
 * method), useOnlyCustomLevels and errorKey ('err'): those ten as in pino.
 */
// pino options that ambient does not take, and whose absence would change
// what is written: refused rather than ignored, so code moving from pino
// learns at once.
const PINO_OPTIONS_NOT_TAKEN = ['transport', 'levelComparator', 'hooks', 'mixinMergeStrategy'];
// The same for child(): a child shares its parent's destination and shape.
const CHILD_OPTIONS_NOT_TAKEN = ['redact', 'useOnlyCustomLevels', 'formatters'];

function createLogger(options = {}) {
  validateObject(options, 'options');
  const notTaken = PINO_OPTIONS_NOT_TAKEN.find((key) => options[key] !== undefined);
  if (notTaken !== undefined) throw invalidArgValue(`options.${notTaken}`, options[notTaken], "is pino's, and ambient does not take it");
  // Checked now: a bad one would throw from a later log call.
  if (options.onDropped !== undefined) validateFunction(options.onDropped, 'options.onDropped');
  if (options.mixin !== undefined) validateFunction(options.mixin, 'options.mixin');
  if (options.nestedKey !== undefined && typeof options.nestedKey !== 'string') throw invalidArgType('options.nestedKey', 'string', options.nestedKey);
  if (options.pretty !== undefined) validateBoolean(options.pretty, 'options.pretty');
  const base = options.base === undefined ? { pid: process.pid, hostname: os.hostname() } : options.base;
  if (base !== null) validateObject(base, 'options.base');
  formattersOption(options.formatters);
  const levels = levelsOption(options);
  const errorKey = errorKeyOption(options);
  const redact = compileRedaction(options.redact);
  const serializers = compileSerializers(options.serializers, undefined);
  const named = options.name !== undefined ? { name: `${options.name}` } : {};
  const baseFields = base === null ? named : bindingsFormatted(options.formatters, { ...base, ...named });
  const prefixText = serializeBindings(baseFields, redact, serializers);
  const shape = lineShapeOptions(options, levels);
  if (options.enabled !== undefined) validateBoolean(options.enabled, 'options.enabled');
  // pino's enabled: false is its silent level; a bad level still throws.
  const level = options.enabled === false ? 'silent' : options.level ?? 'info';
  levelValue(levels, options.level ?? level, 'options.level');
  const destination = openDestination({ ...options, ...shape, prefix: prefixText ? `${prefixText},` : '', fieldCensor: fieldRedaction(redact) });
  const shared = {
    destination, handle: destination.handle, redact, pretty: Boolean(options.pretty), onDropped: options.onDropped,
    formatsLevels: shape.levelMembers !== undefined,
    messageKey: shape.messageKey, errorKey, mixin: options.mixin, nestedKey: options.nestedKey,
    nestedKeyJson: options.nestedKey === undefined ? undefined : JSON.stringify(options.nestedKey),
    access: new AccessBatch(destination.handle, options.sync === true, options.onDropped),
  };
  return new Logger(shared, '', level, serializers, msgPrefixOption(options, ''), levels);
}

// How every JSON line of the destination is shaped (src/line_shape.rs):
// pino's messageKey, timestamp and formatters.level.
function lineShapeOptions(options, levels) {
  const messageKey = options.messageKey ?? 'msg';
  if (typeof messageKey !== 'string') throw invalidArgType('options.messageKey', 'string', messageKey);
  return { messageKey, time: timeOption(options.timestamp), ...levelMembersOption(options.formatters, levels) };
}

// pino's errorKey: where an error logged on its own goes, and the member
// whose error stands in for a missing message.
function errorKeyOption(options) {
  const errorKey = options.errorKey ?? 'err';
  if (typeof errorKey !== 'string') throw invalidArgType('options.errorKey', 'string', errorKey);
  return errorKey;
}

function withErrorKey(serializers, errorKey) {
  const err = serializers?.get('err');
  if (err === undefined || errorKey === 'err' || serializers.has(errorKey)) return serializers;
  return new Map(serializers).set(errorKey, err);
}

// A level's name becomes a method of the logger, so it cannot be one of the
// logger's own members; it is written in pretty lines as it is.
const LEVEL_NAME = /^[A-Za-z_$][\w$]*$/;

// pino's customLevels (name to number) and useOnlyCustomLevels.
function levelsOption(options) {
  const { customLevels, useOnlyCustomLevels = false } = options;
  validateBoolean(useOnlyCustomLevels, 'options.useOnlyCustomLevels');
  if (customLevels === undefined) {
    if (useOnlyCustomLevels) throw invalidArgValue('options.useOnlyCustomLevels', true, 'needs options.customLevels');
    return DEFAULT_LEVEL_MAPS;
  }
  return withCustomLevels(useOnlyCustomLevels ? {} : LEVELS, customLevels);
}

// `values` (name to number) and `customLevels`, as a logger's levels. Unlike
// pino, a custom level may not take a name or a number a level has already:
// either would give one line two readings.
function withCustomLevels(values, customLevels) {
  validateObject(customLevels, 'options.customLevels');
  const all = { ...values };
  const taken = new Map(Object.entries(all).map(([name, value]) => [value, name]));
  for (const [name, value] of Object.entries(customLevels)) {
    const key = `options.customLevels.${name}`;
    if (!LEVEL_NAME.test(name) || name === 'silent' || name in Logger.prototype || Object.hasOwn(all, name)) {
      throw invalidArgValue('options.customLevels', customLevels, `names a level '${name}'; a level's name must be an identifier other than 'silent', a level the logger has or a logger member`);
    }
    // Rust writes the level as a u32.
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw invalidArgValue(key, value, 'must be an integer from 0 to 4294967295');
    if (taken.has(value)) throw invalidArgValue(key, value, `is level '${taken.get(value)}' already`);
    taken.set(value, name);
    all[name] = value;
  }
  if (Object.keys(all).length === 0) throw invalidArgValue('options.customLevels', customLevels, 'must name at least one level');
  return levelMaps(all);
}


// pino's formatters. Its formatters.log runs for every line, which would
// take JS for every line here too: refused rather than ignored. The other
// two run when the logger is made.
function formattersOption(formatters) {
  if (formatters === undefined) return;
  validateObject(formatters, 'options.formatters');
  const other = Object.keys(formatters).find((key) => key !== 'level' && key !== 'bindings');
  if (other !== undefined) {
    throw invalidArgValue(`options.formatters.${other}`, formatters[other], 'is not supported (formatters.level and formatters.bindings are)');
  }
  for (const key of ['level', 'bindings']) {
    if (formatters[key] !== undefined) validateFunction(formatters[key], `options.formatters.${key}`);
  }
}

function formattedObject(formatter, name, ...args) {
  const made = formatter(...args);
  if (made === null || typeof made !== 'object' || Array.isArray(made)) throw invalidReturnValue(name, 'an object', made);
  return made;
}

// formatters.bindings, as pino calls it: once, on the base members (name
// included). Not without a base, as in pino.
function bindingsFormatted(formatters, baseMembers) {
  if (formatters?.bindings === undefined) return baseMembers;
  return formattedObject(formatters.bindings, 'options.formatters.bindings', baseMembers);
}

// formatters.level, called here once per level (what it returns depends on
// the level's label and number alone) rather than once per line: each
// level's members go to Rust, which writes them in place of "level":N.
function levelMembersOption(formatters, levels) {
  if (formatters?.level === undefined) return {};
  const entries = Object.entries(levels.values);
  return {
    levelValues: entries.map(([, value]) => value),
    levelMembers: entries.map(([name, value]) => serializeBindings(formattedObject(formatters.level, 'options.formatters.level', name, value))),
  };
}

// pino's timestamp option, as src/line_shape.rs names its forms: true
// (epoch milliseconds), false (no time), or 'iso' where pino takes
// stdTimeFunctions.isoTime. pino's functions return JSON text that would be
// made in JS for every line, so they are not taken.
function timeOption(timestamp) {
  if (timestamp === undefined || timestamp === true) return 'epoch';
  if (timestamp === false) return 'none';
  if (timestamp === 'iso') return 'iso';
  throw invalidArgValue('options.timestamp', timestamp, "must be true, false or 'iso'");
}

/** An access-line message, registered with Rust once (see WRITE_ACCESS). */
function accessMessage(text) {
  return { text, id: native.logAccessMessage(text) };
}

module.exports = { createLogger, LEVELS, WRITE_IN, WRITE_ACCESS, ERROR_KEY, accessMessage };
