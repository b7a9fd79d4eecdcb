//! `ship --check`: whether this host is ready to ship, one line per check, each `ok`, `warn`
//! or `FAIL`, and under a failure what to do. The same settings as `ship` (flags, variables,
//! FILEs) and the same code for each step (IMDSv2 [`host::read`], STS
//! [`host::caller_identity`], the key owner [`plan::userid_segment`], the files and formats
//! [`discover_files`], the format object [`S3Uploader::put_format`]); nothing else changes (no
//! position saved, no segment uploaded, the state directory not touched).
//!
//! The pure part ([`Report`] and the `*_line` functions) decides and words each line from what
//! the steps returned; [`command`] runs the steps.
//!
//! Requests made: IMDSv2 (token PUT, instance-id GET, Name tag GET), one STS
//! GetCallerIdentity (free, needs no permission), and at most one S3 PutObject: this host's
//! format object with `If-None-Match: *`, which the follower puts anyway before its first
//! segment (the forwarder skips format keys). S3 authorizes a request before it evaluates the
//! precondition, so 412 (already there) proves write access as 200 does, and 403 refuses it.

use std::io::ErrorKind;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ncf_core::batch::{MAX_EVENT_AGE_MS, MAX_EVENT_FUTURE_MS};
use ncf_core::route::LogKind;

use crate::host::{self, CallerIdentity, HostError, HostMeta, NameSource};
use crate::nginx_conf::Format;
use crate::{
    Discovery, Put, S3Uploader, Settings, ShipArgs, UploadError, Uploader, discover,
    discover_files, format_key, plan,
};

/// A clock this far from AWS's gets a warning: nginx stamps each line with the host's clock,
/// and CloudWatch files the events (and metric filters count them) by that time, so beyond a
/// minute the lines land in other minutes than their requests. Well above what the check can
/// measure: the `Date` header has whole seconds and the answer takes its round trip.
pub const CLOCK_WARN: Duration = Duration::from_secs(60);
/// AWS refuses a request signed more than 15 minutes from its clock (`RequestTimeTooSkewed`);
/// the SDK the follower uses corrects its signing time after such a refusal, the AWS CLI of
/// `ship-nginx-logs.sh` may not. A check fails at this skew.
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html>
pub const SIGV4_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// Attempts per AWS call of the check when `AWS_MAX_ATTEMPTS` is not set (the follower makes
/// [`ncf_aws::MAX_ATTEMPTS`]): a person waits for the answer, and an unreachable endpoint would
/// keep them a minute; a failure is worth running again, not retrying for long.
pub const CHECK_MAX_ATTEMPTS: u32 = 3;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Not a reason to stop (or not checked): the host is still ready.
    Warn,
    /// The host is not ready: the line says what to do.
    Fail,
}

/// One line of the report: the check, what was found and, for a warning or a failure, what to
/// do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub status: Status,
    pub check: &'static str,
    pub text: String,
    pub fix: Option<String>,
}

impl Line {
    fn ok(check: &'static str, text: impl Into<String>) -> Self {
        Line {
            status: Status::Ok,
            check,
            text: text.into(),
            fix: None,
        }
    }

    fn warn(check: &'static str, text: impl Into<String>, fix: Option<String>) -> Self {
        Line {
            status: Status::Warn,
            check,
            text: text.into(),
            fix,
        }
    }

    fn fail(check: &'static str, text: impl Into<String>, fix: impl Into<String>) -> Self {
        Line {
            status: Status::Fail,
            check,
            text: text.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Exit status of a host that is not ready (a check failed). Bad settings exit 64, as `ship`.
pub const EXIT_NOT_READY: u8 = 1;

/// Every check's line, in the order run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub lines: Vec<Line>,
}

impl Report {
    pub fn ready(&self) -> bool {
        self.lines.iter().all(|l| l.status != Status::Fail)
    }

    /// 0 ready (warnings allowed), [`EXIT_NOT_READY`] when a check failed.
    pub fn exit_code(&self) -> u8 {
        if self.ready() { 0 } else { EXIT_NOT_READY }
    }

    /// The lines (`ok   check  text`, a failure's or warning's fix indented under it) and a
    /// last line with the verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            let status = match l.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            out.push_str(&format!("{status:<5} {:<12} {}\n", l.check, l.text));
            if let Some(fix) = &l.fix {
                out.push_str(&format!("{:<18} -> {fix}\n", ""));
            }
        }
        let named = |s: Status| {
            let mut names: Vec<&str> = Vec::new();
            for l in self.lines.iter().filter(|l| l.status == s) {
                if !names.contains(&l.check) {
                    names.push(l.check);
                }
            }
            (
                self.lines.iter().filter(|l| l.status == s).count(),
                names.join(", "),
            )
        };
        let (failed, failed_names) = named(Status::Fail);
        let (warned, warned_names) = named(Status::Warn);
        let verdict = match (failed, warned) {
            (0, 0) => "ready: every check passed".to_string(),
            (0, w) => format!("ready, with {w} warning(s): {warned_names}"),
            (f, _) => format!("NOT READY: {f} check(s) failed: {failed_names}"),
        };
        out.push_str(&format!("{verdict} (exit {})\n", self.exit_code()));
        out
    }
}

