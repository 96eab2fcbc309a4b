//! The scope runner: a JS callback that native code delivers later, from any
//! thread, runs on its JS thread *inside the async context where it was
//! scheduled*: the ambient frame and every native AsyncLocalStorage store.
//!
//! napi-rs has no wrapper for `napi_async_init`/`napi_make_callback`, and its
//! ThreadsafeFunction calls JS with `napi_call_function`, outside any async
//! context: on Node 24+ such a callback sees the stores of whatever ran last,
//! not those of the caller. So this module keeps a small, documented unsafe
//! core:
//!
//! - `ScopedCallback::capture` runs on the JS thread. It calls
//!   `napi_async_init`, which makes Node record the current async context
//!   (the async_hooks resource stores on Node <= 22, the AsyncContextFrame on
//!   Node >= 24) on a resource object.
//! - `ScopedCallback::deliver` may run on any thread. It queues the callback
//!   on a per-thread raw threadsafe function whose `call_js` calls
//!   `napi_make_callback` with that async context, then `napi_async_destroy`.
//!
//! Every napi handle is created and destroyed on its own JS thread.

use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use napi::bindgen_prelude::*;
use napi::sys;

type Job = Box<dyn FnOnce(sys::napi_env) + Send>;

/// The per-thread channel back onto a JS thread, shared by every callback
/// captured there. When that thread's environment is torn down (a worker
/// terminated), Node frees its threadsafe function; a callback delivered
/// later from another thread must find that out under the lock the teardown
/// takes, and not touch the freed function.
struct Channel {
  tsfn: Mutex<Option<RawTsfn>>,
}

#[derive(Clone, Copy)]
struct RawTsfn(sys::napi_threadsafe_function);
// Node's threadsafe functions may be called from any thread.
unsafe impl Send for RawTsfn {}

impl Channel {
  /// Queues `job` on the channel's JS thread. Gives it back when that
  /// thread is gone or going.
  fn queue(&self, job: Job) -> std::result::Result<(), Job> {
    let tsfn = self.tsfn.lock().unwrap_or_else(|e| e.into_inner());
    let Some(RawTsfn(raw)) = *tsfn else { return Err(job) };
    let data = Box::into_raw(Box::new(job));
    // Under the lock: the teardown cannot free `raw` meanwhile.
    let status =
      unsafe { sys::napi_call_threadsafe_function(raw, data.cast(), sys::ThreadsafeFunctionCallMode::nonblocking) };
    if status != sys::Status::napi_ok {
      return Err(*unsafe { Box::from_raw(data) });
    }
    Ok(())
  }

  /// The environment is going: no call may reach the function after this.
  fn close(&self) -> Option<RawTsfn> {
    self.tsfn.lock().unwrap_or_else(|e| e.into_inner()).take()
  }
}

thread_local! {
  static CHANNEL: RefCell<Option<Arc<Channel>>> = const { RefCell::new(None) };
}

unsafe extern "C" fn run_job(env: sys::napi_env, _js_cb: sys::napi_value, _context: *mut c_void, data: *mut c_void) {
  let job = unsafe { Box::from_raw(data.cast::<Job>()) };
  if env.is_null() {
    // The environment is being torn down: nothing can run, and handles can
    // no longer be freed. Dropping the job would try to; forget it.
    std::mem::forget(job);
    return;
  }
  // A panic must not unwind into Node.
  let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(env)));
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
  if status == sys::Status::napi_ok {
    Ok(())
  } else {
    Err(Error::new(Status::from(status), format!("{what} failed")))
  }
}

fn channel(env: &Env) -> Result<Arc<Channel>> {
  if let Some(ch) = CHANNEL.with(|c| c.borrow().clone()) {
    return Ok(ch);
  }
  let raw = env.raw();
  let mut name = ptr::null_mut();
  let mut tsfn = ptr::null_mut();
  unsafe {
    check(sys::napi_create_string_utf8(raw, c"ambient.scope".as_ptr(), 13, &mut name), "napi_create_string_utf8")?;
    check(
      sys::napi_create_threadsafe_function(
        raw,
        ptr::null_mut(),
        ptr::null_mut(),
        name,
        0,
        1,
        ptr::null_mut(),
        None,
        ptr::null_mut(),
        Some(run_job),
        &mut tsfn,
      ),
      "napi_create_threadsafe_function",
    )?;
    // Pending deliveries must not keep the process alive on their own.
    check(sys::napi_unref_threadsafe_function(raw, tsfn), "napi_unref_threadsafe_function")?;
  }
  let ch = Arc::new(Channel { tsfn: Mutex::new(Some(RawTsfn(tsfn))) });
  CHANNEL.with(|c| *c.borrow_mut() = Some(ch.clone()));
  // Registered after the threadsafe function, so it runs before Node's own
  // teardown of it (cleanup hooks run last registered, first run).
  env.add_env_cleanup_hook(ch.clone(), |ch| {
    CHANNEL.with(|c| *c.borrow_mut() = None);
    if let Some(RawTsfn(raw)) = ch.close() {
      unsafe { sys::napi_release_threadsafe_function(raw, sys::ThreadsafeFunctionReleaseMode::abort) };
    }
  })?;
  Ok(ch)
}

