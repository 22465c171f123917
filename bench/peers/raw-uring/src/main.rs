//! The minimal raw io_uring HTTP loop: the practical per-core limit the other peers (and
//! percore) are compared with. Per thread: one ring with `SINGLE_ISSUER | DEFER_TASKRUN`, one
//! `SO_REUSEPORT` listener with a multishot accept, one multishot recv per connection into a
//! provided-buffer ring, and at most one send per connection in flight carrying every response
//! that accumulated meanwhile (batched sends). One `io_uring_enter` per loop iteration.
//!
//! HTTP: just enough to answer `GET /` benchmarks: every `\r\n\r\n` ends a request, and each
//! request gets the fixed response from `peer-common` (pipelining works the same way).
//!
//!   raw-uring --listen 127.0.0.1:8080 --threads 1

use std::{
    alloc::{Layout, alloc_zeroed},
    io,
    os::fd::{AsRawFd, RawFd},
    sync::atomic::{AtomicU16, Ordering},
};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use peer_common::{Args, RequestEnds, Response};

const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const GROUP: u16 = 0;
const BUFFERS: u16 = 1024;
const BUF_SIZE: u32 = 4096;

fn main() {
    let args = Args::parse("raw-uring");
    peer_common::run_threads(args.threads, move |_| {
        if let Err(e) = serve(&args) {
            eprintln!("raw-uring: {e}");
            std::process::exit(1);
        }
    });
}

#[derive(Default)]
struct Conn {
    /// Responses waiting for the next send.
    out: Vec<u8>,
    /// The bytes of the send in flight (stable until its completion).
    inflight: Vec<u8>,
    sent: usize,
    sending: bool,
    recv_armed: bool,
    closing: bool,
    ends: RequestEnds,
}

/// The provided-buffer ring: descriptors in one page-aligned block, buffers in another.
struct BufRing {
    entries: *mut types::BufRingEntry,
    data: *mut u8,
    tail: u16,
}

