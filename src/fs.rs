//! Files written from a shard without blocking its loop: positioned writes and syncs go
//! to the driver as ops (`IORING_OP_WRITE`, `IORING_OP_FSYNC` on io_uring; on the epoll
//! driver, which has no readiness for regular files, they run synchronously in the loop,
//! one system call per op — keep them small, a log writer's group of records).
//!
//! A [`File`] is used on the shard that opened it (it is `!Send`). Dropping an awaited
//! write or sync early is safe: the op keeps its buffer and the file's descriptor until the
//! kernel is done with them.

#![forbid(unsafe_code)]

use std::{io, os::fd::OwnedFd, path::Path, rc::Rc};

use crate::{
    driver::uring::op::{FileSync, FileWrite},
    task::{CORE, op::Op},
};

/// A file opened for writing at offsets, from a shard.
pub struct File {
    fd: Rc<OwnedFd>,
}

impl File {
    /// Opens (creating it if missing) `path` for reading and writing; the cursor is not
    /// used: writes name their offset.
    pub fn open_rw(path: impl AsRef<Path>) -> io::Result<File> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(File::from_std(file))
    }

    /// Takes over an open file.
    pub fn from_std(file: std::fs::File) -> File {
        File {
            fd: Rc::new(OwnedFd::from(file)),
        }
    }

    /// Writes all of `buf` at `offset` (short writes continue where they stopped); gives
    /// the buffer back for reuse.
    pub async fn write_all_at(&self, buf: Vec<u8>, offset: u64) -> io::Result<Vec<u8>> {
        let mut op = FileWrite {
            fd: self.fd.clone(),
            buf,
            start: 0,
            offset,
        };
        while op.start < op.buf.len() {
            let (result, back) = Op::submit(CORE.current(), op).await;
            op = back;
            match result {
                n if n > 0 => {
                    op.start += n as usize;
                    op.offset += n as u64;
                }
                0 => return Err(io::ErrorKind::WriteZero.into()),
                e if e == -libc::EINTR || e == -libc::EAGAIN => {}
                e => return Err(io::Error::from_raw_os_error(-e)),
            }
        }
        Ok(op.buf)
    }

    /// Flushes the file's data to the device (`fdatasync`), or data and metadata (`fsync`).
    pub async fn sync(&self, data_only: bool) -> io::Result<()> {
        let op = FileSync {
            fd: self.fd.clone(),
            data_only,
        };
        let (result, _) = Op::submit(CORE.current(), op).await;
        if result < 0 {
            return Err(io::Error::from_raw_os_error(-result));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Read, time::Duration};

    use super::*;
    use crate::server::Server;

    #[test]
    fn writes_at_offsets_and_syncs_through_the_driver() {
        let dir = std::env::temp_dir().join(format!("percore-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let _ = std::fs::remove_file(&path);
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let at = path.clone();
        let server = Server::builder()
            .shards(1)
            .print_report(false)
            .start(move |_| {
                let tx = tx.lock().unwrap().clone();
                let at = at.clone();
                Ok(async move {
                    let file = File::open_rw(&at).unwrap();
                    let buf = file.write_all_at(b"hello ".to_vec(), 0).await.unwrap();
                    assert_eq!(buf, b"hello ");
                    file.write_all_at(b"world".to_vec(), 6).await.unwrap();
                    file.write_all_at(b"W".to_vec(), 6).await.unwrap();
                    file.sync(true).await.unwrap();
                    file.sync(false).await.unwrap();
                    let _ = tx.send(crate::metrics::stats().ops_in_flight);
                })
            })
            .unwrap();
        let in_flight = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        server.stop();
        server.join().unwrap();
        assert_eq!(in_flight, 0);
        let mut text = String::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello World");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
