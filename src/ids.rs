//! Request, trace and span ids.
//!
//! Request ids are UUIDv7: time-ordered, so they sort by arrival in logs and
//! index well. Trace and span ids come from a per-thread xoshiro256++
//! generator seeded from the OS CSPRNG: they must be unique and unguessable
//! enough for correlation, not secret, and this is several times cheaper than
//! asking the OS each time.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::Rng;

thread_local! {
  static RNG: RefCell<SmallRng> = RefCell::new(rand::make_rng());
}

fn next_u64() -> u64 {
  RNG.with(|rng| rng.borrow_mut().next_u64())
}

/// A new W3C trace id: 16 random bytes, never all zero (an invalid trace id).
pub fn new_trace_id() -> [u8; 16] {
  loop {
    let hi = next_u64();
    let lo = next_u64();
    if hi != 0 || lo != 0 {
      let mut id = [0u8; 16];
      id[..8].copy_from_slice(&hi.to_be_bytes());
      id[8..].copy_from_slice(&lo.to_be_bytes());
      return id;
    }
  }
}

/// A new W3C span (parent) id: 8 random bytes, never all zero.
pub fn new_span_id() -> [u8; 8] {
  loop {
    let v = next_u64();
    if v != 0 {
      return v.to_be_bytes();
    }
  }
}

/// The last UUIDv7 issued, as `unix_ms << 12 | counter`: ids are
/// time-ordered across every thread of the process, and the 12-bit counter
/// (`rand_a`, RFC 9562 method 1) keeps ids of one millisecond in issue
/// order. Past 4096 ids in a millisecond the timestamp runs ahead, as the
/// RFC allows.
static LAST_V7: AtomicU64 = AtomicU64::new(0);

/// `count` consecutive time-ordered UUIDv7s, for one id pool.
pub fn request_ids(count: u64) -> impl Iterator<Item = uuid::Uuid> {
  let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
  let floor = now_ms << 12;
  let mut first = 0;
  let _ = LAST_V7.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
    first = last.max(floor.wrapping_sub(1)).wrapping_add(1);
    Some(first + count - 1)
  });
  (0..count).map(move |i| {
    let v = first + i;
    let mut bytes = [0u8; 10];
    bytes[..2].copy_from_slice(&((v & 0xfff) as u16).to_be_bytes());
    bytes[2..].copy_from_slice(&next_u64().to_be_bytes());
    uuid::Builder::from_unix_timestamp_millis(v >> 12, &bytes).into_uuid()
  })
}

/// A new request id: a UUIDv7 in its hyphenated lowercase form.
pub fn new_request_id() -> String {
  request_ids(1).next().unwrap_or_default().hyphenated().to_string()
}

/// One entry of a JS id pool: the `traceparent` of a new sampled root
/// (`00-{trace id}-{span id}-03`: W3C version 00, sampled, and the level 2
/// random flag, for the trace id is random), 55 characters, then a new
/// request id (36). Laid out so that JS echoes the traceparent and reads
/// every id as a slice of the pool, building no string.
pub const POOL_ENTRY_LEN: usize = 91;
pub const TRACEPARENT_LEN: usize = 55;
/// Where each part of a traceparent lies (`lib/request_context.js` names
/// the same offsets): 32 hex digits of trace id, 16 of span id and 2 of
/// flags, each after a `-`.
const TRACE_ID: std::ops::Range<usize> = 3..35;
const SPAN_ID: std::ops::Range<usize> = 36..52;
const FLAGS: std::ops::Range<usize> = 53..TRACEPARENT_LEN;

/// Lowercase hex of every byte value, two characters each.
const HEX_PAIRS: [[u8; 2]; 256] = {
  let mut pairs = [[0u8; 2]; 256];
  let mut i = 0;
  while i < 256 {
    pairs[i] = [HEX[i >> 4], HEX[i & 0x0f]];
    i += 1;
  }
  pairs
};

fn write_hex(out: &mut [u8], bytes: &[u8]) {
  for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
    pair.copy_from_slice(&HEX_PAIRS[b as usize]);
  }
}

/// Appends `count` pool entries (`POOL_ENTRY_LEN` ASCII bytes each), their
/// request ids in issue order.
pub fn push_pool_entries(out: &mut Vec<u8>, count: u64) {
  let mut entry = [0u8; POOL_ENTRY_LEN];
  entry[..TRACE_ID.start].copy_from_slice(b"00-");
  entry[TRACE_ID.end] = b'-';
  entry[SPAN_ID.end] = b'-';
  entry[FLAGS].copy_from_slice(b"03");
  out.reserve(count as usize * POOL_ENTRY_LEN);
  for uuid in request_ids(count) {
    write_hex(&mut entry[TRACE_ID], &new_trace_id());
    write_hex(&mut entry[SPAN_ID], &new_span_id());
    uuid.hyphenated().encode_lower(&mut entry[TRACEPARENT_LEN..]);
    out.extend_from_slice(&entry);
  }
}

/// Whether every byte is a lowercase hex digit. No branch per byte: digits
/// and letters alternate unpredictably in an id, and a mispredicted branch
/// per character cost more than the rest of a log line's identity.
pub fn all_lower_hex(bytes: &[u8]) -> bool {
  bytes.iter().fold(true, |ok, &b| ok & ((b.wrapping_sub(b'0') < 10) | (b.wrapping_sub(b'a') < 6)))
}

