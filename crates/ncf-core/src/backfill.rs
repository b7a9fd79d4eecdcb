//! What a backfill does with what a listing found: which objects it takes (their key routes,
//! their day is in range), and how its progress reads. Pure: the listing, the forwarding and the
//! queue are the command's (`cli/backfill.rs`).

use jiff::civil::Date;

use crate::batch::MAX_EVENT_AGE_MS;
use crate::ports::{Expiration, ListedObject};
use crate::route::{Route, Router};

/// Messages per SendMessageBatch call.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html>
pub const SQS_MAX_BATCH: usize = 10;

/// `s3://BUCKET/PREFIX` (the prefix may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?}: expected s3://BUCKET or s3://BUCKET/PREFIX")]
    NotS3(String),
    #[error("{0:?}: no bucket name after s3://")]
    NoBucket(String),
}

impl std::str::FromStr for Target {
    type Err = TargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| TargetError::NotS3(s.to_string()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(TargetError::NoBucket(s.to_string()));
        }
        Ok(Self {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// `--since` / `--until`: whole UTC days, both included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Days {
    pub since: Option<Date>,
    pub until: Option<Date>,
}

impl Days {
    pub fn contains(&self, day: Date) -> bool {
        self.since.is_none_or(|s| day >= s) && self.until.is_none_or(|u| day <= u)
    }

    pub fn is_all(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

/// A day given on the command line: `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Result<Date, String> {
    let bad = || format!("{s:?}: expected a day as YYYY-MM-DD (UTC), e.g. 2026-11-24");
    if s.len() != 10 {
        return Err(bad());
    }
    s.parse::<Date>().map_err(|_| bad())
}

/// The day an object's lines belong to: the first `YYYY/MM/DD/` in its key (the layout both
/// shippers write, `…/<access|error>/YYYY/MM/DD/<file>`), else the UTC day of its LastModified.
pub fn object_day(obj: &ListedObject) -> Option<(Date, DaySource)> {
    if let Some(d) = key_day(&obj.key) {
        return Some((d, DaySource::Key));
    }
    let ts = jiff::Timestamp::from_millisecond(obj.last_modified_ms?).ok()?;
    Some((
        jiff::tz::Offset::UTC.to_datetime(ts).date(),
        DaySource::LastModified,
    ))
}

/// Where [`object_day`] found the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaySource {
    Key,
    LastModified,
}

/// The first three directories of `key` that read as a valid `YYYY/MM/DD`.
pub fn key_day(key: &str) -> Option<Date> {
    let dirs: Vec<&str> = key.split('/').collect();
    // The file name is not a directory: only segments followed by another one count.
    let dirs = &dirs[..dirs.len().saturating_sub(1)];
    dirs.windows(3).find_map(|w| {
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !(digits(w[0], 4) && digits(w[1], 2) && digits(w[2], 2)) {
            return None;
        }
        let (y, m, d) = (w[0].parse().ok()?, w[1].parse().ok()?, w[2].parse().ok()?);
        Date::new(y, m, d).ok()
    })
}

/// What a backfill does with one listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Forward it (or enqueue it) to this group and stream.
    Take(Route),
    /// Its day is outside `--since` / `--until`.
    OutOfRange,
    /// Its day ended before the oldest time CloudWatch accepts (14 days, or the retention):
    /// every line in it would be rejected, so it is not read.
    TooOld,
    /// The forwarder's own object (a lease under `LEASE_PREFIX`), or a log format `ship`
    /// uploaded (`…/formats/<sha256>`).
    Own,
    /// Its key does not route (not a log of this layout), with the reason.
    NotALog(String),
    /// Uploaded after the listing began: the live trigger announces it, and a listing that
    /// took such objects would chase a bucket that hosts keep writing to.
    Newer,
}

/// What a backfill selects.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    pub router: &'a Router,
    pub days: Days,
    /// Keys under this prefix are the forwarder's own (leases).
    pub lease_prefix: Option<&'a str>,
    /// The first day whose lines CloudWatch may still accept (see [`first_accepted_day`]).
    pub first_accepted: Option<Date>,
    /// When the listing began (ms since the epoch): objects modified later are left to the
    /// live trigger, so that the listing is bounded by what was there when it started.
    pub listed_at_ms: Option<i64>,
}