// --- the lines: pure decisions -----------------------------------------------------------------

pub const CHECK_IMDS: &str = "IMDSv2";
pub const CHECK_CREDENTIALS: &str = "credentials";
pub const CHECK_LAYOUT: &str = "key layout";
pub const CHECK_BUCKET: &str = "bucket";
pub const CHECK_NGINX: &str = "nginx config";
pub const CHECK_FILE: &str = "log file";
pub const CHECK_CLOCK: &str = "clock";

/// IMDSv2 and what the shippers put on every object (the instance ID, the name, nginx's
/// version).
pub fn imds_line(endpoint: &str, meta: &Result<HostMeta, HostError>) -> Line {
    match meta {
        Ok(m) => {
            let name = match &m.hostname {
                Some((n, NameSource::Tag)) => format!("hostname {n:?} (the Name tag)"),
                Some((n, NameSource::System)) => {
                    format!("hostname {n:?} (the system's: no Name tag in the instance metadata)")
                }
                None => "no hostname (no Name tag, no system host name)".into(),
            };
            let nginx = m
                .nginx_version
                .as_deref()
                .map_or_else(|| "nginx version unknown".into(), |v| format!("nginx {v}"));
            Line::ok(
                CHECK_IMDS,
                format!("instance {}, {name}, {nginx}", m.instance_id),
            )
        }
        Err(e) => Line::fail(
            CHECK_IMDS,
            short(&e.to_string()).to_string(),
            format!(
                "the shippers name every key and object after the instance ID from IMDSv2 at {endpoint}: enable it with IMDSv2 tokens (aws ec2 modify-instance-metadata-options --instance-id <id> --http-endpoint enabled --http-tokens required; --http-put-response-hop-limit 2 when the follower runs in a container); IMDS_ENDPOINT only for a stand-in"
            ),
        ),
    }
}

/// The credentials (STS's answer) and the key layout, and the segment after the prefix in this
/// host's keys (`None` when it cannot be known).
pub fn identity_lines(
    layout: plan::KeyLayout,
    instance_id: Option<&str>,
    caller: &Result<CallerIdentity, String>,
    dest: &str,
) -> (Vec<Line>, Option<String>) {
    let credentials = match caller {
        Ok(c) => Line::ok(
            CHECK_CREDENTIALS,
            format!(
                "account {}, {}, aws:userid {} (STS GetCallerIdentity)",
                c.account,
                c.role()
                    .map_or_else(|| format!("principal {}", c.arn), |r| format!("role {r}")),
                c.user_id
            ),
        ),
        Err(detail) => Line::fail(
            CHECK_CREDENTIALS,
            format!("STS GetCallerIdentity failed: {}", short(detail)),
            "attach an instance profile (an IAM role) to the instance and leave AWS_ACCESS_KEY_ID, AWS_PROFILE and the like unset; the host must reach STS (in a private subnet: an STS VPC endpoint, com.amazonaws.<region>.sts, or a NAT gateway)",
        ),
    };
    let (layout_line, owner) = layout_line(layout, instance_id, caller, dest);
    (vec![credentials, layout_line], owner)
}

fn layout_line(
    layout: plan::KeyLayout,
    instance_id: Option<&str>,
    caller: &Result<CallerIdentity, String>,
    dest: &str,
) -> (Line, Option<String>) {
    let Some(instance_id) = instance_id else {
        let why = "not checked: the instance ID is unknown (IMDSv2 above)";
        return (Line::warn(CHECK_LAYOUT, why, None), None);
    };
    match layout {
        plan::KeyLayout::Instance => {
            let profile = caller
                .as_ref()
                .is_ok_and(|c| plan::userid_segment(&c.user_id, instance_id).is_ok());
            let hint = if profile {
                "; the stack's host policy (HostUploadPolicyArn) allows only the userid layout: with it, set NGINX_LOG_KEY_LAYOUT=userid"
            } else {
                ""
            };
            let text = format!("instance: keys under {dest}{instance_id}/{hint}");
            (Line::ok(CHECK_LAYOUT, text), Some(instance_id.to_string()))
        }
        plan::KeyLayout::Userid => {
            let Ok(c) = caller else {
                let why = "userid: not checked: STS did not answer (credentials above)";
                return (Line::warn(CHECK_LAYOUT, why, None), None);
            };
            match plan::userid_segment(&c.user_id, instance_id) {
                Ok(owner) => {
                    let text = format!(
                        "userid: keys under {dest}{owner}/ (this instance's profile session)"
                    );
                    (Line::ok(CHECK_LAYOUT, text), Some(owner))
                }
                Err(e) => (
                    Line::fail(
                        CHECK_LAYOUT,
                        format!("userid: {e}"),
                        "run the shippers with the instance profile's credentials (no AWS_ACCESS_KEY_ID, AWS_PROFILE or credentials file for their user), or use NGINX_LOG_KEY_LAYOUT=instance without the host policy",
                    ),
                    None,
                ),
            }
        }
    }
}

