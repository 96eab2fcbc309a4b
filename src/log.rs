//! JSON log lines, pino-compatible: `{"level":30,"time":…,…,"msg":"…"}`,
//! or as the destination's line shape has them (`line_shape.rs`).
//! JS crosses once per line with the level, the current context id, the
//! pre-serialized bindings and object, and the message; Rust adds the
//! context's ids and fields from the store, escapes every string, and hands
//! the line to the off-thread writer (`writer.rs`). The middleware's access
//! lines cross in batches, which the writer thread formats when none of
//! their contexts has a record.

use std::sync::{Arc, LazyLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::field_censor::{Censored, FieldCensor};
use crate::ids::{push_hex_bytes, split_identity, RequestId};
use crate::line_shape::{LineShape, TimeFormat};
use crate::store::{FieldValue, Record, STORE};
use crate::writer::{DeferredLines, Sink, WhenFull, Writer};

/// Largest integer a JS reader gets back exactly from a JSON number.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

pub(crate) fn push_json_string(out: &mut Vec<u8>, s: &str) {
  // Most strings (ids, methods, paths, messages) need no escaping: copy
  // those as they are. Otherwise serde_json escapes quotes, backslashes and
  // every control character (CR and LF included), so no value can end a
  // line or forge a field. The check has no branch per byte, so it
  // vectorizes.
  if s.bytes().fold(true, |plain, b| plain & (b >= 0x20) & (b != b'"') & (b != b'\\')) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
  } else {
    let _ = serde_json::to_writer(&mut *out, s);
  }
}

fn push_field_value(out: &mut Vec<u8>, value: &FieldValue) {
  match value {
    FieldValue::Null => out.extend_from_slice(b"null"),
    FieldValue::Bool(true) => out.extend_from_slice(b"true"),
    FieldValue::Bool(false) => out.extend_from_slice(b"false"),
    // Whole numbers as JSON.stringify writes them (`11`, not `11.0`).
    FieldValue::Number(n) if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INTEGER as f64 => {
      out.extend_from_slice(itoa::Buffer::new().format(*n as i64).as_bytes());
    }
    FieldValue::Number(n) if n.is_finite() => {
      let _ = serde_json::to_writer(&mut *out, n);
    }
    FieldValue::Number(_) => out.extend_from_slice(b"null"),
    FieldValue::Integer(i) if i.abs() <= MAX_SAFE_INTEGER => {
      out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
    }
    // Past 2^53 a JSON number would come back wrong: keep the digits.
    FieldValue::Integer(i) => push_json_string(out, itoa::Buffer::new().format(*i)),
    FieldValue::Str(s) => push_json_string(out, s),
  }
}

// Once per log line: written straight into the line, no temporary strings.
fn push_context(out: &mut Vec<u8>, r: &Record, censor: &FieldCensor) {
  out.extend_from_slice(b"\"requestId\":");
  match &r.request_id {
    // A UUID needs no escaping.
    RequestId::Generated(uuid) => {
      out.push(b'"');
      out.extend_from_slice(uuid.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).as_bytes());
      out.push(b'"');
    }
    RequestId::Given(id) => push_json_string(out, id),
  }
  out.extend_from_slice(b",\"traceId\":\"");
  push_hex_bytes(out, &r.trace_id);
  out.extend_from_slice(b"\",\"spanId\":\"");
  push_hex_bytes(out, &r.span_id);
  out.extend_from_slice(b"\",");
  for (key, value) in &r.fields {
    let censored = censor.of(key);
    if censored == Censored::Remove {
      continue;
    }
    push_json_string(out, key);
    out.push(b':');
    match censored {
      Censored::Replace(text) => push_json_string(out, text),
      _ => push_field_value(out, value),
    }
    out.push(b',');
  }
}

/// Where a line's context ids come from: the store's record (with its
/// fields), or the identity string of a context that has no record (no
/// fields): its traceparent, then its request id (`ids::split_identity`).
#[derive(Clone, Copy)]
pub enum LineContext<'a> {
  None,
  /// With what the logger redacts of its fields.
  Record(&'a Record, &'a FieldCensor),
  Identity(&'a str),
}

fn push_identity(out: &mut Vec<u8>, ids: &str) {
  // JS builds the string from pool ids or validated headers; anything else
  // is logged as an escaped request id rather than trusted.
  out.extend_from_slice(b"\"requestId\":");
  match split_identity(ids) {
    Some((trace_id, span_id, request_id)) => {
      push_json_string(out, request_id);
      out.extend_from_slice(b",\"traceId\":\"");
      out.extend_from_slice(trace_id);
      out.extend_from_slice(b"\",\"spanId\":\"");
      out.extend_from_slice(span_id);
      out.extend_from_slice(b"\",");
    }
    None => {
      push_json_string(out, ids);
      out.push(b',');
    }
  }
}

/// Builds one line. `bindings` are JSON members (`"a":1,"b":2`) made by
/// the JS serializer; `body` appends the line's own members, each followed
/// by a comma.
#[cfg(test)]
pub fn format_line(
  level: u32,
  time_ms: u64,
  shape: &LineShape,
  context: LineContext,
  bindings: Option<&str>,
  body: impl Fn(&mut Vec<u8>),
  msg: Option<&str>,
) -> Vec<u8> {
  let mut out = Vec::new();
  format_line_into(&mut out, level, time_ms, shape, context, bindings, body, msg);
  out
}

