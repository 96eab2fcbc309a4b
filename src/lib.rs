//! ambient's native half. The hot path (getStore, run, per-promise propagation)
//! lives in JS on top of Node's own AsyncLocalStorage; this crate owns work that
//! is done about once per request, per log line or per batch.

#![deny(clippy::all)]

mod access_log;
mod baggage;
mod context;
mod destinations;
mod field_censor;
mod guard;
mod ids;
mod line_shape;
mod log;
mod scope;
mod shared_output;
mod store;
mod teardown;
mod trace_context;
mod watchdog;
mod writer;

pub use access_log::*;
pub use context::*;
pub use destinations::*;
pub use guard::*;
pub use log::*;
pub use watchdog::*;