/// What the bucket check could do.
#[derive(Debug)]
pub enum Probe {
    /// The format object was put: S3's answer.
    Put(Result<Put, UploadError>),
    /// Not tried: this host's keys cannot be named (IMDS or STS failed).
    NoOwner,
    /// Not tried: no followed access log has a known format, so there is no object this host
    /// writes anyway (why).
    NoFormat(String),
}

/// The bucket: writable under this host's prefix, as the put of `key` says. `role` names the
/// instance role in the fix.
pub fn bucket_line(
    bucket: &str,
    key: Option<&str>,
    probe: &Probe,
    layout: plan::KeyLayout,
    role: Option<&str>,
) -> Line {
    let at = format!("s3://{bucket}/{}", key.unwrap_or_default());
    match probe {
        Probe::Put(Ok(Put::Stored { .. })) => Line::ok(
            CHECK_BUCKET,
            format!(
                "writable: PutObject {at} (If-None-Match: *) stored it (200): this host's format object, which the follower puts anyway"
            ),
        ),
        Probe::Put(Ok(Put::AlreadyThere)) => Line::ok(
            CHECK_BUCKET,
            format!(
                "writable: PutObject {at} (If-None-Match: *) answered 412, already there: S3 authorizes before it compares, so this host may write under its prefix; nothing written"
            ),
        ),
        Probe::Put(Err(e)) if e.denied => {
            let role = role.unwrap_or("<instance role>");
            let attach = format!(
                "aws iam attach-role-policy --role-name {role} --policy-arn <the stack's HostUploadPolicyArn output>"
            );
            let fix = match layout {
                plan::KeyLayout::Instance => format!(
                    "the stack's host policy allows only the userid layout: set NGINX_LOG_KEY_LAYOUT=userid in /etc/default/nginx-cloudwatch; without the policy on the role: {attach}"
                ),
                plan::KeyLayout::Userid => format!(
                    "{attach} (a bucket of your own with SSE-KMS also needs kms:GenerateDataKey on its key)"
                ),
            };
            Line::fail(
                CHECK_BUCKET,
                format!("not writable: PutObject {at} was refused (403 AccessDenied)"),
                fix,
            )
        }
        Probe::Put(Err(e)) => Line::fail(
            CHECK_BUCKET,
            format!("PutObject {at} failed: {}", short(&e.detail)),
            "check NGINX_LOG_BUCKET (the stack's BucketName output) and that the host reaches S3 (in a private subnet: an S3 gateway endpoint or a NAT gateway)",
        ),
        Probe::NoOwner => Line::warn(
            CHECK_BUCKET,
            "not checked: this host's keys cannot be named (see above)",
            None,
        ),
        Probe::NoFormat(why) => Line::warn(
            CHECK_BUCKET,
            format!(
                "not checked: {why}; nothing was put (any other object would cost a PUT, an S3 notification and a Lambda invocation)"
            ),
            Some(
                "the follower's first upload tells: an AccessDenied names the fix (journalctl -u nginx-log-follower)".into(),
            ),
        ),
    }
}

/// nginx's configuration: read (from where), or why not.
pub fn nginx_line(read: &Result<(discover::Reader, discover::NginxConfig), String>) -> Line {
    match read {
        Ok((reader, config)) => Line::ok(
            CHECK_NGINX,
            format!(
                "{} log file(s) named; {}",
                config.logs.files.len(),
                config.describe(reader)
            ),
        ),
        Err(why) => Line::warn(
            CHECK_NGINX,
            format!(
                "not read ({why}): the file names say each log's kind (access…, error…), and no log_format is known"
            ),
            Some(
                "set NGINX_BIN, or NGINX_CONF and NGINX_PREFIX when nginx runs with -c or -p"
                    .into(),
            ),
        ),
    }
}

/// How a followed file opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Readable,
    Missing,
    /// Permission denied: this user (uid) and the file's group, when known.
    Denied {
        uid: u32,
        group: Option<String>,
    },
    Other(String),
}

/// What the configuration says writes a followed file.
#[derive(Debug, Clone, Copy)]
pub struct WrittenAs<'a> {
    pub kind: LogKind,
    pub format: Option<&'a Format>,
    /// Why an access log has no format (gzip'd, stream, two formats), or nothing.
    pub note: Option<&'a str>,
    /// Whether nginx's configuration was read (else the name said the kind).
    pub configured: bool,
}