impl BufRing {
    fn register(ring: &IoUring) -> io::Result<BufRing> {
        let layout = |len: usize| Layout::from_size_align(len, 4096).expect("layout");
        let desc_len = usize::from(BUFFERS) * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: non-zero sizes; the blocks live for the whole process (never freed).
        let entries = unsafe { alloc_zeroed(layout(desc_len)) }.cast::<types::BufRingEntry>();
        // SAFETY: as above.
        let data = unsafe { alloc_zeroed(layout(usize::from(BUFFERS) * BUF_SIZE as usize)) };
        if entries.is_null() || data.is_null() {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer ring"));
        }
        // SAFETY: `entries` is page aligned, holds BUFFERS entries and is never freed.
        unsafe { ring.submitter().register_buf_ring_with_flags(entries as u64, BUFFERS, GROUP, 0)? };
        let mut br = BufRing { entries, data, tail: 0 };
        for bid in 0..BUFFERS {
            br.push(bid);
        }
        br.publish();
        Ok(br)
    }

    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < BUFFERS && len <= BUF_SIZE as usize);
        // SAFETY: inside buffer `bid`, which the kernel lent us until `push`.
        unsafe { std::slice::from_raw_parts(self.data.add(usize::from(bid) * BUF_SIZE as usize), len) }
    }

    fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (BUFFERS - 1));
        // SAFETY: slot < BUFFERS; user space owns the slots between the kernel's head and tail.
        let e = unsafe { &mut *self.entries.add(slot) };
        // SAFETY: bid < BUFFERS, so the address is inside the data block.
        e.set_addr(unsafe { self.data.add(usize::from(bid) * BUF_SIZE as usize) } as u64);
        e.set_len(BUF_SIZE);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail overlays the first descriptor's reserved field, which we alone write.
        let tail = unsafe { &*types::BufRingEntry::tail(self.entries).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

struct Server {
    ring: IoUring,
    bufs: BufRing,
    conns: Vec<Option<Conn>>,
    dirty: Vec<RawFd>,
    sqes: Vec<squeue::Entry>,
    response: Response,
    listener: RawFd,
}

fn serve(args: &Args) -> io::Result<()> {
    let listener = peer_common::reuseport_listener(args.listen)?;
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_cqsize(8192)
        .build(4096)?;
    let bufs = BufRing::register(&ring)?;
    let mut s = Server {
        ring,
        bufs,
        conns: Vec::new(),
        dirty: Vec::new(),
        sqes: Vec::new(),
        response: Response::new(),
        listener: listener.as_raw_fd(),
    };
    s.arm_accept();
    let mut cqes: Vec<(u64, i32, u32)> = Vec::with_capacity(8192);
    loop {
        s.flush_sends();
        s.submit_and_wait()?;
        cqes.extend(s.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
        s.response.refresh();
        for (ud, res, flags) in cqes.drain(..) {
            let fd = (ud >> 8) as RawFd;
            match ud & 0xff {
                ACCEPT => s.on_accept(res, flags),
                RECV => s.on_recv(fd, res, flags),
                SEND => s.on_send(fd, res),
                _ => unreachable!("user data {ud:#x}"),
            }
        }
    }
}

impl Server {
    fn arm_accept(&mut self) {
        let e = opcode::AcceptMulti::new(types::Fd(self.listener))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ACCEPT);
        self.sqes.push(e);
    }

    fn arm_recv(&mut self, fd: RawFd) {
        let e = opcode::RecvMulti::new(types::Fd(fd), GROUP)
            .build()
            .user_data(RECV | (fd as u64) << 8);
        self.sqes.push(e);
        if let Some(Some(c)) = self.conns.get_mut(fd as usize) {
            c.recv_armed = true;
        }
    }

    fn submit_and_wait(&mut self) -> io::Result<()> {
        for e in self.sqes.drain(..) {
            // SAFETY: every buffer an SQE names (send bytes, the buffer ring) outlives its op.
            while unsafe { self.ring.submission().push(&e) }.is_err() {
                self.ring.submit()?;
            }
        }
        match self.ring.submit_and_wait(1) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.arm_accept();
        }
        if res < 0 {
            return;
        }
        let fd = res;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option value.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let i = fd as usize;
        if self.conns.len() <= i {
            self.conns.resize_with(i + 1, || None);
        }
        self.conns[i] = Some(Conn::default());
        self.arm_recv(fd);
    }

    fn on_recv(&mut self, fd: RawFd, res: i32, flags: u32) {
        let more = cqueue::more(flags);
        let mut close = false;
        if let Some(bid) = cqueue::buffer_select(flags) {
            let n = if res > 0 {
                let bytes = self.bufs.bytes(bid, res as usize);
                self.conns[fd as usize].as_mut().map_or(0, |c| c.ends.feed(bytes))
            } else {
                0
            };
            self.bufs.push(bid);
            self.bufs.publish();
            if n > 0 {
                let c = self.conns[fd as usize].as_mut().expect("conn");
                if c.out.is_empty() && !c.sending {
                    self.dirty.push(fd);
                }
                self.response.append(&mut c.out, n);
            }
        }
        if res == 0 || (res < 0 && res != -libc::ENOBUFS) {
            close = true;
        }
        if !more {
            let c = self.conns[fd as usize].as_mut().expect("conn");
            c.recv_armed = false;
            if close || c.closing {
                self.maybe_close(fd);
            } else {
                self.arm_recv(fd);
            }
        }
    }

    fn on_send(&mut self, fd: RawFd, res: i32) {
        let c = self.conns[fd as usize].as_mut().expect("conn");
        c.sending = false;
        if res < 0 {
            c.closing = true;
            // SAFETY: fd is an open socket we own; shutting it down ends its multishot recv.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            self.maybe_close(fd);
            return;
        }
        c.sent += res as usize;
        if c.sent < c.inflight.len() {
            self.push_send(fd);
        } else if !c.out.is_empty() {
            self.dirty.push(fd);
        }
    }

    fn flush_sends(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for fd in dirty.drain(..) {
            let Some(Some(c)) = self.conns.get_mut(fd as usize) else { continue };
            if c.sending || c.closing || c.out.is_empty() {
                continue;
            }
            std::mem::swap(&mut c.out, &mut c.inflight);
            c.out.clear();
            c.sent = 0;
            self.push_send(fd);
        }
        self.dirty = dirty;
    }

    fn push_send(&mut self, fd: RawFd) {
        let c = self.conns[fd as usize].as_mut().expect("conn");
        let rest = &c.inflight[c.sent..];
        let e = opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(SEND | (fd as u64) << 8);
        c.sending = true;
        self.sqes.push(e);
    }

    fn maybe_close(&mut self, fd: RawFd) {
        let slot = &mut self.conns[fd as usize];
        if let Some(c) = slot {
            c.closing = true;
            if !c.recv_armed && !c.sending {
                *slot = None;
                // SAFETY: no op on this fd is in flight any more.
                unsafe { libc::close(fd) };
            }
        }
    }
}
