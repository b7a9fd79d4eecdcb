//! Shared test support: in-memory fakes for the ports, a moto server harness, and helpers.
#![allow(dead_code)]

pub mod filter_pattern;
pub mod http;
pub mod iam;
pub mod imds;
pub mod insight_rule;
pub mod moto;
pub mod nginx;
pub mod notify;
pub mod oracles;
pub mod relay;
pub mod strict_logs;
pub mod template;
pub mod truth;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use nginx_cloudwatch_forwarder::batch::{
    EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BATCH_SPAN_MS,
    MAX_EVENT_MESSAGE_BYTES,
};
use nginx_cloudwatch_forwarder::checkpoint::ProgressRecord;
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::event::ObjectRef;
use nginx_cloudwatch_forwarder::parse::LogEvent;
use nginx_cloudwatch_forwarder::ports::{
    CheckpointError, CheckpointStore, Entity, LeaseFuture, LeaseRecord, LeaseStore, LeaseVersion,
    LogSink, ObjectSource, OpenRequest, OpenedObject, PutReport, SinkError, SourceError, Stored,
};

pub const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The AWS CLI's configuration in tests: a region and path-style addressing (moto's buckets
/// are not DNS names), so that nothing is read from the real `~/.aws`.
pub const AWS_CLI_CONFIG: &str =
    "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n";

/// A fresh directory under the system temp dir (`ncf-TAG-PID-N`) with `subdirs` in it,
/// removed on drop.
pub struct Scratch(std::path::PathBuf);

impl Scratch {
    pub fn new(tag: &str, subdirs: &[&str]) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ncf-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        for sub in subdirs {
            std::fs::create_dir_all(dir.join(sub)).expect("scratch dir");
        }
        Scratch(dir)
    }

    pub fn path(&self, rel: &str) -> std::path::PathBuf {
        self.0.join(rel)
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.0
    }

    /// `aws-config` in it, holding [`AWS_CLI_CONFIG`] (for `AWS_CONFIG_FILE`); its path.
    pub fn aws_cli_config(&self) -> std::path::PathBuf {
        let p = self.path("aws-config");
        std::fs::write(&p, AWS_CLI_CONFIG).expect("write AWS config");
        p
    }
}

/// scripts/ship-nginx-logs.sh.
pub fn shipper_script_path() -> std::path::PathBuf {
    std::path::Path::new(MANIFEST_DIR).join("scripts/ship-nginx-logs.sh")
}

