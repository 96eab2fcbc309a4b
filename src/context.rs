//! JS bindings for the request-context store (`store.rs`): thin exports that
//! convert arguments and errors, and track which records this thread's JS
//! objects hold so a terminated worker gives its handles back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::baggage::{self, BaggageEntry};
use crate::ids::to_hex;
use crate::store::{BeginOptions, FieldValue, Kind, Limits, Record, StoreError, STORE, VERSION_SLOTS};
use crate::trace_context;

/// A field value as JS sees it: string, number, BigInt (64-bit), boolean or null.
pub type JsFieldValue = Either5<String, f64, BigInt, bool, Null>;

fn from_js(value: JsFieldValue) -> Result<FieldValue> {
  Ok(match value {
    Either5::A(s) => FieldValue::Str(s),
    Either5::B(n) => FieldValue::Number(n),
    Either5::C(b) => {
      let (v, lossless) = b.get_i64();
      if !lossless {
        return Err(Error::new(Status::InvalidArg, "BigInt field values must fit in 64 bits"));
      }
      FieldValue::Integer(v)
    }
    Either5::D(b) => FieldValue::Bool(b),
    Either5::E(_) => FieldValue::Null,
  })
}

fn to_js(value: &FieldValue) -> JsFieldValue {
  match value {
    FieldValue::Str(s) => Either5::A(s.clone()),
    FieldValue::Number(n) => Either5::B(*n),
    FieldValue::Integer(i) => Either5::C(BigInt::from(*i)),
    FieldValue::Bool(b) => Either5::D(*b),
    FieldValue::Null => Either5::E(Null),
  }
}

fn store_error(err: StoreError) -> Error {
  let status = match err {
    StoreError::NotFound(_) => Status::GenericFailure,
    _ => Status::InvalidArg,
  };
  Error::new(status, err.to_string())
}

thread_local! {
  /// Handles held by this thread's JS objects, per record.
  static HELD: RefCell<HashMap<u64, u32>> = RefCell::new(HashMap::new());
  static CLEANUP_REGISTERED: RefCell<bool> = const { RefCell::new(false) };
}

fn hold(env: &Env, id: u64) -> Result<()> {
  HELD.with(|h| *h.borrow_mut().entry(id).or_insert(0) += 1);
  let first = CLEANUP_REGISTERED.with(|r| !std::mem::replace(&mut *r.borrow_mut(), true));
  if first {
    // A worker that is terminate()d never runs its finalizers; give back
    // every handle it held when its environment is torn down.
    env.add_env_cleanup_hook((), |_| {
      let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
      for (id, count) in held {
        for _ in 0..count {
          STORE.release(id);
        }
      }
    })?;
  }
  Ok(())
}

#[napi(object)]
pub struct FieldEntry {
  pub key: String,
  pub value: JsFieldValue,
}

#[napi(object)]
pub struct BaggageItem {
  pub key: String,
  pub value: String,
  pub properties: Vec<String>,
}

/// Everything JS needs to build a context object, in one crossing.
#[napi(object)]
pub struct ContextInfo {
  /// Process-unique id of the record.
  pub id: f64,
  pub kind: String,
  pub parent_id: Option<f64>,
  pub name: Option<String>,
  pub request_id: String,
  pub trace_id: String,
  pub span_id: String,
  pub parent_span_id: Option<String>,
  pub trace_flags: u32,
  pub tracestate: String,
  pub baggage: Vec<BaggageItem>,
  /// Wall-clock start, milliseconds since the epoch.
  pub started_at: f64,
  pub ended: bool,
  pub fields: Vec<FieldEntry>,
  /// The version slot of this record in `contextVersions()`, and its value.
  pub version_slot: u32,
  pub version: u32,
}

fn kind_name(kind: Kind) -> &'static str {
  match kind {
    Kind::Root => "root",
    Kind::Child => "child",
    Kind::Independent => "independent",
  }
}

