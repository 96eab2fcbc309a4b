//! The request-context store: one record per context, in a process-wide
//! concurrent map shared by every thread (worker threads included).
//!
//! Pure Rust, no N-API: `context.rs` exposes it to JS. A record lives from
//! `begin` until it has ended *and* no JS handle refers to it any more
//! (`release`), so late readers never see a hole, and ended records still
//! referenced after a grace period show up as "lingering".

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::{DashMap, DashSet};

use crate::baggage::BaggageEntry;
use crate::ids;
#[cfg(test)]
use crate::trace_context::{self, TraceParent};

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
  Null,
  Bool(bool),
  Number(f64),
  Integer(i64),
  Str(Box<str>),
}

impl FieldValue {
  fn byte_size(&self) -> usize {
    match self {
      FieldValue::Str(s) => s.len(),
      _ => 8,
    }
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
  Root,
  Child,
  Independent,
}

#[derive(Debug, Clone)]
pub struct Ended {
  pub at: Instant,
  pub wall_ms: f64,
  pub status: String,
}

/// A field name (or a context name). Names repeat across contexts (`userId`,
/// `GET /orders/:id`), so they are interned: records share one allocation.
pub type Key = Arc<str>;

static KEYS: LazyLock<DashSet<Key>> = LazyLock::new(DashSet::new);
/// Past this many distinct names (say, names built from user input), new
/// ones are no longer interned, so the table cannot grow without bound.
const MAX_INTERNED_KEYS: usize = 4096;

pub fn intern(key: &str) -> Key {
  if let Some(k) = KEYS.get(key) {
    return k.clone();
  }
  let k: Key = Arc::from(key);
  if KEYS.len() < MAX_INTERNED_KEYS {
    KEYS.insert(k.clone());
  }
  k
}

/// What few contexts have: kept behind one pointer so a typical record
/// stays small (at most 1 KiB per open context, JS side included).
#[derive(Debug, Clone, Default)]
pub struct Extras {
  pub parent: Option<u64>,
  pub tracestate: Box<str>,
  pub baggage: Box<[BaggageEntry]>,
  pub deadline: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct Record {
  pub id: u64,
  pub request_id: ids::RequestId,
  pub trace_id: [u8; 16],
  pub span_id: [u8; 8],
  pub parent_span_id: Option<[u8; 8]>,
  pub flags: u8,
  pub kind: Kind,
  /// JS handles (one per thread that holds a context object for it).
  pub handles: u32,
  pub writes_after_end: u32,
  pub field_bytes: u32,
  pub fields: Vec<(Key, FieldValue)>,
  pub started_wall_ms: f64,
  pub started: Instant,
  pub ended: Option<Box<Ended>>,
  /// Interned: names are routes and job kinds, repeated across contexts.
  pub name: Option<Key>,
  pub extras: Option<Box<Extras>>,
  /// The thread whose JS began it: it is ended as `ABANDONED` when that
  /// thread's environment goes with it still open.
  pub owner: ThreadId,
}

/// The status of a context whose thread went (a worker that exited or was
/// terminated) before it ended.
pub const ABANDONED: &str = "abandoned";

/// When a deadline `after` from `now` falls; none past what an `Instant`
/// holds, rather than a panic.
fn due(now: Instant, after: Option<Duration>) -> Option<Instant> {
  after.and_then(|d| now.checked_add(d))
}

fn extras(
  parent: Option<u64>,
  tracestate: String,
  baggage: Vec<BaggageEntry>,
  deadline: Option<Instant>,
) -> Option<Box<Extras>> {
  if parent.is_none() && tracestate.is_empty() && baggage.is_empty() && deadline.is_none() {
    return None;
  }
  Some(Box::new(Extras { parent, tracestate: tracestate.into(), baggage: baggage.into(), deadline }))
}

impl Record {
  pub fn duration(&self) -> Duration {
    match &self.ended {
      Some(e) => e.at - self.started,
      None => self.started.elapsed(),
    }
  }

