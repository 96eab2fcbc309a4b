//! Every log destination of the process, by handle: the per-line calls are
//! plain functions given the handle, which cost less to call than methods.
//!
//! A destination lives as long as the JS thread that opened it. When that
//! thread's environment is torn down (a worker that ends or is terminated),
//! its destinations are flushed and closed: the writer thread stops, the
//! file is closed and the handle is given to the next destination opened.
//! Without that, a pool that replaces its workers would leave a thread and
//! a file descriptor behind for every logger a worker ever made.
//!
//! On the way out of the process, every destination still open is flushed,
//! whichever thread opened it: `exit(3)` runs `flush_at_exit`, and the main
//! thread's signal hooks call `flushAllDestinations`.

use std::cell::{Cell, RefCell};
use std::sync::{Arc, LazyLock, RwLock};

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::log::Destination;
use crate::teardown;

static DESTINATIONS: LazyLock<RwLock<Vec<Option<Arc<Destination>>>>> = LazyLock::new(|| RwLock::new(Vec::new()));

thread_local! {
  /// The handles this thread's JS opened, closed with its environment.
  static OPENED_HERE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
  static TEARDOWN_WATCHED: Cell<bool> = const { Cell::new(false) };
}

/// Gives `destination` a handle, and ties it to the environment of `env`.
pub(crate) fn register(env: &Env, destination: Arc<Destination>) -> Result<u32> {
  flush_at_exit_once();
  let handle = {
    let mut all = DESTINATIONS.write().unwrap_or_else(|e| e.into_inner());
    match all.iter().position(Option::is_none) {
      Some(free) => {
        all[free] = Some(destination);
        free
      }
      None => {
        all.push(Some(destination));
        all.len() - 1
      }
    }
  } as u32;
  OPENED_HERE.with_borrow_mut(|opened| opened.push(handle));
  teardown::once_per_thread(env, &TEARDOWN_WATCHED, close_opened_here)?;
  Ok(handle)
}

pub(crate) fn with_destination<R>(handle: u32, f: impl FnOnce(&Destination) -> Result<R>) -> Result<R> {
  let all = DESTINATIONS.read().unwrap_or_else(|e| e.into_inner());
  let destination = all.get(handle as usize).and_then(Option::as_ref);
  f(destination.ok_or_else(|| Error::new(Status::InvalidArg, format!("no log destination {handle}")))?)
}

/// This thread's environment is going: no JS of it can log any more.
fn close_opened_here() {
  let handles = OPENED_HERE.with(|opened| std::mem::take(&mut *opened.borrow_mut()));
  for handle in handles {
    let Some(destination) = with_destination(handle, |d| Ok(d.writer.clone())).ok() else { continue };
    // Written out while the handle is still listed, so an exit meanwhile
    // would still find the lines.
    destination.flush();
    DESTINATIONS.write().unwrap_or_else(|e| e.into_inner())[handle as usize] = None;
    destination.shut();
  }
}

fn flush_every_destination() {
  // Cloned out, so a destination opened meanwhile does not wait on flushes.
  let writers: Vec<_> =
    DESTINATIONS.read().unwrap_or_else(|e| e.into_inner()).iter().flatten().map(|d| d.writer.clone()).collect();
  for writer in writers {
    writer.flush();
  }
}

/// Run by `exit(3)`: on a natural end, `process.exit()` and an uncaught
/// error alike, after every JS exit hook, while the writer threads still run.
/// A worker's logger has no exit hook of its own when the process ends while
/// the worker runs.
extern "C" fn flush_at_exit() {
  // A panic must not unwind into libc.
  let _ = std::panic::catch_unwind(flush_every_destination);
}

fn flush_at_exit_once() {
  static REGISTERED: std::sync::Once = std::sync::Once::new();
  REGISTERED.call_once(|| {
    // SAFETY: registers a plain function that touches no JS state. It fails
    // only when out of memory; the main thread's own exit hook still
    // flushes then.
    unsafe { libc::atexit(flush_at_exit) };
  });
}

/// Blocks until the lines every destination of the process has accepted are
/// written: the main thread's signal hooks call it, for the workers' lines too.
#[napi(catch_unwind)]
pub fn flush_all_destinations() {
  flush_every_destination();
}
