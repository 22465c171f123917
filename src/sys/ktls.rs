//! Kernel TLS (`linux/tls.h`): attach the `tls` upper-layer protocol to a TCP socket and
//! give it a direction's record keys, after which the kernel seals what is sent and opens
//! what is received, and the socket reads and writes plaintext.

use std::{io, os::fd::RawFd};

/// `setsockopt(SOL_TLS, TLS_TX)` / `TLS_RX`.
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;
const TLS_1_2_VERSION: u16 = 0x0303;
const TLS_1_3_VERSION: u16 = 0x0304;
const TLS_CIPHER_AES_GCM_128: u16 = 51;
const TLS_CIPHER_AES_GCM_256: u16 = 52;
const TLS_CIPHER_CHACHA20_POLY1305: u16 = 54;

/// The AEADs the kernel can take over (the ones rustls negotiates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl Cipher {
    pub(crate) const ALL: [Cipher; 3] = [
        Cipher::Aes128Gcm,
        Cipher::Aes256Gcm,
        Cipher::Chacha20Poly1305,
    ];

    fn code(self) -> u16 {
        match self {
            Cipher::Aes128Gcm => TLS_CIPHER_AES_GCM_128,
            Cipher::Aes256Gcm => TLS_CIPHER_AES_GCM_256,
            Cipher::Chacha20Poly1305 => TLS_CIPHER_CHACHA20_POLY1305,
        }
    }

    pub(crate) fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm => 16,
            Cipher::Aes256Gcm | Cipher::Chacha20Poly1305 => 32,
        }
    }

    /// Bytes of the 12-byte nonce base the kernel calls salt (the rest it calls iv).
    fn salt_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm | Cipher::Aes256Gcm => 4,
            Cipher::Chacha20Poly1305 => 0,
        }
    }
}

/// A `struct tls12_crypto_info_*` laid out byte for byte: `u16 version, u16 cipher_type`,
/// then iv, key, salt and rec_seq, all byte arrays (no padding in any of the three).
pub(crate) struct CryptoInfo {
    bytes: [u8; 56],
    len: usize,
}

impl CryptoInfo {
    /// Keys of one direction: the AEAD key, the 12-byte nonce base (rustls's `Iv`) and the
    /// sequence number of the next record.
    pub(crate) fn new(
        tls13: bool,
        cipher: Cipher,
        key: &[u8],
        iv: &[u8; 12],
        seq: u64,
    ) -> io::Result<Self> {
        if key.len() != cipher.key_len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{cipher:?} key of {} bytes", key.len()),
            ));
        }
        let version = if tls13 {
            TLS_1_3_VERSION
        } else {
            TLS_1_2_VERSION
        };
        let salt = cipher.salt_len();
        let mut bytes = [0u8; 56];
        let mut at = 0;
        let mut put = |part: &[u8]| {
            bytes[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        };
        put(&version.to_ne_bytes());
        put(&cipher.code().to_ne_bytes());
        put(&iv[salt..]);
        put(key);
        put(&iv[..salt]);
        put(&seq.to_be_bytes());
        Ok(CryptoInfo { bytes, len: at })
    }
}

/// The upper-layer protocols this kernel offers for TCP (`tcp_available_ulp`).
pub(crate) fn available_ulps() -> io::Result<String> {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").map(|s| s.trim().to_owned())
}

/// Attaches the `tls` ULP to a connected TCP socket. `ENOENT`: the module is not loaded.
pub(crate) fn attach_tls_ulp(fd: RawFd) -> io::Result<()> {
    let name = b"tls";
    // SAFETY: `name` is a live buffer of the length passed; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TCP,
            libc::TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(super::os_error("setsockopt(TCP_ULP, \"tls\")"));
    }
    Ok(())
}

/// Hands one direction's keys to the kernel (`rx: false` for sending, `true` for receiving).
pub(crate) fn set_crypto(fd: RawFd, rx: bool, info: &CryptoInfo) -> io::Result<()> {
    let dir = if rx { TLS_RX } else { TLS_TX };
    // SAFETY: `info.bytes[..info.len]` is a live, initialised buffer laid out as the
    // kernel's `tls12_crypto_info_*` struct of that cipher; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_TLS,
            dir,
            info.bytes.as_ptr().cast(),
            info.len as libc::socklen_t,
        )
    };
    if rc < 0 {
        let call = if rx {
            "setsockopt(SOL_TLS, TLS_RX)"
        } else {
            "setsockopt(SOL_TLS, TLS_TX)"
        };
        return Err(super::os_error(call));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_info_has_the_kernel_layout() {
        let key = [7u8; 16];
        let iv: [u8; 12] = std::array::from_fn(|i| i as u8);
        let info = CryptoInfo::new(true, Cipher::Aes128Gcm, &key, &iv, 1).unwrap();
        assert_eq!(info.len, 40);
        assert_eq!(&info.bytes[0..2], &0x0304u16.to_ne_bytes());
        assert_eq!(&info.bytes[2..4], &51u16.to_ne_bytes());
        assert_eq!(&info.bytes[4..12], &iv[4..]);
        assert_eq!(&info.bytes[12..28], &key);
        assert_eq!(&info.bytes[28..32], &iv[..4]);
        assert_eq!(&info.bytes[32..40], &1u64.to_be_bytes());
        let chacha = CryptoInfo::new(false, Cipher::Chacha20Poly1305, &[1; 32], &iv, 0).unwrap();
        assert_eq!(chacha.len, 56);
        assert_eq!(&chacha.bytes[4..16], &iv);
        assert!(CryptoInfo::new(true, Cipher::Aes256Gcm, &key, &iv, 0).is_err());
    }
}