  pub fn parent(&self) -> Option<u64> {
    self.extras.as_ref().and_then(|e| e.parent)
  }

  pub fn name(&self) -> Option<&str> {
    self.name.as_deref()
  }

  pub fn tracestate(&self) -> &str {
    self.extras.as_ref().map_or("", |e| &e.tracestate)
  }

  pub fn baggage(&self) -> &[BaggageEntry] {
    self.extras.as_ref().map_or(&[], |e| &e.baggage)
  }

  pub fn deadline(&self) -> Option<Instant> {
    self.extras.as_ref().and_then(|e| e.deadline)
  }
}

/// Field limits. Exceeding one is an error that changes nothing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
  pub max_fields: usize,
  pub max_key_bytes: usize,
  pub max_value_bytes: usize,
  pub max_total_bytes: usize,
}

impl Default for Limits {
  fn default() -> Self {
    Limits { max_fields: 64, max_key_bytes: 128, max_value_bytes: 4096, max_total_bytes: 16 * 1024 }
  }
}

#[derive(Debug, PartialEq)]
pub enum StoreError {
  NotFound(u64),
  TooManyFields { limit: usize },
  KeyTooLong { limit: usize },
  ValueTooLarge { limit: usize },
  TotalTooLarge { limit: usize },
}

impl std::fmt::Display for StoreError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      StoreError::NotFound(id) => write!(f, "context {id} does not exist (it was released)"),
      StoreError::TooManyFields { limit } => write!(f, "a context holds at most {limit} fields"),
      StoreError::KeyTooLong { limit } => write!(f, "field names are at most {limit} bytes"),
      StoreError::ValueTooLarge { limit } => write!(f, "field values are at most {limit} bytes"),
      StoreError::TotalTooLarge { limit } => write!(f, "a context's fields total at most {limit} bytes"),
    }
  }
}

#[derive(Default)]
pub struct Stats {
  pub created: AtomicU64,
  pub ended: AtomicU64,
  pub released: AtomicU64,
  pub writes_after_end: AtomicU64,
}

pub struct Store {
  // Boxed: the table's spare buckets then cost a pointer each, not a record.
  records: DashMap<u64, Box<Record>>,
  next_id: AtomicU64,
  pub stats: Stats,
  limits: std::sync::RwLock<Limits>,
  /// Bumped on every field write of the records that hash to a slot; JS
  /// compares it with the version it cached to know when to re-read.
  versions: Box<[AtomicU32]>,
}

pub const VERSION_SLOTS: usize = 1 << 16;

pub static STORE: LazyLock<Store> = LazyLock::new(Store::new);

/// A root context JS began on its own (ids from `reserve_ids` and the id
/// pool), as `adopt` takes it.
#[derive(Debug)]
pub struct Adopted {
  pub id: u64,
  pub request_id: ids::RequestId,
  pub trace_id: [u8; 16],
  pub span_id: [u8; 8],
  pub parent_span_id: Option<[u8; 8]>,
  pub flags: u8,
  pub tracestate: String,
  pub baggage: Vec<BaggageEntry>,
  pub name: Option<String>,
  pub started_wall_ms: f64,
  /// How long ago it began.
  pub age: Duration,
  pub deadline: Option<Duration>,
  /// Status, monotonic duration and wall-clock end, when it already ended.
  pub ended: Option<(String, Duration, f64)>,
}

/// What `begin` needs; all optional.
#[cfg(test)]
#[derive(Debug, Default, Clone)]
pub struct BeginOptions {
  pub request_id: Option<String>,
  pub traceparent: Option<String>,
  pub tracestate: Option<String>,
  pub baggage: Option<String>,
  pub name: Option<String>,
  pub fields: Vec<(String, FieldValue)>,
  pub deadline: Option<Duration>,
  pub sampled_by_default: bool,
}