/// `format_line`, appended to `out`.
#[allow(clippy::too_many_arguments)]
pub fn format_line_into(
  out: &mut Vec<u8>,
  level: u32,
  time_ms: u64,
  shape: &LineShape,
  context: LineContext,
  bindings: Option<&str>,
  body: impl Fn(&mut Vec<u8>),
  msg: Option<&str>,
) {
  let out = &mut *out;
  shape.push_head(out, level, time_ms);
  match context {
    LineContext::None => {}
    LineContext::Record(r, censor) => push_context(out, r, censor),
    LineContext::Identity(ids) => push_identity(out, ids),
  }
  if let Some(b) = bindings.filter(|b| !b.is_empty()) {
    out.extend_from_slice(b.as_bytes());
    out.push(b',');
  }
  body(out);
  if let Some(m) = msg {
    out.extend_from_slice(shape.message_key());
    push_json_string(out, m);
  } else if out.last() == Some(&b',') {
    out.pop();
  }
  out.extend_from_slice(b"}\n");
}

fn now_ms() -> u64 {
  SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Where and how a logger writes.
#[napi(object)]
pub struct LogDestination {
  /// `1` (stdout), `2` (stderr), or a file path.
  pub fd: Option<u32>,
  pub path: Option<String>,
  /// Write on the calling thread instead of the writer thread.
  pub sync: Option<bool>,
  /// Bytes that may wait for the writer thread. Default 4 MiB.
  pub buffer_bytes: Option<u32>,
  /// `"block"` (default) waits for room when the buffer is full; `"drop"`
  /// drops the line and counts it.
  pub when_full: Option<String>,
  /// JSON members written in every line after `time` (pid, hostname, name),
  /// ending with a comma.
  pub prefix: String,
  /// The `time` member: `"epoch"` (milliseconds, the default), `"iso"` (an
  /// RFC 3339 string) or `"none"`.
  pub time: Option<String>,
  /// The message's key. Default `"msg"`.
  pub message_key: Option<String>,
  /// The levels `levelMembers` are for, in the same order.
  pub level_values: Option<Vec<u32>>,
  /// What each of `levelValues` writes in place of `"level":N`: JSON
  /// members without braces (pino's `formatters.level`, called in JS once
  /// per level). Absent, the number.
  pub level_members: Option<Vec<String>>,
  /// Context fields the logger redacts (`["*"]` for all): its one-key
  /// redaction paths. Default none.
  pub redacted_fields: Option<Vec<String>>,
  /// What a redacted field's value becomes (a string); absent, the field is
  /// left out.
  pub censor: Option<String>,
}

/// Where lines go: the writer, whether to write on the calling thread, and
/// the shape of every line.
struct Destination {
  writer: Arc<Writer>,
  sync: bool,
  shape: Arc<LineShape>,
  censor: FieldCensor,
}

/// A failed write, for JS. An `io::Error`'s text ends in "(os error N)",
/// which lib/logger.js (writeError) turns into Node's code, errno and syscall.
fn write_failed(e: impl std::fmt::Display) -> Error {
  Error::new(Status::GenericFailure, format!("log write failed: {e}"))
}

impl Destination {
  fn deliver(&self, line: &[u8]) -> Result<u32> {
    if self.sync {
      self.writer.write_now(line).map_err(write_failed)?;
      Ok(0)
    } else if self.writer.push(line) {
      Ok(0)
    } else {
      Ok(DROPPED)
    }
  }

  /// Formats one line with the context's ids (and fields, from its record)
  /// and delivers it. `body` appends the line's own members.
  #[allow(clippy::too_many_arguments)]
  fn write_line(
    &self,
    time_ms: u64,
    level: u32,
    context_id: f64,
    identity: Option<&str>,
    bindings: Option<&str>,
    msg: Option<&str>,
    body: impl Fn(&mut Vec<u8>),
  ) -> Result<u32> {
    LINE.with_borrow_mut(|line| {
      line.clear();
      let flags = format_line_in_context(
        line,
        &self.shape,
        &self.censor,
        time_ms,
        level,
        context_id,
        identity,
        bindings,
        msg,
        body,
      );
      let delivered = self.deliver(line);
      // A rare huge line does not keep its buffer.
      if line.capacity() > 64 * 1024 {
        *line = Vec::new();
      }
      Ok(flags | delivered?)
    })
  }

  /// Delivers the whole lines of `bytes`, cut at `ends`, at once. Returns
  /// how many were dropped because the buffer was full.
  fn deliver_lines(&self, bytes: &[u8], ends: &[usize]) -> Result<u32> {
    if self.sync {
      self.writer.write_now(bytes).map_err(write_failed)?;
      Ok(0)
    } else {
      Ok(self.writer.push_lines(bytes, ends) as u32)
    }
  }
}

/// Appends one line to `out`, its context read from the store when it has a
/// record. Returns USED_AFTER_END when that record had ended.
#[allow(clippy::too_many_arguments)]
fn format_line_in_context(
  out: &mut Vec<u8>,
  shape: &LineShape,
  censor: &FieldCensor,
  time_ms: u64,
  level: u32,
  context_id: f64,
  identity: Option<&str>,
  bindings: Option<&str>,
  msg: Option<&str>,
  body: impl Fn(&mut Vec<u8>),
) -> u32 {
  if let Some(ids) = identity {
    format_line_into(out, level, time_ms, shape, LineContext::Identity(ids), bindings, &body, msg);
  } else if context_id >= 0.0 {
    let start = out.len();
    match STORE.with(context_id as u64, |r| {
      format_line_into(out, level, time_ms, shape, LineContext::Record(r, censor), bindings, &body, msg);
      r.ended.is_some()
    }) {
      // JS counts it and warns once (RequestContext#noteUse).
      Ok(true) => return USED_AFTER_END,
      Ok(false) => {}
      // Released already: log without it rather than lose the line.
      Err(_) => {
        out.truncate(start);
        format_line_into(out, level, time_ms, shape, LineContext::None, bindings, &body, msg);
      }
    }
  } else {
    format_line_into(out, level, time_ms, shape, LineContext::None, bindings, &body, msg);
  }
  0
}

/// One line of an access batch, appended to `out`, on either thread.
fn format_access_line(
  out: &mut Vec<u8>,
  shape: &LineShape,
  censor: &FieldCensor,
  line: &AccessLine,
  msg: Option<&str>,
) {
  format_line_in_context(
    out,
    shape,
    censor,
    line.time_ms,
    line.level,
    line.context_id,
    line.identity,
    line.bindings,
    msg,
    |out| push_access_members(out, line.method, line.route, line.url, line.status, line.duration_ms, line.bytes),
  );
}

thread_local! {
  /// Each thread formats its lines in one reused buffer; the writer copies
  /// them into its queue.
  static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
  /// An access batch's lines, formatted one after another (and where each
  /// ends), so the writer takes them in one lock rather than one per line.
  static BATCH: std::cell::RefCell<(Vec<u8>, Vec<usize>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Every destination of the process, by handle: the per-line calls are
/// plain functions given the handle, which cost less to call than methods.
static DESTINATIONS: LazyLock<RwLock<Vec<Arc<Destination>>>> = LazyLock::new(|| RwLock::new(Vec::new()));

fn with_destination<R>(handle: u32, f: impl FnOnce(&Destination) -> Result<R>) -> Result<R> {
  let all = DESTINATIONS.read().unwrap_or_else(|e| e.into_inner());
  f(all.get(handle as usize).ok_or_else(|| Error::new(Status::InvalidArg, format!("no log destination {handle}")))?)
}

/// A native log destination shared by a logger and its children.
#[napi]
pub struct NativeLogDestination {
  destination: Arc<Destination>,
  handle: u32,
}

/// What `write` reports, as bits.
const USED_AFTER_END: u32 = 1;
const DROPPED: u32 = 2;

#[napi]
impl NativeLogDestination {
  #[napi(constructor, catch_unwind)]
  pub fn new(options: LogDestination) -> Result<Self> {
    let sink = match (options.fd, options.path.as_deref()) {
      (_, Some(path)) => {
        Sink::open(path).map_err(|e| Error::new(Status::InvalidArg, format!("cannot open log file {path}: {e}")))?
      }
      (Some(2), None) => Sink::Stderr,
      (Some(1) | None, None) => Sink::Stdout,
      (Some(fd), None) => {
        return Err(Error::new(Status::InvalidArg, format!("unsupported log destination fd {fd}: use 1, 2 or a path")))
      }
    };
    let when_full = match options.when_full.as_deref() {
      None | Some("block") => WhenFull::Block,
      Some("drop") => WhenFull::Drop,
      Some(other) => {
        return Err(Error::new(Status::InvalidArg, format!("whenFull must be \"block\" or \"drop\", not {other:?}")))
      }
    };
    let Some(time) = TimeFormat::parse(options.time.as_deref()) else {
      return Err(Error::new(Status::InvalidArg, "time must be \"epoch\", \"iso\" or \"none\"".to_owned()));
    };
    let mut shape = LineShape::new(time, options.message_key.as_deref().unwrap_or("msg"), options.prefix);
    match (options.level_values, options.level_members) {
      (None, None) => {}
      (Some(levels), Some(members)) if levels.len() == members.len() => {
        shape = shape.with_level_members(levels.into_iter().zip(members));
      }
      _ => return Err(Error::new(Status::InvalidArg, "levelMembers must have one entry per levelValues".to_owned())),
    }
    let capacity = options.buffer_bytes.unwrap_or(4 << 20) as usize;
    let destination = Arc::new(Destination {
      writer: Writer::start(sink, capacity, when_full),
      sync: options.sync.unwrap_or(false),
      shape: Arc::new(shape),
      censor: FieldCensor::new(options.redacted_fields.unwrap_or_default(), options.censor),
    });
    let mut all = DESTINATIONS.write().unwrap_or_else(|e| e.into_inner());
    all.push(destination.clone());
    Ok(NativeLogDestination { destination, handle: (all.len() - 1) as u32 })
  }

  /// The handle `logWrite` and `logAccessBatch` take.
  #[napi(getter, catch_unwind)]
  pub fn handle(&self) -> u32 {
    self.handle
  }

  /// Writes a line formatted in JS (the pretty mode), as given.
  #[napi(catch_unwind)]
  pub fn write_raw(&self, line: String) -> Result<()> {
    self.destination.deliver(line.as_bytes()).map(|_| ())
  }

  /// Blocks until every line so far is written (for exit paths).
  #[napi(catch_unwind)]
  pub fn flush_sync(&self) -> Result<()> {
    match self.destination.writer.flush() {
      None => Ok(()),
      Some(e) => Err(write_failed(e)),
    }
  }

  /// Resolves once every line so far is written; the wait happens off the
  /// JS thread.
  #[napi(catch_unwind)]
  pub fn flush(&self) -> AsyncTask<FlushTask> {
    let writer = self.destination.writer.clone();
    AsyncTask::new(FlushTask { flush: Box::new(move || writer.flush()) })
  }

  /// Lines dropped because the buffer was full (policy "drop").
  #[napi(getter, catch_unwind)]
  pub fn dropped(&self) -> f64 {
    self.destination.writer.dropped.load(std::sync::atomic::Ordering::Relaxed) as f64
  }

  /// Flushes and stops the writer thread.
  #[napi(catch_unwind)]
  pub fn close(&self) {
    self.destination.writer.close();
  }
}

/// Writes one line to destination `handle`. `context_id` is -1 outside a
/// context or for a context without a record, whose `identity` (see
/// `LineContext`) is given instead. `bindings` are JSON members and
/// `object` a JSON object, both made by the JS serializer. Returns bits: 1
/// when the context had already ended (a use-after-end, still logged), 2
/// when the line was dropped because the buffer was full.
#[allow(clippy::too_many_arguments)]
#[napi(catch_unwind)]
pub fn log_write(
  handle: u32,
  level: u32,
  context_id: f64,
  identity: Option<String>,
  bindings: Option<String>,
  object: Option<String>,
  msg: Option<String>,
) -> Result<u32> {
  with_destination(handle, |d| {
    d.write_line(now_ms(), level, context_id, identity.as_deref(), bindings.as_deref(), msg.as_deref(), |out| {
      if let Some(o) = object.as_deref() {
        push_object_members(out, o);
      }
    })
  })
}

/// The members a logged object's JSON text adds to its line: the object's
/// own, or, for any other JSON value (an array, what a `toJSON()` returned,
/// the placeholder of an object that could not be read), that value under
/// `value`. JS leaves this to the line's bytes, which are read here anyway.
fn push_object_members(out: &mut Vec<u8>, object: &str) {
  match object.strip_prefix('{').and_then(|o| o.strip_suffix('}')) {
    Some("") => {}
    Some(members) => {
      out.extend_from_slice(members.as_bytes());
      out.push(b',');
    }
    None => {
      out.extend_from_slice(b"\"value\":");
      out.extend_from_slice(object.as_bytes());
      out.push(b',');
    }
  }
}

/// Messages of access lines, registered once per middleware
/// (`logAccessMessage`) so a line does not carry its message across.
static ACCESS_MESSAGES: LazyLock<RwLock<Vec<Box<str>>>> = LazyLock::new(|| RwLock::new(Vec::new()));

/// Registers the message of a middleware's access lines; returns the id
/// access batches give.
#[napi(catch_unwind)]
pub fn log_access_message(msg: String) -> u32 {
  let mut all = ACCESS_MESSAGES.write().unwrap_or_else(|e| e.into_inner());
  all.push(msg.into());
  (all.len() - 1) as u32
}

/// Numbers per line of an access batch, in this order: context id (-1 for
/// none), level, message id, status, duration in ms, body bytes, time in ms
/// since the epoch, then the UTF-16 lengths, in `text`, of the line's
/// strings (`ACCESS_STRINGS`); -1 for an absent one.
const ACCESS_SLOTS: usize = 12;
/// The strings of an access line, in their order in `text`: the context's
/// identity (absent when it has a record, then read from the store by the
/// context id), the logger's bindings, method, route (absent when no route
/// matched) and url.
const ACCESS_STRINGS: usize = 5;

/// The middleware's "request completed" lines, gathered in JS and given in
/// one crossing: `count` lines whose numbers are `numbers` (see
/// `ACCESS_SLOTS`) and whose strings follow one another in `text`, cut by
/// their lengths, so they may hold any character. Lengths count UTF-16
/// units, as JS does, so `text` crosses as UTF-16. The lines were logged
/// before their contexts ended (JS reports a use after end itself).
/// Returns how many lines were dropped because the buffer was full.
///
/// A batch with no line of a context with a record (whose line reads the
/// record as it is now) goes to the writer thread as it came, and is
/// formatted there: the event loop's thread only copies it across.
#[napi(catch_unwind)]
pub fn log_access_batch(handle: u32, text: Utf16String, numbers: Float64ArraySlice, count: u32) -> Result<u32> {
  let numbers = numbers.as_ref();
  let count = count as usize;
  with_destination(handle, |d| {
    let messages = ACCESS_MESSAGES.read().unwrap_or_else(|e| e.into_inner());
    let text = if !d.sync && can_defer(text.len(), numbers, count, messages.len()) {
      let deferred =
        DeferredAccessBatch { text, numbers: numbers[..count * ACCESS_SLOTS].to_vec(), count, shape: d.shape.clone() };
      // When there is no room for it now, it is formatted here, and the
      // writer's policy (block or drop) applies line by line.
      match d.writer.push_deferred(deferred) {
        Ok(()) => return Ok(0),
        Err(given_back) => given_back.text,
      }
    } else {
      text
    };
    BATCH.with_borrow_mut(move |(bytes, ends)| {
      bytes.clear();
      ends.clear();
      let formatted = each_access_line(&text, numbers, count, malformed_batch, |line| {
        let msg = messages.get(line.message as usize).ok_or_else(malformed_batch)?;
        format_access_line(bytes, &d.shape, &d.censor, &line, Some(msg));
        ends.push(bytes.len());
        Ok(())
      });
      // Not held while the push may wait for the writer thread, which reads
      // the messages too: a registration waiting in between would block
      // both.
      drop(messages);
      // The lines before a malformed one still go out.
      let dropped = d.deliver_lines(bytes, ends);
      // A rare huge batch does not keep its buffer.
      if bytes.capacity() > 1 << 20 {
        *bytes = Vec::new();
      }
      formatted.and(dropped)
    })
  })
}

/// Whether a batch may be formatted later on the writer thread: it is well
/// formed (so formatting it cannot fail: `each_access_line` makes the same
/// checks), and no line reads a record.
fn can_defer(text_len: usize, numbers: &[f64], count: usize, messages: usize) -> bool {
  if numbers.len() / ACCESS_SLOTS < count {
    return false;
  }
  let mut at = 0usize;
  for slots in numbers.chunks_exact(ACCESS_SLOTS).take(count) {
    // The identity is the first string; without one, the line reads the
    // record of its context.
    let has_identity = string_lengths(slots).next().flatten().is_some();
    let reads_record = slots[0] >= 0.0 && !has_identity;
    let known_message = slots[2] >= 0.0 && (slots[2] as usize) < messages;
    if reads_record || !known_message {
      return false;
    }
    at = string_lengths(slots).flatten().fold(at, usize::saturating_add);
  }
  at <= text_len
}

/// Bytes of an access line beyond its strings and its shape's (the keys,
/// ids, numbers and message), for the writer's bound.
const ACCESS_LINE_EXTRA: usize = 192;

/// An access batch as it came from JS, formatted on the writer thread.
struct DeferredAccessBatch {
  text: Utf16String,
  numbers: Vec<f64>,
  count: usize,
  shape: Arc<LineShape>,
}

impl DeferredLines for DeferredAccessBatch {
  fn lines(&self) -> usize {
    self.count
  }

  fn size_hint(&self) -> usize {
    self.text.len() + self.count * (self.shape.size_hint() + ACCESS_LINE_EXTRA)
  }

  fn format_into(&self, out: &mut Vec<u8>) {
    let messages = ACCESS_MESSAGES.read().unwrap_or_else(|e| e.into_inner());
    // can_defer() checked the batch, so this cannot fail.
    let _ = each_access_line(
      &self.text,
      &self.numbers,
      self.count,
      || (),
      |line| {
        // No line of a deferred batch reads a record (can_defer), so none
        // has fields to redact.
        format_access_line(
          out,
          &self.shape,
          &FieldCensor::None,
          &line,
          messages.get(line.message as usize).map(|m| &**m),
        );
        Ok(())
      },
    );
  }
}

fn malformed_batch() -> Error {
  Error::new(Status::InvalidArg, "malformed access batch".to_owned())
}

/// One line of an access batch, its strings decoded.
#[derive(Debug, PartialEq)]
struct AccessLine<'a> {
  context_id: f64,
  level: u32,
  message: u32,
  status: u32,
  duration_ms: f64,
  bytes: f64,
  time_ms: u64,
  identity: Option<&'a str>,
  bindings: Option<&'a str>,
  method: &'a str,
  route: Option<&'a str>,
  url: &'a str,
}

/// Appends UTF-16 `units` to `out`. Ids, methods and most urls are ASCII:
/// those are narrowed unit by unit into the string's bytes, a loop with no
/// branch that the compiler vectorizes (pushing them as chars costs a
/// UTF-8 length check per character); anything else is decoded.
fn push_utf16(out: &mut String, units: &[u16]) {
  if units.iter().fold(0u16, |seen, &u| seen | u) < 0x80 {
    // SAFETY: every unit is below 0x80, so each byte pushed is an ASCII
    // character and the string stays valid UTF-8.
    unsafe { out.as_mut_vec() }.extend(units.iter().map(|&u| u as u8));
  } else {
    out.extend(char::decode_utf16(units.iter().copied()).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)));
  }
}

