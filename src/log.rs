//! JSON log lines, pino-compatible: `{"level":30,"time":…,…,"msg":"…"}`.
//! JS crosses once per line with the level, the current context id, the
//! pre-serialized bindings and object, and the message; Rust adds the
//! context's ids and fields from the store, escapes every string, and hands
//! the line to the off-thread writer (`writer.rs`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::ids::RequestId;
use crate::store::{FieldValue, Record, STORE};
use crate::writer::{Sink, WhenFull, Writer};

/// Largest integer a JS reader gets back exactly from a JSON number.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

fn push_json_string(out: &mut Vec<u8>, s: &str) {
  // serde_json escapes quotes, backslashes and every control character
  // (CR and LF included), so no value can end a line or forge a field.
  let _ = serde_json::to_writer(&mut *out, s);
}

fn push_field_value(out: &mut Vec<u8>, value: &FieldValue) {
  match value {
    FieldValue::Null => out.extend_from_slice(b"null"),
    FieldValue::Bool(true) => out.extend_from_slice(b"true"),
    FieldValue::Bool(false) => out.extend_from_slice(b"false"),
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

fn push_hex_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
  const HEX: &[u8; 16] = b"0123456789abcdef";
  for b in bytes {
    out.push(HEX[(b >> 4) as usize]);
    out.push(HEX[(b & 0x0f) as usize]);
  }
}

// Once per log line: written straight into the line, no temporary strings.
fn push_context(out: &mut Vec<u8>, r: &Record) {
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
    push_json_string(out, key);
    out.push(b':');
    push_field_value(out, value);
    out.push(b',');
  }
}

/// Builds one line. `bindings` are JSON members (`"a":1,"b":2`) and
/// `object` a JSON object, both made by the JS serializer.
pub fn format_line(level: u32, time_ms: u64, prefix: &str, context: Option<&Record>, bindings: Option<&str>, object: Option<&str>, msg: Option<&str>) -> Vec<u8> {
  let mut out = Vec::with_capacity(256 + prefix.len() + bindings.map_or(0, str::len) + object.map_or(0, str::len) + msg.map_or(0, str::len));
  out.extend_from_slice(b"{\"level\":");
  out.extend_from_slice(itoa::Buffer::new().format(level).as_bytes());
  out.extend_from_slice(b",\"time\":");
  out.extend_from_slice(itoa::Buffer::new().format(time_ms).as_bytes());
  out.push(b',');
  out.extend_from_slice(prefix.as_bytes());
  if let Some(r) = context {
    push_context(&mut out, r);
  }
  if let Some(b) = bindings.filter(|b| !b.is_empty()) {
    out.extend_from_slice(b.as_bytes());
    out.push(b',');
  }
  if let Some(members) = object.and_then(|o| o.strip_prefix('{')).and_then(|o| o.strip_suffix('}')).filter(|m| !m.is_empty()) {
    out.extend_from_slice(members.as_bytes());
    out.push(b',');
  }
  if let Some(m) = msg {
    out.extend_from_slice(b"\"msg\":");
    push_json_string(&mut out, m);
  } else if out.last() == Some(&b',') {
    out.pop();
  }
  out.extend_from_slice(b"}\n");
  out
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
}

/// A native log destination shared by a logger and its children.
#[napi]
pub struct NativeLogDestination {
  writer: Arc<Writer>,
  sync: bool,
  prefix: String,
}

/// What `write` reports, as bits.
const USED_AFTER_END: u32 = 1;
const DROPPED: u32 = 2;

#[napi]
impl NativeLogDestination {
  #[napi(constructor, catch_unwind)]
  pub fn new(options: LogDestination) -> Result<Self> {
    let sink = match (options.fd, options.path.as_deref()) {
      (_, Some(path)) => Sink::open(path).map_err(|e| Error::new(Status::InvalidArg, format!("cannot open log file {path}: {e}")))?,
      (Some(2), None) => Sink::Stderr,
      (Some(1) | None, None) => Sink::Stdout,
      (Some(fd), None) => return Err(Error::new(Status::InvalidArg, format!("unsupported log destination fd {fd}: use 1, 2 or a path"))),
    };
    let when_full = match options.when_full.as_deref() {
      None | Some("block") => WhenFull::Block,
      Some("drop") => WhenFull::Drop,
      Some(other) => return Err(Error::new(Status::InvalidArg, format!("whenFull must be \"block\" or \"drop\", not {other:?}"))),
    };
    let capacity = options.buffer_bytes.unwrap_or(4 << 20) as usize;
    Ok(NativeLogDestination { writer: Writer::start(sink, capacity, when_full), sync: options.sync.unwrap_or(false), prefix: options.prefix })
  }

