//! **ncf-ship**: `ship`, the follower on the nginx hosts. It depends on `ncf-parse`, `ncf-core`
//! (its setting readers and routes) and `ncf-aws` (the S3 client), never on the binary.
//!
//! It ships what nginx appended to its logs since the last upload as gzip objects of whole
//! lines, every interval or as soon as a segment's worth is pending, and keeps each log's
//! position in a state directory. The files of one kind go together ([`pass_kind`]): one
//! object per kind per interval, a *segment* of one file when only one has new lines, else a
//! *bundle* of several.
//!
//! - [`plan`]: the pure core (position format, keys, cuts, rotation decisions).
//! - This file: the edge: [`Settings`] from flags ([`ShipArgs`]) and the environment, the
//!   filesystem, the instance ID from IMDSv2, S3 uploads behind [`Uploader`]
//!   ([`S3Uploader`]), and the loop ([`Follower`]).
//! - [`discover`]: which files to follow, their kind and `log_format`, from nginx's
//!   configuration ([`nginx_conf`]: `nginx -T` read as nginx reads it) or else their names.
//! - [`host`]: what the host says about itself on every object (instance, name, nginx
//!   version).
//! - [`check`]: `ship --check`, whether this host is ready, from the same steps.

// Input never panics the function: no unwrap/expect/panic outside tests (invariants use
// `unreachable!` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod check;
pub mod discover;
pub mod host;
pub mod nginx_conf;
pub mod plan;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::io::AsyncWriteExt;

use host::META_LOG_FORMAT;
use ncf_core::config::read::{Vars, duration, number, parsed, text};
use ncf_core::route::LogKind;
use plan::{FileId, Gone, HEAD_BYTES, Head, PendingSegment, Position, Seen, SegmentName, Step};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_SEGMENT: u64 = 16 * 1024 * 1024;
/// Memory per upload is about twice the segment: keep it reasonable for a host agent.
pub const MAX_MAX_SEGMENT: u64 = 1024 * 1024 * 1024;
pub const DEFAULT_STATE_DIR: &str = "/var/lib/nginx-cloudwatch-forwarder/ship";
pub const DEFAULT_FILES: [&str; 2] = ["/var/log/nginx/access.log", "/var/log/nginx/error.log"];
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// Longest wait between attempts of the outer retry loop (follow mode).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often follow mode looks at the files (a segment's worth pending ships at once).
pub const POLL: Duration = Duration::from_secs(1);

/// The command line of `ship`, as `cli` parsed it (values not yet checked: a flag and its
/// variable are checked together, each error naming the one that was given).
#[derive(Debug, Default, Clone, PartialEq, Eq, clap::Args)]
pub struct ShipArgs {
    /// Ships what is pending and exits (1 when any upload failed or a FILE was not followed);
    /// otherwise runs until SIGTERM or ctrl-c.
    #[arg(long)]
    pub once: bool,
    /// Says whether this host is ready, one line per check (IMDSv2, credentials and key layout,
    /// the bucket writable under this host's prefix, each log file, the clock), and exits: 0
    /// ready, 1 not. Puts at most this host's format object; ships nothing.
    #[arg(long, conflicts_with = "once")]
    pub check: bool,
    /// Seconds between uploads of each kind of log [env: SHIP_INTERVAL] [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub interval: Option<String>,
    /// Uploads as soon as this many bytes are pending [env: SHIP_MAX_SEGMENT] [default:
    /// 16777216].
    #[arg(long, value_name = "BYTES")]
    pub max_segment: Option<String>,
    /// Where positions are saved after S3 confirmed each upload [env: SHIP_STATE_DIR]
    /// [default: /var/lib/nginx-cloudwatch-forwarder/ship].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<String>,
    /// What follows the prefix in the keys: `instance` (the instance ID) or `userid` (the
    /// instance profile's aws:userid, ROLEID:i-…, learned from STS at start: what the stack's
    /// host policy allows) [env: NGINX_LOG_KEY_LAYOUT] [default: instance].
    #[arg(long, value_name = "LAYOUT")]
    pub key_layout: Option<String>,
    /// The logs to follow, each taken as nginx's configuration (its files, NGINX_CONF) says, else by its
    /// name (access…, error…) [default: every log the configuration names, else
    /// /var/log/nginx/access.log /var/log/nginx/error.log].
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,
}

/// Checked settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub once: bool,
    pub interval: Duration,
    pub max_segment: u64,
    pub state_dir: PathBuf,
    /// The FILEs given, absolute (none: every log nginx's configuration names, else
    /// [`DEFAULT_FILES`]).
    pub asked: Vec<PathBuf>,
    /// What is followed, and as what: see [`discover::choose`].
    pub files: Vec<(PathBuf, LogKind)>,
    /// FILEs not followed, with the reason (`--once` exits 1 when there is one).
    pub refused: Vec<(PathBuf, String)>,
    /// The `log_format` nginx's configuration says writes each access log, in the syntax
    /// `ACCESS_LOG_FORMAT` takes; uploaded once as a format object and named on every segment.
    pub log_formats: std::collections::BTreeMap<PathBuf, String>,
    pub bucket: String,
    /// Normalised: empty or ending in `/`.
    pub prefix: String,
    /// What follows the prefix in the keys.
    pub key_layout: plan::KeyLayout,
    pub imds_endpoint: String,
    /// `NGINX_BIN`: the nginx binary (`None`: `nginx` on `PATH`, else the usual place).
    pub nginx_bin: Option<String>,
    /// `NGINX_CONF` and `NGINX_PREFIX`: where nginx's files are when it is not started as it
    /// was built.
    pub nginx_paths: discover::Overrides,
}

/// Every variable [`Settings::new`] reads (a test holds it to that; docs/configuration.md lists
/// them, scripts/check-docs.py checks).
pub const SHIP_VARS: [&str; 10] = [
    "SHIP_INTERVAL",
    "SHIP_MAX_SEGMENT",
    "SHIP_STATE_DIR",
    "NGINX_LOG_BUCKET",
    "NGINX_LOG_PREFIX",
    "NGINX_LOG_KEY_LAYOUT",
    "IMDS_ENDPOINT",
    "NGINX_BIN",
    discover::CONF_VAR,
    discover::PREFIX_VAR,
];

/// A flag or variable that is not valid (the configuration's readers' error: it names the flag
/// when the flag was given, else the variable).
pub use ncf_core::config::SettingError;

impl Settings {
    /// Flags win over the environment; an empty variable counts as unset, except
    /// `NGINX_LOG_PREFIX`, where set but empty means no prefix (as in the shell shipper). Each
    /// value goes through the configuration's readers ([`ncf_core::config::read`]).
    pub fn new(
        args: &ShipArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingError> {
        let vars = Vars::follower(env);
        let interval = duration(
            vars.flag_or(args.interval.as_deref(), "--interval", "SHIP_INTERVAL"),
            1..=86_400,
            "a whole number of seconds",
            Duration::from_secs,
        )?
        .unwrap_or(DEFAULT_INTERVAL);
        let max_segment = number(
            vars.flag_or(
                args.max_segment.as_deref(),
                "--max-segment",
                "SHIP_MAX_SEGMENT",
            ),
            1..=MAX_MAX_SEGMENT,
            "a number of bytes",
        )?
        .unwrap_or(DEFAULT_MAX_SEGMENT);
        let state_dir =
            text(vars.flag_or(args.state_dir.as_deref(), "--state-dir", "SHIP_STATE_DIR"))
                .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from);
        let asked = asked_files(&args.files)?;
        // By name until nginx's configuration is read (`command`).
        let files = discover::choose(&asked, &DEFAULT_FILES, &Err("not read yet".into())).follow;
        let bucket = parsed(vars.get("NGINX_LOG_BUCKET"), |b| {
            if b.contains('/') || b.chars().any(char::is_whitespace) {
                Err("must be a bucket name, not a URL or path")
            } else {
                Ok(b.to_string())
            }
        })?
        .ok_or_else(|| {
            SettingError::new(
                "NGINX_LOG_BUCKET",
                "",
                "not set: name the S3 bucket to upload to",
            )
        })?;
        let prefix = plan::normalise_prefix(vars.raw("NGINX_LOG_PREFIX").as_deref());
        let key_layout = parsed(
            vars.flag_or(
                args.key_layout.as_deref(),
                "--key-layout",
                "NGINX_LOG_KEY_LAYOUT",
            ),
            plan::KeyLayout::parse,
        )?
        .unwrap_or_default();
        let imds_endpoint = text(vars.get("IMDS_ENDPOINT"))
            .unwrap_or_else(|| DEFAULT_IMDS_ENDPOINT.into())
            .trim_end_matches('/')
            .to_string();
        let nginx_bin = text(vars.get("NGINX_BIN"));
        let nginx_paths = discover::Overrides::from_env(|n| vars.raw(n));
        Ok(Self {
            once: args.once,
            interval,
            max_segment,
            state_dir,
            asked,
            files,
            refused: Vec::new(),
            log_formats: std::collections::BTreeMap::new(),
            bucket,
            prefix,
            key_layout,
            imds_endpoint,
            nginx_bin,
            nginx_paths,
        })
    }
}