/// The lengths of a line's strings in UTF-16 code units, in the order JS
/// wrote them after its numbers (identity, bindings, method, route, url);
/// None for one that is absent.
fn string_lengths(slots: &[f64]) -> impl Iterator<Item = Option<usize>> + '_ {
  slots[ACCESS_SLOTS - ACCESS_STRINGS..].iter().map(|&len| (len >= 0.0).then_some(len as usize))
}

/// Decodes the `count` lines of a batch one by one into reused strings;
/// lone surrogates become U+FFFD, as in every other string JS gives Rust.
/// Generic in its error so that it is tested without a JS engine.
fn each_access_line<E>(
  text: &[u16],
  numbers: &[f64],
  count: usize,
  malformed: fn() -> E,
  mut each: impl FnMut(AccessLine) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
  if numbers.len() / ACCESS_SLOTS < count {
    return Err(malformed());
  }
  let mut strings: [String; ACCESS_STRINGS] = Default::default();
  let mut at = 0usize;
  for slots in numbers.chunks_exact(ACCESS_SLOTS).take(count) {
    let mut present = [false; ACCESS_STRINGS];
    for (i, len) in string_lengths(slots).enumerate() {
      strings[i].clear();
      if let Some(len) = len {
        let units = text.get(at..at + len).ok_or_else(malformed)?;
        push_utf16(&mut strings[i], units);
        at += len;
        present[i] = true;
      }
    }
    let given = |i: usize| present[i].then_some(strings[i].as_str());
    each(AccessLine {
      context_id: slots[0],
      level: slots[1] as u32,
      message: slots[2] as u32,
      status: slots[3] as u32,
      duration_ms: slots[4],
      bytes: slots[5],
      time_ms: slots[6] as u64,
      identity: given(0),
      bindings: given(1),
      method: &strings[2],
      route: given(3),
      url: &strings[4],
    })?;
  }
  Ok(())
}