/// The ids of a context JS began on its own, as JS keeps them (a pool
/// entry's layout): its own `traceparent`, then its request id. Returns the
/// trace id and span id (hex) and the request id, or None when `ids` does
/// not have that shape.
pub fn split_identity(ids: &str) -> Option<(&[u8], &[u8], &str)> {
  let b = ids.as_bytes();
  let shaped = b.len() > TRACEPARENT_LEN
    && b.starts_with(b"00-")
    && b[TRACE_ID.end] == b'-'
    && b[SPAN_ID.end] == b'-'
    && all_lower_hex(&b[TRACE_ID])
    && all_lower_hex(&b[SPAN_ID])
    && all_lower_hex(&b[FLAGS]);
  // The traceparent's bytes are ASCII, so a character starts after them.
  shaped.then(|| (&b[TRACE_ID], &b[SPAN_ID], &ids[TRACEPARENT_LEN..]))
}

/// A request id as a record keeps it: a generated UUIDv7 as its 16 bytes
/// (formatted when read), or the caller's own string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
  Generated(uuid::Uuid),
  Given(Box<str>),
}

impl RequestId {
  pub fn generate() -> RequestId {
    RequestId::Generated(request_ids(1).next().unwrap_or_default())
  }
}

impl std::fmt::Display for RequestId {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      RequestId::Generated(u) => std::fmt::Display::fmt(&u.hyphenated(), f),
      RequestId::Given(s) => f.write_str(s),
    }
  }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`, appended to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
  for &b in bytes {
    let [high, low] = HEX_PAIRS[b as usize];
    out.push(high as char);
    out.push(low as char);
  }
}

/// `push_hex` for a byte buffer (a log line).
pub fn push_hex_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
  for &b in bytes {
    out.extend_from_slice(&HEX_PAIRS[b as usize]);
  }
}

pub fn to_hex(bytes: &[u8]) -> String {
  let mut s = String::with_capacity(bytes.len() * 2);
  push_hex(&mut s, bytes);
  s
}

/// Parses exactly `N` bytes of *lowercase* hex (W3C trace context forbids
/// uppercase).
pub fn parse_lower_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
  if s.len() != N * 2 {
    return None;
  }
  let mut out = [0u8; N];
  for (i, pair) in s.chunks_exact(2).enumerate() {
    out[i] = (lower_hex_digit(pair[0])? << 4) | lower_hex_digit(pair[1])?;
  }
  Some(out)
}

fn lower_hex_digit(c: u8) -> Option<u8> {
  match c {
    b'0'..=b'9' => Some(c - b'0'),
    b'a'..=b'f' => Some(c - b'a' + 10),
    _ => None,
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use std::collections::HashSet;

  #[test]
  fn trace_and_span_ids_are_nonzero_and_distinct() {
    let traces: HashSet<_> = (0..10_000).map(|_| new_trace_id()).collect();
    let spans: HashSet<_> = (0..10_000).map(|_| new_span_id()).collect();
    assert_eq!(traces.len(), 10_000);
    assert_eq!(spans.len(), 10_000);
    assert!(!traces.contains(&[0u8; 16]));
    assert!(!spans.contains(&[0u8; 8]));
  }

  #[test]
  fn threads_get_different_sequences() {
    let a = std::thread::spawn(new_trace_id).join().unwrap();
    let b = std::thread::spawn(new_trace_id).join().unwrap();
    assert_ne!(a, b);
  }

  #[test]
  fn request_ids_are_uuid_v7_and_time_ordered() {
    let ids: Vec<String> = (0..1000).map(|_| new_request_id()).collect();
    for id in &ids {
      let parsed = uuid::Uuid::parse_str(id).unwrap();
      assert_eq!(parsed.get_version_num(), 7);
      assert_eq!(id.len(), 36);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "UUIDv7 ids generated in sequence sort in order");
  }

  #[test]
  fn pool_entries_hold_valid_ids_in_request_id_order_across_batches() {
    let mut pool = Vec::new();
    push_pool_entries(&mut pool, 5000);
    push_pool_entries(&mut pool, 3);
    assert_eq!(pool.len(), 5003 * POOL_ENTRY_LEN);
    let mut previous = String::new();
    let mut traces = HashSet::new();
    for entry in pool.chunks(POOL_ENTRY_LEN) {
      let entry = std::str::from_utf8(entry).unwrap();
      let traceparent =
        crate::trace_context::parse_traceparent(&entry[..TRACEPARENT_LEN]).expect("a valid traceparent");
      assert_eq!(traceparent.flags, 0x03, "sampled, with a random trace id");
      assert_eq!(to_hex(&traceparent.trace_id), &entry[3..35]);
      assert_eq!(to_hex(&traceparent.parent_id), &entry[36..52]);
      assert!(traces.insert(traceparent.trace_id));
      let uuid = uuid::Uuid::parse_str(&entry[TRACEPARENT_LEN..]).unwrap();
      assert_eq!(uuid.get_version_num(), 7);
      assert!(entry[TRACEPARENT_LEN..] > *previous, "{} after {previous}", &entry[TRACEPARENT_LEN..]);
      previous = entry[TRACEPARENT_LEN..].to_owned();
    }
  }

  #[test]
  fn lower_hex_check_matches_the_byte_ranges() {
    for b in 0..=255u8 {
      assert_eq!(all_lower_hex(&[b'a', b, b'0']), b.is_ascii_digit() || (b'a'..=b'f').contains(&b), "byte {b}");
    }
    assert!(all_lower_hex(b""));
  }

  #[test]
  fn hex_round_trips_and_rejects_uppercase() {
    let bytes = [0x00, 0x0f, 0xa0, 0xff];
    assert_eq!(to_hex(&bytes), "000fa0ff");
    assert_eq!(parse_lower_hex::<4>(b"000fa0ff"), Some(bytes));
    assert_eq!(parse_lower_hex::<4>(b"000FA0FF"), None);
    assert_eq!(parse_lower_hex::<4>(b"000fa0f"), None);
    assert_eq!(parse_lower_hex::<4>(b"000fa0fg"), None);
  }
}
