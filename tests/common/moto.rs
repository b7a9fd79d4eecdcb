//! A moto server on a free loopback port, started per test and killed on drop.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatchlogs::config::Credentials;

/// How long moto may take to listen (it usually needs well under a second).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Moto {
    child: Child,
    pub endpoint: String,
    /// moto's own request log (its standard error), when started with [`Moto::start_logged`].
    request_log: Option<PathBuf>,
    /// Its standard error (the request log, when there is one), where it says its port.
    log: PathBuf,
}

/// One request as moto logged it on receiving it: `"PUT /bucket/key?tagging HTTP/1.1" 200`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub method: String,
    /// The path, percent-encoded as sent, without the query.
    pub path: String,
    pub query: String,
    pub status: u16,
}

impl Received {
    /// The S3 operation this request is, by method, path depth and query (the request kinds
    /// that S3 prices differently); "other" for anything else, e.g. the CloudWatch Logs and
    /// SQS calls, which all are `POST /`.
    pub fn s3_kind(&self) -> &'static str {
        // `/bucket/key`; the SDK writes bucket requests as `/bucket/` (path-style).
        let object = self
            .path
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(_, key)| !key.is_empty());
        let q = |name: &str| {
            self.query
                .split('&')
                .any(|p| p == name || p.starts_with(&format!("{name}=")))
        };
        match (self.method.as_str(), object) {
            ("POST", true) if q("uploads") => "CreateMultipartUpload",
            ("POST", true) if q("uploadId") => "CompleteMultipartUpload",
            ("PUT", true) if q("partNumber") => "UploadPart",
            ("DELETE", true) if q("uploadId") => "AbortMultipartUpload",
            ("PUT", true) if q("tagging") => "PutObjectTagging",
            ("PUT", true) => "PutObject",
            ("GET", true) if q("tagging") => "GetObjectTagging",
            ("GET", true) => "GetObject",
            ("HEAD", true) => "HeadObject",
            ("DELETE", true) => "DeleteObject",
            ("GET", false) if q("list-type") => "ListObjectsV2",
            ("GET", false) if q("notification") => "GetBucketNotificationConfiguration",
            ("PUT", false) if q("notification") => "PutBucketNotificationConfiguration",
            ("PUT", false) => "CreateBucket",
            _ => "other",
        }
    }
}

/// `MOTO_SERVER`, else `.venv/bin/moto_server` (what `scripts/test` installs), else `PATH`.
fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(super::MANIFEST_DIR).join(".venv/bin/moto_server");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("moto_server")
    }
}

/// How moto is started: as it is, enforcing IAM ([`Moto::start_iam`]), or with AWS's managed
/// IAM policies ([`Moto::start_with_aws_policies`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Iam,
    AwsPolicies,
}

/// The Python that runs `moto_server` (beside it in its virtual environment), else `python3`.
pub fn moto_python() -> PathBuf {
    let beside = moto_binary().with_file_name("python");
    if beside.exists() {
        beside
    } else {
        PathBuf::from("python3")
    }
}

impl Moto {
    pub fn start() -> Self {
        Self::start_with(None, Mode::Plain)
    }

    /// Started with its request log kept, for [`Moto::received`]: requests counted where they
    /// are received, not by the client's own account.
    pub fn start_logged() -> Self {
        Self::start_with(Some(Self::log_path()), Mode::Plain)
    }

    /// Logged as [`Moto::start_logged`], and able to enforce IAM: free until
    /// [`Moto::enforce_iam`], after which every request must be signed with credentials moto
    /// made (an assumed role's session, an IAM user's key) and is checked against that
    /// principal's policies. Run through tests/common/moto_server_quoted.py: stock moto 5.2.1
    /// checks S3 signatures against the decoded path and answers SignatureDoesNotMatch to
    /// every signed request for a key holding `:` (the userid key layout's).
    pub fn start_iam() -> Self {
        Self::start_with(Some(Self::log_path()), Mode::Iam)
    }

    /// With AWS's managed IAM policies loaded (`MOTO_IAM_LOAD_MANAGED_POLICIES`), so that
    /// `arn:aws:iam::aws:policy/…` can be attached (moto leaves them out by default).
    pub fn start_with_aws_policies() -> Self {
        Self::start_with(None, Mode::AwsPolicies)
    }

