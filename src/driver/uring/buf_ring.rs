//! The shard's provided-buffer ring (`IORING_REGISTER_PBUF_RING`), which multishot receives
//! draw from.
//!
//! States of one buffer: **in the ring** (the kernel may pick it for any receive of this
//! shard) → **lent** (a CQE named its id; the bytes belong to one connection until it consumes
//! or copies them) → back **in the ring** through [`BufRing::recycle`]. Every path that ends a
//! lent buffer, consumed, copied out, connection closed or error, must call `recycle`: the
//! `lent` counter lets tests and metrics check that all came back.
//!
//! Memory: the ring of descriptors is one mmap'd, page-aligned block the kernel reads; the
//! buffers are one anonymous mapping of `count * size` bytes, zero pages the kernel fills
//! in as they are first touched (so a shard starts without writing megabytes of zeros, and
//! buffers never used cost no memory). Only this shard's thread touches
//! either from user space. The tail is published with a release store so the kernel sees the
//! descriptor before it sees the new tail.

use std::{
    io,
    ptr::NonNull,
    sync::atomic::{AtomicU16, Ordering},
};

use io_uring::{Submitter, types::BufRingEntry};

/// The one buffer group every shard uses for receives.
pub(crate) const RECV_GROUP: u16 = 0;

pub(crate) struct BufRing {
    descriptors: NonNull<BufRingEntry>,
    descriptors_len: usize,
    data: NonNull<u8>,
    data_len: usize,
    count: u16,
    buf_size: u32,
    tail: u16,
    /// The consumer's position when no kernel consumes (readiness driver).
    head: u16,
    lent: u32,
}

