//! Writing lines to stdout or stderr, which others write to as well: every
//! logger of this process (each has its own writer thread, worker threads'
//! included), `console.log`, and, in a cluster or under a process manager,
//! other processes that inherited the same pipe.
//!
//! A pipe or socket keeps one `write()` whole only up to `PIPE_BUF` bytes;
//! a longer one may be cut by another writer's bytes, which breaks both
//! lines. So to a pipe or socket a batch goes out in chunks of whole lines
//! of at most `PIPE_BUF` bytes each (a single longer line goes alone), and
//! ambient's own writers to fd 1 or 2 take turns. A terminal, a file or
//! /dev/null keeps any `write()` whole, and gets the batch in one. A log
//! file path that names a pipe (a FIFO, /dev/stdout) is written in chunks
//! too.

use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Mutex;

/// One per fd (1 and 2): ambient's writers to it take turns.
static TURNS: [Mutex<()>; 2] = [Mutex::new(()), Mutex::new(())];

/// Writes `bytes` (whole lines) to fd 1 or 2.
pub fn write_lines(fd: i32, bytes: &[u8]) -> std::io::Result<()> {
  let _turn = TURNS[(fd == 2) as usize].lock().unwrap_or_else(|e| e.into_inner());
  // The process owns fds 1 and 2 for its whole life: borrowed, not closed.
  let mut file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
  write_lines_to(&mut file, bytes)
}

/// Writes `bytes` (whole lines) to a file, which may be a pipe or socket
/// too (a named pipe, /dev/stdout, /proc/self/fd/1).
pub fn write_lines_to(file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
  if keeps_only_pipe_buf_whole(file) {
    for chunk in whole_line_chunks(bytes, libc::PIPE_BUF) {
      write_all(file, chunk)?;
    }
    Ok(())
  } else {
    write_all(file, bytes)
  }
}

fn keeps_only_pipe_buf_whole(file: &File) -> bool {
  use std::os::unix::fs::FileTypeExt;
  // Asked at each batch: the fd may be replaced (dup2) while the process
  // runs. One fstat costs little beside the write.
  file.metadata().map(|m| m.file_type().is_fifo() || m.file_type().is_socket()).unwrap_or(true)
}

/// `bytes` cut after a newline into chunks of at most `limit` bytes; a
/// line longer than `limit` is a chunk of its own.
pub fn whole_line_chunks(bytes: &[u8], limit: usize) -> impl Iterator<Item = &[u8]> {
  let mut rest = bytes;
  std::iter::from_fn(move || {
    if rest.is_empty() {
      return None;
    }
    let end = if rest.len() <= limit {
      rest.len()
    } else {
      match rest[..limit].iter().rposition(|&b| b == b'\n') {
        Some(newline) => newline + 1,
        // One line longer than the limit: it cannot be kept whole.
        None => rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |newline| newline + 1),
      }
    };
    let (chunk, after) = rest.split_at(end);
    rest = after;
    Some(chunk)
  })
}

/// A pipe or socket takes a chunk of at most `PIPE_BUF` bytes whole or not
/// at all, blocking or not, so a chunk is never cut by this loop.
fn write_all(file: &mut File, mut bytes: &[u8]) -> std::io::Result<()> {
  while !bytes.is_empty() {
    match file.write(bytes) {
      Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
      Ok(n) => bytes = &bytes[n..],
      Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
      // O_NONBLOCK belongs to the open file description, which the process
      // may share with whoever started it: a full pipe then refuses the
      // write instead of blocking it. Wait as a blocking write would.
      Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => wait_writable(file)?,
      Err(e) => return Err(e),
    }
  }
  Ok(())
}

fn wait_writable(file: &File) -> std::io::Result<()> {
  let mut pollfd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
  loop {
    // Safety: one valid pollfd, for the duration of the call.
    if unsafe { libc::poll(&mut pollfd, 1, -1) } >= 0 {
      return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.kind() != std::io::ErrorKind::Interrupted {
      return Err(err);
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn chunks(bytes: &[u8], limit: usize) -> Vec<&[u8]> {
    whole_line_chunks(bytes, limit).collect()
  }

  #[test]
  fn chunks_end_at_a_newline_and_stay_within_the_limit() {
    let lines: Vec<u8> =
      (0..500).flat_map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 97)).into_bytes()).collect();
    let cut = chunks(&lines, 4096);
    assert!(cut.len() > 1);
    for chunk in &cut {
      assert!(chunk.len() <= 4096, "{}", chunk.len());
      assert_eq!(chunk.last(), Some(&b'\n'));
    }
    assert_eq!(cut.concat(), lines, "nothing lost, nothing reordered");
  }

  #[test]
  fn a_line_longer_than_the_limit_goes_alone_and_small_batches_go_whole() {
    let long = format!("{}\n", "y".repeat(10));
    let bytes = format!("a\n{long}b\nc\n");
    assert_eq!(chunks(bytes.as_bytes(), 4), vec![&b"a\n"[..], long.as_bytes(), b"b\nc\n"]);
    assert_eq!(chunks(b"a\nb\n", 4096), vec![&b"a\nb\n"[..]]);
    assert!(chunks(b"", 4096).is_empty());
    // Bytes after the last newline (never from the writer) still go out.
    assert_eq!(chunks(b"a\nbbbbbb", 4).concat(), b"a\nbbbbbb");
  }
}