/// The UTC day of the oldest time CloudWatch accepts now: 14 days back, or the group's
/// retention when shorter. A file's day is when it was shipped, so none of its lines is newer:
/// an object of an earlier day holds only lines CloudWatch rejects.
pub fn first_accepted_day(now_ms: i64, retention_days: Option<i32>) -> Option<Date> {
    let max_age = retention_days
        .map(|d| i64::from(d) * 24 * 60 * 60 * 1000)
        .map_or(MAX_EVENT_AGE_MS, |r| r.min(MAX_EVENT_AGE_MS));
    let ts = jiff::Timestamp::from_millisecond(now_ms - max_age).ok()?;
    Some(jiff::tz::Offset::UTC.to_datetime(ts).date())
}

/// The first UTC day whose uploads under `prefix` the bucket still keeps, with the rule that
/// deletes the older ones: the shortest expiration among the rules that apply to keys under
/// `prefix`. S3 deletes an object `days` after it was written, rounded up to the next midnight
/// UTC, so of the uploads of a day before `today − days` none is left.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html>
pub fn first_kept_day<'a>(
    prefix: &str,
    today: Date,
    rules: &'a [Expiration],
) -> Option<(Date, &'a Expiration)> {
    let rule = rules
        .iter()
        .filter(|r| prefix.starts_with(&r.prefix) || r.prefix.starts_with(prefix))
        .min_by_key(|r| r.days)?;
    let first = today.checked_sub(jiff::Span::new().days(rule.days)).ok()?;
    Some((first, rule))
}

/// The warning for a `--since` before the first day the bucket keeps.
pub fn expired_warning(since: Date, first_kept: Date, rule: &Expiration) -> Option<String> {
    (since < first_kept).then(|| {
        let scope = if rule.prefix.is_empty() {
            "every upload".to_string()
        } else {
            format!("uploads under {}", rule.prefix)
        };
        format!(
            "warning: --since {since} asks for days the bucket no longer has: its lifecycle rule {:?} deletes {scope} {} days after they are written, so uploads of days before {first_kept} are gone (the stack's UploadExpirationDays)",
            rule.rule, rule.days
        )
    })
}

/// Decides for one listed object, the way an event announcing it would be handled.
pub fn choose(obj: &ListedObject, sel: &Selection<'_>) -> Choice {
    if sel.lease_prefix.is_some_and(|p| obj.key.starts_with(p))
        || ncf_parse::object_format::is_format_key(&obj.key)
    {
        return Choice::Own;
    }
    if let (Some(modified), Some(listed)) = (obj.last_modified_ms, sel.listed_at_ms)
        && modified > listed
    {
        return Choice::Newer;
    }
    let day = object_day(obj).map(|(d, _)| d);
    if !sel.days.is_all() && !day.is_some_and(|d| sel.days.contains(d)) {
        return Choice::OutOfRange;
    }
    if let (Some(d), Some(first)) = (day, sel.first_accepted)
        && d < first
    {
        return Choice::TooOld;
    }
    match sel.router.route(&obj.key) {
        Ok(route) => Choice::Take(route),
        Err(e) => Choice::NotALog(e.to_string()),
    }
}

/// What a listing selected.
#[derive(Debug, Default)]
pub struct ListingPlan {
    pub take: Vec<(ListedObject, Route)>,
    pub listed: u64,
    pub out_of_range: u64,
    pub too_old: u64,
    pub own: u64,
    pub not_a_log: u64,
    pub newer: u64,
}

