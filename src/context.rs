//! JS bindings for the request-context store (`store.rs`): thin exports that
//! convert arguments and errors, and track which records this thread's JS
//! objects hold so a terminated worker gives its handles back.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::baggage::{self, BaggageEntry};
use crate::ids::to_hex;
use crate::store::{Adopted, FieldValue, Kind, Limits, Record, StoreError, STORE, VERSION_SLOTS};
use crate::teardown;
use crate::trace_context;

/// A field value as JS reads it: string, number, BigInt (64-bit), boolean or null.
pub type JsFieldValue = Either5<String, f64, BigInt, bool, Null>;

fn to_js(value: &FieldValue) -> JsFieldValue {
  match value {
    FieldValue::Str(s) => Either5::A(s.to_string()),
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
  /// Contexts this thread's JS counted as begun and not (yet) as ended:
  /// begins and ends counted without a record (`count_unrecorded`), less
  /// the roots given a record while open, whose end the store counts.
  /// Negative while a root got its record before its begin was counted.
  static UNSETTLED: Cell<i64> = const { Cell::new(0) };
  static TEARDOWN_WATCHED: Cell<bool> = const { Cell::new(false) };
}

fn hold(env: &Env, id: u64) -> Result<()> {
  HELD.with(|h| *h.borrow_mut().entry(id).or_insert(0) += 1);
  teardown::once_per_thread(env, &TEARDOWN_WATCHED, settle_thread)
}

/// This thread's environment is going: settle what its JS leaves behind.
fn settle_thread() {
  // The contexts it began and left open end as abandoned: nothing else
  // can end them now.
  STORE.end_abandoned(std::thread::current().id());
  // The rest of its contexts stop counting as open: those begun without a
  // record and never counted as ended (still open, or ended with the count
  // still in JS) are counted as ended, and roots whose record came before
  // their begin was counted are counted as begun.
  let unsettled = UNSETTLED.take();
  if unsettled > 0 {
    STORE.count_unrecorded(0, unsettled as u64, 0, 0);
  } else {
    STORE.count_unrecorded(unsettled.unsigned_abs(), 0, 0, 0);
  }
  // Every handle it held is given back.
  let held = HELD.with(|h| std::mem::take(&mut *h.borrow_mut()));
  for (id, count) in held {
    for _ in 0..count {
      STORE.release(id);
    }
  }
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
  /// The record's version counter (`contextVersions()` at slot id & 0xffff).
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
    parent_id: r.parent().map(|p| p as f64),
    name: r.name().map(str::to_owned),
    request_id: r.request_id.to_string(),
    trace_id: to_hex(&r.trace_id),
    span_id: to_hex(&r.span_id),
    parent_span_id: r.parent_span_id.map(|p| to_hex(&p)),
    trace_flags: r.flags as u32,
    tracestate: r.tracestate().to_owned(),
    baggage: r
      .baggage()
      .iter()
      .map(|b| BaggageItem { key: b.key.clone(), value: b.value.clone(), properties: b.properties.clone() })
      .collect(),
    started_at: r.started_wall_ms,
    ended: r.ended.is_some(),
    fields: r.fields.iter().map(|(k, v)| FieldEntry { key: k.to_string(), value: to_js(v) }).collect(),
    version: STORE.version_of(r.id),
  }
}

// JS refuses what is not a number of ms up to u32::MAX; past what a Duration
// holds there is no deadline to watch, rather than a panic.
fn deadline(ms: Option<f64>) -> Option<Duration> {
  ms.and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
}

/// The identity of a record as one string, which JS slices: cheaper than
/// an object across N-API. Layout:
/// `id;startedAtMs;flags;traceId;spanId;parentSpanId;requestId\ntracestate`
/// (`parentSpanId` empty when none). Only the request id and tracestate vary
/// in length, and neither can hold a newline.
fn compact(r: &Record) -> String {
  let mut out = String::with_capacity(140 + r.tracestate().len());
  use std::fmt::Write;
  let _ = write!(out, "{};{};{};", r.id, r.started_wall_ms, r.flags);
  crate::ids::push_hex(&mut out, &r.trace_id);
  out.push(';');
  crate::ids::push_hex(&mut out, &r.span_id);
  out.push(';');
  if let Some(p) = r.parent_span_id {
    crate::ids::push_hex(&mut out, &p);
  }
  out.push(';');
  let _ = write!(out, "{}", r.request_id);
  out.push('\n');
  out.push_str(r.tracestate());
  out
}

