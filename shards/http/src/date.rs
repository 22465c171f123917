//! The `Date` header value: IMF-fixdate (RFC 9110 §5.6.7), e.g.
//! `Sun, 06 Nov 1994 08:49:37 GMT`, always 29 bytes. Formatting allocates nothing; the I/O
//! layer keeps one [`DateCache`] per shard and reformats at most once a second; between
//! two seconds it answers from the monotonic clock reading the caller already has, without
//! reading the wall clock again.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
/// 9999-12-31T23:59:59Z: the last second a four-digit year can show.
const MAX_SECS: u64 = 253_402_300_799;

/// `time` as an IMF-fixdate. Times before 1970 show as the epoch, times after year 9999 as
/// its last second.
pub fn http_date(time: SystemTime) -> [u8; 29] {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    http_date_from_unix(secs)
}

/// Seconds since the Unix epoch as an IMF-fixdate (clamped to year 9999).
pub fn http_date_from_unix(secs: u64) -> [u8; 29] {
    let secs = secs.min(MAX_SECS);
    let days = secs / 86_400;
    let second_of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], second_of_day / 3600);
    two_digits(&mut out[20..22], second_of_day / 60 % 60);
    two_digits(&mut out[23..25], second_of_day % 60);
    out
}

fn two_digits(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The current `Date` value, reformatted only when the second changes.
#[derive(Clone, Debug)]
pub struct DateCache {
    secs: u64,
    bytes: [u8; 29],
    /// For [`at`](Self::at): the monotonic instant at which the wall clock's next second
    /// begins, as measured when `bytes` was formatted.
    valid_until: Option<Instant>,
}

impl Default for DateCache {
    fn default() -> Self {
        Self {
            secs: 0,
            bytes: http_date_from_unix(0),
            valid_until: None,
        }
    }
}

impl DateCache {
    /// The IMF-fixdate at the monotonic instant `now` (a reading the caller already took):
    /// the wall clock is read again only once the second it was formatted in has ended, so
    /// a busy shard reads it about once a second rather than once per request.
    #[inline]
    pub fn at(&mut self, now: Instant) -> &[u8; 29] {
        if self.valid_until.is_some_and(|until| now < until) {
            return &self.bytes;
        }
        self.reformat(now)
    }

    /// [`at`](Self::at) once the cached second has ended: reads the wall clock again.
    #[cold]
    #[inline(never)]
    fn reformat(&mut self, now: Instant) -> &[u8; 29] {
        let wall = SystemTime::now();
        let since_epoch = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.secs = since_epoch.as_secs();
        self.bytes = http_date_from_unix(self.secs);
        let rest_of_second =
            Duration::from_secs(1) - Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
        self.valid_until = Some(now + rest_of_second);
        &self.bytes
    }

    /// The IMF-fixdate of `now`.
    pub fn get(&mut self, now: SystemTime) -> &[u8; 29] {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.secs {
            self.secs = secs;
            self.bytes = http_date_from_unix(secs);
            self.valid_until = None;
        }
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> String {
        String::from_utf8(http_date_from_unix(secs).to_vec()).unwrap()
    }

    #[test]
    fn known_dates() {
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT"); // RFC 9110's example
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(at(1_234_567_890), "Fri, 13 Feb 2009 23:31:30 GMT");
        assert_eq!(at(2_147_483_647), "Tue, 19 Jan 2038 03:14:07 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
        assert_eq!(at(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(at(MAX_SECS), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(at(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn system_time_and_cache() {
        let t = UNIX_EPOCH + Duration::from_millis(784_111_777_999);
        assert_eq!(&http_date(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            &http_date(UNIX_EPOCH - Duration::from_secs(5)),
            b"Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let mut cache = DateCache::default();
        assert_eq!(cache.get(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            cache.get(t + Duration::from_secs(1)),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
    }

    #[test]
    fn cache_at_instants_follows_the_wall_clock() {
        let mut cache = DateCache::default();
        let wall_date = |cache: &mut DateCache, at: Instant| {
            let before = http_date(SystemTime::now());
            let got = *cache.at(at);
            let after = http_date(SystemTime::now());
            assert!(got == before || got == after, "{got:?}");
            got
        };
        let now = Instant::now();
        let first = wall_date(&mut cache, now);
        // Until the wall clock's second ends, the same bytes, without reading the clock.
        cache.secs = 0;
        assert_eq!(cache.at(now), &first);
        // An instant past that second reads the wall clock again (a fake instant far ahead:
        // the date is still the real one, not one computed from the instant).
        wall_date(&mut cache, now + Duration::from_secs(1000));
        assert_ne!(cache.secs, 0);
    }
}
