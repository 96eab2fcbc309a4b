//! The off-thread log writer: callers append whole lines to a bounded
//! buffer, or hand over lines for the thread to format (`DeferredLines`);
//! one thread per destination writes the buffer out in batches. What
//! happens when the buffer is full is the caller's choice: block until there
//! is room, or drop the line and count it. `flush` waits until every line
//! accepted so far has reached the destination.
//!
//! Waking a thread from the event loop's thread costs a system call, and
//! on a busy machine an interrupt to another core, so pushes almost never
//! wake it. While lines keep coming, the thread looks for them every
//! `LINGER` on its own timer; only after `IDLE_POLLS` empty looks does it
//! sleep until woken, and only then does a push wake it. A buffer half full,
//! a flush and a close wake it too. Lines are thus written within `LINGER`,
//! in batches; exit paths flush. Condition variables are signalled only
//! when someone waits on them: signalling costs a system call even then.

use std::fs::{File, OpenOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::shared_output::{write_lines, write_lines_to};

const LINGER: Duration = Duration::from_millis(10);
/// Empty looks in a row (about 100 ms without a line) before the thread
/// sleeps until a push wakes it: an idle process is never woken.
const IDLE_POLLS: u32 = 10;

pub enum Sink {
  Stdout,
  Stderr,
  File(File),
  /// After `shut`: the file is closed.
  Closed,
}

impl Sink {
  pub fn open(path: &str) -> std::io::Result<Sink> {
    Ok(Sink::File(OpenOptions::new().create(true).append(true).open(path)?))
  }

  fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
    match self {
      // Not through std's locked, line-buffered handles: whole batches, in
      // chunks that others writing to the same pipe cannot cut.
      Sink::Stdout => write_lines(1, bytes),
      Sink::Stderr => write_lines(2, bytes),
      Sink::File(f) => write_lines_to(f, bytes),
      Sink::Closed => Err(std::io::Error::other("the log destination is closed")),
    }
  }
}

/// Lines whose formatting waits for the writer thread: the caller hands
/// over what they are made from, and the thread formats them right before
/// writing, in their place among the other lines. The caller's thread then
/// pays only for the handing over.
pub trait DeferredLines: Send {
  /// How many lines they are.
  fn lines(&self) -> usize;
  /// About how many bytes they take once formatted (for the buffer's bound).
  fn size_hint(&self) -> usize;
  fn format_into(&self, out: &mut Vec<u8>);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WhenFull {
  Block,
  Drop,
}

#[derive(Default)]
struct State {
  pending: Vec<u8>,
  /// Deferred lines, each with the offset in `pending` where they go.
  deferred: Vec<(usize, Box<dyn DeferredLines>)>,
  /// Their size hints, counted against the capacity with `pending`.
  deferred_bytes: usize,
  /// Lines accepted / lines written, to know when a flush is complete.
  accepted: u64,
  written: u64,
  closed: bool,
  error: Option<String>,
  /// The thread waits for a push with no timeout.
  asleep: bool,
  /// A flush, a close or a filling buffer wants the pending lines written
  /// now, without lingering.
  urgent: bool,
  /// Callers blocked on `progress` (waiting for room or for a flush).
  waiting: usize,
}

impl State {
  /// Bytes waiting, deferred lines by their size hint.
  fn queued(&self) -> usize {
    self.pending.len() + self.deferred_bytes
  }
}

pub struct Writer {
  state: Mutex<State>,
  /// Signals the writer thread that there is work (or that it should stop).
  work: Condvar,
  /// Signals callers waiting for room or for a flush.
  progress: Condvar,
  capacity: usize,
  when_full: WhenFull,
  pub dropped: AtomicU64,
  sink: Mutex<Sink>,
  /// The sink's reader went away (EPIPE).
  reader_gone: AtomicBool,
  thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
  /// A writer with its own thread. `capacity` bounds the bytes waiting to be
  /// written.
  pub fn start(sink: Sink, capacity: usize, when_full: WhenFull) -> Arc<Writer> {
    let writer = Arc::new(Writer {
      state: Mutex::new(State::default()),
      work: Condvar::new(),
      progress: Condvar::new(),
      capacity: capacity.max(1),
      when_full,
      dropped: AtomicU64::new(0),
      sink: Mutex::new(sink),
      reader_gone: AtomicBool::new(false),
      thread: Mutex::new(None),
    });
    let worker = writer.clone();
    let handle = std::thread::Builder::new()
      .name("ambient-log-writer".into())
      .spawn(move || worker.run())
      .expect("spawn the log writer thread");
    *writer.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    writer
  }