fn info(r: &Record) -> ContextInfo {
  ContextInfo {
    id: r.id as f64,
    kind: kind_name(r.kind).to_owned(),
    parent_id: r.parent.map(|p| p as f64),
    name: r.name.clone(),
    request_id: r.request_id.clone(),
    trace_id: to_hex(&r.trace_id),
    span_id: to_hex(&r.span_id),
    parent_span_id: r.parent_span_id.map(|p| to_hex(&p)),
    trace_flags: r.flags as u32,
    tracestate: r.tracestate.clone(),
    baggage: r.baggage.iter().map(|b| BaggageItem { key: b.key.clone(), value: b.value.clone(), properties: b.properties.clone() }).collect(),
    started_at: r.started_wall_ms,
    ended: r.ended.is_some(),
    fields: r.fields.iter().map(|(k, v)| FieldEntry { key: k.clone(), value: to_js(v) }).collect(),
    version_slot: (r.id as usize & (VERSION_SLOTS - 1)) as u32,
    version: STORE.version_of(r.id),
  }
}

/// Options for beginning a root context. Every header is optional and
/// validated: a bad one is replaced, never an error.
#[napi(object)]
pub struct BeginContextOptions {
  /// Use this request id instead of generating a UUIDv7.
  pub request_id: Option<String>,
  /// An incoming W3C `traceparent` to continue.
  pub traceparent: Option<String>,
  /// The incoming `tracestate`, kept only with a valid `traceparent`.
  pub tracestate: Option<String>,
  /// An incoming W3C `baggage` header.
  pub baggage: Option<String>,
  /// A label for the context (a route, a job name).
  pub name: Option<String>,
  /// Initial fields.
  pub fields: Option<Vec<FieldEntry>>,
  /// Milliseconds until the deadline watchdog reports this context.
  pub deadline_ms: Option<f64>,
  /// Whether a new trace (no valid `traceparent`) is sampled. Default true.
  pub sampled: Option<bool>,
}

fn deadline(ms: Option<f64>) -> Option<Duration> {
  ms.filter(|ms| ms.is_finite() && *ms >= 0.0).map(|ms| Duration::from_secs_f64(ms / 1000.0))
}

#[napi(catch_unwind)]
pub fn context_begin(env: Env, options: BeginContextOptions) -> Result<ContextInfo> {
  let fields = options.fields.unwrap_or_default().into_iter().map(|f| Ok((f.key, from_js(f.value)?))).collect::<Result<Vec<_>>>()?;
  let record = STORE
    .begin(BeginOptions {
      request_id: options.request_id,
      traceparent: options.traceparent,
      tracestate: options.tracestate,
      baggage: options.baggage,
      name: options.name,
      fields,
      deadline: deadline(options.deadline_ms),
      sampled_by_default: options.sampled.unwrap_or(true),
    })
    .map_err(store_error)?;
  hold(&env, record.id)?;
  Ok(info(&record))
}

/// Begins a scope under `parent_id`: `independent` false for a child that
/// inherits the parent's fields, true for a scope that does not.
#[napi(catch_unwind)]
pub fn context_begin_scope(env: Env, parent_id: f64, independent: bool, name: Option<String>, deadline_ms: Option<f64>) -> Result<ContextInfo> {
  let kind = if independent { Kind::Independent } else { Kind::Child };
  let record = STORE.begin_scope(parent_id as u64, kind, name, deadline(deadline_ms)).map_err(store_error)?;
  hold(&env, record.id)?;
  Ok(info(&record))
}

/// A new handle on an existing record, for another thread (a worker).
#[napi(catch_unwind)]
pub fn context_attach(env: Env, id: f64) -> Result<ContextInfo> {
  let record = STORE.attach(id as u64).map_err(store_error)?;
  hold(&env, record.id)?;
  Ok(info(&record))
}

/// Gives back one handle of this thread (its JS object was collected).
#[napi(catch_unwind)]
pub fn context_release(id: f64) {
  let id = id as u64;
  let held = HELD.with(|h| {
    let mut h = h.borrow_mut();
    match h.get_mut(&id) {
      Some(n) if *n > 1 => {
        *n -= 1;
        true
      }
      Some(_) => h.remove(&id).is_some(),
      None => false,
    }
  });
  if held {
    STORE.release(id);
  }
}

#[napi(object)]
pub struct WriteResult {
  /// The record's version slot value after the write.
  pub version: u32,
  /// The context had already ended (a use-after-end, still applied).
  pub after_end: bool,
}

#[napi(catch_unwind)]
pub fn context_set_field(id: f64, key: String, value: JsFieldValue) -> Result<WriteResult> {
  let (version, after_end) = STORE.set_field(id as u64, &key, from_js(value)?).map_err(store_error)?;
  Ok(WriteResult { version, after_end })
}

