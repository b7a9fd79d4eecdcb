//! nginx time formats → milliseconds since the Unix epoch (UTC).

use jiff::tz::TimeZone;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, &c| {
        acc.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

/// A date and a time of day as a log line writes them, in no particular zone.
#[derive(Debug, Clone, Copy)]
struct Civil {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    /// Up to 60 (a leap second).
    second: u32,
}

impl Civil {
    /// Milliseconds since 1970-01-01 00:00:00 of this date and time read as UTC; `None` for a
    /// date or time that does not exist.
    fn ms(self) -> Option<i64> {
        let Civil {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
        } = self;
        let days_in_month = match mo {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
            2 => 28,
            _ => return None,
        };
        if d == 0 || d > days_in_month || h > 23 || mi > 59 || s > 60 {
            return None;
        }
        let days = days_from_civil(i64::from(y), mo, d);
        Some(((days * 86_400) + i64::from(h * 3600 + mi * 60 + s)) * 1000)
    }
}

/// `+HHMM`, `-HHMM`, `+HH:MM` or `Z` → offset in seconds east of UTC.
fn offset_secs(b: &[u8]) -> Option<i64> {
    if b == b"Z" {
        return Some(0);
    }
    let (sign, rest) = match b.first()? {
        b'+' => (1, &b[1..]),
        b'-' => (-1, &b[1..]),
        _ => return None,
    };
    let (hh, mm) = match rest.len() {
        4 => (&rest[..2], &rest[2..]),
        5 if rest[2] == b':' => (&rest[..2], &rest[3..]),
        _ => return None,
    };
    let (h, m) = (num(hh)?, num(mm)?);
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * i64::from(h * 3600 + m * 60))
}

/// `$time_local`: `24/Nov/2026:10:00:01 +0000`.
pub fn parse_time_local(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 26
        || b[2] != b'/'
        || b[6] != b'/'
        || b[11] != b':'
        || b[14] != b':'
        || b[17] != b':'
        || b[20] != b' '
    {
        return None;
    }
    let mon = MONTHS.iter().position(|m| &b[3..6] == *m)? as u32 + 1;
    let ms = Civil {
        year: num(&b[7..11])?,
        month: mon,
        day: num(&b[0..2])?,
        hour: num(&b[12..14])?,
        minute: num(&b[15..17])?,
        second: num(&b[18..20])?,
    }
    .ms()?;
    Some(ms - offset_secs(&b[21..])? * 1000)
}

/// `$time_iso8601`: `2026-11-24T10:00:01+00:00` (fractions of a second are accepted too).
pub fn parse_time_iso8601(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let mut ms = Civil {
        year: num(&b[0..4])?,
        month: num(&b[5..7])?,
        day: num(&b[8..10])?,
        hour: num(&b[11..13])?,
        minute: num(&b[14..16])?,
        second: num(&b[17..19])?,
    }
    .ms()?;
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let frac = &rest[1..1 + digits.min(3)];
        let mut millis = num(frac)?;
        for _ in frac.len()..3 {
            millis *= 10;
        }
        ms += i64::from(millis);
        rest = &rest[1 + digits..];
    }
    Some(ms - offset_secs(rest)? * 1000)
}

/// `$msec`: `1764000001.123` (seconds with millisecond resolution).
pub fn parse_msec(s: &str) -> Option<i64> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.len() > 12 || frac.len() > 9 {
        return None;
    }
    let secs = i64::from(num(secs.as_bytes()).or_else(|| (secs == "0").then_some(0))?);
    let mut millis = 0i64;
    if !frac.is_empty() {
        let f = &frac.as_bytes()[..frac.len().min(3)];
        millis = i64::from(num(f)?);
        for _ in f.len()..3 {
            millis *= 10;
        }
        num(frac.as_bytes())?; // the rest must be digits too
    }
    Some(secs * 1000 + millis)
}

/// The zone of error-log times: nginx writes them in the server's local time, without an offset.
#[derive(Debug, Clone)]
pub enum LocalZone {
    Fixed(i64),
    Named(TimeZone),
}

