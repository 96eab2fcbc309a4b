//! The addon's pure parsers, compiled on their own: the addon crate imports
//! N-API symbols that only exist inside Node, so a fuzz binary cannot link it.
#[path = "../../src/ids.rs"]
pub mod ids;
#[path = "../../src/trace_context.rs"]
pub mod trace_context;
#[path = "../../src/baggage.rs"]
pub mod baggage;