/// One followed file: opened by this user, its kind and `log_format`.
pub fn file_line(path: &Path, writer: WrittenAs<'_>, opened: &Opened) -> Line {
    let p = path.display();
    let what = match (writer.kind, writer.format, writer.note) {
        (LogKind::Error, ..) => "error log".to_string(),
        (LogKind::Access, Some(f), _) => match &f.at {
            Some(at) => format!("access log, log_format {} ({at})", f.name),
            None => format!("access log, log_format {} (nginx's built-in)", f.name),
        },
        (LogKind::Access, None, Some(note)) => format!("access log, no format named: {note}"),
        (LogKind::Access, None, None) => "access log, its format unknown".to_string(),
    };
    let what = if writer.configured {
        what
    } else {
        format!("{what} (by its name)")
    };
    match opened {
        Opened::Readable if writer.note.is_some() => Line::warn(
            CHECK_FILE,
            format!("{p}: readable; {what}"),
            Some("the forwarder reads it with ACCESS_LOG_FORMAT".into()),
        ),
        Opened::Readable => Line::ok(CHECK_FILE, format!("{p}: readable; {what}")),
        Opened::Missing => Line::warn(
            CHECK_FILE,
            format!("{p}: not there yet; {what}"),
            Some("the follower follows it once nginx creates it".into()),
        ),
        Opened::Denied { uid, group } => {
            let fix = match group.as_deref() {
                Some(g) if g != "root" && g != "0" => format!(
                    "let the follower's user read it through its group {g} (usermod -aG {g} <user>; the file needs g+r), then run this check as that user"
                ),
                Some(g) => format!(
                    "owned by group {g}: give it a group the follower's user is in, readable by the group (Debian's nginx: www-data:adm 0640, and the user in adm), then run this check as that user"
                ),
                None => "let the follower's user read it through the group that owns it, then run this check as that user".into(),
            };
            Line::fail(
                CHECK_FILE,
                format!("{p}: cannot be read by this user (uid {uid}): permission denied; {what}"),
                fix,
            )
        }
        Opened::Other(e) => Line::fail(
            CHECK_FILE,
            format!("{p}: cannot be opened: {e}; {what}"),
            "fix the path or the file",
        ),
    }
}

/// A FILE that is not followed, with the reason.
pub fn refused_line(path: &Path, why: &str) -> Line {
    Line::fail(
        CHECK_FILE,
        format!("{}: not followed: {why}", path.display()),
        "name a log nginx writes, or give the file a name that says its kind (access…, error…)",
    )
}

/// The host's clock against AWS's: `skew` is the host's time minus the `Date` of an AWS
/// answer (`from`), positive when the host is ahead.
pub fn clock_line(skew: Option<(i64, &str)>) -> Line {
    let Some((skew, from)) = skew else {
        return Line::warn(
            CHECK_CLOCK,
            "not checked: no AWS answer with a Date header (see above)",
            None,
        );
    };
    let off = Duration::from_secs(skew.unsigned_abs());
    let side = if skew >= 0 { "ahead of" } else { "behind" };
    let measured = format!("{} {side} AWS's (the Date of {from})", human(off));
    let sync = "sync it: chronyd with the Amazon Time Sync Service (169.254.169.123)";
    let future = Duration::from_millis(MAX_EVENT_FUTURE_MS.unsigned_abs());
    let age = Duration::from_millis(MAX_EVENT_AGE_MS.unsigned_abs());
    if skew >= 0 && off > future {
        Line::fail(
            CHECK_CLOCK,
            format!("{measured}: CloudWatch Logs rejects events more than 2 h in the future"),
            sync,
        )
    } else if skew < 0 && off > age {
        Line::fail(
            CHECK_CLOCK,
            format!("{measured}: CloudWatch Logs rejects events older than 14 days"),
            sync,
        )
    } else if off > SIGV4_MAX_SKEW {
        Line::fail(
            CHECK_CLOCK,
            format!(
                "{measured}: AWS refuses requests signed more than 15 min off, and nginx's times are that far off in CloudWatch"
            ),
            sync,
        )
    } else if off > CLOCK_WARN {
        Line::warn(
            CHECK_CLOCK,
            format!("{measured}: nginx's lines land in CloudWatch that far from their time"),
            Some(sync.into()),
        )
    } else {
        Line::ok(
            CHECK_CLOCK,
            format!("{measured}; warns beyond {} s", CLOCK_WARN.as_secs()),
        )
    }
}

