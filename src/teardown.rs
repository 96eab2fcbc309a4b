//! Work for when a JS thread's environment is torn down: a worker that
//! exits, or is terminate()d and never runs its finalizers.

use std::cell::Cell;
use std::thread::LocalKey;

use napi::bindgen_prelude::*;

/// Runs `hook` when this thread's environment is torn down. Registers it the
/// first time it is called on a thread with `registered`; later calls there
/// cost a thread-local read.
pub(crate) fn once_per_thread(env: &Env, registered: &'static LocalKey<Cell<bool>>, hook: fn()) -> Result<()> {
  if registered.replace(true) {
    return Ok(());
  }
  env.add_env_cleanup_hook((), move |_| hook())?;
  Ok(())
}