  fn lock(&self) -> MutexGuard<'_, State> {
    self.state.lock().unwrap_or_else(|e| e.into_inner())
  }

  /// Queues one line (with its newline). Returns false when it was dropped
  /// because the buffer was full and the policy is to drop.
  pub fn push(&self, line: &[u8]) -> bool {
    self.push_lines(line, &[line.len()]) == 0
  }

  /// Queues whole lines, `bytes` cut at the offsets `ends` (each line with
  /// its newline), under one lock. Returns how many were dropped because
  /// the buffer was full and the policy is to drop; under the block policy
  /// it waits for room line by line.
  pub fn push_lines(&self, bytes: &[u8], ends: &[usize]) -> usize {
    let mut s = self.lock();
    let before = s.queued();
    let mut dropped = 0;
    if before + bytes.len() <= self.capacity || s.closed {
      s.pending.extend_from_slice(bytes);
      s.accepted += ends.len() as u64;
    } else {
      let mut start = 0;
      for &end in ends {
        let line = &bytes[start..end];
        start = end;
        let mut kept = true;
        while s.queued() > 0 && s.queued() + line.len() > self.capacity && !s.closed {
          if self.when_full == WhenFull::Drop {
            kept = false;
            break;
          }
          s.urgent = true;
          self.work.notify_one();
          s = self.wait_for_progress(s);
        }
        if kept {
          s.pending.extend_from_slice(line);
          s.accepted += 1;
        } else {
          dropped += 1;
        }
      }
      self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
    }
    self.wake_if_needed(s, before);
    dropped
  }

