//! W3C Trace Context: the `traceparent` and `tracestate` headers.
//!
//! Parsing is strict and never fails loudly: an invalid `traceparent` yields
//! `None`, and the caller starts a new trace. A `tracestate` is only read next
//! to a valid `traceparent`, and an invalid one is dropped whole, as the
//! specification requires.

use crate::ids::{parse_lower_hex, push_hex};

/// Flags this implementation understands: `sampled` (Level 1) and
/// `random-trace-id` (Level 2). Other bits are ignored on input.
pub const FLAG_SAMPLED: u8 = 0x01;
pub const FLAG_RANDOM: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

/// The W3C limit on `tracestate` list members.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
  pub trace_id: [u8; 16],
  pub parent_id: [u8; 8],
  pub flags: u8,
}

fn trim_ows(s: &str) -> &str {
  s.trim_matches(|c| c == ' ' || c == '\t')
}

/// Parses a `traceparent` header value.
///
/// Version `00` must be exactly 55 characters. A higher version may be longer,
/// in which case character 55 must be `-` and the rest is ignored (forward
/// compatibility). Version `ff`, uppercase hex, all-zero ids and
/// non-hex characters are invalid.
pub fn parse_traceparent(header: &str) -> Option<TraceParent> {
  let s = trim_ows(header).as_bytes();
  if s.len() < 55 {
    return None;
  }
  let version = parse_lower_hex::<1>(&s[0..2])?[0];
  if version == 0xff {
    return None;
  }
  if version == 0 && s.len() != 55 {
    return None;
  }
  if s.len() > 55 && s[55] != b'-' {
    return None;
  }
  if s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
    return None;
  }
  let trace_id = parse_lower_hex::<16>(&s[3..35])?;
  let parent_id = parse_lower_hex::<8>(&s[36..52])?;
  let flags = parse_lower_hex::<1>(&s[53..55])?[0];
  if trace_id == [0; 16] || parent_id == [0; 8] {
    return None;
  }
  Some(TraceParent { trace_id, parent_id, flags: flags & KNOWN_FLAGS })
}

/// Formats a version-00 `traceparent`.
// The addon formats traceparents in JS from ids it already holds; this is
// the codec's half that the fuzz target round-trips parsing against.
#[allow(dead_code)]
pub fn format_traceparent(trace_id: &[u8; 16], span_id: &[u8; 8], flags: u8) -> String {
  let mut out = String::with_capacity(55);
  out.push_str("00-");
  push_hex(&mut out, trace_id);
  out.push('-');
  push_hex(&mut out, span_id);
  out.push('-');
  push_hex(&mut out, &[flags & KNOWN_FLAGS]);
  out
}

