//! JSON log lines, pino-compatible: `{"level":30,"time":…,…,"msg":"…"}`,
//! or as the destination's line shape has them (`line_shape.rs`).
//! JS crosses once per line with the level, the current context id, the
//! pre-serialized bindings and object, and the message; Rust adds the
//! context's ids and fields from the store, escapes every string, and hands
//! the line to the off-thread writer (`writer.rs`). The middleware's access
//! lines cross in batches instead (`access_log.rs`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::destinations::{register, with_destination};
use crate::field_censor::{Censored, FieldCensor};
use crate::ids::{push_hex_bytes, split_identity, RequestId};
use crate::line_shape::{LineShape, TimeFormat};
use crate::store::{FieldValue, Record, STORE};
use crate::writer::{Sink, WhenFull, Writer};

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

pub(crate) fn push_field_value(out: &mut Vec<u8>, value: &FieldValue) {
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
pub(crate) struct Destination {
  pub(crate) writer: Arc<Writer>,
  pub(crate) sync: bool,
  pub(crate) shape: Arc<LineShape>,
  pub(crate) censor: FieldCensor,
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
  pub(crate) fn deliver_lines(&self, bytes: &[u8], ends: &[usize]) -> Result<u32> {
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
pub(crate) fn format_line_in_context(
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

thread_local! {
  /// Each thread formats its lines in one reused buffer; the writer copies
  /// them into its queue.
  static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
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
  pub fn new(env: Env, options: LogDestination) -> Result<Self> {
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
    let handle = register(&env, destination.clone())?;
    Ok(NativeLogDestination { destination, handle })
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
pub(crate) mod tests {
  use super::*;

  pub(crate) fn parse(line: &[u8]) -> serde_json::Value {
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