/// scripts/ship-nginx-logs.sh in a clean environment: `PATH` alone of the caller's, `scratch`'s
/// `home`, `tmp` and `aws-config` ([`Scratch::aws_cli_config`]; nothing read from `~/.aws`),
/// the C locale, the region, the IMDS at `imds`, `bucket`, and the tests' AWS CLI.
pub fn shipper_script(scratch: &Scratch, imds: &str, bucket: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(shipper_script_path());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch.path("home"))
        .env("TMPDIR", scratch.path("tmp"))
        .env("LC_ALL", "C")
        .env("AWS_CONFIG_FILE", scratch.path("aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            scratch.path("no-credentials"),
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("IMDS_ENDPOINT", imds)
        .env("NGINX_LOG_BUCKET", bucket)
        .env("AWS_CLI", notify::aws_cli());
    cmd
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn read_fixture(rel: &str) -> Vec<u8> {
    let path = format!("{MANIFEST_DIR}/{rel}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

pub fn event_fixture(name: &str) -> serde_json::Value {
    serde_json::from_slice(&read_fixture(&format!("events/{name}"))).expect("event fixture is JSON")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("write to memory");
    e.finish().expect("finish gzip in memory")
}

/// `cmd` run with `input` on its standard input: its output (stdout and stderr captured).
pub fn run_with_stdin(cmd: &mut std::process::Command, input: &str) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write to its stdin");
    child.wait_with_output().expect("its output")
}

/// `data` gunzipped (every member of a multi-member file).
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// The number of each line of a gzip'd object whose lines name their number in their request
/// (`GET /r/<n>`), in order: what the steady-traffic tests wrote, read back.
pub fn request_numbers(gz: &[u8]) -> Vec<u64> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .expect("gzip");
    text.lines()
        .map(|line| {
            line.split_once("/r/")
                .and_then(|(_, r)| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no line number in {line:?}"))
        })
        .collect()
}

/// The fixtures in tests/data and events/ are from 2026-11-24 10:00 UTC; handler tests run "at"
/// 2026-11-24 12:00 UTC so that CloudWatch's 14-day window does not depend on today's date.
pub const FIXTURE_NOW_MS: i64 = 1_795_521_600_000;

pub fn fixture_clock() -> nginx_cloudwatch_forwarder::forward::Clock {
    std::sync::Arc::new(|| FIXTURE_NOW_MS)
}

pub fn default_config() -> Config {
    Config::from_lookup(|_| None).expect("defaults are valid")
}

/// A `combined` access line at `ts_ms`.
pub fn combined_line(ip: &str, ts_ms: i64, path: &str, status: u16) -> String {
    let t = jiff::Timestamp::from_millisecond(ts_ms).expect("valid time");
    let local = t.strftime("%d/%b/%Y:%H:%M:%S +0000");
    format!(r#"{ip} - - [{local}] "GET {path} HTTP/1.1" {status} 512 "-" "integration-test/1.0""#)
}

/// `n` combined lines from an hour ago, one millisecond apart, each with its own request URI
/// `/{tag}/{i}`.
pub fn numbered_log(n: usize, tag: &str) -> String {
    let start = now_ms() - 3_600_000;
    (0..n)
        .map(|i| combined_line("10.0.0.1", start + i as i64, &format!("/{tag}/{i}"), 200) + "\n")
        .collect()
}

/// How often each request URI arrived, from JSON messages (timestamp, message).
pub fn uri_counts(events: &[(i64, String)]) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for (_, m) in events {
        let v: serde_json::Value = serde_json::from_str(m).expect("JSON");
        *out.entry(v["request_uri"].as_str().expect("uri").to_string())
            .or_default() += 1;
    }
    out
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// An S3 event for one object with its ETag, as S3 sends it.
pub fn s3_event_with_etag(bucket: &str, key: &str, etag: &str) -> serde_json::Value {
    let mut ev = s3_event(bucket, &[key]);
    ev["Records"][0]["s3"]["object"]["eTag"] =
        serde_json::Value::String(etag.trim_matches('"').to_string());
    ev
}

/// S3 event notification naming `keys` (URL-encoded as S3 does) in `bucket`.
pub fn s3_event(bucket: &str, keys: &[&str]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            let encoded: String = k
                .bytes()
                .map(|b| match b {
                    b' ' => "+".to_string(),
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            serde_json::json!({
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2026-11-24T10:00:12.345Z", "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:TEST"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "test",
                "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {"key": encoded, "size": 1, "sequencer": "00"}}
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// Objects held in memory, keyed by (bucket, key).
#[derive(Default)]
pub struct FakeSource {
    /// (bucket, key) → (body, ETag).
    pub objects: HashMap<(String, String), (Vec<u8>, String)>,
    pub last_modified_ms: Option<i64>,
    /// User metadata every object has (lower-case names, as S3 returns them).
    pub metadata: Vec<(String, String)>,
    /// (bucket, key) → more user metadata that object alone has.
    pub object_metadata: HashMap<(String, String), Vec<(String, String)>>,
    /// Every open request, in order.
    pub opens: Mutex<Vec<OpenRequest>>,
    /// The key of every open, in order.
    pub opened_keys: Mutex<Vec<String>>,
}

impl FakeSource {
    pub fn with(self, bucket: &str, key: &str, body: Vec<u8>) -> Self {
        let etag = fake_etag(&body);
        self.with_etag(bucket, key, body, &etag)
    }

    /// The object `key` has the user metadata `name` = `value` (besides [`Self::metadata`]).
    pub fn with_meta(mut self, bucket: &str, key: &str, name: &str, value: &str) -> Self {
        self.object_metadata
            .entry((bucket.to_string(), key.to_string()))
            .or_default()
            .push((name.to_string(), value.to_string()));
        self
    }

    /// An object with a given ETag (the one an event fixture names).
    pub fn with_etag(mut self, bucket: &str, key: &str, body: Vec<u8>, etag: &str) -> Self {
        self.objects.insert(
            (bucket.to_string(), key.to_string()),
            (body, etag.to_string()),
        );
        self
    }
}

/// A stable fake ETag: a hash of the body.
pub fn fake_etag(body: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("{:016x}", h.finish())
}

impl ObjectSource for FakeSource {
    async fn open(&self, obj: &ObjectRef, req: &OpenRequest) -> Result<OpenedObject, SourceError> {
        self.opens.lock().expect("not poisoned").push(req.clone());
        self.opened_keys
            .lock()
            .expect("not poisoned")
            .push(obj.key.clone());
        let Some((body, etag)) = self.objects.get(&(obj.bucket.clone(), obj.key.clone())) else {
            return Err(SourceError::NotFound {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
            });
        };
        let etag = etag.clone();
        if req.if_match.as_ref().is_some_and(|e| *e != etag) {
            return Err(SourceError::Changed {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
            });
        }
        let from = usize::try_from(req.from_offset)
            .unwrap_or(usize::MAX)
            .min(body.len());
        Ok(OpenedObject {
            body: Box::new(std::io::Cursor::new(body[from..].to_vec())),
            last_modified_ms: self.last_modified_ms,
            etag: Some(etag),
            metadata: self
                .metadata
                .iter()
                .chain(
                    self.object_metadata
                        .get(&(obj.bucket.clone(), obj.key.clone()))
                        .into_iter()
                        .flatten(),
                )
                .cloned()
                .collect(),
        })
    }
}

/// Progress records in memory, with the number of saves and an optional refusal.
#[derive(Default)]
pub struct FakeCheckpoints {
    pub records: Mutex<HashMap<(String, String), Stored>>,
    pub saves: std::sync::atomic::AtomicUsize,
    pub deny: bool,
}

impl FakeCheckpoints {
    pub fn progress(&self, bucket: &str, key: &str) -> Option<ProgressRecord> {
        self.records
            .lock()
            .expect("not poisoned")
            .get(&(bucket.into(), key.into()))
            .and_then(|s| s.progress.clone())
    }
}

impl CheckpointStore for FakeCheckpoints {
    async fn load(&self, obj: &ObjectRef) -> Result<Stored, CheckpointError> {
        if self.deny {
            return Err(CheckpointError::Denied {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                detail: "AccessDenied".into(),
            });
        }
        Ok(self
            .records
            .lock()
            .expect("not poisoned")
            .get(&(obj.bucket.clone(), obj.key.clone()))
            .cloned()
            .unwrap_or_default())
    }

    async fn save(
        &self,
        obj: &ObjectRef,
        other_tags: &[(String, String)],
        progress: &ProgressRecord,
    ) -> Result<(), CheckpointError> {
        if self.deny {
            return Err(CheckpointError::Denied {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                detail: "AccessDenied".into(),
            });
        }
        // Through the tag encoding, as S3 would store it.
        let decoded = ProgressRecord::decode(&progress.encode()).expect("progress round-trips");
        self.saves
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.records.lock().expect("not poisoned").insert(
            (obj.bucket.clone(), obj.key.clone()),
            Stored {
                progress: Some(decoded),
                other_tags: other_tags.to_vec(),
            },
        );
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Put {
    pub group: String,
    pub stream: String,
    pub events: Vec<LogEvent>,
}

/// Records every put, and fails the test on any PutLogEvents rule a batch breaks.
#[derive(Default)]
pub struct FakeSink {
    pub puts: Mutex<Vec<Put>>,
    /// Refuse every put after this many succeeded.
    pub fail_after: Option<usize>,
}

impl FakeSink {
    pub fn puts(&self) -> Vec<Put> {
        self.puts.lock().expect("not poisoned").clone()
    }

    /// Messages per (group, stream), in the order they were put.
    pub fn messages(&self) -> HashMap<(String, String), Vec<String>> {
        let mut out: HashMap<(String, String), Vec<String>> = HashMap::new();
        for p in self.puts() {
            out.entry((p.group, p.stream))
                .or_default()
                .extend(p.events.into_iter().map(|e| e.message.text()));
        }
        out
    }
}

pub fn assert_batch_valid(events: &[LogEvent]) {
    assert!(!events.is_empty(), "empty batch");
    assert!(events.len() <= MAX_BATCH_EVENTS, "{} events", events.len());
    let bytes: usize = events
        .iter()
        .map(|e| e.message.len() + EVENT_OVERHEAD_BYTES)
        .sum();
    assert!(bytes <= MAX_BATCH_BYTES, "{bytes} bytes");
    assert!(
        events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp),
        "batch not sorted by time"
    );
    let span = events[events.len() - 1].timestamp - events[0].timestamp;
    assert!(span < MAX_BATCH_SPAN_MS, "span {span} ms");
    for e in events {
        assert!(!e.message.is_empty(), "empty message");
        assert!(
            e.message.len() <= MAX_EVENT_MESSAGE_BYTES,
            "event of {} bytes",
            e.message.len()
        );
    }
}

impl LogSink for FakeSink {
    async fn put(
        &self,
        group: &str,
        stream: &str,
        _entity: Option<&Entity>,
        events: Vec<LogEvent>,
    ) -> Result<PutReport, SinkError> {
        assert_batch_valid(&events);
        let mut puts = self.puts.lock().expect("not poisoned");
        if self.fail_after.is_some_and(|n| puts.len() >= n) {
            return Err(SinkError::Rejected {
                group: group.into(),
                stream: stream.into(),
                detail: "injected failure".into(),
            });
        }
        puts.push(Put {
            group: group.into(),
            stream: stream.into(),
            events,
        });
        Ok(PutReport::default())
    }

    async fn find_missing(
        &self,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
    ) -> Result<Vec<usize>, SinkError> {
        let mut found = nginx_cloudwatch_forwarder::batch::ReadBack::new(events);
        for put in self.puts.lock().expect("not poisoned").iter() {
            if put.group == group && put.stream == stream {
                for e in &put.events {
                    found.saw(e.timestamp, &e.message.text());
                }
            }
        }
        Ok(found.missing())
    }
}

/// Leases in memory with S3's conditional-write semantics (create if absent, replace and
/// release only at the version read), by object key.
#[derive(Default)]
pub struct FakeLeases {
    pub leases: Mutex<HashMap<String, (u64, LeaseRecord)>>,
    next: std::sync::atomic::AtomicU64,
}

impl FakeLeases {
    /// A lease on `key` by `holder` that expired a minute ago (its holder died).
    pub fn expired(&self, key: &str, holder: &str) {
        self.leases.lock().expect("not poisoned").insert(
            key.to_string(),
            (
                0,
                LeaseRecord {
                    holder: holder.into(),
                    expires_ms: now_ms() - 60_000,
                },
            ),
        );
    }

    fn version(&self) -> u64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }
}

impl LeaseStore for FakeLeases {
    fn create<'a>(
        &'a self,
        obj: &'a ObjectRef,
        terms: &'a LeaseRecord,
    ) -> LeaseFuture<'a, Option<LeaseVersion>> {
        let mut l = self.leases.lock().expect("not poisoned");
        let out = if l.contains_key(&obj.key) {
            None
        } else {
            let v = self.version();
            l.insert(obj.key.clone(), (v, terms.clone()));
            Some(LeaseVersion(v.to_string()))
        };
        Box::pin(async move { Ok(out) })
    }

    fn read<'a>(
        &'a self,
        obj: &'a ObjectRef,
    ) -> LeaseFuture<'a, Option<(LeaseVersion, LeaseRecord)>> {
        let out = self
            .leases
            .lock()
            .expect("not poisoned")
            .get(&obj.key)
            .map(|(v, t)| (LeaseVersion(v.to_string()), t.clone()));
        Box::pin(async move { Ok(out) })
    }

    fn replace<'a>(
        &'a self,
        obj: &'a ObjectRef,
        version: &'a LeaseVersion,
        terms: &'a LeaseRecord,
    ) -> LeaseFuture<'a, Option<LeaseVersion>> {
        let mut l = self.leases.lock().expect("not poisoned");
        let out = match l.get(&obj.key) {
            Some((v, _)) if v.to_string() == version.0 => {
                let v = self.version();
                l.insert(obj.key.clone(), (v, terms.clone()));
                Some(LeaseVersion(v.to_string()))
            }
            _ => None,
        };
        Box::pin(async move { Ok(out) })
    }

    fn release<'a>(&'a self, obj: &'a ObjectRef, version: &'a LeaseVersion) -> LeaseFuture<'a, ()> {
        let mut l = self.leases.lock().expect("not poisoned");
        if l.get(&obj.key)
            .is_some_and(|(v, _)| v.to_string() == version.0)
        {
            l.remove(&obj.key);
        }
        Box::pin(async move { Ok(()) })
    }

    fn is_lease_key(&self, _key: &str) -> bool {
        false
    }
}

/// The bucket of [`handle_keys`]' objects.
pub const FAKE_BUCKET: &str = "b";

/// One invocation over the objects `keys` of [`FAKE_BUCKET`] in `source`, with the fixture clock
/// and progress records in `store`; the summary and the sink.
pub async fn handle_keys(
    source: FakeSource,
    sink: FakeSink,
    config: Config,
    store: &std::sync::Arc<FakeCheckpoints>,
    keys: &[&str],
) -> (nginx_cloudwatch_forwarder::summary::Summary, FakeSink) {
    handle_event(source, sink, config, store, &s3_event(FAKE_BUCKET, keys)).await
}

/// The messages `sink` was sent, in the order of its puts.
pub fn sent_messages(sink: &FakeSink) -> Vec<String> {
    sink.puts()
        .into_iter()
        .flat_map(|p| p.events)
        .map(|e| e.message.text())
        .collect()
}

/// One invocation over the object `bucket/key` holding `body`, with `MAX_CONCURRENT_PUTS` set
/// to `max_puts`, the fixture clock and progress records in `store`; the summary and the sink.
pub async fn forward_one<K: LogSink + 'static>(
    sink: K,
    store: &std::sync::Arc<FakeCheckpoints>,
    (bucket, key, body): (&str, &str, Vec<u8>),
    max_puts: &str,
) -> (nginx_cloudwatch_forwarder::summary::Summary, K) {
    let config =
        Config::from_lookup(|k| (k == "MAX_CONCURRENT_PUTS").then(|| max_puts.to_string()))
            .expect("valid");
    let source = FakeSource::default().with(bucket, key, body);
    handle_event(source, sink, config, store, &s3_event(bucket, &[key])).await
}

