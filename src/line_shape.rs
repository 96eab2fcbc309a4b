//! How a destination's lines are shaped around their members: the time
//! (pino's `timestamp`), the key of the message (pino's `messageKey`), and
//! the members every line carries after the time (`base`, `name`). Set once
//! per logger; every line of its destination follows it.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

/// The `time` member: epoch milliseconds (pino's default), an RFC 3339
/// string (pino's `stdTimeFunctions.isoTime`), or none (`timestamp: false`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeFormat {
  EpochMs,
  Iso,
  Omitted,
}

impl TimeFormat {
  /// `"epoch"`, `"iso"` or `"none"`, as lib/logger.js passes it.
  pub fn parse(name: Option<&str>) -> Option<TimeFormat> {
    match name {
      None | Some("epoch") => Some(TimeFormat::EpochMs),
      Some("iso") => Some(TimeFormat::Iso),
      Some("none") => Some(TimeFormat::Omitted),
      Some(_) => None,
    }
  }
}

pub struct LineShape {
  time: TimeFormat,
  /// The message's key as a JSON string, with its colon: `"msg":`.
  message_key: Box<[u8]>,
  /// JSON members, each followed by a comma.
  members: Box<str>,
}

/// Longest `time` member: `,"time":"2026-12-03T13:01:44.123Z"`.
const TIME_MEMBER_MAX: usize = 35;
/// The last millisecond RFC 3339 (and humantime) can write: 9999-12-31.
const ISO_TIME_MAX_MS: u64 = 253_402_300_799_999;

impl LineShape {
  pub fn new(time: TimeFormat, message_key: &str, members: String) -> LineShape {
    let mut key = serde_json::to_vec(message_key).unwrap_or_else(|_| b"\"msg\"".to_vec());
    key.push(b':');
    LineShape { time, message_key: key.into(), members: members.into() }
  }

  /// After the level: the time member, if any, then the common members,
  /// so the next member follows a comma. Inlined into every line's
  /// formatting, the default form as cheap as a fixed one.
  #[inline]
  pub fn push_head(&self, out: &mut Vec<u8>, time_ms: u64) {
    match self.time {
      TimeFormat::EpochMs => {
        out.extend_from_slice(b",\"time\":");
        out.extend_from_slice(itoa::Buffer::new().format(time_ms).as_bytes());
      }
      TimeFormat::Iso => push_iso_time(out, time_ms),
      TimeFormat::Omitted => {}
    }
    out.push(b',');
    out.extend_from_slice(self.members.as_bytes());
  }

  /// The message's key, quoted, and its colon.
  pub fn message_key(&self) -> &[u8] {
    &self.message_key
  }

  /// Bytes `push_head` and the message key add to a line, at most.
  pub fn size_hint(&self) -> usize {
    TIME_MEMBER_MAX + 1 + self.members.len() + self.message_key.len()
  }
}

// Kept out of push_head: the formatting machinery would bloat every line's
// code for a form few loggers use.
#[inline(never)]
fn push_iso_time(out: &mut Vec<u8>, time_ms: u64) {
  // Past the year 9999 humantime would fail halfway through the member, and
  // the line would not parse.
  let at = UNIX_EPOCH + Duration::from_millis(time_ms.min(ISO_TIME_MAX_MS));
  // Writing to a Vec cannot fail otherwise.
  let _ = write!(out, ",\"time\":\"{}\"", humantime::format_rfc3339_millis(at));
}

impl Default for LineShape {
  /// pino's: epoch milliseconds, `msg`, no common members.
  fn default() -> LineShape {
    LineShape::new(TimeFormat::EpochMs, "msg", String::new())
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn head(shape: &LineShape, time_ms: u64) -> String {
    let mut out = Vec::new();
    shape.push_head(&mut out, time_ms);
    String::from_utf8(out).unwrap()
  }

  #[test]
  fn times_are_written_as_pino_writes_them() {
    let members = "\"pid\":1,".to_owned();
    assert_eq!(
      head(&LineShape::new(TimeFormat::EpochMs, "msg", members.clone()), 1_764_767_304_123),
      ",\"time\":1764767304123,\"pid\":1,"
    );
    // new Date(1764767304123).toISOString()
    assert_eq!(
      head(&LineShape::new(TimeFormat::Iso, "msg", members.clone()), 1_764_767_304_123),
      ",\"time\":\"2025-12-03T13:08:24.123Z\",\"pid\":1,"
    );
    assert_eq!(
      head(&LineShape::new(TimeFormat::Iso, "msg", String::new()), 0),
      ",\"time\":\"1970-01-01T00:00:00.000Z\","
    );
    assert_eq!(head(&LineShape::new(TimeFormat::Omitted, "msg", members), 5), ",\"pid\":1,");
  }

  #[test]
  fn the_size_hint_covers_the_longest_time() {
    let shape = LineShape::new(TimeFormat::Iso, "message", "\"a\":1,".to_owned());
    let written = head(&shape, 253_402_300_799_999).len() + shape.message_key().len();
    assert!(written <= shape.size_hint(), "{written} > {}", shape.size_hint());
    assert_eq!(
      head(&shape, u64::MAX),
      ",\"time\":\"9999-12-31T23:59:59.999Z\",\"a\":1,",
      "a time past 9999 still parses"
    );
  }

  #[test]
  fn a_message_key_is_escaped() {
    assert_eq!(LineShape::new(TimeFormat::EpochMs, "msg", String::new()).message_key(), b"\"msg\":");
    assert_eq!(LineShape::new(TimeFormat::EpochMs, "a\"\n", String::new()).message_key(), b"\"a\\\"\\n\":");
  }

  #[test]
  fn time_format_names() {
    assert_eq!(TimeFormat::parse(None), Some(TimeFormat::EpochMs));
    assert_eq!(TimeFormat::parse(Some("iso")), Some(TimeFormat::Iso));
    assert_eq!(TimeFormat::parse(Some("none")), Some(TimeFormat::Omitted));
    assert_eq!(TimeFormat::parse(Some("unix")), None);
  }
}