/// An SDK error's text without the debug dump it ends with (` (FailedToLoadToken(… { … }))`):
/// the words a person reads.
pub fn short(detail: &str) -> &str {
    if !detail.ends_with(')') {
        return detail;
    }
    let dump = detail.match_indices(" (").find(|(i, _)| {
        let rest = &detail[i + 2..];
        let name = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        rest.starts_with(|c: char| c.is_ascii_uppercase())
            && (rest[name..].starts_with('(') || rest[name..].starts_with(" {"))
            && rest.contains('{')
    });
    dump.map_or(detail, |(i, _)| &detail[..i])
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

// --- running the checks ------------------------------------------------------------------------

/// The `Date` header of an AWS answer, and the host's time when it arrived.
#[derive(Debug, Clone)]
struct Answer {
    /// Whose answer (`S3's answer`).
    from: &'static str,
    at: SystemTime,
    date: String,
}

/// Every AWS answer's [`Answer`], in order.
#[derive(Debug, Clone, Default)]
struct Dates(Arc<Mutex<Vec<Answer>>>);

/// Records [`Dates`] on a client.
#[derive(Debug)]
struct DateCatcher {
    from: &'static str,
    dates: Dates,
}

impl aws_sdk_s3::config::Intercept for DateCatcher {
    fn name(&self) -> &'static str {
        "ncf-check-date"
    }

    fn read_before_deserialization(
        &self,
        context: &aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let now = SystemTime::now();
        if let Some(date) = context.response().headers().get("date")
            && let Ok(mut d) = self.dates.0.lock()
        {
            d.push(Answer {
                from: self.from,
                at: now,
                date: date.to_string(),
            });
        }
        Ok(())
    }
}

impl Dates {
    /// The host's time minus AWS's, in whole seconds, from the first answer of `prefer`, else
    /// of any; and whose answer it was.
    fn skew(&self, prefer: &'static str) -> Option<(i64, &'static str)> {
        let d = self.0.lock().ok()?;
        let a = d.iter().find(|a| a.from == prefer).or_else(|| d.first())?;
        let aws = aws_sdk_s3::primitives::DateTime::from_str(
            &a.date,
            aws_sdk_s3::primitives::DateTimeFormat::HttpDate,
        )
        .ok()?;
        let host = aws_sdk_s3::primitives::DateTime::from(a.at);
        Some((host.secs() - aws.secs(), a.from))
    }
}

/// `ship --check`: prints the report; 0 ready, 1 a check failed, 64 bad settings.
pub async fn command(args: ShipArgs) -> Result<ExitCode, (u8, String)> {
    let settings =
        Settings::new(&args, |n| std::env::var(n).ok()).map_err(|e| (64, e.to_string()))?;
    let report = run(&settings).await;
    print!("{}", report.render());
    Ok(ExitCode::from(report.exit_code()))
}

/// Every check, in the order of the report.
pub async fn run(settings: &Settings) -> Report {
    let mut lines = Vec::new();
    let meta = host::read(&settings.imds_endpoint, settings.nginx_bin.as_deref()).await;
    lines.push(imds_line(&settings.imds_endpoint, &meta));
    let instance_id = meta.as_ref().ok().map(|m| m.instance_id.as_str());

    let dates = Dates::default();
    let shared = check_config().await;
    let sts_conf = aws_sdk_sts::config::Builder::from(&shared)
        .interceptor(DateCatcher {
            from: "STS's answer",
            dates: dates.clone(),
        })
        .build();
    let caller = host::caller_identity(&aws_sdk_sts::Client::from_conf(sts_conf))
        .await
        .map_err(|e| match e {
            HostError::CallerIdentity { detail } => detail,
            other => other.to_string(),
        });
    let dest = format!("s3://{}/{}", settings.bucket, settings.prefix);
    let (who, owner) = identity_lines(settings.key_layout, instance_id, &caller, &dest);
    lines.extend(who);

    let found = discover_files(
        &settings.asked,
        settings.nginx_bin.as_deref(),
        settings.nginx_paths.clone(),
    );
    let role = caller.as_ref().ok().and_then(|c| c.role());
    let up = S3Uploader {
        client: s3_client(&shared, &dates),
        bucket: settings.bucket.clone(),
        key_layout: settings.key_layout,
        host_meta: Vec::new(),
    };
    lines.push(bucket_check(settings, &found, owner.as_deref(), &up, role).await);
    lines.push(nginx_line(&found.read));
    lines.extend(file_lines(&found));
    lines.push(clock_line(dates.skew("S3's answer")));
    Report { lines }
}

/// The follower's SDK configuration, with [`CHECK_MAX_ATTEMPTS`] unless `AWS_MAX_ATTEMPTS`
/// is set.
async fn check_config() -> aws_config::SdkConfig {
    let shared = ncf_aws::shared_config_with(ncf_aws::Retries::EnvironmentFirst).await;
    if std::env::var("AWS_MAX_ATTEMPTS").is_ok_and(|v| !v.is_empty()) {
        return shared;
    }
    let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(CHECK_MAX_ATTEMPTS);
    shared.into_builder().retry_config(retry).build()
}