/// The FILEs given, absolute, each once.
fn asked_files(files: &[String]) -> Result<Vec<PathBuf>, SettingError> {
    let mut asked = Vec::new();
    for f in files {
        let path = std::path::absolute(PathBuf::from(f))
            .map_err(|e| SettingError::new("FILE", f, format!("cannot make it absolute: {e}")))?;
        if asked.contains(&path) {
            return Err(SettingError::new("FILE", f, "named twice"));
        }
        asked.push(path);
    }
    Ok(asked)
}

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("{path}: cannot {what}: {source}")]
    Io {
        path: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("state file {path}: {source} (fix or remove it; removing starts the file over at 0)")]
    State {
        path: String,
        source: plan::StateError,
    },
    #[error("{path}: bytes {start}..{end} not shipped: {source}")]
    Upload {
        path: String,
        start: u64,
        end: u64,
        source: UploadError,
    },
    #[error("{files} files ({bytes} bytes) not shipped: {source}")]
    UploadBundle {
        files: usize,
        bytes: u64,
        source: UploadError,
    },
    #[error(
        "{path}: the pending segment {key} (bytes {start}..{end}) cannot be read again: the file has {size} bytes"
    )]
    PendingShort {
        path: String,
        key: String,
        start: u64,
        end: u64,
        size: u64,
    },
}

impl ShipError {
    /// An upload S3 refused with AccessDenied (nothing stored by it).
    fn denied(&self) -> bool {
        match self {
            Self::Upload { source, .. } | Self::UploadBundle { source, .. } => source.denied,
            _ => false,
        }
    }
}

fn io_error(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> ShipError {
    let path = path.display().to_string();
    move |source| ShipError::Io { path, what, source }
}

// --- uploads -------------------------------------------------------------------------------

/// One object on its way to S3: a segment of one file, or a bundle of several files of one
/// kind.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    pub key: &'a str,
    /// The gzip body.
    pub body: Vec<u8>,
    /// Where its lines come from, in body order: one for a segment, one per file for a bundle.
    pub sources: Vec<Source<'a>>,
    /// The format objects of the `log_format`s that wrote its lines, as known.
    pub formats: plan::ObjectFormats,
}

/// Bytes `start..end` of a followed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source<'a> {
    pub path: &'a str,
    pub start: u64,
    pub end: u64,
}

/// On an object whose lines may be in several formats: the format-object keys it uses, and
/// which runs of lines each may be in (the names the forwarder reads).
pub use ncf_parse::object_format::{META_LOG_FORMATS, META_PARTS};
/// On a bundle: how many files its lines come from (`ncf-source` and `ncf-bytes`, which
/// describe one file, are left out).
pub const META_FILES: &str = "ncf-files";
/// The followed path of a segment of one file, and its byte range `start-end`.
pub const META_SOURCE: &str = "ncf-source";
pub const META_BYTES: &str = "ncf-bytes";

/// The bytes [`META_LOG_FORMATS`] and [`META_PARTS`] may take together (names and values): half
/// of S3's 2 KB of user-defined metadata per object, the rest left for the host's entries
/// (three values of at most [`host::MAX_META_VALUE`]) and the others. A bundle whose format
/// names would not fit is split into several objects.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html#UserMetadata>
pub const MAX_FORMAT_META_BYTES: usize = 1024;

/// The object's own metadata (besides the host's): where its lines come from and which
/// formats wrote them.
pub fn object_metadata(seg: &Segment<'_>) -> Vec<(&'static str, String)> {
    let mut meta = format_metadata(&seg.formats);
    match seg.sources.as_slice() {
        [one] => {
            meta.push((META_SOURCE, utf8_percent_encode(one.path, META).to_string()));
            meta.push((META_BYTES, format!("{}-{}", one.start, one.end)));
        }
        many => meta.push((META_FILES, many.len().to_string())),
    }
    meta
}

/// The metadata that names an object's formats.
pub fn format_metadata(formats: &plan::ObjectFormats) -> Vec<(&'static str, String)> {
    match formats {
        plan::ObjectFormats::Unknown => Vec::new(),
        plan::ObjectFormats::One(key) => vec![(META_LOG_FORMAT, host::meta_value(key))],
        plan::ObjectFormats::Many { keys, parts } => {
            let named: Vec<String> = keys.iter().map(|k| host::meta_value(k)).collect();
            let mut meta = vec![(META_LOG_FORMATS, named.join(" "))];
            if let Some(p) = parts {
                meta.push((META_PARTS, p.clone()));
            }
            meta
        }
    }
}

/// Whether an object can name `formats`: at most [`plan::MAX_OBJECT_FORMATS`] keys in at most
/// [`MAX_FORMAT_META_BYTES`].
pub fn formats_fit(formats: &plan::ObjectFormats) -> bool {
    let bytes: usize = format_metadata(formats)
        .iter()
        .map(|(n, v)| n.len() + v.len())
        .sum();
    formats.keys().len() <= plan::MAX_OBJECT_FORMATS && bytes <= MAX_FORMAT_META_BYTES
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    Stored {
        etag: Option<String>,
    },
    /// An object is there under the key already: a previous run uploaded this very segment and
    /// stopped before it could save the position. It is left as it is (an overwrite would drop
    /// the forwarder's progress tag and have it delivered again).
    AlreadyThere,
}

#[derive(Debug, thiserror::Error)]
#[error("upload to s3://{bucket}/{key} failed: {detail}")]
pub struct UploadError {
    pub bucket: String,
    pub key: String,
    pub detail: String,
    /// S3 answered AccessDenied: this put stored nothing.
    pub denied: bool,
}

/// Where segments go (S3 in production, a fake in tests).
pub trait Uploader {
    fn put(&self, seg: Segment<'_>) -> impl Future<Output = Result<Put, UploadError>>;
    /// A format object ([`format_key`]): plain text, never replaced.
    fn put_format(&self, key: &str, body: &str) -> impl Future<Output = Result<Put, UploadError>>;
    fn bucket(&self) -> &str;
}

/// Where a log format's object goes: `<prefix><instance-id>/formats/<sha256 of the text>`,
/// under the host's own prefix, named by its content (the same format is one object for
/// ever; the forwarder checks the name against the body).
pub fn format_key(prefix: &str, instance_id: &str, format: &str) -> String {
    ncf_parse::object_format::format_object_key(prefix, instance_id, format)
}

pub struct S3Uploader {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// The keys' layout: an upload denied under [`plan::KeyLayout::Instance`] says
    /// [`plan::INSTANCE_LAYOUT_DENIED_HINT`].
    pub key_layout: plan::KeyLayout,
    /// What the host says about itself ([`host::HostMeta::entries`]), on every object.
    pub host_meta: Vec<(&'static str, String)>,
}

/// Metadata values are HTTP header values: keep them ASCII.
const META: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_');

impl S3Uploader {
    /// Sends a put that must not replace anything (`If-None-Match: *`): [`Put::AlreadyThere`]
    /// when an object is there under the key.
    async fn put_new(
        &self,
        key: &str,
        req: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) -> Result<Put, UploadError> {
        match req
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .send()
            .await
        {
            Ok(out) => Ok(Put::Stored {
                etag: out.e_tag().map(ncf_aws::s3::unquote),
            }),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(412) || e.code() == Some("PreconditionFailed") {
                    return Ok(Put::AlreadyThere);
                }
                let mut detail = DisplayErrorContext(&e).to_string();
                let denied = e.code() == Some("AccessDenied");
                if denied && self.key_layout == plan::KeyLayout::Instance {
                    detail = format!("{detail} ({})", plan::INSTANCE_LAYOUT_DENIED_HINT);
                }
                Err(UploadError {
                    bucket: self.bucket.clone(),
                    key: key.to_string(),
                    detail,
                    denied,
                })
            }
        }
    }
}

impl Uploader for S3Uploader {
    async fn put(&self, seg: Segment<'_>) -> Result<Put, UploadError> {
        let mut req = self.client.put_object();
        for (name, value) in &self.host_meta {
            req = req.metadata(*name, value);
        }
        for (name, value) in object_metadata(&seg) {
            req = req.metadata(name, value);
        }
        // Never replace an object: only a previous run of this very plan can be there.
        let req = req.content_type("application/gzip").body(seg.body.into());
        self.put_new(seg.key, req).await
    }

