//! Passing descriptors between processes over a Unix stream socket (`SCM_RIGHTS`): how a
//! running percore hands its listening sockets to the binary that replaces it.
//!
//! A message is a few bytes of data with the descriptors attached to its first byte; the
//! receiver gets new descriptors (close-on-exec, `MSG_CMSG_CLOEXEC`) of the same open
//! sockets. At most [`MAX_FDS`] descriptors travel in one message.

use std::{
    io, mem,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
    ptr,
};

use super::with_context;

/// Descriptors one message carries at most (the kernel's limit is 253, `SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 64;

/// Room for the control message of [`MAX_FDS`] descriptors, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct ControlBuf([u8; control_len(MAX_FDS)]);

const fn control_len(fds: usize) -> usize {
    // CMSG_SPACE(fds * sizeof(int)) on Linux: header (16 bytes on 64-bit) + data rounded up
    // to the alignment of a long.
    let data = fds * mem::size_of::<RawFd>();
    let align = mem::size_of::<usize>();
    mem::size_of::<libc::cmsghdr>() + data.div_ceil(align) * align
}

/// Sends `data` (at least one byte) with `fds` attached. Returns the bytes sent; the caller
/// sends the rest, if any, with no descriptors.
pub(crate) fn send_with_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    if data.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "SCM_RIGHTS: need 1+ data bytes and at most {MAX_FDS} descriptors (got {} bytes, {} fds)",
                data.len(),
                fds.len()
            ),
        ));
    }
    let mut control = ControlBuf([0; control_len(MAX_FDS)]);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every field used is set below.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let payload = mem::size_of_val(fds);
        msg.msg_control = control.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE only computes a size.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(payload as u32) } as _;
        // SAFETY: msg_control points at `control`, aligned and at least CMSG_SPACE(payload)
        // bytes long (control_len(MAX_FDS) ≥ that, as fds.len() ≤ MAX_FDS), so the first
        // header and its data lie inside it.
        unsafe {
            let header = libc::CMSG_FIRSTHDR(&raw const msg);
            (*header).cmsg_level = libc::SOL_SOCKET;
            (*header).cmsg_type = libc::SCM_RIGHTS;
            (*header).cmsg_len = libc::CMSG_LEN(payload as u32) as _;
            ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(header).cast::<RawFd>(),
                fds.len(),
            );
        }
    }
    loop {
        // SAFETY: `msg` points at live `iov` (over `data`) and `control`; sendmsg reads them.
        let sent = unsafe { libc::sendmsg(sock.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(with_context(err, "sendmsg(SCM_RIGHTS)"));
        }
    }
}

/// Receives into `buf`, with up to [`MAX_FDS`] descriptors. Returns the bytes read (0: the
/// peer closed) and the descriptors that came with them. A message whose descriptors did
/// not all fit (`MSG_CTRUNC`) is an error, and those that came are closed.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = ControlBuf([0; control_len(MAX_FDS)]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; every field used is set below.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = control.0.len() as _;
    let read = loop {
        // SAFETY: `msg` points at live `iov` (over `buf`) and `control`, with their lengths;
        // recvmsg writes only inside them.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(with_context(err, "recvmsg(SCM_RIGHTS)"));
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` up to msg_controllen with well-formed headers;
    // CMSG_FIRSTHDR/NXTHDR walk them and stop at the end. Each SCM_RIGHTS payload holds
    // (cmsg_len - CMSG_LEN(0)) / 4 descriptors that are new in this process and owned by
    // no one else, so each becomes one `OwnedFd`.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&raw const msg);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data_len = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let count = data_len / mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(ptr::read_unaligned(data.add(i))));
                }
            }
            header = libc::CMSG_NXTHDR(&raw const msg, header);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("recvmsg: more than {MAX_FDS} descriptors in one message (truncated)"),
        ));
    }
    Ok((read, fds))
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        os::{fd::AsFd, unix::net::UnixStream},
    };

    use super::*;

    #[test]
    fn listening_sockets_cross_and_still_accept() {
        let (a, b) = UnixStream::pair().unwrap();
        let l1 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l2 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let sent = send_with_fds(a.as_fd(), b"L2", &[l1.as_raw_fd(), l2.as_raw_fd()]).unwrap();
        assert_eq!(sent, 2);
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"L2");
        assert_eq!(fds.len(), 2);
        // The received descriptors are the same sockets: a connection to l1's address is
        // accepted through fds[0] even after the original is closed.
        let addr = l1.local_addr().unwrap();
        drop(l1);
        let received = std::net::TcpListener::from(fds.into_iter().next().unwrap());
        assert_eq!(received.local_addr().unwrap(), addr);
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (mut server, _) = received.accept().unwrap();
        client.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        server.read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn plain_data_comes_without_descriptors_and_eof_is_zero() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(b"hello").unwrap();
        let mut buf = [0u8; 16];
        let (n, fds) = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!((&buf[..n], fds.len()), (&b"hello"[..], 0));
        drop(a);
        assert_eq!(recv_with_fds(b.as_fd(), &mut buf).unwrap().0, 0);
    }

    #[test]
    fn too_many_descriptors_are_refused_before_sending() {
        let (a, _b) = UnixStream::pair().unwrap();
        let fds = vec![a.as_raw_fd(); MAX_FDS + 1];
        assert!(send_with_fds(a.as_fd(), b"x", &fds).is_err());
        assert!(send_with_fds(a.as_fd(), b"", &[]).is_err());
    }
}
