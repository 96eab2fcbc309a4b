//! How a destination's lines are shaped around their members: the level
//! (pino's `formatters.level`), the time (pino's `timestamp`), the key of
//! the message (pino's `messageKey`), and the members every line carries
//! after the time (`base`, `name`). Set once per logger; every line of its
//! destination follows it.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use crate::log::push_json_string;

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
  /// What each level writes, each member followed by a comma, when pino's
  /// `formatters.level` chose it (JS calls it once per level, custom levels
  /// included); otherwise `"level":N`. A logger has a handful of levels, so
  /// a search beats a map.
  levels: Box<[(u32, Box<[u8]>)]>,
  time: TimeFormat,
  /// The message's key as a JSON string, with its colon: `"msg":`.
  message_key: Box<[u8]>,
  /// JSON members, each followed by a comma.
  members: Box<str>,
}

/// Longest `time` member: `"time":"2026-12-03T13:01:44.123Z",`.
const TIME_MEMBER_MAX: usize = 35;
/// Longest `"level":N,` (a u32).
const LEVEL_MEMBER_MAX: usize = 19;
/// The last millisecond RFC 3339 (and humantime) can write: 9999-12-31.
const ISO_TIME_MAX_MS: u64 = 253_402_300_799_999;

impl LineShape {
  pub fn new(time: TimeFormat, message_key: &str, members: String) -> LineShape {
    let mut key = Vec::with_capacity(message_key.len() + 3);
    push_json_string(&mut key, message_key);
    key.push(b':');
    LineShape { levels: Box::default(), time, message_key: key.into(), members: members.into() }
  }

  /// The same, with each level's members (JSON members, without braces;
  /// empty for none) written for that level in place of `"level":N`.
  pub fn with_level_members(mut self, members: impl IntoIterator<Item = (u32, String)>) -> LineShape {
    self.levels = members
      .into_iter()
      .map(|(level, m)| {
        let mut bytes = m.into_bytes();
        if !bytes.is_empty() {
          bytes.push(b',');
        }
        (level, bytes.into_boxed_slice())
      })
      .collect();
    self
  }

  /// The line's opening: `{`, its level, time and common members, each
  /// followed by a comma. Inlined into every line's formatting, so the
  /// default form costs what a fixed one does.
  #[inline]
  pub fn push_head(&self, out: &mut Vec<u8>, level: u32, time_ms: u64) {
    out.push(b'{');
    match self.levels.iter().find(|(l, _)| *l == level) {
      Some((_, members)) => out.extend_from_slice(members),
      None => {
        out.extend_from_slice(b"\"level\":");
        out.extend_from_slice(itoa::Buffer::new().format(level).as_bytes());
        out.push(b',');
      }
    }
    match self.time {
      TimeFormat::EpochMs => {
        out.extend_from_slice(b"\"time\":");
        out.extend_from_slice(itoa::Buffer::new().format(time_ms).as_bytes());
        out.push(b',');
      }
      TimeFormat::Iso => push_iso_time(out, time_ms),
      TimeFormat::Omitted => {}
    }
    out.extend_from_slice(self.members.as_bytes());
  }

  /// The message's key, quoted, and its colon.
  pub fn message_key(&self) -> &[u8] {
    &self.message_key
  }

  /// Bytes `push_head` and the message key add to a line, at most.
  pub fn size_hint(&self) -> usize {
    // A level without members of its own is written as a number.
    let level = self.levels.iter().map(|(_, m)| m.len()).fold(LEVEL_MEMBER_MAX, usize::max);
    1 + level + TIME_MEMBER_MAX + self.members.len() + self.message_key.len()
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
  let _ = write!(out, "\"time\":\"{}\",", humantime::format_rfc3339_millis(at));
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

  fn head(shape: &LineShape, level: u32, time_ms: u64) -> String {
    let mut out = Vec::new();
    shape.push_head(&mut out, level, time_ms);
    String::from_utf8(out).unwrap()
  }

  #[test]
  fn times_are_written_as_pino_writes_them() {
    let members = "\"pid\":1,".to_owned();
    let epoch = LineShape::new(TimeFormat::EpochMs, "msg", members.clone());
    assert_eq!(head(&epoch, 30, 1_764_767_304_123), "{\"level\":30,\"time\":1764767304123,\"pid\":1,");
    // new Date(1764767304123).toISOString()
    let iso = LineShape::new(TimeFormat::Iso, "msg", members.clone());
    assert_eq!(head(&iso, 30, 1_764_767_304_123), "{\"level\":30,\"time\":\"2025-12-03T13:08:24.123Z\",\"pid\":1,");
    let iso_alone = LineShape::new(TimeFormat::Iso, "msg", String::new());
    assert_eq!(head(&iso_alone, 30, 0), "{\"level\":30,\"time\":\"1970-01-01T00:00:00.000Z\",");
    assert_eq!(head(&LineShape::new(TimeFormat::Omitted, "msg", members), 40, 5), "{\"level\":40,\"pid\":1,");
  }

  #[test]
  fn formatted_levels_take_the_level_members_place() {
    let levels = [(10, "trace"), (20, "debug"), (30, "info"), (35, "audit"), (60, "fatal"), (4_000_000_000, "max")]
      .map(|(n, l)| (n, format!("\"severity\":\"{}\"", l.to_uppercase())));
    let shape = LineShape::new(TimeFormat::Omitted, "message", String::new()).with_level_members(levels);
    assert_eq!(head(&shape, 10, 1), "{\"severity\":\"TRACE\",");
    assert_eq!(head(&shape, 35, 1), "{\"severity\":\"AUDIT\",", "a custom level");
    assert_eq!(head(&shape, 60, 1), "{\"severity\":\"FATAL\",");
    assert_eq!(head(&shape, 4_000_000_000, 1), "{\"severity\":\"MAX\",");
    // Not one of the logger's levels: written as a number rather than misnamed.
    assert_eq!(head(&shape, 40, 1), "{\"level\":40,");
    assert_eq!(head(&shape, 0, 1), "{\"level\":0,");
    let none = LineShape::new(TimeFormat::EpochMs, "msg", String::new()).with_level_members([(30, String::new())]);
    assert_eq!(head(&none, 30, 7), "{\"time\":7,", "a formatter that returns {{}} leaves the level out");
  }

  #[test]
  fn the_size_hint_covers_the_longest_head() {
    let shape = LineShape::new(TimeFormat::Iso, "message", "\"a\":1,".to_owned());
    let written = head(&shape, u32::MAX, 253_402_300_799_999).len() + shape.message_key().len();
    assert!(written <= shape.size_hint(), "{written} > {}", shape.size_hint());
    let long = [(10, "\"a\":1".to_owned()), (60, "\"fatal\":\"a long member indeed\"".to_owned())];
    let shape = LineShape::new(TimeFormat::Iso, "msg", String::new()).with_level_members(long);
    for level in [10, 60, u32::MAX] {
      let written = head(&shape, level, 253_402_300_799_999).len() + shape.message_key().len();
      assert!(written <= shape.size_hint(), "level {level}: {written} > {}", shape.size_hint());
    }
    assert_eq!(
      head(&LineShape::new(TimeFormat::Iso, "msg", String::new()), 30, u64::MAX),
      "{\"level\":30,\"time\":\"9999-12-31T23:59:59.999Z\",",
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