    async fn put_format(&self, key: &str, body: &str) -> Result<Put, UploadError> {
        let req = self
            .client
            .put_object()
            .content_type("text/plain; charset=utf-8")
            .body(body.as_bytes().to_vec().into());
        self.put_new(key, req).await
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }
}

/// Deterministic gzip: async-compression writes a fixed header (no name, mtime 0, OS 255), so
/// the same bytes always make the same object and the same ETag.
pub async fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc =
        async_compression::tokio::write::GzipEncoder::new(Vec::with_capacity(data.len() / 4 + 64));
    enc.write_all(data).await?;
    enc.shutdown().await?;
    Ok(enc.into_inner())
}

// --- one followed path ---------------------------------------------------------------------

/// The state file of a path: the absolute path, percent-encoded, under the state directory.
pub fn state_file(state_dir: &Path, path: &Path) -> PathBuf {
    const NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'.').remove(b'-').remove(b'_');
    let encoded = utf8_percent_encode(&path.to_string_lossy(), NAME).to_string();
    state_dir.join(format!("{encoded}.pos"))
}

fn file_id(m: &std::fs::Metadata) -> FileId {
    FileId {
        dev: m.dev(),
        ino: m.ino(),
    }
}

/// The entries of a directory; none when it does not exist (a symlink's target directory may
/// be gone).
fn list_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, ShipError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(entries.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error(dir, "list")(e)),
    }
}

/// Up to `len` bytes of `f` from `from` (fewer at its end); errors name `path`.
fn read_file_at(f: &File, from: u64, len: u64, path: &Path) -> Result<Vec<u8>, ShipError> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], from + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, "read")(e)),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// How far one pass may read a followed file: its size when the pass first read it, for that
/// file and generation (a rotation or truncation during the pass starts a new edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Edge {
    file: FileId,
    generation: u64,
    size: u64,
}

impl Edge {
    /// The end of what this pass ships of `pos`'s file, given the size seen now (`to`): the
    /// first size seen in the pass, or `to` when this is the first look.
    fn of(edge: &mut Option<Edge>, pos: &Position, to: u64) -> u64 {
        match edge {
            Some(e) if e.file == pos.file && e.generation == pos.generation => e.size.min(to),
            _ => {
                *edge = Some(Edge {
                    file: pos.file,
                    generation: pos.generation,
                    size: to,
                });
                to
            }
        }
    }
}

/// A followed path that names no file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    #[error(
        "{path}: no such file, and no directory {dir} either: check the path (nothing can appear there)"
    )]
    Directory { path: String, dir: String },
    #[error("{path}: no such file (nothing shipped from it): check the path")]
    File { path: String },
    #[error("{path}: a symlink to {target}, which does not exist: check the link")]
    Dangling { path: String, target: String },
}

/// What one pass over a path did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Shipped {
    /// Objects put: segments of one file, or bundles of several.
    pub segments: u64,
    pub bytes: u64,
}

pub struct Follower {
    pub path: PathBuf,
    shown: String,
    name: String,
    kind: LogKind,
    state_path: PathBuf,
    pos: Option<Position>,
    /// The followed file, kept open: after a rename it is still readable, even once rotation
    /// compressed and deleted it.
    handle: Option<(FileId, File)>,
    last_seen: Option<u64>,
    last_ship: Option<Instant>,
    /// The candidate formats of this file, newest first, as format objects (key, text): the
    /// `log_format` nginx's configuration names for it now, then the ones it named before in
    /// this generation of the file. Each is put (once per process) before the first object
    /// that names it.
    formats: Vec<(String, String)>,
    /// The format objects this process has put.
    formats_sent: std::collections::BTreeSet<String>,
    /// Bytes of this path shipped by this process.
    shipped: u64,
}