    fn log_path() -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        std::env::temp_dir().join(format!(
            "ncf-moto-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ))
    }

    /// From now on moto checks every request against IAM (`POST /moto-api/reset-auth`, body
    /// `0`: no more free requests). Setup done before it (bucket, role, policy, sessions) is
    /// not checked.
    pub fn enforce_iam(&self) {
        use std::io::{Read, Write};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).expect("connect to moto");
        write!(
            s,
            "POST /moto-api/reset-auth HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\n0"
        )
        .expect("send reset-auth");
        let mut answer = String::new();
        s.read_to_string(&mut answer)
            .expect("read reset-auth's answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "reset-auth: {answer}");
    }

    fn start_with(request_log: Option<PathBuf>, mode: Mode) -> Self {
        // moto binds port 0 itself and says which port it got: a port picked here and handed
        // over could be taken by another test's moto before this one binds it, and both tests
        // would then talk to the first (seen as lines "delivered twice" under load).
        let log = request_log.clone().unwrap_or_else(Self::log_path);
        let bin = moto_binary();
        let stderr = Stdio::from(std::fs::File::create(&log).expect("moto's log"));
        let mut cmd = match mode {
            Mode::Plain => Command::new(&bin),
            Mode::AwsPolicies => {
                let mut c = Command::new(&bin);
                c.env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true");
                c
            }
            Mode::Iam => {
                let mut c = Command::new(moto_python());
                c.arg(
                    PathBuf::from(super::MANIFEST_DIR).join("tests/common/moto_server_quoted.py"),
                );
                c
            }
        };
        let child = cmd
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {} ({e}); run scripts/test, which installs moto into .venv, or set MOTO_SERVER", bin.display())
            });
        let mut moto = Moto {
            child,
            endpoint: String::new(),
            request_log,
            log,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        // werkzeug writes ` * Running on http://127.0.0.1:PORT` once it is listening.
        let port = loop {
            let text = std::fs::read_to_string(&moto.log).unwrap_or_default();
            if let Some(port) = text.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("* Running on http://127.0.0.1:")
                    .and_then(|p| p.trim().parse::<u16>().ok())
            }) {
                break port;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited before listening: {status}: {text}");
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen within {READY_TIMEOUT:?}: {text}"
            );
            std::thread::sleep(Duration::from_millis(20)); // poll interval, not a synchronisation sleep
        };
        moto.endpoint = format!("http://127.0.0.1:{port}");
        moto
    }

    /// SDK configuration pointing both services at this server, with dummy credentials.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(
                aws_sdk_cloudwatchlogs::config::SharedCredentialsProvider::new(
                    Credentials::for_tests(),
                ),
            )
            .build()
    }

    /// Environment for running the binary against this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Moto {
    /// Every request moto has answered so far, in order, from its request log (werkzeug's
    /// `127.0.0.1 - - [date] "METHOD PATH HTTP/1.1" STATUS -` lines). moto writes a line once
    /// it has answered, so a request a client saw answered is in it.
    pub fn received(&self) -> Vec<Received> {
        let path = self
            .request_log
            .as_ref()
            .expect("started with Moto::start_logged");
        let text = std::fs::read_to_string(path).expect("read moto's request log");
        text.lines().filter_map(parse_request_line).collect()
    }

    /// The requests moto answered since `*seen` (a count of [`Moto::received`]), its own API
    /// (`/moto-api/`) left out; moves `*seen` on.
    pub fn received_since(&self, seen: &mut usize) -> Vec<Received> {
        let all = self.received();
        let new = all[*seen..]
            .iter()
            .filter(|r| !r.path.starts_with("/moto-api/"))
            .cloned()
            .collect();
        *seen = all.len();
        new
    }

    /// [`Moto::received`] counted by [`Received::s3_kind`].
    pub fn received_by_kind(&self) -> std::collections::BTreeMap<&'static str, u64> {
        by_kind(&self.received(), "/")
    }
}

/// What a host sends, counted by kind: S3's requests on `bucket` ([`Received::s3_kind`]) and
/// `POST /` (the one API call the shippers make outside S3, STS GetCallerIdentity) as `"sts"`;
/// anything else fails the test.
pub fn counted_on(
    bucket: &str,
    received: &[Received],
) -> std::collections::BTreeMap<&'static str, u64> {
    let mut counts = by_kind(received, &format!("/{bucket}/"));
    let sts = received
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/")
        .count() as u64;
    if sts > 0 {
        counts.insert("sts", sts);
    }
    let known: u64 = counts.values().sum();
    assert_eq!(known, received.len() as u64, "{received:?}");
    counts
}

