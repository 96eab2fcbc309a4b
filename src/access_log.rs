//! The middleware's access lines ("request completed"), which cross from
//! JS in batches rather than one by one: a crossing per line cost more than
//! formatting it. A batch is numbers in a Float64Array and strings one
//! after another in one UTF-16 string; when none of its lines reads a
//! context's record, the writer thread formats it.

use std::sync::{Arc, LazyLock, RwLock};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::destinations::with_destination;
use crate::field_censor::FieldCensor;
use crate::line_shape::LineShape;
use crate::log::{format_line_in_context, push_field_value, push_json_string};
use crate::store::FieldValue;
use crate::writer::DeferredLines;

thread_local! {
  /// An access batch's lines, formatted one after another (and where each
  /// ends), so the writer takes them in one lock rather than one per line.
  static BATCH: std::cell::RefCell<(Vec<u8>, Vec<usize>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
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

#[cfg(test)]
mod tests {
  use super::*;
  use crate::line_shape::TimeFormat;
  use crate::log::tests::parse;
  use crate::log::{format_line, LineContext};

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
}