impl Follower {
    pub fn open(path: &Path, kind: LogKind, state_dir: &Path) -> Result<Self, ShipError> {
        let state_path = state_file(state_dir, path);
        let pos = match std::fs::read_to_string(&state_path) {
            Ok(text) => Some(Position::decode(&text).map_err(|source| ShipError::State {
                path: state_path.display().to_string(),
                source,
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(&state_path, "read the state file")(e)),
        };
        Ok(Self {
            path: path.to_path_buf(),
            shown: path.display().to_string(),
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kind,
            state_path,
            pos,
            handle: None,
            last_seen: None,
            last_ship: None,
            formats: Vec::new(),
            formats_sent: std::collections::BTreeSet::new(),
            shipped: 0,
        })
    }

    /// Names the `log_format` that writes this file on each object from now on (its format
    /// object is put before the first of them): [`Follower::set_formats`] with one candidate.
    pub fn with_log_format(mut self, key: String, text: String) -> Self {
        self.set_formats(vec![(key, text)]);
        self
    }

    /// The candidate formats (format-object key, format text) of the lines this file holds
    /// from now on, newest first; the lines of objects planned from now on name them (a
    /// saved plan sent again names the candidates of its resend).
    pub fn set_formats(&mut self, formats: Vec<(String, String)>) {
        self.formats = formats;
    }

    /// The candidate format-object keys, newest first.
    fn candidate_keys(&self) -> Vec<String> {
        self.formats.iter().map(|(k, _)| k.clone()).collect()
    }

    pub fn position(&self) -> Option<&Position> {
        self.pos.as_ref()
    }

    /// Write temp + fsync + rename + fsync the directory: a crash leaves the old or the new
    /// position, never a torn one. No await inside: cancelling the loop cannot cut it in half.
    fn save(&self, pos: &Position) -> Result<(), ShipError> {
        let tmp = self.state_path.with_extension("pos.tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(pos.encode(&self.shown).as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.state_path)?;
            if let Some(dir) = self.state_path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(io_error(&self.state_path, "save the position"))
    }

    fn set(&mut self, pos: Position) -> Result<(), ShipError> {
        self.save(&pos)?;
        self.pos = Some(pos);
        Ok(())
    }

    /// The file at the path now.
    fn current(&self) -> Result<Option<Seen>, ShipError> {
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(Some(Seen {
                id: file_id(&m),
                size: m.len(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&self.path, "stat")(e)),
        }
    }

    /// The followed file, through the kept handle, the path, or a rotated name beside it.
    fn followed(&mut self, current: Option<Seen>) -> Result<Option<Seen>, ShipError> {
        let Some(want) = self.pos.as_ref().map(|p| p.file) else {
            return Ok(None);
        };
        if self.handle.as_ref().is_none_or(|(id, _)| *id != want) {
            self.handle = None;
            let mut candidates = Vec::new();
            if current.is_some_and(|c| c.id == want) {
                candidates.push(self.path.clone());
            } else {
                // A rename keeps the inode: look for it among the rotated names.
                for dir in self.rotation_dirs() {
                    for entry in list_dir(&dir)? {
                        if entry
                            .metadata()
                            .is_ok_and(|m| m.is_file() && file_id(&m) == want)
                        {
                            candidates.push(entry.path());
                        }
                    }
                }
            }
            for c in candidates {
                if let Ok(f) = File::open(&c)
                    && f.metadata().is_ok_and(|m| file_id(&m) == want)
                {
                    if c != self.path {
                        tracing::info!(
                            "{}: the file it named was rotated to {}; shipping the rest of it from there",
                            self.shown,
                            c.display()
                        );
                    }
                    self.handle = Some((want, f));
                    break;
                }
            }
        }
        match &self.handle {
            None => Ok(None),
            Some((id, f)) => {
                let m = f.metadata().map_err(io_error(&self.path, "stat"))?;
                Ok(Some(Seen {
                    id: *id,
                    size: m.len(),
                }))
            }
        }
    }

    /// Where rotated names of the followed file can be: beside the path and, when the path is
    /// a symlink (the usual workaround when names do not fit), beside each file it leads to,
    /// since logrotate renames or copies the real file in its own directory.
    fn rotation_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .collect();
        let mut link = self.path.clone();
        // Linux's own limit on symlinks followed in one lookup (MAXSYMLINKS).
        for _ in 0..40 {
            let Ok(target) = std::fs::read_link(&link) else {
                break;
            };
            // A relative target is relative to the link's directory; `join` keeps an absolute one.
            let target = link.parent().map_or(target.clone(), |d| d.join(&target));
            if let Some(dir) = target.parent()
                && !dirs.iter().any(|d| d == dir)
            {
                dirs.push(dir.to_path_buf());
            }
            link = target;
        }
        dirs
    }

    fn read_at(&self, from: u64, len: u64) -> Result<Vec<u8>, ShipError> {
        match &self.handle {
            None => Ok(Vec::new()),
            Some((_, f)) => read_file_at(f, from, len, &self.path),
        }
    }

    /// Ships what is pending of this path alone ([`pass_kind`] with it as the only file of its
    /// kind). `due`: the interval is up (or `--once`); otherwise only a whole segment's worth,
    /// or the rest of a rotated file, is shipped.
    pub async fn pass<U: Uploader>(
        &mut self,
        up: &U,
        settings: &Settings,
        instance_id: &str,
        due: bool,
    ) -> Result<Shipped, ShipError> {
        let mut one = [&mut *self];
        let pass = pass_kind(&mut one, up, settings, instance_id, due).await;
        match pass.errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(pass.shipped),
        }
    }

    /// The file as it is now: the file at the path, the followed one, and whether its first
    /// bytes changed since they were shipped.
    fn look(&mut self) -> Result<(Option<Seen>, Option<Seen>, bool), ShipError> {
        let current = self.current()?;
        let followed = self.followed(current)?;
        let rewritten = match (self.pos.as_ref().and_then(|p| p.head), followed) {
            (Some(h), Some(f)) if f.size >= h.len => Head::of(&self.read_at(0, h.len)?) != h,
            _ => false,
        };
        Ok((current, followed, rewritten))
    }

    /// The bytes of the saved plan (planned and maybe uploaded by a run that stopped before
    /// saving the position after it): the same bytes again, for the same key. None when they
    /// cannot be read any more (then the plan is dropped, with a warning, and the position
    /// planned again).
    fn planned_bytes(&mut self) -> Result<Option<(u64, Vec<u8>)>, ShipError> {
        let (_, followed, rewritten) = self.look()?;
        let Some(pos) = self.pos.clone() else {
            return Ok(None);
        };
        let Some(p) = pos.pending.clone() else {
            return Ok(None);
        };
        let size = followed.map_or(0, |f| f.size);
        let data = if size >= p.end && !rewritten {
            self.read_at(pos.offset, p.end - pos.offset)?
        } else if let Some((_, f, _)) = self.find_copy(&pos, p.end)? {
            // Truncated (copytruncate) since it was planned: its copy has the bytes.
            read_file_at(&f, pos.offset, p.end - pos.offset, &self.path)?
        } else {
            let e = ShipError::PendingShort {
                path: self.shown.clone(),
                key: p.key,
                start: pos.offset,
                end: p.end,
                size,
            };
            tracing::warn!("{e}; planning again from the position");
            self.set(Position {
                pending: None,
                ..pos
            })?;
            return Ok(None);
        };
        Ok(Some((pos.offset, data)))
    }

    /// Takes the path to where it has bytes to read (following a new file, starting a
    /// truncated one again after shipping the rest from its copy, …): what can be read now,
    /// if anything. `edge` bounds the pass ([`Edge`]).
    ///
    /// A pass ships what the file held when the pass first read it, not what nginx appends
    /// while it ships: under steady writes there is always a newer line, and chasing it would
    /// make one object per line. What arrives meanwhile waits for the next interval.
    async fn ready<U: Uploader>(
        &mut self,
        dest: &Dest<'_, U>,
        edge: &mut Option<Edge>,
        done: &mut Shipped,
    ) -> Result<Option<Ready>, ShipError> {
        loop {
            let (current, followed, rewritten) = self.look()?;
            if let Some(f) = followed {
                self.last_seen = Some(f.size);
            }
            let step = plan::next_step(
                self.pos.as_ref(),
                current,
                followed,
                self.last_seen,
                rewritten,
            );
            match step {
                Step::Idle => return Ok(None),
                Step::Start { file } => self.set(Position::start(file, 0))?,
                Step::Truncated { lost } => {
                    let Some(pos) = self.pos.clone() else {
                        return Ok(None);
                    };
                    self.start_again(pos, lost, dest, done).await?;
                }
                Step::Switch { to, gone } => {
                    let Some(pos) = self.pos.clone() else {
                        return Ok(None);
                    };
                    self.switch(pos, to, gone)?;
                }
                Step::Read { from, to, finished } => {
                    // A finished file no longer grows: its end bounds the pass by itself.
                    let to = match (&self.pos, finished) {
                        (Some(pos), false) => Edge::of(edge, pos, to),
                        _ => to,
                    };
                    if from >= to {
                        return Ok(None);
                    }
                    let rotated = current.is_none_or(|c| Some(c.id) != followed.map(|f| f.id));
                    return Ok(Some(Ready {
                        from,
                        to,
                        finished,
                        rotated,
                    }));
                }
            }
        }
    }

    /// The followed file was truncated in place (`copytruncate`) at `pos`: ships the rest from
    /// its copy when the copy is found, then starts the file again at 0 with the next
    /// generation. `lost`: bytes known to have been written after the position and rotated
    /// away unshipped.
    async fn start_again<U: Uploader>(
        &mut self,
        pos: Position,
        lost: Option<u64>,
        dest: &Dest<'_, U>,
        done: &mut Shipped,
    ) -> Result<(), ShipError> {
        if let Some((copy, f, size)) = self.find_copy(&pos, pos.offset)? {
            if size > pos.offset {
                tracing::info!(
                    "{}: truncated in place (copytruncate); shipping bytes {}..{size} from its copy {}",
                    self.shown,
                    pos.offset,
                    copy.display()
                );
                self.drain_copy(dest, f, size, done).await?;
            }
            // Shipped from the copy: only what nginx wrote between the copy and the
            // truncation can be missing, and nothing tells how much.
            self.last_seen = None;
            let generation = pos.generation + 1;
            self.set(Position::start(pos.file, generation))?;
            tracing::info!(
                "{}: starting it again at 0 (generation {generation})",
                self.shown
            );
            return Ok(());
        }
        match lost {
            Some(n) => tracing::warn!(
                "{}: truncated in place (copytruncate) at offset {}; {n} bytes written after that offset were rotated away before they were shipped",
                self.shown,
                pos.offset
            ),
            None => tracing::info!(
                "{}: truncated in place (copytruncate); starting it again at 0 (generation {})",
                self.shown,
                pos.generation + 1
            ),
        }
        self.last_seen = None;
        self.set(Position::start(pos.file, pos.generation + 1))
    }

    /// The followed file (at `pos`) is done: follows `to` from 0 with the next generation,
    /// after saying what was lost when the old file was `gone` before it was shipped to its end.
    fn switch(&mut self, pos: Position, to: FileId, gone: Option<Gone>) -> Result<(), ShipError> {
        if let Some(g) = gone {
            match g.unshipped {
                Some(n) => tracing::warn!(
                    "{}: LOST {n} bytes: the file it named (device {:x}, inode {}) was rotated away (compressed or deleted) after byte {} was shipped and before the rest was",
                    self.shown,
                    pos.file.dev,
                    pos.file.ino,
                    g.offset
                ),
                None => tracing::warn!(
                    "{}: the file it named (device {:x}, inode {}) was rotated away (compressed or deleted) after byte {} was shipped: anything nginx wrote to it after that is not shipped",
                    self.shown,
                    pos.file.dev,
                    pos.file.ino,
                    g.offset
                ),
            }
        }
        self.handle = None;
        self.last_seen = None;
        self.set(Position::start(to, pos.generation + 1))?;
        tracing::info!(
            "{}: following the new file from 0 (generation {})",
            self.shown,
            pos.generation + 1
        );
        Ok(())
    }

    /// Saves the plan: bytes from the position to `end` go to `key` (written before the put,
    /// so that a restart sends exactly these bytes under this key again).
    fn plan(&mut self, end: u64, key: &str, bundle: bool) -> Result<(), ShipError> {
        let Some(pos) = self.pos.clone() else {
            return Ok(());
        };
        self.set(Position {
            pending: Some(PendingSegment {
                end,
                key: key.to_string(),
                bundle,
            }),
            ..pos
        })
    }

    /// Drops the saved plan: the bytes from the position are planned again.
    fn forget_plan(&mut self) -> Result<(), ShipError> {
        let Some(pos) = self.pos.clone() else {
            return Ok(());
        };
        self.set(Position {
            pending: None,
            ..pos
        })
    }

    /// S3 has bytes up to `end`: saves the position after them.
    fn advance(&mut self, end: u64) -> Result<(), ShipError> {
        let Some(pos) = self.pos.clone() else {
            return Ok(());
        };
        let head_len = end.min(HEAD_BYTES);
        let head = match pos.head {
            Some(h) if h.len >= head_len => Some(h),
            _ => Some(Head::of(&self.read_at(0, head_len)?)),
        };
        self.shipped += end.saturating_sub(pos.offset);
        self.set(Position {
            offset: end,
            pending: None,
            head,
            ..pos
        })
    }

    /// Plans, records and uploads the next segment of this file alone from `from`, with
    /// `pending` bytes available; the bytes shipped (0: only a partial line is there).
    async fn ship_segment<U: Uploader>(
        &mut self,
        dest: &Dest<'_, U>,
        from: u64,
        pending: u64,
        finished: bool,
    ) -> Result<u64, ShipError> {
        let max_segment = dest.settings.max_segment;
        let want = pending.min(max_segment);
        let data = self.read_at(from, want)?;
        let n = plan::cut(&data, finished && want == pending, want == max_segment);
        if n == 0 || self.pos.is_none() {
            return Ok(0);
        }
        let parts = vec![Part {
            member: 0,
            start: from,
            data: data[..n].to_vec(),
        }];
        let mut one = [&mut *self];
        let key = object_key(&one, &parts, dest.settings, dest.instance_id);
        // The plan first, so that a restart sends exactly this segment again.
        one[0].plan(from + n as u64, &key, false)?;
        ship_object(&mut one, parts, &key, dest.up).await?;
        Ok(n as u64)
    }

    /// After `copytruncate`: the copy logrotate made of the followed file, found beside it by
    /// its first bytes (the position's fingerprint), if it has at least `min_size` bytes.
    fn find_copy(
        &self,
        pos: &Position,
        min_size: u64,
    ) -> Result<Option<(PathBuf, File, u64)>, ShipError> {
        let Some(head) = pos.head else {
            return Ok(None);
        };
        for dir in self.rotation_dirs() {
            for entry in list_dir(&dir)? {
                let path = entry.path();
                let Ok(m) = entry.metadata() else { continue };
                if path == self.path || !m.is_file() || file_id(&m) == pos.file {
                    continue;
                }
                if m.len() < min_size.max(head.len) {
                    continue;
                }
                let Ok(f) = File::open(&path) else { continue };
                let len = usize::try_from(head.len).unwrap_or(usize::MAX);
                let mut first = vec![0; len];
                if f.read_exact_at(&mut first, 0).is_ok() && Head::of(&first) == head {
                    return Ok(Some((path, f, m.len())));
                }
            }
        }
        Ok(None)
    }

    /// Ships the rest of a truncated file from its copy, through the handle, put back after.
    async fn drain_copy<U: Uploader>(
        &mut self,
        dest: &Dest<'_, U>,
        copy: File,
        size: u64,
        done: &mut Shipped,
    ) -> Result<(), ShipError> {
        let Some(file) = self.pos.as_ref().map(|p| p.file) else {
            return Ok(());
        };
        let live = self.handle.replace((file, copy));
        let mut result = Ok(());
        while let Some(from) = self.pos.as_ref().map(|p| p.offset).filter(|o| *o < size) {
            match self.ship_segment(dest, from, size - from, true).await {
                Ok(0) => break,
                Ok(n) => {
                    done.segments += 1;
                    done.bytes += n;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.handle = live;
        result
    }

    /// Why the path names no file when this follower has never followed one there (a saved
    /// position means it did: a rotation without `create` leaves the path empty for a while).
    fn missing(&self) -> Option<Missing> {
        if self.pos.is_some() || std::fs::metadata(&self.path).is_ok() {
            return None;
        }
        let path = self.shown.clone();
        if let Ok(target) = std::fs::read_link(&self.path) {
            return Some(Missing::Dangling {
                path,
                target: target.display().to_string(),
            });
        }
        match self.path.parent() {
            Some(dir) if !dir.is_dir() => Some(Missing::Directory {
                path,
                dir: dir.display().to_string(),
            }),
            _ => Some(Missing::File { path }),
        }
    }

    /// The interval is up for this path.
    fn due(&self, interval: Duration) -> bool {
        self.last_ship.is_none_or(|t| t.elapsed() >= interval)
    }
}

// --- the files of one kind, together ---------------------------------------------------------

/// What a followed file has to read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ready {
    from: u64,
    to: u64,
    /// Rotated away and nginx writes elsewhere: a partial last line is final.
    finished: bool,
    /// The path names another file (or none): the rest ships without waiting for the interval.
    rotated: bool,
}

/// Whole lines of one file in an object: bytes `start..start + data.len()` of `files[member]`.
#[derive(Debug, Clone)]
struct Part {
    member: usize,
    start: u64,
    data: Vec<u8>,
}

impl Part {
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
}

/// What one pass over the files of one kind did: what it shipped, and what failed (a file
/// that fails is left out of the rest of the pass; an upload that fails ends it).
#[derive(Debug, Default)]
pub struct KindPass {
    pub shipped: Shipped,
    pub errors: Vec<ShipError>,
}

impl Shipped {
    fn add(&mut self, other: Shipped) {
        self.segments += other.segments;
        self.bytes += other.bytes;
    }
}

/// Where a file's lines go in an object: files with the same candidate formats adjacent (one
/// part of `ncf-parts` each), then by path.
fn order(f: &Follower) -> (Vec<String>, PathBuf) {
    (f.candidate_keys(), f.path.clone())
}

/// The formats an object made of `parts` names.
fn formats_of(files: &[&mut Follower], parts: &[Part]) -> plan::ObjectFormats {
    let candidates: Vec<Vec<String>> = parts
        .iter()
        .map(|p| files[p.member].candidate_keys())
        .collect();
    let runs: Vec<(u64, &[String])> = parts
        .iter()
        .zip(&candidates)
        .map(|(p, c)| (p.data.len() as u64, c.as_slice()))
        .collect();
    plan::object_formats(&runs)
}

/// The key of a new object: the segment key of its one file as before bundles, or a bundle key
/// named after its first part.
fn object_key(
    files: &[&mut Follower],
    parts: &[Part],
    settings: &Settings,
    instance_id: &str,
) -> String {
    let first = &parts[0];
    let f = &files[first.member];
    let (file, generation) = f
        .pos
        .as_ref()
        .map_or((FileId { dev: 0, ino: 0 }, 0), |p| (p.file, p.generation));
    let now = jiff::Timestamp::now();
    let day = now.strftime("%Y/%m/%d").to_string();
    let name = SegmentName {
        prefix: &settings.prefix,
        instance_id,
        kind: f.kind,
        day: &day,
        name: &f.name,
        file,
        generation,
        start: first.start,
        end: first.end(),
    };
    if parts.len() == 1 {
        plan::segment_key(&name)
    } else {
        plan::bundle_key(&name, now.as_millisecond())
    }
}

/// Ships what is pending of the files of one kind (all of `files` are of one kind) as few
/// objects as the segment size and the format limits allow: per pass, one object holding the
/// pending complete lines of every file, ordered so that files with the same candidate
/// formats are adjacent. `due`: the interval is up (or `--once`); otherwise only a whole
/// segment's worth, or when a file was rotated, is shipped.
///
/// Exactly once, file by file as for one file: each file's position saves the plan (its end
/// and the object's key) before the put, the put never replaces (`If-None-Match: *`), and the
/// position moves past the bytes only after S3 has them. A plan saved by a run that stopped
/// is sent again first, under its own key, from exactly the bytes the files whose plans name
/// that key planned: if a previous run put it, S3 answers that it is there and each of those
/// files moves on; if not, nothing has those bytes yet, whichever files' plans were saved.
pub async fn pass_kind<U: Uploader>(
    files: &mut [&mut Follower],
    up: &U,
    settings: &Settings,
    instance_id: &str,
    due: bool,
) -> KindPass {
    let dest = Dest {
        up,
        settings,
        instance_id,
    };
    let mut pass = KindPass::default();
    let mut state = vec![InPass::default(); files.len()];
    if !resend_plans(files, &dest, &mut state, &mut pass).await {
        return pass;
    }
    loop {
        let ready = ready_files(files, &dest, &mut state, &mut pass).await;
        let pending: u64 = ready.iter().map(|(_, r)| r.to - r.from).sum();
        let rotated = ready.iter().any(|(_, r)| r.rotated);
        if ready.is_empty() || (!due && !rotated && pending < settings.max_segment) {
            return pass;
        }
        let parts = next_parts(files, ready, settings.max_segment, &mut state, &mut pass);
        if parts.is_empty() {
            return pass;
        }
        match plan_and_ship(files, parts, &dest).await {
            Ok(s) => pass.shipped.add(s),
            Err(e) => {
                pass.errors.push(e);
                return pass;
            }
        }
    }
}

/// Where a pass ships to.
struct Dest<'a, U> {
    up: &'a U,
    settings: &'a Settings,
    instance_id: &'a str,
}

/// Where one pass is with one of its files.
#[derive(Debug, Default, Clone)]
struct InPass {
    /// Done for this pass: shipped to where the pass first saw it end, or failed.
    left_out: bool,
    /// How far this pass reads it.
    edge: Option<Edge>,
}

/// Sends the plans saved by a run that stopped again, each under its own key, from exactly
/// the bytes the files whose plans name that key planned. False when an upload failed (the
/// pass ends); a file whose planned bytes cannot be read is left out of the pass with the
/// others of its plan.
async fn resend_plans<U: Uploader>(
    files: &mut [&mut Follower],
    dest: &Dest<'_, U>,
    state: &mut [InPass],
    pass: &mut KindPass,
) -> bool {
    let own = format!("{}{}/", dest.settings.prefix, dest.instance_id);
    let mut planned: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, f) in files.iter().enumerate() {
        if let Some(p) = f.pos.as_ref().and_then(|p| p.pending.as_ref()) {
            planned.entry(p.key.clone()).or_default().push(i);
        }
    }
    'plans: for (key, members) in planned {
        let mut parts = Vec::new();
        for &i in &members {
            match files[i].planned_bytes() {
                Ok(Some((start, data))) => parts.push(Part {
                    member: i,
                    start,
                    data,
                }),
                // Its bytes are gone: its plan is dropped; the others' are the object.
                Ok(None) => {}
                Err(e) => {
                    // Not sent without it: a later resend of this key for it alone would
                    // find the object there and move it past bytes that are not in it.
                    pass.errors.push(e);
                    for &j in &members {
                        state[j].left_out = true;
                    }
                    continue 'plans;
                }
            }
        }
        if parts.is_empty() {
            continue;
        }
        parts.sort_by_cached_key(|p| order(files[p.member]));
        match ship_object(files, parts, &key, dest.up).await {
            Ok(s) => pass.shipped.add(s),
            // Planned under the other key layout and refused (the host policy allows only
            // this run's prefix): nothing is there under that key from this put, and the
            // bytes are planned again under this run's. (Had a run before the switch stored it
            // and stopped before saving, its lines would now arrive twice: docs/hosts.md says
            // to switch while the old grant still holds.)
            Err(e) if e.denied() && !key.starts_with(&own) => {
                tracing::warn!(
                    "{e}; planned under another key layout: planning again under s3://{}/{own}",
                    dest.up.bucket()
                );
                for &i in &members {
                    if let Err(e) = files[i].forget_plan() {
                        pass.errors.push(e);
                        return false;
                    }
                }
            }
            Err(e) => {
                pass.errors.push(e);
                return false;
            }
        }
    }
    true
}

/// The files of the pass that have bytes to read now ([`Follower::ready`]), in no particular
/// order; the others are left out of the rest of the pass.
async fn ready_files<U: Uploader>(
    files: &mut [&mut Follower],
    dest: &Dest<'_, U>,
    state: &mut [InPass],
    pass: &mut KindPass,
) -> Vec<(usize, Ready)> {
    let mut ready = Vec::new();
    for (i, at) in state.iter_mut().enumerate() {
        if at.left_out {
            continue;
        }
        match files[i].ready(dest, &mut at.edge, &mut pass.shipped).await {
            Ok(Some(r)) => ready.push((i, r)),
            // Nothing to read when this pass looked: what nginx writes to it meanwhile
            // waits for the next pass, as for a file shipped to its edge.
            Ok(None) => at.left_out = true,
            Err(e) => {
                at.left_out = true;
                pass.errors.push(e);
            }
        }
    }
    ready
}

/// The parts of the next object: complete lines of the `ready` files, in object order, up to
/// `max_segment` bytes and as many formats as the metadata can name.
fn next_parts(
    files: &[&mut Follower],
    mut ready: Vec<(usize, Ready)>,
    max_segment: u64,
    state: &mut [InPass],
    pass: &mut KindPass,
) -> Vec<Part> {
    ready.sort_by_cached_key(|(i, _)| order(files[*i]));
    let mut parts: Vec<Part> = Vec::new();
    let mut budget = max_segment;
    for (i, r) in ready {
        if budget == 0 {
            break;
        }
        let pending = r.to - r.from;
        let want = pending.min(budget);
        let mut data = match files[i].read_at(r.from, want) {
            Ok(d) => d,
            Err(e) => {
                state[i].left_out = true;
                pass.errors.push(e);
                continue;
            }
        };
        // A line longer than a segment ships in pieces only as an object of its own.
        let n = plan::cut(&data, r.finished && want == pending, want == max_segment);
        if n == 0 {
            continue;
        }
        data.truncate(n);
        parts.push(Part {
            member: i,
            start: r.from,
            data,
        });
        // Too many formats to name: this file goes into the next object.
        if parts.len() > 1 && !formats_fit(&formats_of(files, &parts)) {
            parts.pop();
            continue;
        }
        budget -= n as u64;
    }
    parts
}

/// Saves each file's plan for a new object of `parts` (so that a restart sends exactly this
/// object again), then ships it.
async fn plan_and_ship<U: Uploader>(
    files: &mut [&mut Follower],
    parts: Vec<Part>,
    dest: &Dest<'_, U>,
) -> Result<Shipped, ShipError> {
    let key = object_key(files, &parts, dest.settings, dest.instance_id);
    let bundle = parts.len() > 1;
    for p in &parts {
        files[p.member].plan(p.end(), &key, bundle)?;
    }
    ship_object(files, parts, &key, dest.up).await
}

/// Uploads `parts` (planned under `key`) as one object, the format objects it names first,
/// then saves each file's position after its part.
async fn ship_object<U: Uploader>(
    files: &mut [&mut Follower],
    parts: Vec<Part>,
    key: &str,
    up: &U,
) -> Result<Shipped, ShipError> {
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.data.len()).sum());
    for p in &parts {
        body.extend_from_slice(&p.data);
    }
    let formats = formats_of(files, &parts);
    let shown: Vec<String> = parts
        .iter()
        .map(|p| files[p.member].shown.clone())
        .collect();
    let not_shipped = |source| match parts.as_slice() {
        [one] => ShipError::Upload {
            path: shown[0].clone(),
            start: one.start,
            end: one.end(),
            source,
        },
        many => ShipError::UploadBundle {
            files: many.len(),
            bytes: body.len() as u64,
            source,
        },
    };
    let gz = gzip(&body)
        .await
        .map_err(io_error(&files[parts[0].member].path, "gzip a segment"))?;
    let gzipped = gz.len();
    put_new_formats(files, &formats, up)
        .await
        .map_err(not_shipped)?;
    let sources: Vec<Source<'_>> = parts
        .iter()
        .zip(&shown)
        .map(|(p, path)| Source {
            path,
            start: p.start,
            end: p.end(),
        })
        .collect();
    let put = up
        .put(Segment {
            key,
            body: gz,
            sources,
            formats,
        })
        .await
        .map_err(not_shipped)?;
    for p in &parts {
        files[p.member].advance(p.end())?;
    }
    let now = Instant::now();
    for f in files.iter_mut() {
        f.last_ship = Some(now);
    }
    let shipped = ShippedObject {
        key,
        bucket: up.bucket(),
        parts: &parts,
        shown: &shown,
        bytes: body.len(),
        lines: memchr::memchr_iter(b'\n', &body).count(),
        gzipped,
    };
    shipped.log(put);
    Ok(Shipped {
        segments: 1,
        bytes: body.len() as u64,
    })
}