impl ListingPlan {
    pub fn add(&mut self, obj: ListedObject, choice: Choice) {
        self.listed += 1;
        match choice {
            Choice::Take(route) => self.take.push((obj, route)),
            Choice::OutOfRange => self.out_of_range += 1,
            Choice::TooOld => self.too_old += 1,
            Choice::Own => self.own += 1,
            Choice::NotALog(_) => self.not_a_log += 1,
            Choice::Newer => self.newer += 1,
        }
    }

    /// Bytes of the selected objects, as stored (compressed where they are).
    pub fn bytes(&self) -> u64 {
        self.take.iter().map(|(o, _)| o.size).sum()
    }

    /// One line: what was listed and what was left out, and why.
    pub fn describe(&self) -> String {
        let newer = if self.newer > 0 {
            format!(
                ", {} uploaded after the listing began (the live trigger delivers them)",
                self.newer
            )
        } else {
            String::new()
        };
        format!(
            "listed {} objects: {} selected ({}), {} outside --since/--until, {} older than CloudWatch accepts, {} not matching KEY_PATTERN, {} the forwarder's own",
            self.listed,
            self.take.len(),
            human_bytes(self.bytes()),
            self.out_of_range,
            self.too_old,
            self.not_a_log,
            self.own
        ) + &newer
    }
}

/// A running backfill's counts, for the progress display.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Progress {
    pub objects_total: u64,
    pub bytes_total: u64,
    /// Objects finished (any outcome) and their stored size.
    pub objects_done: u64,
    pub bytes_done: u64,
    pub failed: u64,
    pub already_delivered: u64,
    pub lines: u64,
    pub events: u64,
}

