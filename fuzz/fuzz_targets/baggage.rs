//! Any input: no panic, within the W3C limits, and formatting what was parsed
//! gives a header that parses to the same entries.
#![no_main]
use ambient_parsers::baggage::{format_baggage, parse_baggage, MAX_BYTES, MAX_MEMBERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
  let Ok(header) = std::str::from_utf8(data) else { return };
  let entries = parse_baggage(header);
  assert!(entries.len() <= MAX_MEMBERS);
  let formatted = format_baggage(&entries);
  assert!(formatted.len() <= MAX_BYTES);
  let reparsed = parse_baggage(&formatted);
  // Formatting may drop members to stay within 8192 bytes (percent-encoding
  // grows values); what it keeps must round-trip exactly.
  assert_eq!(reparsed[..], entries[..reparsed.len()]);
});