/// A JS function bound to the async context it was captured in.
pub struct ScopedCallback {
  env: sys::napi_env,
  async_context: sys::napi_async_context,
  resource: sys::napi_ref,
  callback: sys::napi_ref,
  channel: Arc<Channel>,
  home: ThreadId,
}

// The raw handles are only touched on `home`, inside jobs run by `channel`.
unsafe impl Send for ScopedCallback {}

/// Arguments built on the JS thread, just before the call.
pub type MakeArgs = Box<dyn FnOnce(&Env) -> Result<Vec<sys::napi_value>> + Send>;

impl ScopedCallback {
  /// Captures the current async context. Call on the JS thread, from inside
  /// the context the callback must later run in.
  pub fn capture(env: &Env, callback: &Function<'_, Unknown<'_>, Unknown<'_>>, name: &str) -> Result<ScopedCallback> {
    let raw = env.raw();
    let channel = channel(env)?;
    let mut resource_obj = ptr::null_mut();
    let mut resource_name = ptr::null_mut();
    let mut async_context = ptr::null_mut();
    let mut resource = ptr::null_mut();
    let mut callback_ref = ptr::null_mut();
    unsafe {
      check(sys::napi_create_object(raw, &mut resource_obj), "napi_create_object")?;
      check(
        sys::napi_create_string_utf8(raw, name.as_ptr().cast(), name.len() as isize, &mut resource_name),
        "napi_create_string_utf8",
      )?;
      check(sys::napi_async_init(raw, resource_obj, resource_name, &mut async_context), "napi_async_init")?;
      check(sys::napi_create_reference(raw, resource_obj, 1, &mut resource), "napi_create_reference")?;
      check(sys::napi_create_reference(raw, callback.raw(), 1, &mut callback_ref), "napi_create_reference")?;
    }
    Ok(ScopedCallback {
      env: raw,
      async_context,
      resource,
      callback: callback_ref,
      channel,
      home: std::thread::current().id(),
    })
  }

  /// Runs the callback on its JS thread, in the captured context, with the
  /// arguments `make_args` builds there. Callable from any thread. Returns
  /// false when that JS thread is gone (the callback is then dropped).
  pub fn deliver(self, make_args: MakeArgs) -> bool {
    let channel = self.channel.clone();
    let job: Job = Box::new(move |env| {
      let env = Env::from_raw(env);
      let _ = self.call(&env, make_args);
      self.destroy();
    });
    match channel.queue(job) {
      Ok(()) => true,
      Err(job) => {
        // Not queued: its handles belong to a thread that is gone or going.
        // Leak them rather than free them off their thread.
        std::mem::forget(job);
        false
      }
    }
  }

  fn call(&self, env: &Env, make_args: MakeArgs) -> Result<()> {
    let raw = env.raw();
    let args = make_args(env)?;
    let mut recv = ptr::null_mut();
    let mut func = ptr::null_mut();
    let mut result = ptr::null_mut();
    unsafe {
      check(sys::napi_get_reference_value(raw, self.resource, &mut recv), "napi_get_reference_value")?;
      check(sys::napi_get_reference_value(raw, self.callback, &mut func), "napi_get_reference_value")?;
      let status = sys::napi_make_callback(raw, self.async_context, recv, func, args.len(), args.as_ptr(), &mut result);
      if status == sys::Status::napi_pending_exception {
        // Like any callback from the event loop: an exception it throws is
        // an uncaught exception.
        let mut exception = ptr::null_mut();
        sys::napi_get_and_clear_last_exception(raw, &mut exception);
        sys::napi_fatal_exception(raw, exception);
        return Ok(());
      }
      check(status, "napi_make_callback")
    }
  }

  /// Frees the handles. Only on the home thread (inside a job, or when the
  /// callback is dropped there without being delivered).
  fn destroy(self) {
    debug_assert_eq!(self.home, std::thread::current().id());
    unsafe {
      sys::napi_async_destroy(self.env, self.async_context);
      sys::napi_delete_reference(self.env, self.resource);
      sys::napi_delete_reference(self.env, self.callback);
    }
  }

  /// Drops the callback without calling it. On its home thread it is freed
  /// now; elsewhere the free is queued to the home thread.
  pub fn discard(self) {
    if self.home == std::thread::current().id() {
      self.destroy();
      return;
    }
    let channel = self.channel.clone();
    let job: Job = Box::new(move |_env| self.destroy());
    if let Err(job) = channel.queue(job) {
      std::mem::forget(job);
    }
  }
}