fn s3_client(shared: &aws_config::SdkConfig, dates: &Dates) -> aws_sdk_s3::Client {
    let client = ncf_aws::s3_client_for(shared);
    let conf = client
        .config()
        .to_builder()
        .interceptor(DateCatcher {
            from: "S3's answer",
            dates: dates.clone(),
        })
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Puts this host's format object of the first followed access log (by path) that has one.
async fn bucket_check(
    settings: &Settings,
    found: &Discovery,
    owner: Option<&str>,
    up: &S3Uploader,
    role: Option<&str>,
) -> Line {
    let first = found
        .chosen
        .follow
        .iter()
        .find_map(|(p, _)| found.formats.get(p));
    let (key, probe) = match (owner, first) {
        (None, _) => (None, Probe::NoOwner),
        (Some(_), None) => (None, Probe::NoFormat(no_format_reason(found))),
        (Some(owner), Some(format)) => {
            let text = format.to_config();
            let key = format_key(&settings.prefix, owner, &text);
            let put = up.put_format(&key, &text).await;
            (Some(key), Probe::Put(put))
        }
    };
    bucket_line(
        &settings.bucket,
        key.as_deref(),
        &probe,
        settings.key_layout,
        role,
    )
}

fn no_format_reason(found: &Discovery) -> String {
    let access = found
        .chosen
        .follow
        .iter()
        .any(|(_, k)| *k == LogKind::Access);
    match (&found.read, access) {
        (Err(_), _) => "nginx's configuration was not read, so no format object is known".into(),
        (Ok(_), false) => "no access log is followed, so there is no format object".into(),
        (Ok(_), true) => "no followed access log has a format nginx's configuration names".into(),
    }
}

/// A line per followed file (opened, not read) and per refused FILE.
fn file_lines(found: &Discovery) -> Vec<Line> {
    let mut lines = Vec::new();
    if found.chosen.follow.is_empty() && found.chosen.refused.is_empty() {
        lines.push(Line::fail(
            CHECK_FILE,
            "no log file to follow",
            "name the logs as FILE arguments, or let the follower read nginx's configuration",
        ));
    }
    for (path, kind) in &found.chosen.follow {
        let note = found
            .notes
            .iter()
            .find(|n| n.starts_with(&format!("{}:", path.display())))
            .map(|n| n.split_once(": ").map_or(n.as_str(), |(_, why)| why));
        let writer = WrittenAs {
            kind: *kind,
            format: found.formats.get(path),
            note,
            configured: found.read.is_ok(),
        };
        lines.push(file_line(path, writer, &open(path)));
    }
    for (path, why) in &found.chosen.refused {
        lines.push(refused_line(path, why));
    }
    lines
}

/// Opens `path` for reading, as the follower does (nothing is read).
fn open(path: &Path) -> Opened {
    use std::os::unix::fs::MetadataExt;
    match std::fs::File::open(path) {
        Ok(_) => Opened::Readable,
        Err(e) if e.kind() == ErrorKind::NotFound => Opened::Missing,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Opened::Denied {
            // /proc/self belongs to the process's effective user.
            uid: std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid()),
            group: std::fs::metadata(path)
                .ok()
                .and_then(|m| group_name(m.gid())),
        },
        Err(e) => Opened::Other(e.to_string()),
    }
}