/// A pool of identities for contexts JS begins on its own: `count` ids
/// reserved in the store, and for each a new trace id, span id and request
/// id. Layout: `firstId\n` then `count` entries of `POOL_ENTRY_LEN`
/// characters (`00-{traceId}-{spanId}-03{requestId}`, see
/// `ids::push_pool_entries`), which JS slices. One crossing serves a whole
/// batch of requests. All ASCII, so it crosses as Latin-1: V8 copies it as
/// it is, with no UTF-8 to decode.
#[napi(catch_unwind)]
pub fn context_reserve(env: &Env, count: u32) -> Result<napi::JsString<'_>> {
  let count = u64::from(count.clamp(1, 4096));
  let first = STORE.reserve_ids(count);
  let mut out = Vec::with_capacity(24 + count as usize * crate::ids::POOL_ENTRY_LEN);
  out.extend_from_slice(itoa::Buffer::new().format(first).as_bytes());
  out.push(b'\n');
  crate::ids::push_pool_entries(&mut out, count);
  env.create_string_latin1(&out)
}

/// Gives a record to a root context JS began on its own (see
/// `Store::adopt`). `ids` is its traceparent then its request id (see
/// `ids::split_identity`); the request
/// id is a pool UUID when `generated`. Headers were validated by JS through
/// `checkTraceparent`; `tracestate` is normalized here. Returns the record's
/// field version.
#[allow(clippy::too_many_arguments)]
#[napi(catch_unwind)]
pub fn context_adopt(
  env: Env,
  id: f64,
  ids: String,
  generated: bool,
  flags: u32,
  started_at: f64,
  age_ms: f64,
  parent_span_id: Option<String>,
  tracestate: Option<String>,
  baggage: Option<String>,
  name: Option<String>,
  deadline_ms: Option<f64>,
  ended_status: Option<String>,
  ended_duration_ms: Option<f64>,
  ended_at: Option<f64>,
) -> Result<u32> {
  let bad = || Error::new(Status::InvalidArg, "malformed context identity".to_owned());
  let (trace_hex, span_hex, request_id) = crate::ids::split_identity(&ids).ok_or_else(bad)?;
  let trace_id = crate::ids::parse_lower_hex::<16>(trace_hex).ok_or_else(bad)?;
  let span_id = crate::ids::parse_lower_hex::<8>(span_hex).ok_or_else(bad)?;
  let request_id = match generated.then(|| uuid::Uuid::parse_str(request_id).ok()).flatten() {
    Some(uuid) => crate::ids::RequestId::Generated(uuid),
    None => crate::ids::RequestId::Given(request_id.into()),
  };
  let parent_span_id = match parent_span_id {
    Some(p) => Some(crate::ids::parse_lower_hex::<8>(p.as_bytes()).ok_or_else(bad)?),
    None => None,
  };
  let tracestate =
    tracestate.map(|t| trace_context::format_tracestate(&trace_context::parse_tracestate(&t))).unwrap_or_default();
  let millis = |ms: f64| Duration::from_secs_f64(ms.max(0.0) / 1000.0);
  let id = id as u64;
  // Its end, when it comes, is the store's to count; one that already
  // ended was counted with the others begun without a record.
  let still_open = ended_status.is_none();
  STORE.adopt(Adopted {
    id,
    request_id,
    trace_id,
    span_id,
    parent_span_id,
    flags: flags as u8,
    tracestate,
    baggage: baggage.as_deref().map(baggage::parse_baggage).unwrap_or_default(),
    name,
    started_wall_ms: started_at,
    age: millis(age_ms),
    deadline: deadline(deadline_ms),
    ended: ended_status
      .map(|status| (status, millis(ended_duration_ms.unwrap_or(0.0)), ended_at.unwrap_or(started_at))),
  });
  if still_open {
    UNSETTLED.set(UNSETTLED.get() - 1);
  }
  hold(&env, id)?;
  Ok(STORE.version_of(id))
}

/// Counts, in one crossing, the contexts JS began, ended and let go of
/// without a record, and their uses after end.
#[napi(catch_unwind)]
pub fn context_count_unrecorded(env: Env, created: f64, ended: f64, released: f64, uses_after_end: f64) -> Result<()> {
  let (created, ended) = (created as u64, ended as u64);
  STORE.count_unrecorded(created, ended, released as u64, uses_after_end as u64);
  UNSETTLED.set(UNSETTLED.get() + created as i64 - ended as i64);
  teardown::once_per_thread(&env, &TEARDOWN_WATCHED, settle_thread)
}

