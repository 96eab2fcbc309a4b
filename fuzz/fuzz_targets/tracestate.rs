//! Any input: no panic, at most 32 members, and parse(format(parse(x))) ==
//! parse(x).
#![no_main]
use ambient_parsers::trace_context::{format_tracestate, parse_tracestate, MAX_TRACESTATE_MEMBERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
  let Ok(header) = std::str::from_utf8(data) else { return };
  let members = parse_tracestate(header);
  assert!(members.len() <= MAX_TRACESTATE_MEMBERS);
  assert_eq!(parse_tracestate(&format_tracestate(&members)), members);
});