impl BufRing {
    /// Allocates `count` buffers of `buf_size` bytes and registers them with the ring.
    /// `count` must be a power of two in 1..=32768.
    pub(crate) fn register(
        submitter: &Submitter<'_>,
        count: u16,
        buf_size: u32,
    ) -> io::Result<Self> {
        let mut ring = Self::allocate(count, buf_size)?;
        // SAFETY: the descriptor block is page aligned (mmap), holds `count` entries and stays
        // mapped until `Drop`, which runs after the ring that uses it is gone (the shard drops
        // its io_uring first; see `Ring`'s field order).
        unsafe {
            submitter.register_buf_ring_with_flags(
                ring.descriptors.as_ptr() as u64,
                count,
                RECV_GROUP,
                0,
            )?;
        }
        for bid in 0..count {
            ring.push(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// The same buffers for a readiness driver, which is its own consumer: no kernel
    /// registration; [`take`](Self::take) hands out what the kernel would have picked.
    pub(crate) fn unregistered(count: u16, buf_size: u32) -> io::Result<Self> {
        let mut ring = Self::allocate(count, buf_size)?;
        for bid in 0..count {
            ring.push(bid);
        }
        Ok(ring)
    }

    fn allocate(count: u16, buf_size: u32) -> io::Result<Self> {
        if count == 0 || !count.is_power_of_two() || count > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("receive buffer count must be a power of two in 1..=32768, got {count}"),
            ));
        }
        if buf_size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "receive buffer size must be > 0",
            ));
        }
        let descriptors_len = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping with no address hint has no preconditions;
        // the result is checked against MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                descriptors_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let descriptors =
            NonNull::new(map.cast::<BufRingEntry>()).ok_or_else(io::Error::last_os_error)?;
        let data_len = usize::from(count) * buf_size as usize;
        // SAFETY: as above (an anonymous private mapping, checked against MAP_FAILED); the
        // length is non-zero (count > 0 and buf_size > 0 are checked above).
        let data = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                data_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let data = (data != libc::MAP_FAILED)
            .then(|| NonNull::new(data.cast::<u8>()))
            .flatten();
        let Some(data) = data else {
            let error = io::Error::last_os_error();
            // SAFETY: `map` came from the successful mmap above with this length.
            unsafe { libc::munmap(map, descriptors_len) };
            return Err(error);
        };
        Ok(BufRing {
            descriptors,
            descriptors_len,
            data,
            data_len,
            count,
            buf_size,
            tail: 0,
            head: 0,
            lent: 0,
        })
    }

    /// The size of every buffer.
    pub(crate) fn buf_size(&self) -> u32 {
        self.buf_size
    }

    /// Readiness driver only: takes the next free buffer, as the kernel would for a
    /// provided-buffer receive; `None` when every buffer is lent (the receive then ends with
    /// `ENOBUFS`, like io_uring's). The caller fills it with [`fill`](Self::fill).
    pub(crate) fn take(&mut self) -> Option<u16> {
        if self.head == self.tail {
            return None;
        }
        let slot = usize::from(self.head & (self.count - 1));
        // SAFETY: `slot < count`, inside the mapped descriptor block; without a kernel
        // consumer only this thread touches it.
        let bid = unsafe { &*self.descriptors.as_ptr().add(slot) }.bid();
        self.head = self.head.wrapping_add(1);
        Some(bid)
    }

    /// Readiness driver only: returns a buffer taken and not filled (the read found nothing).
    pub(crate) fn untake(&mut self, bid: u16) {
        self.push(bid);
    }

    /// Readiness driver only: the whole of buffer `bid`, taken and not yet lent, to read into.
    pub(crate) fn fill(&mut self, bid: u16) -> &mut [u8] {
        assert!(bid < self.count, "buffer id out of range");
        let offset = usize::from(bid) * self.buf_size as usize;
        // SAFETY: buffer `bid` lies inside the data block; it was just taken from the free
        // ring, so no lent slice refers to it, and `&mut self` excludes any other borrow.
        unsafe {
            std::slice::from_raw_parts_mut(self.data.as_ptr().add(offset), self.buf_size as usize)
        }
    }

    pub(crate) fn count(&self) -> u16 {
        self.count
    }

    /// Buffers currently lent to connections (not in the ring).
    pub(crate) fn lent(&self) -> u32 {
        self.lent
    }

    /// Records that the kernel handed out buffer `bid` (a CQE with `F_BUFFER`).
    pub(crate) fn mark_lent(&mut self, bid: u16) {
        debug_assert!(bid < self.count);
        self.lent += 1;
    }

    /// The first `len` bytes of buffer `bid`, as the kernel wrote them.
    pub(crate) fn bytes(&self, bid: u16, start: u32, end: u32) -> &[u8] {
        assert!(
            bid < self.count && start <= end && end <= self.buf_size,
            "buffer slice out of range"
        );
        let offset = usize::from(bid) * self.buf_size as usize + start as usize;
        // SAFETY: the range lies inside buffer `bid` (asserted above), which is lent to user
        // space: the kernel does not write it until `recycle` gives it back, and `&self`
        // prevents `recycle` while the slice lives.
        unsafe {
            std::slice::from_raw_parts(self.data.as_ptr().add(offset), (end - start) as usize)
        }
    }

    /// Gives buffer `bid` back to the kernel (once per receive: inlined into its callers).
    #[inline]
    pub(crate) fn recycle(&mut self, bid: u16) {
        debug_assert!(self.lent > 0, "recycle of a buffer that was not lent");
        self.lent = self.lent.saturating_sub(1);
        self.push(bid);
        self.publish();
    }

    #[inline]
    fn push(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.data.as_ptr() as u64 + u64::from(bid) * u64::from(self.buf_size);
        // SAFETY: `slot < count`, so the entry lies inside the mapped descriptor block; user
        // space owns the slots between the kernel's head and our tail.
        let entry = unsafe { &mut *self.descriptors.as_ptr().add(slot) };
        entry.set_addr(addr);
        entry.set_len(self.buf_size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    #[inline]
    fn publish(&self) {
        // SAFETY: the tail field overlays the `resv` field of the first descriptor, which is
        // mapped and initialised; the kernel reads it as a u16 that we alone write.
        let tail = unsafe { &*BufRingEntry::tail(self.descriptors.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both blocks were mapped in `allocate` with these sizes and are not used
        // after this point (the io_uring instance is dropped before the BufRing).
        unsafe {
            libc::munmap(self.descriptors.as_ptr().cast(), self.descriptors_len);
            libc::munmap(self.data.as_ptr().cast(), self.data_len);
        }
    }
}