/// The name of group `gid` in /etc/group, else its number.
fn group_name(gid: u32) -> Option<String> {
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let name = groups.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)?.parse::<u32>().ok()? == gid).then(|| name.to_string())
    });
    Some(name.unwrap_or_else(|| gid.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEST: &str = "s3://logs/nginx/";
    const INSTANCE: &str = "i-0123456789abcdef0";

    fn profile() -> CallerIdentity {
        CallerIdentity {
            account: "123456789012".into(),
            arn: format!("arn:aws:sts::123456789012:assumed-role/nginx-host/{INSTANCE}"),
            user_id: format!("AROA3XFRBF535EXAMPLE1:{INSTANCE}"),
        }
    }

    fn denied() -> UploadError {
        UploadError {
            bucket: "logs".into(),
            key: "k".into(),
            detail: "AccessDenied".into(),
            denied: true,
        }
    }

    #[test]
    fn a_report_renders_each_line_its_fix_and_the_verdict() {
        let mut r = Report {
            lines: vec![
                Line::ok(CHECK_IMDS, "instance i-1"),
                Line::warn(CHECK_CLOCK, "90 s ahead", Some("sync it".into())),
            ],
        };
        assert_eq!(
            r.render(),
            "ok    IMDSv2       instance i-1\n\
             warn  clock        90 s ahead\n                   -> sync it\n\
             ready, with 1 warning(s): clock (exit 0)\n"
        );
        assert_eq!(r.exit_code(), 0);
        r.lines.push(Line::fail(CHECK_FILE, "a", "x"));
        r.lines.push(Line::fail(CHECK_FILE, "b", "y"));
        assert_eq!(r.exit_code(), 1);
        assert!(
            r.render()
                .ends_with("NOT READY: 2 check(s) failed: log file (exit 1)\n"),
            "{}",
            r.render()
        );
        assert_eq!(
            Report::default().render(),
            "ready: every check passed (exit 0)\n"
        );
    }

    /// layout, instance ID known, STS's answer, status, key owner, text holds.
    type LayoutRow = (
        plan::KeyLayout,
        bool,
        Result<CallerIdentity, String>,
        Status,
        Option<String>,
        &'static str,
    );

    #[test]
    fn the_layout_line_under_each_layout_and_caller() {
        use plan::KeyLayout::{Instance, Userid};
        let other = CallerIdentity {
            user_id: "AIDAJ4W5SF5AANMKCKRVW".into(),
            arn: "arn:aws:iam::123456789012:user/ops".into(),
            ..profile()
        };
        let sts_down: Result<CallerIdentity, String> = Err("timed out".into());
        let rows: [LayoutRow; 6] = [
            (
                Userid,
                true,
                Ok(profile()),
                Status::Ok,
                Some(profile().user_id),
                "userid: keys under s3://logs/nginx/AROA3XFRBF535EXAMPLE1:i-0123456789abcdef0/ (this instance's profile session)",
            ),
            (
                Userid,
                true,
                Ok(other.clone()),
                Status::Fail,
                None,
                "not running with this instance's profile credentials",
            ),
            (
                Userid,
                true,
                sts_down.clone(),
                Status::Warn,
                None,
                "STS did not answer",
            ),
            (
                Userid,
                false,
                Ok(profile()),
                Status::Warn,
                None,
                "the instance ID is unknown",
            ),
            (
                Instance,
                true,
                Ok(profile()),
                Status::Ok,
                Some(INSTANCE.into()),
                "allows only the userid layout: with it, set NGINX_LOG_KEY_LAYOUT=userid",
            ),
            (
                Instance,
                true,
                sts_down,
                Status::Ok,
                Some(INSTANCE.into()),
                "instance: keys under s3://logs/nginx/i-0123456789abcdef0/",
            ),
        ];
        for (layout, known, caller, status, owner, holds) in rows {
            let id = known.then_some(INSTANCE);
            let (lines, got) = identity_lines(layout, id, &caller, DEST);
            let l = &lines[1];
            assert_eq!(
                (l.status, &got),
                (status, &owner),
                "{layout:?} {caller:?}: {l:?}"
            );
            assert!(l.text.contains(holds), "{layout:?} {caller:?}: {}", l.text);
        }
        let (lines, _) = identity_lines(Instance, Some(INSTANCE), &Ok(other), DEST);
        assert!(!lines[1].text.contains("host policy"), "{:?}", lines[1]);
        assert_eq!(
            lines[0].text,
            "account 123456789012, principal arn:aws:iam::123456789012:user/ops, aws:userid AIDAJ4W5SF5AANMKCKRVW (STS GetCallerIdentity)"
        );
        let (lines, _) = identity_lines(Userid, Some(INSTANCE), &Ok(profile()), DEST);
        assert!(lines[0].text.contains("role nginx-host"), "{:?}", lines[0]);
    }

    #[test]
    fn the_bucket_line_for_each_answer() {
        use plan::KeyLayout::{Instance, Userid};
        let key = Some("nginx/i-1/formats/ab");
        let other = UploadError {
            detail: "NoSuchBucket".into(),
            denied: false,
            ..denied()
        };
        let rows: [(Probe, plan::KeyLayout, Status, &str); 7] = [
            (
                Probe::Put(Ok(Put::Stored { etag: None })),
                Userid,
                Status::Ok,
                "stored it (200)",
            ),
            (
                Probe::Put(Ok(Put::AlreadyThere)),
                Userid,
                Status::Ok,
                "answered 412",
            ),
            (
                Probe::Put(Err(denied())),
                Instance,
                Status::Fail,
                "set NGINX_LOG_KEY_LAYOUT=userid",
            ),
            (
                Probe::Put(Err(denied())),
                Userid,
                Status::Fail,
                "aws iam attach-role-policy --role-name nginx-host --policy-arn <the stack's HostUploadPolicyArn output>",
            ),
            (
                Probe::Put(Err(other)),
                Userid,
                Status::Fail,
                "NGINX_LOG_BUCKET",
            ),
            (Probe::NoOwner, Userid, Status::Warn, "not checked"),
            (
                Probe::NoFormat("no access log is followed".into()),
                Userid,
                Status::Warn,
                "nothing was put",
            ),
        ];
        for (probe, layout, status, holds) in rows {
            let l = bucket_line("logs", key, &probe, layout, Some("nginx-host"));
            assert_eq!(l.status, status, "{probe:?}: {l:?}");
            let all = format!("{} {}", l.text, l.fix.as_deref().unwrap_or_default());
            assert!(all.contains(holds), "{probe:?}: {all}");
        }
    }

    #[test]
    fn sdk_errors_lose_their_debug_dump() {
        let imds = "cannot read the instance ID from IMDSv2 at http://127.0.0.1:1: failed to load IMDS session token: service error: request forbidden: IMDS is disabled or the caller has insufficient permissions. (FailedToLoadToken(FailedToLoadToken { source: ServiceError(ServiceError { source: TokenError { kind: Forbidden } }) }))";
        assert_eq!(
            short(imds),
            "cannot read the instance ID from IMDSv2 at http://127.0.0.1:1: failed to load IMDS session token: service error: request forbidden: IMDS is disabled or the caller has insufficient permissions."
        );
        let sdk = "dispatch failure: other: client error (SendRequest): connection closed before message completed (DispatchFailure(DispatchFailure { source: ConnectorError { kind: Other(None) } }))";
        assert_eq!(
            short(sdk),
            "dispatch failure: other: client error (SendRequest): connection closed before message completed"
        );
        let plain = "IMDS at http://x returned \"<html>\", which is not an EC2 instance ID (i- and 8 or 17 hex digits)";
        assert_eq!(short(plain), plain);
    }

    #[test]
    fn the_clock_line_by_skew() {
        let from = "S3's answer";
        // skew (host minus AWS, s), status, text holds
        let rows: [(Option<i64>, Status, &str); 10] = [
            (
                Some(0),
                Status::Ok,
                "0 s ahead of AWS's (the Date of S3's answer); warns beyond 60 s",
            ),
            (Some(-1), Status::Ok, "1 s behind"),
            (Some(60), Status::Ok, "60 s ahead"),
            (Some(61), Status::Warn, "61 s ahead"),
            (Some(-900), Status::Warn, "15 min behind"),
            (
                Some(901),
                Status::Fail,
                "15 min ahead of AWS's (the Date of S3's answer): AWS refuses requests signed more than 15 min off",
            ),
            (
                Some(7201),
                Status::Fail,
                "2 h ahead of AWS's (the Date of S3's answer): CloudWatch Logs rejects events more than 2 h in the future",
            ),
            (Some(-7201), Status::Fail, "15 min off"),
            (
                Some(-14 * 86_400 - 1),
                Status::Fail,
                "14 days behind AWS's (the Date of S3's answer): CloudWatch Logs rejects events older than 14 days",
            ),
            (None, Status::Warn, "not checked"),
        ];
        for (skew, status, holds) in rows {
            let l = clock_line(skew.map(|s| (s, from)));
            assert_eq!(l.status, status, "{skew:?}: {l:?}");
            assert!(l.text.contains(holds), "{skew:?}: {}", l.text);
        }
    }

    #[test]
    fn the_file_line_by_what_opened() {
        let path = Path::new("/var/log/nginx/access.log");
        let format = Format {
            at: Some(crate::nginx_conf::Origin {
                file: "/etc/nginx/nginx.conf".into(),
                line: 12,
            }),
            ..Format::combined()
        };
        let access = WrittenAs {
            kind: LogKind::Access,
            format: Some(&format),
            note: None,
            configured: true,
        };
        let l = file_line(path, access, &Opened::Readable);
        assert_eq!(
            (l.status, l.text.as_str()),
            (
                Status::Ok,
                "/var/log/nginx/access.log: readable; access log, log_format combined (/etc/nginx/nginx.conf:12)"
            )
        );
        let l = file_line(path, access, &Opened::Missing);
        assert_eq!(l.status, Status::Warn);
        let adm = Opened::Denied {
            uid: 998,
            group: Some("adm".into()),
        };
        let l = file_line(path, access, &adm);
        assert_eq!(l.status, Status::Fail);
        assert!(l.text.contains("(uid 998)"), "{}", l.text);
        assert!(
            l.fix
                .as_deref()
                .is_some_and(|f| f.contains("usermod -aG adm <user>")),
            "{l:?}"
        );
        let gz = WrittenAs {
            format: None,
            note: Some("nginx writes it gzip'd"),
            ..access
        };
        assert_eq!(file_line(path, gz, &Opened::Readable).status, Status::Warn);
        let by_name = WrittenAs {
            kind: LogKind::Error,
            format: None,
            note: None,
            configured: false,
        };
        assert_eq!(
            file_line(path, by_name, &Opened::Readable).text,
            "/var/log/nginx/access.log: readable; error log (by its name)"
        );
    }
}
