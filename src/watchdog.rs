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

// A context that ends before its deadline leaves its queue entry behind (a
// heap cannot drop one from the middle), to be skipped when it comes due.
// With a deadline on every request, those entries would pile up for as long
// as the deadline: 300,000 of them for 10,000 requests a second and 30 s.
// So the queue is rebuilt from the live entries once it holds more than
// twice as many as there are, which keeps the work per ended context O(log n)
// amortized.
const COMPACT_ABOVE: usize = 1024;

impl State {
  /// Forgets `key`'s deadline or timer; returns the deadline's handler.
  fn forget(&mut self, key: u64) -> Option<ScopedCallback> {
    self.due.remove(&key);
    let handler = self.handlers.remove(&key);
    if self.queue.len() > COMPACT_ABOVE && self.queue.len() > 2 * self.due.len() {
      let due = &self.due;
      self.queue.retain(|Reverse((_, key))| due.contains_key(key));
    }
    handler
  }
}

impl Watchdog {
  fn lock(&self) -> std::sync::MutexGuard<'_, State> {
    self.state.lock().unwrap_or_else(|e| e.into_inner())
  }

  fn schedule(&self, at: Instant, key: u64, due: Due) {
    let mut s = self.lock();
    // The thread sleeps until the earliest entry is due; only a new earliest
    // one needs to wake it. With one deadline for every request, each new
    // one is the latest, and waking the thread for each (a futex call and a
    // context switch) cost more than the rest of arming it.
    let earliest = s.queue.peek().is_none_or(|Reverse((first, _))| at < *first);
    s.queue.push(Reverse((at, key)));
    s.due.insert(key, due);
    drop(s);
    if earliest {
      self.wake.notify_one();
    }
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
  let handler = WATCHDOG.lock().forget(id);
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

#[cfg(test)]
mod tests {
  use super::*;

  fn schedule(s: &mut State, at: Instant, key: u64) {
    s.queue.push(Reverse((at, key)));
    s.due.insert(key, Due::Plain(Box::new(|| {})));
  }

  #[test]
  fn entries_of_ended_contexts_do_not_pile_up() {
    let mut s = State::default();
    let later = Instant::now() + Duration::from_secs(3600);
    for key in 1..=100_000 {
      schedule(&mut s, later, key);
      // Every context but one in a hundred ends before its deadline.
      if key % 100 != 0 {
        assert!(s.forget(key).is_none());
      }
      assert!(s.queue.len() <= (2 * s.due.len()).max(1024) + 1, "{} entries for {} live", s.queue.len(), s.due.len());
    }
    assert_eq!(s.due.len(), 1000);
    let mut kept: Vec<u64> =
      s.queue.iter().map(|Reverse((_, key))| *key).filter(|key| s.due.contains_key(key)).collect();
    kept.sort_unstable();
    assert_eq!(kept, (1..=1000).map(|i| i * 100).collect::<Vec<_>>(), "every live deadline is still queued");
  }

  #[test]
  fn compaction_keeps_the_live_deadlines_in_order() {
    let mut s = State::default();
    let now = Instant::now();
    // Deadlines in no order of their keys.
    for key in 1..=5000u64 {
      schedule(&mut s, now + Duration::from_millis(key * 7919 % 5000), key);
    }
    for key in (1..=5000u64).filter(|key| key % 3 != 0) {
      s.forget(key);
    }
    assert!(s.queue.len() < 5000, "the queue was compacted");
    let mut live = Vec::new();
    let mut last = now;
    while let Some(Reverse((at, key))) = s.queue.pop() {
      assert!(at >= last, "due in order");
      last = at;
      if s.due.contains_key(&key) {
        live.push(key);
      }
    }
    live.sort_unstable();
    assert_eq!(live, (1..=5000u64).filter(|key| key % 3 == 0).collect::<Vec<_>>());
  }
}