/// Puts the format objects among `formats` that no file has put in this process yet.
async fn put_new_formats<U: Uploader>(
    files: &mut [&mut Follower],
    formats: &plan::ObjectFormats,
    up: &U,
) -> Result<(), UploadError> {
    for k in formats.keys() {
        if files.iter().any(|f| f.formats_sent.contains(k)) {
            continue;
        }
        let Some(text) = files.iter().find_map(|f| {
            f.formats
                .iter()
                .find(|(fk, _)| fk == k)
                .map(|(_, t)| t.clone())
        }) else {
            continue;
        };
        up.put_format(k, &text).await?;
        for f in files.iter_mut() {
            if f.formats.iter().any(|(fk, _)| fk == k) {
                f.formats_sent.insert(k.to_string());
            }
        }
    }
    Ok(())
}

/// An object S3 has, as the log tells of it.
struct ShippedObject<'a> {
    key: &'a str,
    bucket: &'a str,
    parts: &'a [Part],
    /// The path of each part's file, as shown.
    shown: &'a [String],
    bytes: usize,
    lines: usize,
    gzipped: usize,
}

impl ShippedObject<'_> {
    /// Logs the object: stored now, or found there from a run that stopped before it saved
    /// the positions.
    fn log(&self, put: Put) {
        let ShippedObject {
            key,
            bucket,
            parts,
            shown,
            bytes,
            lines,
            gzipped,
        } = self;
        match (*parts, put) {
            ([one], Put::Stored { etag }) => tracing::info!(
                "shipped {} bytes {}..{} ({bytes} bytes, {lines} lines, {gzipped} gzipped) to s3://{bucket}/{key} (ETag {})",
                shown[0],
                one.start,
                one.end(),
                etag.as_deref().unwrap_or("-")
            ),
            ([one], Put::AlreadyThere) => tracing::info!(
                "{} bytes {}..{} ({lines} lines) were already in s3://{bucket}/{key} (uploaded by a run that stopped before saving its position); position saved",
                shown[0],
                one.start,
                one.end(),
            ),
            (many, put) => {
                let listed: Vec<String> = many
                    .iter()
                    .zip(*shown)
                    .map(|(p, path)| format!("{path} {}..{}", p.start, p.end()))
                    .collect();
                match put {
                    Put::Stored { etag } => tracing::info!(
                        "shipped {} files ({bytes} bytes, {lines} lines, {gzipped} gzipped) to s3://{bucket}/{key} (ETag {}): {}",
                        many.len(),
                        etag.as_deref().unwrap_or("-"),
                        listed.join(", ")
                    ),
                    Put::AlreadyThere => tracing::info!(
                        "{} files ({lines} lines) were already in s3://{bucket}/{key} (uploaded by a run that stopped before saving their positions); positions saved: {}",
                        many.len(),
                        listed.join(", ")
                    ),
                }
            }
        }
    }
}