impl Progress {
    /// `objects 12/50 (1 failed, 3 already delivered) · 1.2 MB/4.0 MB · 10,234 lines · 0.4 MB/s · ETA 7 s`
    pub fn line(&self, elapsed_secs: f64) -> String {
        let rate = if elapsed_secs > 0.0 {
            self.bytes_done as f64 / elapsed_secs
        } else {
            0.0
        };
        let left = self.bytes_total.saturating_sub(self.bytes_done);
        let eta = if self.objects_done >= self.objects_total {
            "done".to_string()
        } else if rate > 0.0 {
            format!("ETA {}", human_secs(left as f64 / rate))
        } else {
            "ETA ?".to_string()
        };
        let mut notes = Vec::new();
        if self.failed > 0 {
            notes.push(format!("{} failed", self.failed));
        }
        if self.already_delivered > 0 {
            notes.push(format!("{} already delivered", self.already_delivered));
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        format!(
            "objects {}/{}{notes} · {}/{} · {} lines · {}/s · {eta}",
            self.objects_done,
            self.objects_total,
            human_bytes(self.bytes_done),
            human_bytes(self.bytes_total),
            self.lines,
            human_bytes(rate as u64),
        )
    }
}

/// `999 B`, `1.5 KB`, `12.3 MB`, `4.0 GB` (powers of 1000, as the S3 console and the bill count).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `42 s`, `3 min 5 s`, `2 h 10 min`.
fn human_secs(s: f64) -> String {
    let s = s.round().max(0.0) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_before_the_buckets_expiration_is_warned() {
        let day = |s: &str| parse_day(s).expect("a day");
        let rule = |id: &str, prefix: &str, days: i32| Expiration {
            rule: id.into(),
            prefix: prefix.into(),
            days,
        };
        let rules = [
            rule("ExpireForwardedLogs", "nginx/", 30),
            rule(
                "ExpireLeftoverLeases",
                "nginx-cloudwatch-forwarder/leases/",
                1,
            ),
            rule("Other", "exports/", 7),
        ];
        let today = day("2026-12-05");
        // The rule on nginx/ applies to nginx/ and to a prefix under it, and to one above it.
        for prefix in ["nginx/", "nginx/i-0123456789abcdef0/", ""] {
            let (first, r) = first_kept_day(prefix, today, &rules[..1]).expect("a rule applies");
            assert_eq!((first, r.days), (day("2026-11-05"), 30), "{prefix:?}");
        }
        // The shortest of the rules that apply; none for keys no rule reaches.
        assert_eq!(
            first_kept_day("", today, &rules).map(|(d, r)| (d, r.rule.as_str())),
            Some((day("2026-12-04"), "ExpireLeftoverLeases"))
        );
        assert_eq!(first_kept_day("web/", today, &rules), None);
        let (first, r) = first_kept_day("nginx/", today, &rules).expect("a rule");
        assert_eq!(expired_warning(day("2026-11-05"), first, r), None);
        let text = expired_warning(day("2026-11-04"), first, r).expect("a warning");
        assert!(
            text.contains("--since 2026-11-04")
                && text.contains("\"ExpireForwardedLogs\" deletes uploads under nginx/ 30 days")
                && text.contains("before 2026-11-05"),
            "{text}"
        );
    }
    use crate::route::{
        DEFAULT_KEY_PATTERN, DEFAULT_LOG_GROUP_TEMPLATE, DEFAULT_LOG_STREAM_TEMPLATE,
    };

    fn listed(key: &str, last_modified_ms: Option<i64>) -> ListedObject {
        ListedObject {
            key: key.into(),
            size: 100,
            last_modified_ms,
            etag: None,
        }
    }

    fn day(s: &str) -> Date {
        parse_day(s).expect("a day")
    }

    #[test]
    fn targets() {
        let t = |s: &str| s.parse::<Target>();
        assert_eq!(
            t("s3://logs/nginx/i-0abc/"),
            Ok(Target {
                bucket: "logs".into(),
                prefix: "nginx/i-0abc/".into()
            })
        );
        assert_eq!(
            t("s3://logs"),
            Ok(Target {
                bucket: "logs".into(),
                prefix: String::new()
            })
        );
        assert_eq!(t("s3://logs/").map(|t| t.prefix), Ok(String::new()));
        assert!(matches!(t("logs/nginx"), Err(TargetError::NotS3(_))));
        assert!(matches!(t("s3:///nginx"), Err(TargetError::NoBucket(_))));
    }

    #[test]
    fn days_from_keys_and_last_modified() {
        let cases = [
            (
                "nginx/i-0123456789abcdef0/access/2026/11/24/access.log-20261124T1000.gz",
                Some("2026-11-24"),
            ),
            // The first valid date path counts; the file name never does.
            (
                "nginx/2025/01/02/i-0abc/access/2026/11/24/a.gz",
                Some("2025-01-02"),
            ),
            ("nginx/i-0abc/access/2026/13/24/a.gz", None),
            ("nginx/i-0abc/access/2026/02/30/a.gz", None),
            ("nginx/i-0abc/access/26/11/24/a.gz", None),
            ("nginx/i-0abc/access/2026/11/2026", None),
            ("2026/11/24/a.gz", Some("2026-11-24")),
        ];
        for (key, want) in cases {
            assert_eq!(key_day(key), want.map(day), "{key}");
        }
        // 2026-11-24T23:59:59.999Z → the 24th; no date path → LastModified's UTC day.
        let o = listed("nginx/i-0abc/access/access.log.gz", Some(1_795_564_799_999));
        assert_eq!(
            object_day(&o),
            Some((day("2026-11-24"), DaySource::LastModified))
        );
        assert_eq!(object_day(&listed("a.gz", None)), None);
    }

    #[test]
    fn days_are_inclusive_utc_days() {
        let r = Days {
            since: Some(day("2026-11-01")),
            until: Some(day("2026-11-30")),
        };
        assert!(r.contains(day("2026-11-01")) && r.contains(day("2026-11-30")));
        assert!(!r.contains(day("2026-10-31")) && !r.contains(day("2026-12-01")));
        assert!(Days::default().contains(day("1999-01-01")));
        for bad in [
            "2026-11-31",
            "2026/11/24",
            "24-11-2026",
            "2026-11-24T10:00:00Z",
            "",
        ] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn choices_route_like_an_event() {
        let router = Router::new(
            DEFAULT_KEY_PATTERN,
            DEFAULT_LOG_GROUP_TEMPLATE,
            DEFAULT_LOG_STREAM_TEMPLATE,
        )
        .expect("defaults");
        let november = Selection {
            router: &router,
            days: Days {
                since: Some(day("2026-11-01")),
                until: Some(day("2026-11-30")),
            },
            lease_prefix: Some("nginx-cloudwatch-forwarder/leases/"),
            first_accepted: Some(day("2026-11-10")),
            listed_at_ms: Some(1_795_564_800_000),
        };
        let choose = |key: &str, sel: &Selection<'_>| choose(&listed(key, None), sel);
        let key = "nginx/i-0123456789abcdef0/access/2026/11/24/a.gz";
        let Choice::Take(route) = choose(key, &november) else {
            panic!("not taken")
        };
        assert_eq!(
            (route.log_group.as_str(), route.log_stream.as_str()),
            ("nginx-access", "i-0123456789abcdef0")
        );
        let december = "nginx/i-0123456789abcdef0/error/2026/12/01/e.gz";
        assert_eq!(choose(december, &november), Choice::OutOfRange);
        let old = "nginx/i-0123456789abcdef0/error/2026/11/09/e.gz";
        assert_eq!(choose(old, &november), Choice::TooOld);
        let first = "nginx/i-0123456789abcdef0/error/2026/11/10/e.gz";
        assert!(matches!(choose(first, &november), Choice::Take(_)));
        // Uploaded after the listing began: the live trigger's, whatever its day.
        let listed = |ms| super::choose(&listed(key, Some(ms)), &november);
        assert_eq!(listed(1_795_564_800_001), Choice::Newer);
        assert!(matches!(listed(1_795_564_800_000), Choice::Take(_)));
        let format = format!("nginx/i-0123456789abcdef0/formats/{}", "ab".repeat(32));
        assert_eq!(choose(&format, &november), Choice::Own);
        let lease = format!("nginx-cloudwatch-forwarder/leases/{key}");
        assert_eq!(choose(&lease, &november), Choice::Own);
        assert!(matches!(
            choose("nginx/readme/2026/11/12/x.txt", &november),
            Choice::NotALog(_)
        ));
        // No day at all is outside any range, and inside none (nor too old).
        assert_eq!(choose("nginx/x", &november), Choice::OutOfRange);
        let all = Selection {
            days: Days::default(),
            ..november.clone()
        };
        assert!(matches!(choose("nginx/x", &all), Choice::NotALog(_)));
    }

    #[test]
    fn the_first_accepted_day_is_14_days_back_or_the_retention() {
        // 2026-11-25T00:00:00.123Z
        let now = 1_795_564_800_123;
        assert_eq!(first_accepted_day(now, None), Some(day("2026-11-11")));
        assert_eq!(first_accepted_day(now, Some(30)), Some(day("2026-11-11")));
        assert_eq!(first_accepted_day(now, Some(7)), Some(day("2026-11-18")));
        assert_eq!(first_accepted_day(now, Some(1)), Some(day("2026-11-24")));
    }

    #[test]
    fn progress_lines() {
        let p = Progress {
            objects_total: 50,
            bytes_total: 4_000_000,
            objects_done: 12,
            bytes_done: 1_000_000,
            failed: 1,
            already_delivered: 3,
            lines: 10_234,
            events: 10_230,
        };
        assert_eq!(
            p.line(2.0),
            "objects 12/50 (1 failed, 3 already delivered) · 1.0 MB/4.0 MB · 10234 lines · 500.0 KB/s · ETA 6 s"
        );
        assert!(Progress::default().line(0.0).ends_with("· done"));
        let early = Progress {
            objects_total: 2,
            ..Progress::default()
        };
        assert!(early.line(0.0).ends_with("ETA ?"));
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 KB");
        assert_eq!(human_bytes(4_200_000_000_000), "4.2 TB");
        assert_eq!(human_secs(3725.0), "1 h 2 min");
        assert_eq!(human_secs(185.0), "3 min 5 s");
    }
}