/// One invocation with `payload`, the fixture clock and progress records in `store`; the
/// summary and the sink.
async fn handle_event<K: LogSink + 'static>(
    source: FakeSource,
    sink: K,
    config: Config,
    store: &std::sync::Arc<FakeCheckpoints>,
    payload: &serde_json::Value,
) -> (nginx_cloudwatch_forwarder::summary::Summary, K) {
    let h = nginx_cloudwatch_forwarder::handler::Handler::new(source, sink, config)
        .with_clock(fixture_clock())
        .with_checkpoints(store.clone());
    let summary = h.handle(payload).await.expect("S3 event");
    let sink = std::sync::Arc::try_unwrap(h.sink)
        .ok()
        .expect("no other owner");
    (summary, sink)
}

/// The follower of `dir`'s `access.log` and `error.log` every `interval` seconds into
/// `bucket` ([`ship_command`]), its state in `dir/state` and its log in `dir/follower.log`.
pub fn spawn_follower(
    moto: &moto::Moto,
    imds: &imds::ImdsServer,
    bucket: &str,
    dir: &std::path::Path,
    interval: u64,
) -> std::process::Child {
    ship_command(
        moto,
        imds,
        bucket,
        &dir.join("state"),
        &dir.join("access.log"),
    )
    .arg(dir.join("error.log"))
    .args(["--interval", &interval.to_string()])
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(dir.join("follower.log")).expect("follower log"))
    .spawn()
    .expect("start the follower")
}