fn wall_ms_now() -> f64 {
  SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

impl Store {
  fn new() -> Store {
    Store {
      records: DashMap::new(),
      next_id: AtomicU64::new(1),
      stats: Stats::default(),
      limits: std::sync::RwLock::new(Limits::default()),
      versions: (0..VERSION_SLOTS).map(|_| AtomicU32::new(0)).collect(),
    }
  }

  pub fn limits(&self) -> Limits {
    *self.limits.read().unwrap_or_else(|e| e.into_inner())
  }

  pub fn set_limits(&self, limits: Limits) {
    *self.limits.write().unwrap_or_else(|e| e.into_inner()) = limits;
  }

  pub fn versions_ptr(&self) -> *const AtomicU32 {
    self.versions.as_ptr()
  }

  pub fn version_of(&self, id: u64) -> u32 {
    self.versions[(id as usize) & (VERSION_SLOTS - 1)].load(Ordering::Acquire)
  }

  fn bump_version(&self, id: u64) -> u32 {
    self.versions[(id as usize) & (VERSION_SLOTS - 1)].fetch_add(1, Ordering::AcqRel) + 1
  }

  fn insert(&self, record: Record) -> u64 {
    self.stats.created.fetch_add(1, Ordering::Relaxed);
    let id = record.id;
    self.records.insert(id, Box::new(record));
    id
  }

  #[cfg(test)]
  fn validate_fields(&self, fields: &[(Key, FieldValue)]) -> Result<usize, StoreError> {
    let limits = self.limits();
    if fields.len() > limits.max_fields {
      return Err(StoreError::TooManyFields { limit: limits.max_fields });
    }
    let mut total = 0;
    for (k, v) in fields {
      if k.len() > limits.max_key_bytes {
        return Err(StoreError::KeyTooLong { limit: limits.max_key_bytes });
      }
      if v.byte_size() > limits.max_value_bytes {
        return Err(StoreError::ValueTooLarge { limit: limits.max_value_bytes });
      }
      total += k.len() + v.byte_size();
    }
    if total > limits.max_total_bytes {
      return Err(StoreError::TotalTooLarge { limit: limits.max_total_bytes });
    }
    Ok(total)
  }

  /// Begins a root context: continues the incoming trace when `traceparent`
  /// is valid, starts a new one otherwise (never fails on bad headers). Roots
  /// begin in JS and reach the store through `adopt`; this builds them in
  /// tests.
  #[cfg(test)]
  pub fn begin(&self, opts: BeginOptions) -> Result<u64, StoreError> {
    let mut fields: Vec<(Key, FieldValue)> = Vec::with_capacity(opts.fields.len());
    for (k, v) in opts.fields {
      match fields.iter_mut().find(|(key, _)| **key == *k) {
        Some(slot) => slot.1 = v,
        None => fields.push((intern(&k), v)),
      }
    }
    let field_bytes = self.validate_fields(&fields)?;
    let incoming: Option<TraceParent> = opts.traceparent.as_deref().and_then(trace_context::parse_traceparent);
    let (trace_id, parent_span_id, flags, tracestate) = match incoming {
      Some(tp) => {
        let ts = opts.tracestate.as_deref().map(trace_context::parse_tracestate).unwrap_or_default();
        (tp.trace_id, Some(tp.parent_id), tp.flags, trace_context::format_tracestate(&ts))
      }
      None => {
        let sampled = if opts.sampled_by_default { trace_context::FLAG_SAMPLED } else { 0 };
        (ids::new_trace_id(), None, sampled | trace_context::FLAG_RANDOM, String::new())
      }
    };
    let now = Instant::now();
    let baggage = opts.baggage.as_deref().map(crate::baggage::parse_baggage).unwrap_or_default();
    let record = Record {
      id: self.next_id.fetch_add(1, Ordering::Relaxed),
      request_id: opts.request_id.map(|id| ids::RequestId::Given(id.into())).unwrap_or_else(ids::RequestId::generate),
      trace_id,
      span_id: ids::new_span_id(),
      parent_span_id,
      flags,
      kind: Kind::Root,
      handles: 1,
      writes_after_end: 0,
      field_bytes: field_bytes as u32,
      fields,
      started_wall_ms: wall_ms_now(),
      started: now,
      ended: None,
      name: opts.name.as_deref().map(intern),
      extras: extras(None, tracestate, baggage, due(now, opts.deadline)),
      owner: std::thread::current().id(),
    };
    Ok(self.insert(record))
  }

  /// A scope under `parent`: same request and trace, its own span. A child
  /// starts with a copy of the parent's fields; an independent scope starts
  /// empty and is not tied to the parent's outcome.
  pub fn begin_scope(
    &self,
    parent: u64,
    kind: Kind,
    name: Option<String>,
    deadline: Option<Duration>,
  ) -> Result<u64, StoreError> {
    let p = self.records.get(&parent).ok_or(StoreError::NotFound(parent))?;
    let now = Instant::now();
    let inherit = kind == Kind::Child;
    let record = Record {
      id: self.next_id.fetch_add(1, Ordering::Relaxed),
      request_id: p.request_id.clone(),
      trace_id: p.trace_id,
      span_id: ids::new_span_id(),
      parent_span_id: Some(p.span_id),
      flags: p.flags,
      kind,
      handles: 1,
      writes_after_end: 0,
      field_bytes: if inherit { p.field_bytes } else { 0 },
      fields: if inherit { p.fields.clone() } else { Vec::new() },
      started_wall_ms: wall_ms_now(),
      started: now,
      ended: None,
      name: name.as_deref().map(intern),
      extras: extras(Some(parent), p.tracestate().to_owned(), p.baggage().to_vec(), due(now, deadline)),
      owner: std::thread::current().id(),
    };
    drop(p);
    Ok(self.insert(record))
  }

  #[cfg(test)]
  pub fn get(&self, id: u64) -> Result<Record, StoreError> {
    self.records.get(&id).map(|r| (**r).clone()).ok_or(StoreError::NotFound(id))
  }

  pub fn with<R>(&self, id: u64, f: impl FnOnce(&Record) -> R) -> Result<R, StoreError> {
    self.records.get(&id).map(|r| f(&r)).ok_or(StoreError::NotFound(id))
  }

  /// Sets a field. Returns the slot's new version and whether the context
  /// had already ended (a use-after-end, counted but still applied).
  pub fn set_field(&self, id: u64, key: &str, value: FieldValue) -> Result<(u32, bool), StoreError> {
    let limits = self.limits();
    if key.len() > limits.max_key_bytes {
      return Err(StoreError::KeyTooLong { limit: limits.max_key_bytes });
    }
    if value.byte_size() > limits.max_value_bytes {
      return Err(StoreError::ValueTooLarge { limit: limits.max_value_bytes });
    }
    let mut r = self.records.get_mut(&id).ok_or(StoreError::NotFound(id))?;
    let existing = r.fields.iter().position(|(k, _)| &**k == key);
    let old_size = existing.map(|i| key.len() + r.fields[i].1.byte_size()).unwrap_or(0);
    let new_total = r.field_bytes as usize - old_size + key.len() + value.byte_size();
    if existing.is_none() && r.fields.len() >= limits.max_fields {
      return Err(StoreError::TooManyFields { limit: limits.max_fields });
    }
    if new_total > limits.max_total_bytes {
      return Err(StoreError::TotalTooLarge { limit: limits.max_total_bytes });
    }
    match existing {
      Some(i) => r.fields[i].1 = value,
      None => {
        // Contexts hold few fields: grow one slot at a time rather than
        // doubling, to keep open contexts small.
        r.fields.reserve_exact(1);
        r.fields.push((intern(key), value));
      }
    }
    r.field_bytes = new_total as u32;
    let after_end = self.note_write(&mut r);
    drop(r);
    Ok((self.bump_version(id), after_end))
  }

  pub fn delete_field(&self, id: u64, key: &str) -> Result<(u32, bool), StoreError> {
    let mut r = self.records.get_mut(&id).ok_or(StoreError::NotFound(id))?;
    if let Some(i) = r.fields.iter().position(|(k, _)| &**k == key) {
      let (k, v) = r.fields.remove(i);
      r.field_bytes -= (k.len() + v.byte_size()) as u32;
    }
    let after_end = self.note_write(&mut r);
    drop(r);
    Ok((self.bump_version(id), after_end))
  }

  fn note_write(&self, r: &mut Record) -> bool {
    if r.ended.is_some() {
      r.writes_after_end += 1;
      self.stats.writes_after_end.fetch_add(1, Ordering::Relaxed);
      true
    } else {
      false
    }
  }

  /// Counts a use of an ended context that is not a field write (a log line).
  pub fn note_use_after_end(&self, id: u64) -> Result<u32, StoreError> {
    let mut r = self.records.get_mut(&id).ok_or(StoreError::NotFound(id))?;
    r.writes_after_end += 1;
    self.stats.writes_after_end.fetch_add(1, Ordering::Relaxed);
    Ok(r.writes_after_end)
  }

  /// Ends a context with a status. Returns the outcome that stands (ending
  /// twice keeps the first) and whether this call was the one that ended it.
  pub fn end(&self, id: u64, status: &str) -> Result<(Ended, Duration, bool), StoreError> {
    let mut r = self.records.get_mut(&id).ok_or(StoreError::NotFound(id))?;
    if let Some(e) = &r.ended {
      return Ok(((**e).clone(), r.duration(), false));
    }
    let ended = Ended { at: Instant::now(), wall_ms: wall_ms_now(), status: status.to_owned() };
    r.ended = Some(Box::new(ended.clone()));
    let duration = r.duration();
    let release_now = r.handles == 0;
    drop(r);
    self.stats.ended.fetch_add(1, Ordering::Relaxed);
    if release_now {
      self.remove(id);
    }
    Ok((ended, duration, true))
  }

  /// Another thread's JS handle for the same record (a worker entering it).
  pub fn attach(&self, id: u64) -> Result<Record, StoreError> {
    let mut r = self.records.get_mut(&id).ok_or(StoreError::NotFound(id))?;
    r.handles += 1;
    Ok((**r).clone())
  }

  /// Drops one JS handle. The record goes once it has ended and no handle
  /// remains. A handle dropped before the end keeps the record until `end`.
  pub fn release(&self, id: u64) {
    let remove = match self.records.get_mut(&id) {
      Some(mut r) => {
        r.handles = r.handles.saturating_sub(1);
        r.handles == 0 && r.ended.is_some()
      }
      None => false,
    };
    if remove {
      self.remove(id);
    }
  }

  fn remove(&self, id: u64) {
    if self.records.remove(&id).is_some() {
      self.stats.released.fetch_add(1, Ordering::Relaxed);
    }
  }

  pub fn open_count(&self) -> usize {
    let created = self.stats.created.load(Ordering::Relaxed);
    created.saturating_sub(self.stats.ended.load(Ordering::Relaxed)) as usize
  }

  /// Takes `count` consecutive ids for contexts that JS begins on its own
  /// (see `adopt`); returns the first.
  pub fn reserve_ids(&self, count: u64) -> u64 {
    self.next_id.fetch_add(count, Ordering::Relaxed)
  }

  /// Counts contexts that lived and ended without ever needing a record:
  /// JS begins every root context on its own and reports them in batches.
  pub fn count_unrecorded(&self, created: u64, ended: u64, released: u64, uses_after_end: u64) {
    self.stats.created.fetch_add(created, Ordering::Relaxed);
    self.stats.ended.fetch_add(ended, Ordering::Relaxed);
    self.stats.released.fetch_add(released, Ordering::Relaxed);
    self.stats.writes_after_end.fetch_add(uses_after_end, Ordering::Relaxed);
  }

  /// Gives a record to a context JS began on its own, once something needs
  /// it (a field, a worker, a scope, a deadline, or simply living long
  /// enough to be listed in flight). Its begin (and end, if it has ended)
  /// were counted by `count_unrecorded`.
  pub fn adopt(&self, adopted: Adopted) -> u64 {
    let now = Instant::now();
    let started = now.checked_sub(adopted.age).unwrap_or(now);
    let ended =
      adopted.ended.map(|(status, duration, wall_ms)| Box::new(Ended { at: started + duration, wall_ms, status }));
    let record = Record {
      id: adopted.id,
      request_id: adopted.request_id,
      trace_id: adopted.trace_id,
      span_id: adopted.span_id,
      parent_span_id: adopted.parent_span_id,
      flags: adopted.flags,
      kind: Kind::Root,
      handles: 1,
      writes_after_end: 0,
      field_bytes: 0,
      fields: Vec::new(),
      started_wall_ms: adopted.started_wall_ms,
      started,
      ended,
      name: adopted.name.as_deref().map(intern),
      // From its begin: a root adopted 10 ms late still has its deadline on time.
      extras: extras(None, adopted.tracestate, adopted.baggage, due(started, adopted.deadline)),
      owner: std::thread::current().id(),
    };
    self.records.insert(adopted.id, Box::new(record));
    adopted.id
  }

  /// Records held in memory (open, or ended and still referenced).
  pub fn live_count(&self) -> usize {
    self.records.len()
  }

  /// How many ended records are still referenced after `grace`.
  pub fn lingering(&self, grace: Duration) -> usize {
    self.records.iter().filter(|r| r.ended.as_ref().is_some_and(|e| e.at.elapsed() >= grace)).count()
  }

  /// Ends, as `ABANDONED`, every open context `owner` began: that thread's
  /// JS is gone, so nothing can end them any more, and they would be listed
  /// in flight for ever. Returns how many.
  pub fn end_abandoned(&self, owner: ThreadId) -> usize {
    let open: Vec<u64> = self.records.iter().filter(|r| r.owner == owner && r.ended.is_none()).map(|r| r.id).collect();
    for &id in &open {
      let _ = self.end(id, ABANDONED);
    }
    open.len()
  }

  pub fn in_flight(&self, limit: usize) -> Vec<Record> {
    let mut open: Vec<Record> = self.records.iter().filter(|r| r.ended.is_none()).map(|r| (**r).clone()).collect();
    open.sort_by_key(|r| r.started);
    open.truncate(limit);
    open
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn store() -> Store {
    Store::new()
  }

  fn opts() -> BeginOptions {
    BeginOptions { sampled_by_default: true, ..Default::default() }
  }

  #[test]
  fn a_gone_thread_abandons_the_open_contexts_it_began_and_only_those() {
    let s = store();
    let open = s.begin(opts()).unwrap();
    let ended = s.begin(opts()).unwrap();
    s.end(ended, "ok").unwrap();
    let scope = s.begin_scope(open, Kind::Child, None, None).unwrap();
    let (other_thread, elsewhere) =
      std::thread::scope(|t| t.spawn(|| (std::thread::current().id(), s.begin(opts()).unwrap())).join().unwrap());
    assert_eq!(s.end_abandoned(other_thread), 1);
    assert_eq!(s.get(elsewhere).unwrap().ended.unwrap().status, ABANDONED);
    assert!(s.get(open).unwrap().ended.is_none(), "this thread's contexts stay open");
    assert_eq!(s.end_abandoned(std::thread::current().id()), 2);
    assert_eq!(s.get(scope).unwrap().ended.unwrap().status, ABANDONED);
    assert_eq!(s.get(ended).unwrap().ended.unwrap().status, "ok", "an ended context keeps its outcome");
    assert_eq!(s.end_abandoned(std::thread::current().id()), 0);
  }

  #[test]
  fn a_deadline_past_what_an_instant_holds_is_no_deadline_rather_than_a_panic() {
    let s = store();
    let far = s.begin(BeginOptions { deadline: Some(Duration::MAX), ..opts() }).unwrap();
    assert_eq!(s.get(far).unwrap().deadline(), None);
    let near = s.begin(BeginOptions { deadline: Some(Duration::from_millis(5)), ..opts() }).unwrap();
    assert!(s.get(near).unwrap().deadline().is_some());
    let child = s.begin_scope(far, Kind::Child, None, Some(Duration::MAX)).unwrap();
    assert_eq!(s.get(child).unwrap().deadline(), None);
  }

  #[test]
  fn an_adopted_root_keeps_the_deadline_it_began_with() {
    // JS gives a root with a deadline its record only once it has been open
    // a while: the deadline still counts from its begin.
    let s = store();
    let before = Instant::now();
    let id = s.adopt(Adopted {
      id: 1 << 40,
      request_id: ids::RequestId::Given("late".into()),
      trace_id: [1; 16],
      span_id: [2; 8],
      parent_span_id: None,
      flags: 1,
      tracestate: String::new(),
      baggage: Vec::new(),
      name: None,
      started_wall_ms: 0.0,
      age: Duration::from_millis(15),
      deadline: Some(Duration::from_millis(30)),
      ended: None,
    });
    let record = s.get(id).unwrap();
    let due = record.deadline().unwrap();
    assert!(due <= Instant::now() + Duration::from_millis(15), "due 15 ms from the adoption, not 30");
    assert!(due >= before + Duration::from_millis(14));
    assert_eq!(due, record.started + Duration::from_millis(30));
  }

  #[test]
  fn begin_continues_a_valid_trace_and_starts_one_otherwise() {
    let s = store();
    let continued = s
      .get(
        s.begin(BeginOptions {
          traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
          tracestate: Some("rojo=1,congo=2".into()),
          ..opts()
        })
        .unwrap(),
      )
      .unwrap();
    assert_eq!(ids::to_hex(&continued.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(continued.parent_span_id.map(|p| ids::to_hex(&p)).as_deref(), Some("00f067aa0ba902b7"));
    assert_ne!(continued.span_id, [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
    assert_eq!(continued.tracestate(), "rojo=1,congo=2");

    let fresh = s
      .get(
        s.begin(BeginOptions { traceparent: Some("garbage".into()), tracestate: Some("rojo=1".into()), ..opts() })
          .unwrap(),
      )
      .unwrap();
    assert_ne!(fresh.trace_id, continued.trace_id);
    assert_eq!(fresh.parent_span_id, None);
    assert_eq!(fresh.tracestate(), "", "tracestate is ignored without a valid traceparent");
    assert_eq!(fresh.request_id.to_string().len(), 36);
  }

  #[test]
  fn fields_set_get_delete_and_limits_lose_nothing() {
    let s = store();
    s.set_limits(Limits { max_fields: 2, max_key_bytes: 8, max_value_bytes: 16, max_total_bytes: 20 });
    let r = s.get(s.begin(opts()).unwrap()).unwrap();
    s.set_field(r.id, "a", FieldValue::Integer(1)).unwrap();
    s.set_field(r.id, "b", FieldValue::Str("x".into())).unwrap();
    assert_eq!(s.set_field(r.id, "c", FieldValue::Bool(true)), Err(StoreError::TooManyFields { limit: 2 }));
    assert_eq!(s.set_field(r.id, "muchtoolongkey", FieldValue::Null), Err(StoreError::KeyTooLong { limit: 8 }));
    assert_eq!(
      s.set_field(r.id, "b", FieldValue::Str("y".repeat(17).into())),
      Err(StoreError::ValueTooLarge { limit: 16 })
    );
    assert_eq!(
      s.set_field(r.id, "b", FieldValue::Str("y".repeat(16).into())),
      Err(StoreError::TotalTooLarge { limit: 20 })
    );
    let fields = s.get(r.id).unwrap().fields;
    assert_eq!(fields, vec![("a".into(), FieldValue::Integer(1)), ("b".into(), FieldValue::Str("x".into()))]);
    s.set_field(r.id, "a", FieldValue::Number(2.5)).unwrap();
    s.delete_field(r.id, "b").unwrap();
    assert_eq!(s.get(r.id).unwrap().fields, vec![("a".into(), FieldValue::Number(2.5))]);
  }

  #[test]
  fn versions_advance_on_every_write() {
    let s = store();
    let r = s.get(s.begin(opts()).unwrap()).unwrap();
    let v0 = s.version_of(r.id);
    let (v1, _) = s.set_field(r.id, "k", FieldValue::Null).unwrap();
    assert_eq!(v1, v0 + 1);
    assert_eq!(s.version_of(r.id), v1);
  }

  #[test]
  fn child_inherits_independent_does_not() {
    let s = store();
    let root = s
      .get(s.begin(BeginOptions { fields: vec![("user".into(), FieldValue::Str("ada".into()))], ..opts() }).unwrap())
      .unwrap();
    let child = s.get(s.begin_scope(root.id, Kind::Child, Some("tx".into()), None).unwrap()).unwrap();
    let audit = s.get(s.begin_scope(root.id, Kind::Independent, None, None).unwrap()).unwrap();
    assert_eq!(child.fields, root.fields);
    assert!(audit.fields.is_empty());
    for scope in [&child, &audit] {
      assert_eq!(scope.request_id, root.request_id);
      assert_eq!(scope.trace_id, root.trace_id);
      assert_eq!(scope.parent_span_id, Some(root.span_id));
      assert_ne!(scope.span_id, root.span_id);
    }
    s.set_field(child.id, "tx", FieldValue::Integer(7)).unwrap();
    assert!(s.get(root.id).unwrap().fields.iter().all(|(k, _)| &**k != "tx"));
  }

  #[test]
  fn lifecycle_counts_and_release_after_end() {
    let s = store();
    let r = s.get(s.begin(opts()).unwrap()).unwrap();
    assert_eq!(s.open_count(), 1);
    s.attach(r.id).unwrap();
    let (first, _, ended_now) = s.end(r.id, "ok").unwrap();
    assert!(ended_now);
    let (second, _, ended_again) = s.end(r.id, "error").unwrap();
    assert!(!ended_again);
    assert_eq!(second.status, "ok", "the first outcome stands");
    assert_eq!(second.wall_ms, first.wall_ms);
    assert_eq!(s.open_count(), 0);
    s.release(r.id);
    assert_eq!(s.live_count(), 1, "one handle is still alive");
    assert_eq!(s.lingering(Duration::ZERO), 1);
    let (_, after_end) = s.set_field(r.id, "late", FieldValue::Null).unwrap();
    assert!(after_end);
    s.release(r.id);
    assert_eq!(s.live_count(), 0);
    assert_eq!(s.stats.released.load(Ordering::Relaxed), 1);
    assert_eq!(s.get(r.id).err(), Some(StoreError::NotFound(r.id)));
  }

  #[test]
  fn released_before_end_goes_at_end() {
    let s = store();
    let r = s.get(s.begin(opts()).unwrap()).unwrap();
    s.release(r.id);
    assert_eq!(s.live_count(), 1);
    s.end(r.id, "ok").unwrap();
    assert_eq!(s.live_count(), 0);
  }

  #[test]
  fn concurrent_writers_from_many_threads() {
    let s = std::sync::Arc::new(store());
    let r = s.get(s.begin(opts()).unwrap()).unwrap();
    let threads: Vec<_> = (0..8)
      .map(|t| {
        let s = s.clone();
        std::thread::spawn(move || {
          for i in 0..1000 {
            s.set_field(r.id, &format!("t{t}"), FieldValue::Integer(i)).unwrap();
          }
        })
      })
      .collect();
    for t in threads {
      t.join().unwrap();
    }
    let rec = s.get(r.id).unwrap();
    assert_eq!(rec.fields.len(), 8);
    assert!(rec.fields.iter().all(|(_, v)| *v == FieldValue::Integer(999)));
    assert_eq!(s.version_of(r.id), 8000);
  }
}