  /// Writes one line. `context_id` is -1 outside a context. Returns bits:
  /// 1 when the context had already ended (a use-after-end, still logged),
  /// 2 when the line was dropped because the buffer was full.
  #[napi(catch_unwind)]
  pub fn write(&self, level: u32, context_id: f64, bindings: Option<String>, object: Option<String>, msg: Option<String>) -> Result<u32> {
    let mut flags = 0;
    let line = if context_id >= 0.0 {
      let id = context_id as u64;
      let formatted = STORE.with(id, |r| {
        let ended = r.ended.is_some();
        (format_line(level, now_ms(), &self.prefix, Some(r), bindings.as_deref(), object.as_deref(), msg.as_deref()), ended)
      });
      match formatted {
        Ok((line, ended)) => {
          if ended {
            // JS counts it and warns once (RequestContext#noteUse).
            flags |= USED_AFTER_END;
          }
          line
        }
        // Released already: log without it rather than lose the line.
        Err(_) => format_line(level, now_ms(), &self.prefix, None, bindings.as_deref(), object.as_deref(), msg.as_deref()),
      }
    } else {
      format_line(level, now_ms(), &self.prefix, None, bindings.as_deref(), object.as_deref(), msg.as_deref())
    };
    if self.sync {
      self.writer.write_now(&line).map_err(|e| Error::new(Status::GenericFailure, format!("log write failed: {e}")))?;
    } else if !self.writer.push(&line) {
      flags |= DROPPED;
    }
    Ok(flags)
  }

  /// Writes a line formatted in JS (the pretty mode), as given.
  #[napi(catch_unwind)]
  pub fn write_raw(&self, line: String) -> Result<()> {
    if self.sync {
      self.writer.write_now(line.as_bytes()).map_err(|e| Error::new(Status::GenericFailure, format!("log write failed: {e}")))
    } else {
      self.writer.push(line.as_bytes());
      Ok(())
    }
  }

  /// Blocks until every line so far is written (for exit paths).
  #[napi(catch_unwind)]
  pub fn flush_sync(&self) -> Result<()> {
    match self.writer.flush() {
      None => Ok(()),
      Some(e) => Err(Error::new(Status::GenericFailure, format!("log write failed: {e}"))),
    }
  }

  /// Resolves once every line so far is written; the wait happens off the
  /// JS thread.
  #[napi]
  pub fn flush(&self) -> AsyncTask<FlushTask> {
    AsyncTask::new(FlushTask { writer: self.writer.clone() })
  }

  /// Lines dropped because the buffer was full (policy "drop").
  #[napi(getter)]
  pub fn dropped(&self) -> f64 {
    self.writer.dropped.load(std::sync::atomic::Ordering::Relaxed) as f64
  }

  /// Flushes and stops the writer thread.
  #[napi(catch_unwind)]
  pub fn close(&self) {
    self.writer.close();
  }
}

pub struct FlushTask {
  writer: Arc<Writer>,
}

impl Task for FlushTask {
  type Output = Option<String>;
  type JsValue = ();

  fn compute(&mut self) -> Result<Self::Output> {
    Ok(self.writer.flush())
  }

  fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<()> {
    match output {
      None => Ok(()),
      Some(e) => Err(Error::new(Status::GenericFailure, format!("log write failed: {e}"))),
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
  fn pino_keys_and_escaped_message() {
    let line = format_line(30, 1_700_000_000_000, "\"pid\":1,", None, None, None, Some("hello \"world\"\r\n{\"level\":60}"));
    let v = parse(&line);
    assert_eq!(v["level"], 30);
    assert_eq!(v["time"], 1_700_000_000_000u64);
    assert_eq!(v["pid"], 1);
    assert_eq!(v["msg"], "hello \"world\"\r\n{\"level\":60}");
  }

  #[test]
  fn context_ids_fields_bindings_and_object() {
    let id = STORE.begin(crate::store::BeginOptions { request_id: Some("req-1".into()), ..Default::default() }).unwrap();
    STORE.set_field(id, "user\nname", FieldValue::Str("ada\"\n".into())).unwrap();
    STORE.set_field(id, "big", FieldValue::Integer(1 << 60)).unwrap();
    STORE.set_field(id, "nan", FieldValue::Number(f64::NAN)).unwrap();
    let line = STORE.with(id, |r| format_line(50, 1, "", Some(r), Some("\"component\":\"db\""), Some("{\"rows\":3}"), None)).unwrap();
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
}