/// `ship --state-dir STATE LOG` against moto and the IMDS stand-in, in a hermetic environment.
pub fn ship_command(
    moto: &moto::Moto,
    imds: &imds::ImdsServer,
    bucket: &str,
    state: &std::path::Path,
    log: &std::path::Path,
) -> std::process::Command {
    let mut cmd = ship_command_files(moto, imds, bucket, state, &[]);
    cmd.arg(log);
    cmd
}

/// `ship --state-dir STATE FILE…` (none: what nginx's configuration names), as
/// [`ship_command`].
pub fn ship_command_files(
    moto: &moto::Moto,
    imds: &imds::ImdsServer,
    bucket: &str,
    state: &std::path::Path,
    files: &[&std::path::Path],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder"));
    cmd.arg("ship").arg("--state-dir").arg(state).args(files);
    for v in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_ENDPOINT_URL_S3",
        "NGINX_LOG_PREFIX",
        "SHIP_INTERVAL",
        "SHIP_MAX_SEGMENT",
        "SHIP_STATE_DIR",
        "AWS_MAX_ATTEMPTS",
    ] {
        cmd.env_remove(v);
    }
    cmd.envs(moto.env())
        .env("NGINX_LOG_BUCKET", bucket)
        .env("IMDS_ENDPOINT", &imds.endpoint);
    cmd
}

/// Runs a future to its end on a current-thread runtime (tests and benches that are not async).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}