// --- the command ---------------------------------------------------------------------------

/// Resolves on SIGTERM or ctrl-c (SIGINT); never when neither can be installed. The handlers
/// are installed when this is called, not when the future is first polled: the loop's first
/// pass may open an upload's connection before `select!` polls this future, and a SIGTERM
/// in between ended the process instead of stopping it (seen once under load).
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Err(e), Ok(mut int)) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); ctrl-c only");
                int.recv().await;
            }
            (Ok(mut term), Err(e)) => {
                tracing::warn!("cannot listen for ctrl-c ({e}); SIGTERM only");
                term.recv().await;
            }
            (Err(e), Err(_)) => {
                tracing::warn!("cannot listen for SIGTERM or ctrl-c ({e})");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// `nginx-cloudwatch-forwarder ship` (`--check` is [`check::command`]): the exit code, or an
/// error for the caller to print.
pub async fn command(args: ShipArgs) -> Result<ExitCode, (u8, String)> {
    let mut settings =
        Settings::new(&args, |n| std::env::var(n).ok()).map_err(|e| (64, e.to_string()))?;
    std::fs::create_dir_all(&settings.state_dir).map_err(|e| {
        (
            1,
            format!(
                "state directory {}: cannot create it: {e}",
                settings.state_dir.display()
            ),
        )
    })?;
    // Read once: every segment of this run carries the same host metadata.
    let nginx_bin = settings.nginx_bin.clone();
    let meta = host::read(&settings.imds_endpoint, nginx_bin.as_deref())
        .await
        .map_err(|e| (1, e.to_string()))?;
    let name = match &meta.hostname {
        Some((n, host::NameSource::Tag)) => format!("{n:?} (the Name tag)"),
        Some((n, host::NameSource::System)) => format!("{n:?} (the system's host name)"),
        None => "unknown (no Name tag, no system host name)".into(),
    };
    tracing::info!(
        "instance {}, hostname {name}, nginx {}",
        meta.instance_id,
        meta.nginx_version.as_deref().unwrap_or("version unknown")
    );
    let shared = ncf_aws::shared_config_with(ncf_aws::Retries::EnvironmentFirst).await;
    let owner = key_owner(settings.key_layout, &meta.instance_id, &shared).await?;
    let watch = choose_files(&mut settings, nginx_bin.as_deref())?;
    let up = S3Uploader {
        client: ncf_aws::s3_client_for(&shared),
        bucket: settings.bucket.clone(),
        key_layout: settings.key_layout,
        host_meta: meta.entries(),
    };
    run_watching(&settings, &up, &owner, watch)
        .await
        .map_err(|e| (1, e))
}

/// The segment after the prefix in this run's keys: the instance ID, or under
/// [`plan::KeyLayout::Userid`] the `aws:userid` STS answers (one GetCallerIdentity per start,
/// which needs no permission), checked to be this instance's profile session (else 64, as a
/// bad setting; 1 when STS cannot be reached).
async fn key_owner(
    layout: plan::KeyLayout,
    instance_id: &str,
    shared: &aws_config::SdkConfig,
) -> Result<String, (u8, String)> {
    match layout {
        plan::KeyLayout::Instance => Ok(instance_id.to_string()),
        plan::KeyLayout::Userid => {
            let user_id = host::caller_user_id(shared)
                .await
                .map_err(|e| (1, e.to_string()))?;
            let owner =
                plan::userid_segment(&user_id, instance_id).map_err(|e| (64, e.to_string()))?;
            tracing::info!("key layout userid: keys start {owner}/ (STS GetCallerIdentity)");
            Ok(owner)
        }
    }
}

/// What nginx's configuration says about the files to follow (or why it could not be read),
/// and what was decided from it: one road for `ship` and `ship --check`.
#[derive(Debug)]
pub struct Discovery {
    pub read: Result<(discover::Reader, discover::NginxConfig), String>,
    pub chosen: discover::Chosen,
    /// The `log_format` of each followed access log that one http format writes.
    pub formats: std::collections::BTreeMap<PathBuf, nginx_conf::Format>,
    /// Followed access logs shipped without a format, each with the reason.
    pub notes: Vec<String>,
}

/// Reads nginx's configuration (`nginx_bin`, else `nginx` on `PATH`, else the usual place)
/// and decides for the FILEs `asked` (none: every log it names), else by the names.
pub fn discover_files(
    asked: &[PathBuf],
    nginx_bin: Option<&str>,
    overrides: discover::Overrides,
) -> Discovery {
    let path_var = std::env::var("PATH").ok();
    let read = host::nginx_binary(nginx_bin, path_var.as_deref())
        .ok_or_else(|| "no nginx found (set NGINX_BIN)".to_string())
        .and_then(|bin| discover::read_config(&bin, overrides));
    let config = read
        .as_ref()
        .map(|(_, c)| c.logs.clone())
        .map_err(Clone::clone);
    let chosen = discover::choose(asked, &DEFAULT_FILES, &config);
    let (formats, notes) = match &read {
        Ok((_, c)) => discover::named_formats(&chosen.follow, &c.logs),
        Err(_) => Default::default(),
    };
    Discovery {
        read,
        chosen,
        formats,
        notes,
    }
}

/// What to follow, from nginx's configuration when it can be read (else from the names): each
/// FILE that says nothing is refused with a warning, and only when none is left does the
/// follower stop (64). The watch over the configuration, when it was read.
fn choose_files(
    settings: &mut Settings,
    nginx_bin: Option<&str>,
) -> Result<Option<discover::ConfigWatch>, (u8, String)> {
    let found = discover_files(&settings.asked, nginx_bin, settings.nginx_paths.clone());
    match &found.read {
        Ok((reader, config)) => {
            tracing::info!(
                "nginx's configuration names {} log file(s); {}",
                config.logs.files.len(),
                config.describe(reader)
            );
            for n in &config.logs.not_followed {
                tracing::info!("not followed: {} ({}), at {}", n.target, n.reason, n.at);
            }
            let masters = discover::running_masters(&reader.defaults);
            if let Some(warning) = discover::other_configuration(reader, &masters) {
                tracing::warn!("{warning}");
            }
        }
        Err(why) => tracing::info!(
            "nginx's configuration not read ({why}): access… and error… file names say the kind"
        ),
    }
    for (path, why) in &found.chosen.refused {
        tracing::warn!("{}: not followed: {why}", path.display());
    }
    if found.chosen.follow.is_empty() {
        return Err((64, "no log file to follow".into()));
    }
    settings.files = found.chosen.follow;
    settings.refused = found.chosen.refused;
    let Ok((reader, config)) = found.read else {
        return Ok(None);
    };
    for note in found.notes {
        tracing::warn!("{note}");
    }
    settings.log_formats = found
        .formats
        .iter()
        .map(|(p, f)| (p.clone(), f.to_config()))
        .collect();
    let all = settings.asked.is_empty();
    Ok(Some(discover::ConfigWatch::new(
        reader,
        &config,
        &settings.files,
        all,
    )))
}

/// One follower per state directory: an exclusive lock on `<state-dir>/lock`, held while the
/// returned file is open (a second `ship`, e.g. `--once` beside the service, would race).
pub fn lock_state_dir(dir: &Path) -> Result<File, String> {
    let path = dir.join("lock");
    let f = File::create(&path).map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another ship is running with the state directory {} (it holds {})",
            dir.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("{}: cannot lock: {e}", path.display()))
        }
    }
}