/// Begins a scope under `parent_id`: `independent` false for a child that
/// inherits the parent's fields, true for a scope that does not. Returns its
/// id.
#[napi(catch_unwind)]
pub fn context_begin_scope(
  env: Env,
  parent_id: f64,
  independent: bool,
  name: Option<String>,
  deadline_ms: Option<f64>,
) -> Result<f64> {
  let kind = if independent { Kind::Independent } else { Kind::Child };
  let id = STORE.begin_scope(parent_id as u64, kind, name, deadline(deadline_ms)).map_err(store_error)?;
  hold(&env, id)?;
  Ok(id as f64)
}

/// The identity of a context (see `compact`), for JS to slice. JS keeps it
/// only once it reads it: an open context stays small, and the logger reads
/// ids in Rust.
#[napi(catch_unwind)]
pub fn context_identity(id: f64) -> Result<String> {
  STORE.with(id as u64, compact).map_err(store_error)
}

/// A new handle on an existing record, for another thread (a worker), with
/// everything about it.
#[napi(catch_unwind)]
pub fn context_attach(env: Env, id: f64) -> Result<ContextInfo> {
  let info = STORE.with(id as u64, info).map_err(store_error)?;
  STORE.attach(id as u64).map_err(store_error)?;
  hold(&env, id as u64)?;
  Ok(info)
}

/// Gives back one handle of this thread per id (their JS objects were
/// collected).
#[napi(catch_unwind)]
pub fn context_release_many(ids: Float64ArraySlice) {
  for &id in ids.as_ref() {
    release_one(id as u64);
  }
}

fn release_one(id: u64) {
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

/// The baggage of a context (read lazily: most requests never look).
#[napi(catch_unwind)]
pub fn context_baggage(id: f64) -> Result<Vec<BaggageItem>> {
  STORE
    .with(id as u64, |r| {
      r.baggage()
        .iter()
        .map(|b| BaggageItem { key: b.key.clone(), value: b.value.clone(), properties: b.properties.clone() })
        .collect()
    })
    .map_err(store_error)
}

/// The `baggage` header a call leaving this context carries, formatted by
/// the codec ('' without baggage): one crossing, and no entry objects.
#[napi(catch_unwind)]
pub fn context_outgoing_baggage(id: f64) -> Result<String> {
  STORE.with(id as u64, |r| baggage::format_baggage(r.baggage())).map_err(store_error)
}

/// What a field write returns to JS: the record's version slot value after
/// the write, plus 2^32 when the context had already ended (a use-after-end,
/// counted and still applied). One number instead of an object.
const AFTER_END: f64 = 4_294_967_296.0;

fn write_result(result: std::result::Result<(u32, bool), StoreError>) -> Result<f64> {
  let (version, after_end) = result.map_err(store_error)?;
  Ok(version as f64 + if after_end { AFTER_END } else { 0.0 })
}

#[napi(catch_unwind)]
pub fn context_set_string(id: f64, key: String, value: String) -> Result<f64> {
  write_result(STORE.set_field(id as u64, &key, FieldValue::Str(value.into())))
}

#[napi(catch_unwind)]
pub fn context_set_number(id: f64, key: String, value: f64) -> Result<f64> {
  write_result(STORE.set_field(id as u64, &key, FieldValue::Number(value)))
}

#[napi(catch_unwind)]
pub fn context_set_big_int(id: f64, key: String, value: BigInt) -> Result<f64> {
  let (v, lossless) = value.get_i64();
  if !lossless {
    return Err(Error::new(Status::InvalidArg, "BigInt field values must fit in 64 bits"));
  }
  write_result(STORE.set_field(id as u64, &key, FieldValue::Integer(v)))
}

#[napi(catch_unwind)]
pub fn context_set_boolean(id: f64, key: String, value: bool) -> Result<f64> {
  write_result(STORE.set_field(id as u64, &key, FieldValue::Bool(value)))
}

#[napi(catch_unwind)]
pub fn context_set_null(id: f64, key: String) -> Result<f64> {
  write_result(STORE.set_field(id as u64, &key, FieldValue::Null))
}

#[napi(catch_unwind)]
pub fn context_delete_field(id: f64, key: String) -> Result<f64> {
  write_result(STORE.delete_field(id as u64, &key))
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
      fields: r.fields.iter().map(|(k, v)| FieldEntry { key: k.to_string(), value: to_js(v) }).collect(),
    })
    .map_err(store_error)
}