fn push_access_members(
  out: &mut Vec<u8>,
  method: &str,
  route: Option<&str>,
  url: &str,
  status: u32,
  duration_ms: f64,
  bytes: f64,
) {
  out.extend_from_slice(b"\"method\":");
  push_json_string(out, method);
  if let Some(route) = route {
    out.extend_from_slice(b",\"route\":");
    push_json_string(out, route);
  }
  out.extend_from_slice(b",\"url\":");
  push_json_string(out, url);
  out.extend_from_slice(b",\"status\":");
  out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
  out.extend_from_slice(b",\"durationMs\":");
  push_field_value(out, &FieldValue::Number(duration_ms));
  out.extend_from_slice(b",\"bytes\":");
  push_field_value(out, &FieldValue::Number(bytes));
  out.push(b',');
}

/// Waits for a writer's lines on a libuv worker thread. Holds the wait as a
/// closure so that a test can make it panic (`panic_in_flush_for_test`).
pub struct FlushTask {
  flush: Box<dyn FnMut() -> Option<String> + Send>,
}

/// A flush whose wait panics, on the worker thread as a real one would.
/// Exists so tests can prove that it rejects rather than aborting.
#[napi(catch_unwind)]
pub fn panic_in_flush_for_test(message: String) -> AsyncTask<FlushTask> {
  AsyncTask::new(FlushTask { flush: Box::new(move || panic!("{message}")) })
}