  /// Queues lines for the writer thread to format. Gives them back when
  /// they do not fit in the buffer now, or the writer is closed: the caller
  /// then formats them itself and pushes them, which waits or drops as the
  /// policy says.
  pub fn push_deferred<L: DeferredLines + 'static>(&self, lines: L) -> Result<(), L> {
    let mut s = self.lock();
    let before = s.queued();
    let size = lines.size_hint();
    if s.closed || (before > 0 && before + size > self.capacity) {
      return Err(lines);
    }
    let at = s.pending.len();
    s.accepted += lines.lines() as u64;
    s.deferred_bytes += size;
    s.deferred.push((at, Box::new(lines)));
    self.wake_if_needed(s, before);
    Ok(())
  }

  /// Wakes the thread when it sleeps, or when the buffer just passed half
  /// full (it then writes without lingering).
  fn wake_if_needed(&self, mut s: MutexGuard<'_, State>, before: usize) {
    let half = self.capacity / 2;
    let filling = before < half && s.queued() >= half;
    s.urgent |= filling;
    let wake = s.asleep || filling;
    drop(s);
    if wake {
      self.work.notify_one();
    }
  }

  fn wait_for_progress<'a>(&self, mut s: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    s.waiting += 1;
    s = self.progress.wait(s).unwrap_or_else(|e| e.into_inner());
    s.waiting -= 1;
    s
  }

  fn notify_progress(&self, s: &State) {
    if s.waiting > 0 {
      self.progress.notify_all();
    }
  }

  /// Writes `line` now, on the calling thread, after what is queued (sync
  /// mode, and last words before the process dies).
  pub fn write_now(&self, line: &[u8]) -> std::io::Result<()> {
    self.flush();
    self.write_out(line)
  }

  /// Once the sink's reader is gone (EPIPE: `node app | head` after head
  /// has read what it wanted), lines are discarded without a word, as pino
  /// does: nothing can read them any more, and the process goes on.
  fn write_out(&self, bytes: &[u8]) -> std::io::Result<()> {
    if self.reader_gone.load(Ordering::Relaxed) {
      return Ok(());
    }
    match self.sink.lock().unwrap_or_else(|e| e.into_inner()).write_all(bytes) {
      Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
        self.reader_gone.store(true, Ordering::Relaxed);
        Ok(())
      }
      result => result,
    }
  }

  /// Blocks until every line accepted so far has been written. Returns the
  /// last write error, if any.
  pub fn flush(&self) -> Option<String> {
    let mut s = self.lock();
    let target = s.accepted;
    if s.written < target {
      s.urgent = true;
      self.work.notify_one();
    }
    while s.written < target && !s.closed {
      s = self.wait_for_progress(s);
    }
    s.error.clone()
  }

  /// Flushes, then stops the thread. Later pushes are written directly.
  pub fn close(&self) {
    self.flush();
    self.lock().closed = true;
    self.work.notify_all();
    self.progress.notify_all();
    if let Some(handle) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
      let _ = handle.join();
    }
  }

  /// Closes, then lets go of the sink (a file is closed) and of the
  /// buffer's memory: for a destination nothing can log to any more.
  pub fn shut(&self) {
    self.close();
    *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = Sink::Closed;
    let mut s = self.lock();
    s.pending = Vec::new();
    s.deferred = Vec::new();
  }

  fn run(&self) {
    let mut batch = Vec::new();
    let mut assembled = Vec::new();
    let mut empty_polls = 0;
    loop {
      let (lines_before, closed, deferred) = {
        let mut s = self.lock();
        if empty_polls >= IDLE_POLLS {
          s.asleep = true;
          while s.queued() == 0 && !s.closed && !s.urgent {
            s = self.work.wait(s).unwrap_or_else(|e| e.into_inner());
          }
          s.asleep = false;
        }
        // Let lines gather, unless someone wants them now.
        if !s.closed && !s.urgent {
          s = self.work.wait_timeout(s, LINGER).unwrap_or_else(|e| e.into_inner()).0;
        }
        s.urgent = false;
        std::mem::swap(&mut batch, &mut s.pending);
        let deferred = std::mem::take(&mut s.deferred);
        s.deferred_bytes = 0;
        // Room was just made: let blocked pushers go on before the slow write.
        self.notify_progress(&s);
        (s.accepted, s.closed, deferred)
      };
      let idle = batch.is_empty() && deferred.is_empty();
      empty_polls = if idle { empty_polls + 1 } else { 0 };
      if !idle {
        let (out, format_error) = Self::assemble(&batch, deferred, &mut assembled);
        let result = self.write_out(out);
        batch.clear();
        assembled.clear();
        let mut s = self.lock();
        if let Err(e) = result {
          s.error = Some(e.to_string());
        } else if let Some(e) = format_error {
          s.error = Some(e);
        }
        s.written = lines_before;
        self.notify_progress(&s);
      }
      if closed && self.lock().queued() == 0 {
        return;
      }
    }
  }

  /// The bytes to write: `batch` as it is, or with the deferred lines
  /// formatted into their places (in `assembled`). A panic while formatting
  /// costs those lines, not the thread: it is reported as the write error.
  fn assemble<'a>(
    batch: &'a [u8],
    deferred: Vec<(usize, Box<dyn DeferredLines>)>,
    assembled: &'a mut Vec<u8>,
  ) -> (&'a [u8], Option<String>) {
    if deferred.is_empty() {
      return (batch, None);
    }
    let mut error = None;
    let mut from = 0;
    for (at, lines) in deferred {
      assembled.extend_from_slice(&batch[from..at]);
      from = at;
      let start = assembled.len();
      let formatted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lines.format_into(assembled)));
      if formatted.is_err() {
        assembled.truncate(start);
        error = Some("formatting deferred log lines panicked".to_owned());
      }
    }
    assembled.extend_from_slice(&batch[from..]);
    (assembled, error)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ambient-writer-{name}-{}", std::process::id()))
  }

  #[test]
  fn writes_every_line_in_order_and_flush_waits_for_them() {
    let path = temp_path("order");
    let _ = std::fs::remove_file(&path);
    let w = Writer::start(Sink::open(path.to_str().unwrap()).unwrap(), 1024, WhenFull::Block);
    let threads: Vec<_> = (0..4)
      .map(|t| {
        let w = w.clone();
        std::thread::spawn(move || {
          for i in 0..2500 {
            assert!(w.push(format!("{t}:{i}\n").as_bytes()));
          }
        })
      })
      .collect();
    for t in threads {
      t.join().unwrap();
    }
    assert_eq!(w.flush(), None);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10_000);
    for t in 0..4 {
      let mine: Vec<usize> =
        lines.iter().filter_map(|l| l.strip_prefix(&format!("{t}:"))).map(|n| n.parse().unwrap()).collect();
      assert_eq!(mine, (0..2500).collect::<Vec<_>>(), "each thread's lines stay in order");
    }
    w.close();
    let _ = std::fs::remove_file(&path);
  }

  /// Polls `path` until it holds `expected`, for up to two seconds.
  fn wait_for_content(path: &std::path::Path, expected: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
      let text = std::fs::read_to_string(path).unwrap_or_default();
      if text == expected {
        return;
      }
      assert!(std::time::Instant::now() < deadline, "expected {expected:?} without a flush, found {text:?}");
      std::thread::sleep(Duration::from_millis(5));
    }
  }

  #[test]
  fn lines_are_written_without_a_flush_whether_the_thread_sleeps_or_polls() {
    let path = temp_path("asleep");
    let _ = std::fs::remove_file(&path);
    let w = Writer::start(Sink::open(path.to_str().unwrap()).unwrap(), 1 << 20, WhenFull::Block);
    // Idle for longer than IDLE_POLLS looks: the thread sleeps, and only a
    // push wakes it.
    std::thread::sleep(LINGER * (IDLE_POLLS + 10));
    assert!(w.lock().asleep, "an idle writer sleeps until woken");
    assert!(w.push(b"first\n"));
    wait_for_content(&path, "first\n");
    // Right after a batch it polls on its own timer: this push wakes nobody.
    assert!(!w.lock().asleep);
    assert!(w.push(b"second\n"));
    wait_for_content(&path, "first\nsecond\n");
    w.close();
    let _ = std::fs::remove_file(&path);
  }

  /// `count` numbered lines in one buffer, and where each ends.
  fn numbered_lines(from: usize, count: usize) -> (Vec<u8>, Vec<usize>) {
    let (mut bytes, mut ends) = (Vec::new(), Vec::new());
    for i in from..from + count {
      bytes.extend_from_slice(format!("line {i:04}\n").as_bytes());
      ends.push(bytes.len());
    }
    (bytes, ends)
  }

  #[test]
  fn a_batch_larger_than_the_buffer_is_written_whole_and_in_order_when_blocking() {
    let path = temp_path("batch-block");
    let w = Writer::start(Sink::open(path.to_str().unwrap()).unwrap(), 64, WhenFull::Block);
    let (first, first_ends) = numbered_lines(0, 3);
    let (big, big_ends) = numbered_lines(3, 200);
    assert_eq!(w.push_lines(&first, &first_ends), 0);
    assert_eq!(w.push_lines(&big, &big_ends), 0);
    assert_eq!(w.flush(), None);
    let expected: String = (0..203).map(|i| format!("line {i:04}\n")).collect();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    w.close();
    let _ = std::fs::remove_file(&path);
  }

  #[test]
  fn a_batch_that_does_not_fit_drops_whole_lines_and_counts_them() {
    let path = temp_path("batch-drop");
    let w = Writer::start(Sink::open(path.to_str().unwrap()).unwrap(), 64, WhenFull::Drop);
    let mut kept = 0;
    let mut dropped = 0;
    for round in 0..50 {
      let (bytes, ends) = numbered_lines(round * 20, 20);
      let lost = w.push_lines(&bytes, &ends);
      dropped += lost;
      kept += ends.len() - lost;
    }
    w.flush();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().all(|l| l.len() == 9 && l.starts_with("line ")), "only whole lines are written");
    assert_eq!(text.lines().count(), kept);
    assert_eq!(dropped as u64, w.dropped.load(Ordering::Relaxed));
    assert_eq!(kept + dropped, 1000);
    assert!(dropped > 0, "a 64-byte buffer cannot take 20 lines of 10 bytes at once");
    w.close();
    let _ = std::fs::remove_file(&path);
  }

  /// Deferred lines `line {i}` for `from..from + count`, or a panic when
  /// formatted.
  struct Numbered {
    from: usize,
    count: usize,
    panics: bool,
  }

  impl DeferredLines for Numbered {
    fn lines(&self) -> usize {
      self.count
    }
    fn size_hint(&self) -> usize {
      self.count * 10
    }
    fn format_into(&self, out: &mut Vec<u8>) {
      out.extend_from_slice(b"partial");
      assert!(!self.panics, "formatting failed");
      out.truncate(out.len() - 7);
      out.extend_from_slice(&numbered_lines(self.from, self.count).0);
    }
  }

  #[test]
  fn deferred_lines_are_formatted_in_their_place_among_the_others() {
    let path = temp_path("deferred");
    let w = Writer::start(Sink::open(path.to_str().unwrap()).unwrap(), 1 << 20, WhenFull::Block);
    let mut next = 0;
    for round in 0..300 {
      let count = round % 7 + 1;
      if round % 2 == 0 {
        assert!(w.push_deferred(Numbered { from: next, count, panics: false }).is_ok());
      } else {
        let (bytes, ends) = numbered_lines(next, count);
        assert_eq!(w.push_lines(&bytes, &ends), 0);
      }
      next += count;
      if round % 50 == 0 {
        std::thread::sleep(LINGER);
      }
    }
    assert_eq!(w.flush(), None);
    let expected: String = (0..next).map(|i| format!("line {i:04}\n")).collect();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    w.close();
    let _ = std::fs::remove_file(&path);
  }

  #[test]
  fn deferred_lines_that_do_not_fit_or_come_after_close_are_given_back() {
    let path = temp_path("deferred-full");
    let w = Writer::start(Sink::open(path.to_str().unwrap()).unwrap(), 64, WhenFull::Block);
    // An empty buffer takes any batch; a second one past the bound is refused.
    assert!(w.push_deferred(Numbered { from: 0, count: 5, panics: false }).is_ok());
    let refused = w.push_deferred(Numbered { from: 5, count: 5, panics: false });
    assert_eq!(refused.err().map(|lines| lines.lines()), Some(5));
    assert_eq!(w.flush(), None);
    w.close();
    assert!(w.push_deferred(Numbered { from: 5, count: 1, panics: false }).is_err());
    let expected: String = (0..5).map(|i| format!("line {i:04}\n")).collect();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    let _ = std::fs::remove_file(&path);
  }

  #[test]
  fn a_panic_while_formatting_costs_those_lines_not_the_thread() {
    let path = temp_path("deferred-panic");
    let w = Writer::start(Sink::open(path.to_str().unwrap()).unwrap(), 1 << 20, WhenFull::Block);
    assert!(w.push(b"before\n"));
    assert!(w.push_deferred(Numbered { from: 0, count: 3, panics: true }).is_ok());
    assert!(w.push(b"after\n"));
    assert_eq!(w.flush().as_deref(), Some("formatting deferred log lines panicked"));
    assert!(w.push(b"later\n"));
    w.flush();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\nafter\nlater\n");
    w.close();
    let _ = std::fs::remove_file(&path);
  }

  #[test]
  fn drop_policy_counts_what_it_drops() {
    let path = temp_path("drop");
    let w = Writer::start(Sink::open(path.to_str().unwrap()).unwrap(), 64, WhenFull::Drop);
    let mut kept = 0u64;
    for _ in 0..10_000 {
      if w.push(b"0123456789012345678901234567890123456789\n") {
        kept += 1;
      }
    }
    w.flush();
    let written = std::fs::read_to_string(&path).unwrap().lines().count() as u64;
    assert_eq!(written, kept);
    assert_eq!(kept + w.dropped.load(Ordering::Relaxed), 10_000);
    w.close();
    let _ = std::fs::remove_file(&path);
  }
}