/// Counts by kind, as [`counted_on`] and [`by_kind`] give them.
pub fn kinds(pairs: &[(&'static str, u64)]) -> std::collections::BTreeMap<&'static str, u64> {
    pairs.iter().copied().collect()
}

/// The requests whose path starts with `prefix` (e.g. `/bucket/`), counted by
/// [`Received::s3_kind`].
pub fn by_kind(
    received: &[Received],
    prefix: &str,
) -> std::collections::BTreeMap<&'static str, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for r in received.iter().filter(|r| r.path.starts_with(prefix)) {
        *counts.entry(r.s3_kind()).or_insert(0) += 1;
    }
    counts
}

fn parse_request_line(line: &str) -> Option<Received> {
    let (_, rest) = line.split_once("] \"")?;
    let (request, rest) = rest.split_once("\" ")?;
    let mut words = request.split(' ');
    let (method, target) = (words.next()?, words.next()?);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let status = rest.split(' ').next()?.parse().ok()?;
    Some(Received {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        status,
    })
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// moto with one bucket, and clients for it (S3 with path-style addressing, CloudWatch Logs).
pub async fn with_bucket(
    bucket: &str,
) -> (Moto, aws_sdk_s3::Client, aws_sdk_cloudwatchlogs::Client) {
    let moto = Moto::start();
    let (s3, logs) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create bucket {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    (moto, s3, logs)
}

/// The keys in `bucket`, sorted (one page: the tests' buckets hold fewer than 1,000).
pub async fn bucket_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list");
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

/// The user metadata (`x-amz-meta-*`) of `bucket/key`, sorted.
pub async fn object_metadata(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Vec<(String, String)> {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
    let mut meta: Vec<(String, String)> = head
        .metadata()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    meta.sort();
    meta
}

/// `code` run by moto's Python (which has moto, cfn-lint and PyYAML) with `args`; what it
/// printed, as JSON.
pub fn python_json(code: &str, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let python = moto_python();
    let out = Command::new(&python)
        .args(["-c", code])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{} -c {code:?}: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// What `parse` printed: each event's timestamp and message, a JSON line each.
pub fn printed_events(stdout: &[u8]) -> Vec<(i64, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let ts = v["timestamp"].as_i64().expect("timestamp");
            let message = v["message"].as_str().expect("message").to_string();
            (ts, message)
        })
        .collect()
}

/// Uploads `body` as `bucket/key`; its ETag (as S3 returns it, quoted).
pub async fn upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) -> String {
    let out = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "put s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            )
        });
    out.e_tag().expect("an ETag").to_string()
}

/// Every event of a stream, oldest first, following `nextForwardToken` to the end: its
/// timestamp and message.
pub async fn read_stream(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> Vec<(i64, String)> {
    read_stream_events(logs, group, stream)
        .await
        .into_iter()
        .map(|e| {
            (
                e.timestamp().unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect()
}

/// Every event of a stream as GetLogEvents gives it (with `ingestionTime`, the moment it was
/// stored), oldest first.
pub async fn read_stream_events(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
) -> Vec<aws_sdk_cloudwatchlogs::types::OutputLogEvent> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let resp = logs
            .get_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .start_from_head(true)
            .set_next_token(token.clone())
            .limit(10_000)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "get_log_events {group}/{stream}: {}",
                    aws_sdk_cloudwatchlogs::error::DisplayErrorContext(&e)
                )
            });
        let next = resp.next_forward_token().map(str::to_string);
        let events = resp.events.unwrap_or_default();
        if events.is_empty() || next == token {
            out.extend(events);
            return out;
        }
        out.extend(events);
        token = next;
    }
}

/// Variables removed before a run, besides every forwarder setting
/// ([`nginx_cloudwatch_forwarder::config::FORWARDER_VARS`]), so that the caller's environment
/// cannot change what a test asserts.
const RUN_VARS: [&str; 6] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
];

/// A `nginx-cloudwatch-forwarder replay --event FILE` command for `event` with `env` (e.g.
/// [`Moto::env`] plus settings) and the caller's forwarder settings removed; the event file
/// (remove it when done).
pub fn replay_command(event: &serde_json::Value, env: &[(&str, String)]) -> (Command, PathBuf) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "ncf-replay-{}-{}.json",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, event.to_string()).expect("write the event file");
    let mut cmd = forwarder_command(&["replay", "--event"], env);
    cmd.arg(&path);
    (cmd, path)
}

/// A `nginx-cloudwatch-forwarder ARGS…` command with `env` (e.g. [`Moto::env`] plus settings)
/// and the caller's forwarder settings removed.
pub fn forwarder_command(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder"));
    cmd.args(args);
    for var in RUN_VARS
        .iter()
        .chain(&nginx_cloudwatch_forwarder::config::FORWARDER_VARS)
    {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

/// The exit code and the summary a finished `replay` printed.
pub fn replay_result(out: &std::process::Output) -> (Option<i32>, serde_json::Value) {
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "replay printed no JSON summary ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), summary)
}

/// Runs `nginx-cloudwatch-forwarder replay --event FILE` on `event` with `env` (e.g.
/// [`Moto::env`] plus settings); the exit code and the summary it printed.
pub fn replay(
    event: &serde_json::Value,
    env: &[(&str, String)],
) -> (Option<i32>, serde_json::Value) {
    let (mut cmd, path) = replay_command(event, env);
    let out = cmd.output().expect("run the binary");
    let _ = std::fs::remove_file(&path);
    replay_result(&out)
}

/// Runs `nginx-cloudwatch-forwarder ARGS…` ([`forwarder_command`]) to the end: exit code,
/// stdout, stderr.
pub fn run(args: &[&str], env: &[(&str, String)]) -> (Option<i32>, String, String) {
    let out = forwarder_command(args, env)
        .output()
        .expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
