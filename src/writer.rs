//! The off-thread log writer: callers append whole lines to a bounded
//! buffer; one thread per destination writes the buffer out in batches. What
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
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

const LINGER: Duration = Duration::from_millis(10);
/// Empty looks in a row (about 100 ms without a line) before the thread
/// sleeps until a push wakes it: an idle process is never woken.
const IDLE_POLLS: u32 = 10;

pub enum Sink {
  Stdout,
  Stderr,
  File(File),
}

impl Sink {
  pub fn open(path: &str) -> std::io::Result<Sink> {
    Ok(Sink::File(OpenOptions::new().create(true).append(true).open(path)?))
  }

  fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
    match self {
      // Not through std's locked, line-buffered handles: one write per batch.
      Sink::Stdout => write_fd(1, bytes),
      Sink::Stderr => write_fd(2, bytes),
      Sink::File(f) => f.write_all(bytes),
    }
  }
}

fn write_fd(fd: i32, mut bytes: &[u8]) -> std::io::Result<()> {
  use std::os::fd::BorrowedFd;
  // The process owns fds 1 and 2 for its whole life.
  let file = unsafe { BorrowedFd::borrow_raw(fd) };
  let mut file = File::from(file.try_clone_to_owned()?);
  while !bytes.is_empty() {
    match file.write(bytes) {
      Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
      Ok(n) => bytes = &bytes[n..],
      Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
      Err(e) => return Err(e),
    }
  }
  Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WhenFull {
  Block,
  Drop,
}

#[derive(Default)]
struct State {
  pending: Vec<u8>,
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
    let before = s.pending.len();
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
        while !s.pending.is_empty() && s.pending.len() + line.len() > self.capacity && !s.closed {
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
    let half = self.capacity / 2;
    let filling = before < half && s.pending.len() >= half;
    s.urgent |= filling;
    let wake = s.asleep || filling;
    drop(s);
    if wake {
      self.work.notify_one();
    }
    dropped
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
    let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
    sink.write_all(line)
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

  fn run(&self) {
    let mut batch = Vec::new();
    let mut empty_polls = 0;
    loop {
      let (lines_before, closed) = {
        let mut s = self.lock();
        if empty_polls >= IDLE_POLLS {
          s.asleep = true;
          while s.pending.is_empty() && !s.closed && !s.urgent {
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
        // Room was just made: let blocked pushers go on before the slow write.
        self.notify_progress(&s);
        (s.accepted, s.closed)
      };
      empty_polls = if batch.is_empty() { empty_polls + 1 } else { 0 };
      if !batch.is_empty() {
        let result = self.sink.lock().unwrap_or_else(|e| e.into_inner()).write_all(&batch);
        batch.clear();
        let mut s = self.lock();
        if let Err(e) = result {
          s.error = Some(e.to_string());
        }
        s.written = lines_before;
        self.notify_progress(&s);
      }
      if closed && self.lock().pending.is_empty() {
        return;
      }
    }
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
