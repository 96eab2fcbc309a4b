//! Panics must never cross the FFI boundary: every export is built with
//! `#[napi(catch_unwind)]`, which turns a panic into a thrown JS `Error`,
//! and the flush task catches its own on the libuv thread it runs on (a
//! rejected promise). This module holds the probe the test suite uses to
//! prove the first; `log::panic_in_flush_for_test` proves the second.

use napi_derive::napi;

/// The version of the native addon, so JS can tell that the addon it loaded
/// matches the JS wrapper.
#[napi(catch_unwind)]
pub fn native_version() -> &'static str {
  env!("CARGO_PKG_VERSION")
}

/// Panics with `message` inside the addon. Exists so tests can prove a panic
/// reaches JS as an `Error` instead of aborting the process.
#[napi(catch_unwind)]
pub fn panic_for_test(message: String) {
  panic!("{message}");
}

#[cfg(test)]
mod tests {
  #[test]
  fn version_is_cargo_version() {
    assert_eq!(super::native_version(), env!("CARGO_PKG_VERSION"));
  }
}
