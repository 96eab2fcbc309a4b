//! Any input: no panic; a parsed traceparent formats back to a header that
//! parses to the same value.
#![no_main]
use ambient_parsers::trace_context::{format_traceparent, parse_traceparent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
  let Ok(header) = std::str::from_utf8(data) else { return };
  if let Some(tp) = parse_traceparent(header) {
    let formatted = format_traceparent(&tp.trace_id, &tp.parent_id, tp.flags);
    assert_eq!(formatted.len(), 55);
    assert_eq!(parse_traceparent(&formatted), Some(tp));
  }
});