#[napi(catch_unwind)]
pub fn context_delete_field(id: f64, key: String) -> Result<WriteResult> {
  let (version, after_end) = STORE.delete_field(id as u64, &key).map_err(store_error)?;
  Ok(WriteResult { version, after_end })
}

#[napi(object)]
pub struct FieldsSnapshot {
  pub version: u32,
  pub fields: Vec<FieldEntry>,
}

/// The current fields, for refreshing a JS cache after another thread wrote.
#[napi(catch_unwind)]
pub fn context_fields(id: f64) -> Result<FieldsSnapshot> {
  STORE
    .with(id as u64, |r| FieldsSnapshot {
      version: STORE.version_of(r.id),
      fields: r.fields.iter().map(|(k, v)| FieldEntry { key: k.clone(), value: to_js(v) }).collect(),
    })
    .map_err(store_error)
}

#[napi(object)]
pub struct EndResult {
  /// The status that stands: the first one given.
  pub status: String,
  /// Wall-clock end, milliseconds since the epoch.
  pub ended_at: f64,
  /// Monotonic duration from begin to end.
  pub duration_ms: f64,
  /// False when the context had already ended before this call.
  pub first: bool,
}

/// Ends a context with a status (`ok`, `error`, `aborted`, ...).
#[napi(catch_unwind)]
pub fn context_end(id: f64, status: String) -> Result<EndResult> {
  let (ended, duration, first) = STORE.end(id as u64, &status).map_err(store_error)?;
  if first {
    crate::watchdog::unwatch(id as u64);
  }
  Ok(EndResult { status: ended.status, ended_at: ended.wall_ms, duration_ms: duration.as_secs_f64() * 1000.0, first })
}

/// Counts a use of an ended context (a log line); returns how many so far.
#[napi(catch_unwind)]
pub fn context_note_use_after_end(id: f64) -> Result<u32> {
  STORE.note_use_after_end(id as u64).map_err(store_error)
}

/// A `traceparent` for a call leaving this context: same trace, a new span
/// whose parent is this context's span.
#[napi(catch_unwind)]
pub fn context_outgoing_traceparent(id: f64) -> Result<String> {
  STORE
    .with(id as u64, |r| trace_context::format_traceparent(&r.trace_id, &crate::ids::new_span_id(), r.flags))
    .map_err(store_error)
}

/// A shared view of the per-slot write versions: JS reads it without a call.
#[napi(catch_unwind)]
pub fn context_versions(env: &Env) -> Result<Uint32ArraySlice<'_>> {
  // The store is a process-lifetime static, so the memory outlives every
  // isolate that views it; nothing to free.
  unsafe { Uint32ArraySlice::from_external(env, STORE.versions_ptr() as *mut u32, VERSION_SLOTS, (), |_, _| {}) }
}

#[napi(object)]
pub struct ContextLimits {
  pub max_fields: Option<u32>,
  pub max_key_bytes: Option<u32>,
  pub max_value_bytes: Option<u32>,
  pub max_total_bytes: Option<u32>,
}

/// Changes field limits for the whole process; returns the limits in force.
#[napi(catch_unwind)]
pub fn context_configure(limits: ContextLimits) -> ContextLimits {
  let mut l: Limits = STORE.limits();
  if let Some(v) = limits.max_fields {
    l.max_fields = v as usize;
  }
  if let Some(v) = limits.max_key_bytes {
    l.max_key_bytes = v as usize;
  }
  if let Some(v) = limits.max_value_bytes {
    l.max_value_bytes = v as usize;
  }
  if let Some(v) = limits.max_total_bytes {
    l.max_total_bytes = v as usize;
  }
  STORE.set_limits(l);
  ContextLimits {
    max_fields: Some(l.max_fields as u32),
    max_key_bytes: Some(l.max_key_bytes as u32),
    max_value_bytes: Some(l.max_value_bytes as u32),
    max_total_bytes: Some(l.max_total_bytes as u32),
  }
}

#[napi(object)]
pub struct ContextStats {
  pub created: f64,
  pub open: f64,
  pub ended: f64,
  pub released: f64,
  /// Ended, but still referenced by live JS objects after the grace period.
  pub lingering: f64,
  /// Field writes and log calls made in ended contexts.
  pub use_after_end: f64,
  /// Records in memory: open, plus ended and still referenced.
  pub live: f64,
}