/// The loop, with any uploader. `instance_id` is what follows the prefix in the keys: the
/// instance ID, or `<role-id>:<instance-id>` under [`plan::KeyLayout::Userid`].
pub async fn run<U: Uploader>(
    settings: &Settings,
    up: &U,
    instance_id: &str,
) -> Result<ExitCode, String> {
    run_watching(settings, up, instance_id, None).await
}

/// [`run`], following nginx's configuration (`watch`) in follow mode: each pass, the access
/// logs whose formats changed are told their candidates.
pub async fn run_watching<U: Uploader>(
    settings: &Settings,
    up: &U,
    instance_id: &str,
    mut watch: Option<discover::ConfigWatch>,
) -> Result<ExitCode, String> {
    let _lock = lock_state_dir(&settings.state_dir)?;
    let mut followers = open_followers(settings, up.bucket(), instance_id)?;
    let missing = say_missing(&followers, settings.once)?;
    let dest = Dest {
        up,
        settings,
        instance_id,
    };
    if settings.once {
        let failed = pass_once(&mut followers, &dest).await + missing + settings.refused.len();
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    tracing::info!(
        "following {} file(s) every {} s or {} bytes, to s3://{}/{}{instance_id}/",
        followers.len(),
        settings.interval.as_secs(),
        settings.max_segment,
        up.bucket(),
        settings.prefix
    );
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut failures: u32 = 0;
    loop {
        if let Some(w) = watch.as_mut() {
            follow_changes(w, &mut followers, settings, instance_id);
        }
        let error = tokio::select! {
            e = pass_due(&mut followers, &dest) => e,
            _ = &mut shutdown => {
                tracing::info!("stopping: an upload in flight is abandoned; its position was not saved and the next start sends the same segment");
                return Ok(ExitCode::SUCCESS);
            }
        };
        let wait = match error {
            None => {
                failures = 0;
                POLL.min(settings.interval)
            }
            Some(e) => {
                failures = failures.saturating_add(1);
                let wait = Duration::from_secs(1u64 << failures.min(9)).min(MAX_BACKOFF);
                tracing::error!("{e}; trying again in {} s (position kept)", wait.as_secs());
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => {
                tracing::info!("stopping");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
}

/// A follower for each file of the settings, told the format that writes it when nginx's
/// configuration says.
fn open_followers(
    settings: &Settings,
    bucket: &str,
    instance_id: &str,
) -> Result<Vec<Follower>, String> {
    let mut followers = Vec::new();
    for (path, kind) in &settings.files {
        let mut f = Follower::open(path, *kind, &settings.state_dir).map_err(|e| e.to_string())?;
        if let Some(text) = settings.log_formats.get(path) {
            let key = format_key(&settings.prefix, instance_id, text);
            tracing::info!(
                "{}: written by {text}, named as s3://{bucket}/{key}",
                f.shown
            );
            f.set_formats(vec![(key, text.clone())]);
        }
        followers.push(f);
    }
    Ok(followers)
}

/// Says each path that names nothing, not taking it for "nothing to ship": a typo would
/// otherwise look like a quiet log for ever. A missing directory is an error; with `once`, so
/// is each missing file (how many is the answer), else it is followed once it appears.
fn say_missing(followers: &[Follower], once: bool) -> Result<usize, String> {
    let mut missing = 0;
    for f in followers {
        match f.missing() {
            None => {}
            Some(m @ Missing::Directory { .. }) => return Err(m.to_string()),
            Some(m) if once => {
                tracing::error!("{m}");
                missing += 1;
            }
            Some(m) => tracing::warn!("{m}; following it from its first line once it appears"),
        }
    }
    Ok(missing)
}

/// `--once`: one pass over every file, each kind together; the number of errors.
async fn pass_once<U: Uploader>(followers: &mut [Follower], dest: &Dest<'_, U>) -> usize {
    let mut failed = 0;
    for kind in [LogKind::Access, LogKind::Error] {
        let mut group: Vec<&mut Follower> =
            followers.iter_mut().filter(|f| f.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        let pass = pass_kind(&mut group, dest.up, dest.settings, dest.instance_id, true).await;
        for e in &pass.errors {
            tracing::error!("{e}");
        }
        failed += pass.errors.len();
        if pass.errors.is_empty() {
            for f in &group {
                if f.shipped == 0 && f.missing().is_none() {
                    tracing::info!("{}: nothing to ship", f.shown);
                }
            }
        }
    }
    failed
}

/// What changed in nginx's configuration since the last look: new files to follow, and new
/// candidate formats for the followed ones.
fn follow_changes(
    watch: &mut discover::ConfigWatch,
    followers: &mut Vec<Follower>,
    settings: &Settings,
    instance_id: &str,
) {
    let changes = watch.poll(|p| {
        followers
            .iter()
            .find(|f| f.path == p)
            .and_then(|f| f.position().map(|pos| pos.generation))
    });
    for c in changes {
        let formats = c
            .formats
            .into_iter()
            .map(|t| (format_key(&settings.prefix, instance_id, &t), t))
            .collect();
        if let Some(kind) = c.new {
            match Follower::open(&c.path, kind, &settings.state_dir) {
                Ok(mut f) => {
                    f.set_formats(formats);
                    followers.push(f);
                }
                Err(e) => tracing::error!("{e}: not followed"),
            }
        } else if let Some(f) = followers.iter_mut().find(|f| f.path == c.path) {
            f.set_formats(formats);
        }
    }
}

/// One pass of the follow loop: the files of one kind go together (one object per kind per
/// interval), each kind when any of its files is due. The first error, if any.
async fn pass_due<U: Uploader>(
    followers: &mut [Follower],
    dest: &Dest<'_, U>,
) -> Option<ShipError> {
    let mut first_error = None;
    for kind in [LogKind::Access, LogKind::Error] {
        let mut group: Vec<&mut Follower> =
            followers.iter_mut().filter(|f| f.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        let due = group.iter().any(|f| f.due(dest.settings.interval));
        let pass = pass_kind(&mut group, dest.up, dest.settings, dest.instance_id, due).await;
        if let Some(e) = pass.errors.into_iter().next() {
            first_error.get_or_insert(e);
        }
    }
    first_error
}

#[cfg(test)]
mod tests;
