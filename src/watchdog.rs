//! Deadlines: one Rust thread watches every armed context and, when a
//! deadline passes on an open one, calls that context's JS handler through the
//! scope runner, inside the request's async context, so the handler can log
//! with the request id or abort the work. No JS timer per request.
//!
//! Also: `deliverLater` / `deliverLaterUnscoped`, a native timer that calls
//! back from this thread with and without the scope runner. They are how the
//! tests show a plain ThreadsafeFunction losing the caller's context on
//! Node 24+ while the scope runner keeps it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use crate::scope::ScopedCallback;
use crate::store::{Record, STORE};

enum Due {
  Deadline(u64),
  Timer(ScopedCallback),
  Plain(Box<dyn FnOnce() + Send>),
}

#[derive(Default)]
struct State {
  queue: BinaryHeap<Reverse<(Instant, u64)>>,
  due: HashMap<u64, Due>,
  handlers: HashMap<u64, ScopedCallback>,
  next_timer: u64,
}

struct Watchdog {
  state: Mutex<State>,
  wake: Condvar,
}

static WATCHDOG: LazyLock<&'static Watchdog> = LazyLock::new(|| {
  let dog: &'static Watchdog =
    Box::leak(Box::new(Watchdog { state: Mutex::new(State::default()), wake: Condvar::new() }));
  std::thread::Builder::new()
    .name("ambient-watchdog".into())
    .spawn(move || dog.run())
    .expect("spawn the watchdog thread");
  dog
});

// Timer keys live above every context id, so one queue serves both.
const TIMER_BASE: u64 = 1 << 62;

impl Watchdog {
  fn lock(&self) -> std::sync::MutexGuard<'_, State> {
    self.state.lock().unwrap_or_else(|e| e.into_inner())
  }

  fn schedule(&self, at: Instant, key: u64, due: Due) {
    let mut s = self.lock();
    s.queue.push(Reverse((at, key)));
    s.due.insert(key, due);
    drop(s);
    self.wake.notify_one();
  }

  fn run(&self) {
    let mut s = self.lock();
    loop {
      let now = Instant::now();
      match s.queue.peek().copied() {
        Some(Reverse((at, key))) if at <= now => {
          s.queue.pop();
          if let Some(due) = s.due.remove(&key) {
            let handler = match &due {
              Due::Deadline(id) => s.handlers.remove(id),
              _ => None,
            };
            drop(s);
            fire(due, handler);
            s = self.lock();
          }
        }
        Some(Reverse((at, _))) => {
          s = self.wake.wait_timeout(s, at - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        None => {
          s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
      }
    }
  }
}

fn fire(due: Due, handler: Option<ScopedCallback>) {
  match due {
    Due::Deadline(id) => {
      let Some(handler) = handler else { return };
      let still_open = STORE.with(id, |r| r.ended.is_none()).unwrap_or(false);
      if !still_open {
        handler.discard();
        return;
      }
      handler.deliver(Box::new(move |env: &Env| {
        let id = env.create_double(id as f64)?;
        Ok(vec![id.raw()])
      }));
    }
    Due::Timer(callback) => {
      callback.deliver(Box::new(|_env: &Env| Ok(Vec::new())));
    }
    Due::Plain(call) => call(),
  }
}

/// The context ended: its deadline no longer matters.
pub fn unwatch(id: u64) {
  let handler = {
    let mut s = WATCHDOG.lock();
    s.due.remove(&id);
    s.handlers.remove(&id)
  };
  if let Some(h) = handler {
    h.discard();
  }
}

/// Arms the deadline of a context that has one: when it passes while the
/// context is open, the watchdog calls `handler` with the context id. Call it
/// from inside the context: the handler runs in the async context current at
/// this call.
#[napi(catch_unwind)]
pub fn context_on_deadline(env: Env, id: f64, handler: Function<'_, Unknown<'_>, Unknown<'_>>) -> Result<()> {
  let id = id as u64;
  let at = STORE
    .with(id, |r: &Record| r.deadline())
    .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?
    .ok_or_else(|| Error::new(Status::InvalidArg, "this context has no deadline"))?;
  let scoped = ScopedCallback::capture(&env, &handler, "ambient.deadline")?;
  let replaced = WATCHDOG.lock().handlers.insert(id, scoped);
  if let Some(old) = replaced {
    old.discard();
  }
  WATCHDOG.schedule(at, id, Due::Deadline(id));
  Ok(())
}

fn after(delay_ms: f64) -> Instant {
  Instant::now() + Duration::from_secs_f64(delay_ms.max(0.0) / 1000.0)
}

/// Calls `callback` after `delay_ms`, from the watchdog thread, through the
/// scope runner: it runs in the async context of this call.
#[napi(catch_unwind)]
pub fn deliver_later(env: Env, delay_ms: f64, callback: Function<'_, Unknown<'_>, Unknown<'_>>) -> Result<()> {
  let scoped = ScopedCallback::capture(&env, &callback, "ambient.deliverLater")?;
  let key = {
    let mut s = WATCHDOG.lock();
    s.next_timer += 1;
    TIMER_BASE + s.next_timer
  };
  WATCHDOG.schedule(after(delay_ms), key, Due::Timer(scoped));
  Ok(())
}

/// The same through a plain napi-rs ThreadsafeFunction, for comparison: on
/// Node 24+ the callback does not run in the context of this call.
#[napi(catch_unwind)]
pub fn deliver_later_unscoped(delay_ms: f64, callback: Function<'_, (), ()>) -> Result<()> {
  let tsfn = callback.build_threadsafe_function::<()>().callee_handled::<false>().build()?;
  let key = {
    let mut s = WATCHDOG.lock();
    s.next_timer += 1;
    TIMER_BASE + s.next_timer
  };
  WATCHDOG.schedule(
    after(delay_ms),
    key,
    Due::Plain(Box::new(move || {
      tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
    })),
  );
  Ok(())
}