#[napi(catch_unwind)]
pub fn context_stats(linger_grace_ms: f64) -> ContextStats {
  use std::sync::atomic::Ordering::Relaxed;
  let s = &STORE.stats;
  ContextStats {
    created: s.created.load(Relaxed) as f64,
    open: STORE.open_count() as f64,
    ended: s.ended.load(Relaxed) as f64,
    released: s.released.load(Relaxed) as f64,
    lingering: STORE.lingering(deadline(Some(linger_grace_ms)).unwrap_or_default()).len() as f64,
    use_after_end: s.writes_after_end.load(Relaxed) as f64,
    live: STORE.live_count() as f64,
  }
}

#[napi(object)]
pub struct InFlightContext {
  pub id: f64,
  pub request_id: String,
  pub name: Option<String>,
  pub trace_id: String,
  pub age_ms: f64,
  pub fields: Vec<FieldEntry>,
}

/// Open contexts, oldest first, at most `limit`, each with at most
/// `max_fields` fields.
#[napi(catch_unwind)]
pub fn context_in_flight(limit: u32, max_fields: u32) -> Vec<InFlightContext> {
  STORE
    .in_flight(limit as usize)
    .iter()
    .map(|r| InFlightContext {
      id: r.id as f64,
      request_id: r.request_id.clone(),
      name: r.name.clone(),
      trace_id: to_hex(&r.trace_id),
      age_ms: r.duration().as_secs_f64() * 1000.0,
      fields: r.fields.iter().take(max_fields as usize).map(|(k, v)| FieldEntry { key: k.clone(), value: to_js(v) }).collect(),
    })
    .collect()
}

/// Validates a `traceparent` and returns it in normalized version-00 form
/// (fields at fixed offsets, unknown flags cleared), or null when invalid.
/// A string rather than an object: JS slices it, which is cheaper than
/// building an object across N-API.
#[napi(catch_unwind)]
pub fn normalize_traceparent(header: String) -> Option<String> {
  trace_context::parse_traceparent(&header).map(|tp| trace_context::format_traceparent(&tp.trace_id, &tp.parent_id, tp.flags))
}

/// Formats a version-00 `traceparent`; throws on ids that are not valid hex.
#[napi(catch_unwind)]
pub fn format_traceparent(trace_id: String, span_id: String, trace_flags: u32) -> Result<String> {
  let trace = crate::ids::parse_lower_hex::<16>(trace_id.as_bytes()).filter(|t| *t != [0; 16]);
  let span = crate::ids::parse_lower_hex::<8>(span_id.as_bytes()).filter(|s| *s != [0; 8]);
  match (trace, span) {
    (Some(t), Some(s)) => Ok(trace_context::format_traceparent(&t, &s, trace_flags as u8)),
    _ => Err(Error::new(Status::InvalidArg, "trace id must be 32 and span id 16 lowercase hex digits, not all zero")),
  }
}

/// Parses a `tracestate`; an invalid header yields an empty list.
#[napi(catch_unwind)]
pub fn parse_tracestate(header: String) -> Vec<Vec<String>> {
  trace_context::parse_tracestate(&header).into_iter().map(|(k, v)| vec![k, v]).collect()
}

#[napi(catch_unwind)]
pub fn parse_baggage(header: String) -> Vec<BaggageItem> {
  baggage::parse_baggage(&header).into_iter().map(|b| BaggageItem { key: b.key, value: b.value, properties: b.properties }).collect()
}

#[napi(catch_unwind)]
pub fn format_baggage(items: Vec<BaggageItem>) -> String {
  let entries: Vec<BaggageEntry> = items.into_iter().map(|b| BaggageEntry { key: b.key, value: b.value, properties: b.properties }).collect();
  baggage::format_baggage(&entries)
}

/// `count` new request ids (UUIDv7, 36 characters each), concatenated: JS
/// takes them from a pool, one crossing per batch.
#[napi(catch_unwind)]
pub fn new_request_ids(count: u32) -> String {
  let mut out = String::with_capacity(count as usize * 36);
  for _ in 0..count {
    out.push_str(&crate::ids::new_request_id());
  }
  out
}