fn is_key_char(c: u8) -> bool {
  matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

fn valid_simple_key(k: &[u8], max: usize) -> bool {
  !k.is_empty() && k.len() <= max && k[0].is_ascii_lowercase() && k.iter().all(|&c| is_key_char(c))
}

/// `key = simple-key / multi-tenant-key` from the specification.
fn valid_tracestate_key(key: &[u8]) -> bool {
  match key.iter().position(|&c| c == b'@') {
    None => valid_simple_key(key, 256),
    Some(at) => {
      let (tenant, system) = (&key[..at], &key[at + 1..]);
      let tenant_ok = !tenant.is_empty()
        && tenant.len() <= 241
        && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
        && tenant.iter().all(|&c| is_key_char(c));
      tenant_ok && valid_simple_key(system, 14)
    }
  }
}

/// `value = 0*255(chr) nblk-chr`: printable ASCII except `,` and `=`, and it
/// may not end in a space.
fn valid_tracestate_value(value: &[u8]) -> bool {
  !value.is_empty()
    && value.len() <= 256
    && value.iter().all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
    && *value.last().unwrap() != b' '
}

/// Parses a `tracestate` header into its list members, in order.
///
/// Empty members are skipped. Any invalid member, or a repeated key,
/// invalidates the whole header (returns an empty list). Members past the
/// 32nd are dropped.
pub fn parse_tracestate(header: &str) -> Vec<(String, String)> {
  let mut members: Vec<(String, String)> = Vec::new();
  for raw in header.split(',') {
    let member = trim_ows(raw);
    if member.is_empty() {
      continue;
    }
    let Some(eq) = member.find('=') else {
      return Vec::new();
    };
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    if !valid_tracestate_key(key.as_bytes()) || !valid_tracestate_value(value.as_bytes()) {
      return Vec::new();
    }
    if members.iter().any(|(k, _)| k == key) {
      return Vec::new();
    }
    if members.len() < MAX_TRACESTATE_MEMBERS {
      members.push((key.to_owned(), value.to_owned()));
    }
  }
  members
}

pub fn format_tracestate(members: &[(String, String)]) -> String {
  let mut out = String::new();
  for (i, (k, v)) in members.iter().enumerate() {
    if i > 0 {
      out.push(',');
    }
    out.push_str(k);
    out.push('=');
    out.push_str(v);
  }
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  const SPEC_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

  #[test]
  fn parses_the_specification_example() {
    let tp = parse_traceparent(SPEC_EXAMPLE).unwrap();
    assert_eq!(crate::ids::to_hex(&tp.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(crate::ids::to_hex(&tp.parent_id), "00f067aa0ba902b7");
    assert_eq!(tp.flags, FLAG_SAMPLED);
    assert_eq!(format_traceparent(&tp.trace_id, &tp.parent_id, tp.flags), SPEC_EXAMPLE);
  }

  #[test]
  fn not_sampled_example() {
    let tp = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    assert_eq!(tp.flags, 0);
  }

  #[test]
  fn tolerates_surrounding_whitespace() {
    assert!(parse_traceparent(&format!(" \t{SPEC_EXAMPLE} ")).is_some());
  }

  #[test]
  fn rejects_invalid_input() {
    let bad = [
      "",
      "00",
      // all-zero trace id and parent id
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      // uppercase hex
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      // version ff is forbidden
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      // version 00 must be exactly 55 characters
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
      // wrong separators, short fields, non-hex
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
      "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx: y",
    ];
    for header in bad {
      assert_eq!(parse_traceparent(header), None, "{header:?} must be invalid");
    }
  }

  #[test]
  fn higher_versions_are_parsed_as_version_00_and_extra_fields_ignored() {
    let tp =
      parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds").unwrap();
    assert_eq!(tp.flags, FLAG_SAMPLED);
    assert!(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some());
    // Longer, but the 56th character is not a dash.
    assert!(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x").is_none());
  }

  #[test]
  fn unknown_flags_are_dropped_on_input_and_output() {
    let tp = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff").unwrap();
    assert_eq!(tp.flags, FLAG_SAMPLED | FLAG_RANDOM);
    assert!(format_traceparent(&tp.trace_id, &tp.parent_id, 0xff).ends_with("-03"));
  }

  #[test]
  fn tracestate_examples() {
    let ts = parse_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    assert_eq!(ts, vec![("rojo".into(), "00f067aa0ba902b7".into()), ("congo".into(), "t61rcWkgMzE".into())]);
    assert_eq!(format_tracestate(&ts), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    // Whitespace around members and empty members are allowed.
    assert_eq!(parse_tracestate(" rojo=1 ,, \tcongo=2").len(), 2);
    // Multi-tenant keys.
    assert_eq!(parse_tracestate("fw529a3039@dt=abc,0tenant@vendor=x").len(), 2);
  }

  #[test]
  fn invalid_tracestate_is_dropped_whole() {
    for header in [
      "Rojo=1",        // uppercase key
      "rojo",          // no value
      "rojo=",         // empty value
      "rojo=a,rojo=b", // duplicate key
      "1rojo=1",       // simple key must start with a letter
      "ro jo=1",       // space in key
      "t@toolongsystemid=1",
      "rojo=a=b",
    ] {
      assert!(parse_tracestate(header).is_empty(), "{header:?} must be dropped");
    }
  }

  #[test]
  fn tracestate_keeps_at_most_32_members() {
    let header: Vec<String> = (0..40).map(|i| format!("k{i}=v{i}")).collect();
    let ts = parse_tracestate(&header.join(","));
    assert_eq!(ts.len(), MAX_TRACESTATE_MEMBERS);
    assert_eq!(ts[0].0, "k0");
  }
}