impl LocalZone {
    /// `UTC`, `±HH:MM` / `±HHMM`, or an IANA name such as `Europe/Berlin`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("utc") || t == "Z" {
            return Ok(Self::Fixed(0));
        }
        if t.starts_with(['+', '-']) {
            return offset_secs(t.as_bytes())
                .map(Self::Fixed)
                .ok_or_else(|| format!("{t:?} is not an offset like +02:00 or -0500"));
        }
        TimeZone::get(t).map(Self::Named).map_err(|e| {
            format!("{t:?} is neither UTC, an offset like +02:00, nor a known IANA time zone ({e})")
        })
    }

    /// The instant of a wall-clock `time` in this zone, in milliseconds since the epoch.
    fn to_utc_ms(&self, time: Civil) -> Option<i64> {
        match self {
            Self::Fixed(off) => Some(time.ms()? - off * 1000),
            Self::Named(tz) => {
                time.ms()?; // validates the fields
                let dt = jiff::civil::DateTime::new(
                    i16::try_from(time.year).ok()?,
                    i8::try_from(time.month).ok()?,
                    i8::try_from(time.day).ok()?,
                    i8::try_from(time.hour).ok()?,
                    i8::try_from(time.minute).ok()?,
                    i8::try_from(time.second.min(59)).ok()?,
                    0,
                )
                .ok()?;
                // Ambiguous wall-clock times (DST fall-back) take the earlier instant.
                let ts = tz.to_ambiguous_timestamp(dt).compatible().ok()?;
                Some(ts.as_millisecond())
            }
        }
    }
}

/// Error-log time `2026/11/24 10:00:01` (exactly 19 bytes) in `zone`.
pub fn parse_error_time(s: &str, zone: &LocalZone) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'/'
        || b[7] != b'/'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    zone.to_utc_ms(Civil {
        year: num(&b[0..4])?,
        month: num(&b[5..7])?,
        day: num(&b[8..10])?,
        hour: num(&b[11..13])?,
        minute: num(&b[14..16])?,
        second: num(&b[17..19])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_local() {
        let cases = [
            ("01/Jan/1970:00:00:00 +0000", Some(0)),
            ("24/Nov/2026:10:00:01 +0000", Some(1_795_514_401_000)),
            ("10/Oct/2000:13:55:36 -0700", Some(971_211_336_000)),
            ("29/Feb/2024:23:59:59 +0100", Some(1_709_247_599_000)),
            ("30/Feb/2024:00:00:00 +0000", None),
            ("24/Nvv/2026:10:00:01 +0000", None),
            ("24/Nov/2026:10:00:01", None),
            ("24/Nov/2026:10:00:01 +00000", None),
            ("24/Nov/2026:25:00:01 +0000", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_time_local(s), want, "{s}");
        }
    }

    #[test]
    fn iso8601_and_msec() {
        assert_eq!(
            parse_time_iso8601("2026-11-24T10:00:01+00:00"),
            Some(1_795_514_401_000)
        );
        assert_eq!(
            parse_time_iso8601("2026-11-24T11:00:01+01:00"),
            Some(1_795_514_401_000)
        );
        assert_eq!(
            parse_time_iso8601("2026-11-24T10:00:01.5Z"),
            Some(1_795_514_401_500)
        );
        assert_eq!(parse_time_iso8601("2026-11-24 10:00:01+00:00"), None);
        assert_eq!(parse_msec("1795514401.123"), Some(1_795_514_401_123));
        assert_eq!(parse_msec("1795514401.1"), Some(1_795_514_401_100));
        assert_eq!(parse_msec("1795514401"), Some(1_795_514_401_000));
        assert_eq!(parse_msec("17639x8401.1"), None);
        assert_eq!(parse_msec("-"), None);
    }

    #[test]
    fn error_time_in_zones() {
        let utc = LocalZone::parse("UTC").unwrap();
        assert_eq!(
            parse_error_time("2026/11/24 10:00:01", &utc),
            Some(1_795_514_401_000)
        );
        let plus2 = LocalZone::parse("+02:00").unwrap();
        assert_eq!(
            parse_error_time("2026/11/24 12:00:01", &plus2),
            Some(1_795_514_401_000)
        );
        let minus5 = LocalZone::parse("-0500").unwrap();
        assert_eq!(
            parse_error_time("2026/11/24 05:00:01", &minus5),
            Some(1_795_514_401_000)
        );
        // Berlin is UTC+1 in November and UTC+2 in July.
        let berlin = LocalZone::parse("Europe/Berlin").unwrap();
        assert_eq!(
            parse_error_time("2026/11/24 11:00:01", &berlin),
            Some(1_795_514_401_000)
        );
        assert_eq!(
            parse_error_time("2026/07/01 02:00:00", &berlin),
            parse_error_time("2026/07/01 00:00:00", &utc)
        );
        assert_eq!(parse_error_time("2026/13/24 10:00:01", &utc), None);
        assert!(LocalZone::parse("Mars/Olympus").is_err());
        assert!(LocalZone::parse("+25:00").is_err());
    }
}