/// Ends a context with a status (`ok`, `error`, `aborted`, ...). Returns
/// the monotonic duration in milliseconds, or -1 when the context had already
/// ended (then `contextOutcome` tells how).
#[napi(catch_unwind)]
pub fn context_end(id: f64, status: String) -> Result<f64> {
  let (_, duration, first) = STORE.end(id as u64, &status).map_err(store_error)?;
  if !first {
    return Ok(-1.0);
  }
  crate::watchdog::unwatch(id as u64);
  Ok(duration.as_secs_f64() * 1000.0)
}

/// Milliseconds since a context began (monotonic), until it ends.
#[napi(catch_unwind)]
pub fn context_elapsed(id: f64) -> Result<f64> {
  STORE.with(id as u64, |r| r.duration().as_secs_f64() * 1000.0).map_err(store_error)
}

#[napi(object)]
pub struct ContextOutcome {
  pub status: String,
  /// Wall-clock end, milliseconds since the epoch.
  pub ended_at: f64,
  pub duration_ms: f64,
}

/// How an ended context ended; null while it is open.
#[napi(catch_unwind)]
pub fn context_outcome(id: f64) -> Result<Option<ContextOutcome>> {
  STORE
    .with(id as u64, |r| {
      r.ended.as_ref().map(|e| ContextOutcome {
        status: e.status.clone(),
        ended_at: e.wall_ms,
        duration_ms: r.duration().as_secs_f64() * 1000.0,
      })
    })
    .map_err(store_error)
}

/// Counts a use of an ended context (a log line); returns how many so far.
#[napi(catch_unwind)]
pub fn context_note_use_after_end(id: f64) -> Result<u32> {
  STORE.note_use_after_end(id as u64).map_err(store_error)
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
    lingering: STORE.lingering(deadline(Some(linger_grace_ms)).unwrap_or_default()) as f64,
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
      request_id: r.request_id.to_string(),
      name: r.name().map(str::to_owned),
      trace_id: to_hex(&r.trace_id),
      age_ms: r.duration().as_secs_f64() * 1000.0,
      fields: r
        .fields
        .iter()
        .take(max_fields as usize)
        .map(|(k, v)| FieldEntry { key: k.to_string(), value: to_js(v) })
        .collect(),
    })
    .collect()
}

/// Validates a `traceparent`. Returns -1 when invalid; otherwise
/// `offset * 256 + flags`, where `offset` is the number of leading spaces or
/// tabs and `flags` the known trace flags: the ids then sit at fixed offsets
/// from there, so JS slices the header itself and nothing but a number
/// crosses back.
#[napi(catch_unwind)]
pub fn check_traceparent(header: String) -> f64 {
  match trace_context::parse_traceparent(&header) {
    Some(tp) => {
      let offset = header.len() - header.trim_start_matches([' ', '\t']).len();
      (offset * 256 + tp.flags as usize) as f64
    }
    None => -1.0,
  }
}

/// Whether both ids are valid for a `traceparent`: 32 and 16 lowercase hex
/// digits, not all zero.
#[napi(catch_unwind)]
pub fn check_trace_ids(trace_id: String, span_id: String) -> bool {
  let trace = crate::ids::parse_lower_hex::<16>(trace_id.as_bytes()).filter(|t| *t != [0; 16]);
  let span = crate::ids::parse_lower_hex::<8>(span_id.as_bytes()).filter(|s| *s != [0; 8]);
  trace.is_some() && span.is_some()
}

/// Parses a `tracestate`; an invalid header yields an empty list.
#[napi(catch_unwind)]
pub fn parse_tracestate(header: String) -> Vec<Vec<String>> {
  trace_context::parse_tracestate(&header).into_iter().map(|(k, v)| vec![k, v]).collect()
}

#[napi(catch_unwind)]
pub fn parse_baggage(header: String) -> Vec<BaggageItem> {
  baggage::parse_baggage(&header)
    .into_iter()
    .map(|b| BaggageItem { key: b.key, value: b.value, properties: b.properties })
    .collect()
}

#[napi(catch_unwind)]
pub fn format_baggage(items: Vec<BaggageItem>) -> String {
  let entries: Vec<BaggageEntry> =
    items.into_iter().map(|b| BaggageEntry { key: b.key, value: b.value, properties: b.properties }).collect();
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