impl Task for FlushTask {
  type Output = Option<String>;
  type JsValue = ();

  // Runs on a libuv worker thread, where napi-rs catches no panic: one
  // unwinding out of here would abort the process.
  fn compute(&mut self) -> Result<Self::Output> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.flush)())).map_err(|panic| {
      let detail = panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied());
      Error::from_reason(format!("the log writer panicked while flushing: {}", detail.unwrap_or("no message")))
    })
  }

  fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<()> {
    match output {
      None => Ok(()),
      Some(e) => Err(write_failed(e)),
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn parse(line: &[u8]) -> serde_json::Value {
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "exactly one line");
    serde_json::from_slice(line).unwrap()
  }

  #[test]
  fn strings_are_escaped_exactly_as_serde_json_does() {
    for s in
      ["", "plain /path?a=1", "quote\"", "back\\slash", "nl\n cr\r tab\t", "\u{0}\u{1f}\u{7f}", "ünïcode ✓", "\u{2028}"]
    {
      let mut out = Vec::new();
      push_json_string(&mut out, s);
      assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap());
    }
  }

  #[test]
  fn a_shape_without_time_and_with_its_own_message_key() {
    let shape = LineShape::new(TimeFormat::Omitted, "message", "\"pid\":1,".into());
    let text =
      String::from_utf8(format_line(40, 7, &shape, LineContext::None, Some("\"a\":1"), |_| {}, Some("hi"))).unwrap();
    assert_eq!(text, "{\"level\":40,\"pid\":1,\"a\":1,\"message\":\"hi\"}\n");
    let without_message = String::from_utf8(format_line(40, 7, &shape, LineContext::None, None, |_| {}, None)).unwrap();
    assert_eq!(without_message, "{\"level\":40,\"pid\":1}\n");
    let bare = LineShape::new(TimeFormat::Omitted, "msg", String::new());
    assert_eq!(
      String::from_utf8(format_line(30, 7, &bare, LineContext::None, None, |_| {}, None)).unwrap(),
      "{\"level\":30}\n"
    );
  }

  #[test]
  fn pino_keys_and_escaped_message() {
    let line = format_line(
      30,
      1_700_000_000_000,
      &LineShape::new(TimeFormat::EpochMs, "msg", "\"pid\":1,".into()),
      LineContext::None,
      None,
      |_| {},
      Some("hello \"world\"\r\n{\"level\":60}"),
    );
    let v = parse(&line);
    assert_eq!(v["level"], 30);
    assert_eq!(v["time"], 1_700_000_000_000u64);
    assert_eq!(v["pid"], 1);
    assert_eq!(v["msg"], "hello \"world\"\r\n{\"level\":60}");
  }

  #[test]
  fn access_line_members_are_escaped() {
    let body = |out: &mut Vec<u8>| push_access_members(out, "GET", None, "/a\"\n{\"level\":60}", 200, 1.5, 11.0);
    let v = parse(&format_line(
      30,
      1,
      &LineShape::default(),
      LineContext::None,
      Some("\"app\":\"x\""),
      body,
      Some("request completed"),
    ));
    assert_eq!(v["method"], "GET");
    assert!(v.get("route").is_none());
    assert_eq!(v["url"], "/a\"\n{\"level\":60}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["durationMs"], 1.5);
    assert_eq!(v["bytes"], 11);
    assert!(!String::from_utf8(format_line(30, 1, &LineShape::default(), LineContext::None, None, body, None))
      .unwrap()
      .contains("11.0"));
    assert_eq!(v["app"], "x");
    assert_eq!(v["msg"], "request completed");
    let body =
      |out: &mut Vec<u8>| push_access_members(out, "POST", Some("/orders/:id"), "/orders/7", 500, f64::NAN, 0.0);
    let v = parse(&format_line(50, 1, &LineShape::default(), LineContext::None, None, body, None));
    assert_eq!(v["route"], "/orders/:id");
    assert!(v["durationMs"].is_null());
  }

  /// An access line's strings: identity, bindings, method, route and url.
  type AccessStrings<'a> = (Option<&'a str>, Option<&'a str>, &'a str, Option<&'a str>, &'a str);

  fn access_batch(lines: &[AccessStrings]) -> (Vec<u16>, Vec<f64>) {
    let (mut text, mut numbers) = (Vec::new(), Vec::new());
    for (n, strings) in lines.iter().enumerate() {
      numbers.extend_from_slice(&[n as f64, 30.0, 0.0, 200.0 + n as f64, 1.5, 11.0, 1_700_000_000_000.0 + n as f64]);
      for s in [strings.0, strings.1, Some(strings.2), strings.3, Some(strings.4)] {
        let units: Vec<u16> = s.map(|s| s.encode_utf16().collect()).unwrap_or_default();
        numbers.push(s.map_or(-1.0, |_| units.len() as f64));
        text.extend(units);
      }
    }
    (text, numbers)
  }

  #[test]
  fn only_well_formed_batches_without_a_record_line_are_deferred() {
    let ids = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03req-1";
    let (text, numbers) =
      access_batch(&[(Some(ids), None, "GET", Some("/r"), "/r"), (Some(ids), Some("\"k\":1"), "PUT", None, "/")]);
    assert!(can_defer(text.len(), &numbers, 2, 1));
    assert!(!can_defer(text.len() - 1, &numbers, 2, 1), "text shorter than its lengths");
    assert!(!can_defer(text.len(), &numbers[..ACCESS_SLOTS], 2, 1), "too few numbers");
    assert!(!can_defer(text.len(), &numbers, 2, 0), "a message that was never registered");
    // A line of a context with a record (an id, no identity) reads the store now.
    let (text, numbers) = access_batch(&[(Some(ids), None, "GET", None, "/"), (None, None, "GET", None, "/")]);
    assert!(!can_defer(text.len(), &numbers, 2, 1));
    // No context at all: nothing to read.
    let mut outside = numbers.clone();
    outside[ACCESS_SLOTS] = -1.0;
    assert!(can_defer(text.len(), &outside, 2, 1));
  }

  #[test]
  fn a_deferred_batch_formats_every_line_with_its_ids_and_members() {
    let message = log_access_message("request completed".to_owned());
    let ids = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03req-\"1\"";
    let (text, mut numbers) = access_batch(&[
      (Some(ids), None, "GET", Some("/r/:n"), "/r/1\n"),
      (None, Some("\"k\":1"), "PÖST", None, "/\u{e9}"),
    ]);
    numbers[2] = message as f64;
    numbers[ACCESS_SLOTS] = -1.0;
    numbers[ACCESS_SLOTS + 2] = message as f64;
    let batch = DeferredAccessBatch {
      text: text.into(),
      numbers,
      count: 2,
      shape: Arc::new(LineShape::new(TimeFormat::EpochMs, "msg", "\"pid\":1,".into())),
    };
    let mut out = Vec::new();
    batch.format_into(&mut out);
    assert!(out.len() <= batch.size_hint());
    let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 2);
    let (first, second) = (parse(lines[0]), parse(lines[1]));
    assert_eq!(first["requestId"], "req-\"1\"");
    assert_eq!(first["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!((first["route"].as_str(), first["url"].as_str()), (Some("/r/:n"), Some("/r/1\n")));
    assert_eq!((first["pid"].as_i64(), first["time"].as_u64()), (Some(1), Some(1_700_000_000_000)));
    assert_eq!(first["msg"], "request completed");
    assert!(second.get("requestId").is_none());
    assert_eq!(
      (second["method"].as_str(), second["url"].as_str(), second["k"].as_i64()),
      (Some("PÖST"), Some("/\u{e9}"), Some(1))
    );
    assert_eq!(
      (second["status"].as_u64(), second["durationMs"].as_f64(), second["bytes"].as_u64()),
      (Some(201), Some(1.5), Some(11))
    );
  }

  #[test]
  fn access_batch_lines_are_cut_by_their_lengths_whatever_they_hold() {
    let lines = [
      (Some("ids"), None, "GET", Some("/a/:b"), "/a/1?x=\0\u{1}\"\n"),
      (None, Some("\"k\":1"), "PO\0ST", None, "/\u{e9}t\u{e9}/\u{1f600}"),
      (Some(""), Some(""), "", Some(""), ""),
    ];
    let (text, numbers) = access_batch(&lines);
    let mut seen = Vec::new();
    each_access_line(
      &text,
      &numbers,
      lines.len(),
      || (),
      |l| {
        seen.push((
          l.context_id,
          l.status,
          l.time_ms,
          l.identity.map(String::from),
          l.bindings.map(String::from),
          l.method.to_owned(),
          l.route.map(String::from),
          l.url.to_owned(),
        ));
        Ok(())
      },
    )
    .unwrap();
    let expected: Vec<_> = lines
      .iter()
      .enumerate()
      .map(|(n, l)| {
        (
          n as f64,
          200 + n as u32,
          1_700_000_000_000 + n as u64,
          l.0.map(String::from),
          l.1.map(String::from),
          l.2.to_owned(),
          l.3.map(String::from),
          l.4.to_owned(),
        )
      })
      .collect();
    assert_eq!(seen, expected);
  }

  #[test]
  fn access_batch_refuses_lengths_past_its_text_and_too_few_numbers() {
    let (text, numbers) = access_batch(&[(None, None, "GET", None, "/")]);
    let never = |_: AccessLine| -> std::result::Result<(), ()> { panic!("no line may come out of a malformed batch") };
    assert_eq!(each_access_line(&text[..text.len() - 1], &numbers, 1, || (), never), Err(()));
    assert_eq!(each_access_line(&text, &numbers[..ACCESS_SLOTS - 1], 1, || (), never), Err(()));
    let mut lines = 0;
    let counted = each_access_line(
      &text,
      &numbers,
      2,
      || (),
      |_| {
        lines += 1;
        Ok(())
      },
    );
    assert_eq!(counted, Err(()));
    assert_eq!(lines, 0, "a batch short of numbers is refused before any line");
  }

  #[test]
  fn utf16_is_appended_as_std_decodes_it_on_both_paths() {
    let cases: Vec<Vec<u16>> = vec![
      vec![],
      "/users/42?q=a%20b".encode_utf16().collect(),
      (0u16..0x80).collect(),
      vec![0x7f, 0x80, 0x41],
      "/caf\u{e9}/\u{1f600}".encode_utf16().collect(),
      vec![0x41, 0xdc00, 0xd800, 0x42],
    ];
    for units in cases {
      let mut out = String::from("x");
      push_utf16(&mut out, &units);
      assert_eq!(out, format!("x{}", String::from_utf16_lossy(&units)), "{units:?}");
    }
  }

  #[test]
  fn a_lone_surrogate_in_an_access_batch_becomes_a_replacement_character() {
    let (mut text, mut numbers) = access_batch(&[(None, None, "GET", None, "/ab")]);
    let url_start = text.len() - 3;
    text[url_start + 1] = 0xd800;
    numbers[ACCESS_SLOTS - 1] = 3.0;
    let mut url = String::new();
    each_access_line(
      &text,
      &numbers,
      1,
      || (),
      |l| {
        url = l.url.to_owned();
        Ok(())
      },
    )
    .unwrap();
    assert_eq!(url, "/\u{fffd}b");
  }

  #[test]
  fn identity_of_a_context_without_a_record() {
    let ids = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01req-\"1\"\n";
    let v = parse(&format_line(30, 1, &LineShape::default(), LineContext::Identity(ids), None, |_| {}, Some("m")));
    assert_eq!(v["requestId"], "req-\"1\"\n");
    assert_eq!(v["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(v["spanId"], "00f067aa0ba902b7");
    // Not the expected shape: kept, escaped, as the request id.
    let v =
      parse(&format_line(30, 1, &LineShape::default(), LineContext::Identity("\"},\"forged\":1"), None, |_| {}, None));
    assert_eq!(v["requestId"], "\"},\"forged\":1");
    assert!(v.get("forged").is_none());
  }

  #[test]
  fn an_identity_of_another_shape_is_logged_whole_as_the_request_id() {
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03req-1";
    let v = parse(&format_line(30, 1, &LineShape::default(), LineContext::Identity(good), None, |_| {}, None));
    assert_eq!(
      (v["requestId"].as_str(), v["traceId"].as_str()),
      (Some("req-1"), Some("4bf92f3577b34da6a3ce929d0e0e4736"))
    );
    let uppercase = good.replace("4bf92f", "4BF92F");
    let wrong_version = good.replacen("00-", "01-", 1);
    let no_dash = good.replacen("-00f0", "x00f0", 1);
    let bad_flags = good.replace("-03req", "-0xreq");
    let no_request_id = &good[..55];
    for ids in [uppercase.as_str(), &wrong_version, &no_dash, &bad_flags, no_request_id, "short"] {
      let v = parse(&format_line(30, 1, &LineShape::default(), LineContext::Identity(ids), None, |_| {}, None));
      assert_eq!(v["requestId"], ids, "{ids}");
      assert!(v.get("traceId").is_none(), "{ids}");
    }
  }

  #[test]
  fn context_ids_fields_bindings_and_object() {
    let id =
      STORE.begin(crate::store::BeginOptions { request_id: Some("req-1".into()), ..Default::default() }).unwrap();
    STORE.set_field(id, "user\nname", FieldValue::Str("ada\"\n".into())).unwrap();
    STORE.set_field(id, "big", FieldValue::Integer(1 << 60)).unwrap();
    STORE.set_field(id, "nan", FieldValue::Number(f64::NAN)).unwrap();
    let line = STORE
      .with(id, |r| {
        format_line(
          50,
          1,
          &LineShape::default(),
          LineContext::Record(r, &FieldCensor::None),
          Some("\"component\":\"db\""),
          |out| out.extend_from_slice(b"\"rows\":3,"),
          None,
        )
      })
      .unwrap();
    let v = parse(&line);
    assert_eq!(v["requestId"], "req-1");
    assert_eq!(v["traceId"].as_str().unwrap().len(), 32);
    assert_eq!(v["spanId"].as_str().unwrap().len(), 16);
    assert_eq!(v["user\nname"], "ada\"\n");
    assert_eq!(v["big"], (1i64 << 60).to_string());
    assert!(v["nan"].is_null());
    assert_eq!(v["component"], "db");
    assert_eq!(v["rows"], 3);
    assert!(v.get("msg").is_none());
    STORE.end(id, "ok").unwrap();
    STORE.release(id);
  }

  #[test]
  fn redacted_fields_are_censored_or_left_out_and_the_ids_kept() {
    let id =
      STORE.begin(crate::store::BeginOptions { request_id: Some("req-r".into()), ..Default::default() }).unwrap();
    STORE.set_field(id, "token", FieldValue::Str("secret".into())).unwrap();
    STORE.set_field(id, "tenant", FieldValue::Str("acme".into())).unwrap();
    let line_with = |censor: &FieldCensor| {
      STORE
        .with(id, |r| {
          parse(&format_line(30, 1, &LineShape::default(), LineContext::Record(r, censor), None, |_| {}, None))
        })
        .unwrap()
    };
    let replaced = line_with(&FieldCensor::new(vec!["token".into()], Some("\"[x]\n".into())));
    assert_eq!(replaced["token"], "\"[x]\n", "the censor is escaped like any string");
    assert_eq!(replaced["tenant"], "acme");
    let removed = line_with(&FieldCensor::new(vec!["token".into()], None));
    assert!(removed.get("token").is_none());
    assert_eq!(removed["tenant"], "acme");
    let all = line_with(&FieldCensor::new(vec!["*".into()], Some("[Redacted]".into())));
    assert_eq!((all["token"].as_str(), all["tenant"].as_str()), (Some("[Redacted]"), Some("[Redacted]")));
    assert_eq!(all["requestId"], "req-r");
    STORE.end(id, "ok").unwrap();
    STORE.release(id);
  }

  #[test]
  fn an_object_adds_its_members_and_any_other_value_goes_under_value() {
    let members_of = |object: &str| {
      let mut out = b"{".to_vec();
      push_object_members(&mut out, object);
      out.extend_from_slice(b"\"msg\":\"m\"}\n");
      parse(&out)
    };
    assert_eq!(members_of(r#"{"a":1,"b":[2]}"#), serde_json::json!({ "a": 1, "b": [2], "msg": "m" }));
    assert_eq!(members_of("{}"), serde_json::json!({ "msg": "m" }));
    assert_eq!(members_of("[1,{\"c\":2}]"), serde_json::json!({ "value": [1, { "c": 2 }], "msg": "m" }));
    assert_eq!(
      members_of(r#""[Unserializable: Error: x]""#),
      serde_json::json!({ "value": "[Unserializable: Error: x]", "msg": "m" })
    );
    assert_eq!(members_of("5"), serde_json::json!({ "value": 5, "msg": "m" }));
  }
}
