//! The binary under cargo-lambda's emulator, run the way docs/user-guide.md's "Local commands" says:
//! `cargo lambda watch` builds and serves it, `cargo lambda invoke --data-file` hands it an
//! event, and moto plays S3, SQS and CloudWatch Logs. The emulator sends
//! `Lambda-Runtime-Deadline-Ms: 600000` (a relative time, not Lambda's absolute one), which once
//! stopped every object before its first batch.
//!
//! cargo-lambda comes from the test venv (`scripts/venv`, pinned in
//! scripts/requirements-test.txt). `cargo lambda watch` runs `cargo run --bin
//! nginx-cloudwatch-forwarder` in this package, with the same profile and target directory as
//! `cargo build` and `cargo test`, so after `cargo test` has built the binary it only checks that
//! it is fresh.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::moto::{Moto, read_stream};
use common::notify::NotifyingBucket;
use common::{MANIFEST_DIR, combined_line, gzip, now_ms, s3_event};
use nginx_cloudwatch_forwarder::aws::clients_from;
use serde_json::Value;

const FUNCTION: &str = "nginx-cloudwatch-forwarder";
const INSTANCE: &str = "i-0123456789abcdef0";
/// The function's log groups (`LOG_GROUP_TEMPLATE` handed to it through the emulator).
const ACCESS_GROUP: &str = "cargo-lambda-access";
const ERROR_GROUP: &str = "cargo-lambda-error";
const ACCESS_LINES: usize = 300;
const ERROR_ENTRIES: usize = 40;
/// How long `cargo lambda watch` may take to listen (it does before building the function).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `cargo lambda invoke` may take. The first one waits for `cargo run`, which
/// builds the binary when it is not fresh (minutes when cold, on a busy machine).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the function's summary line may take to reach the emulator's output.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);
/// Between two looks at a process or a file while polling.
const POLL: Duration = Duration::from_millis(50);

/// `CARGO_LAMBDA`, else `.venv/bin/cargo-lambda` (what scripts/venv installs). Missing, the
/// test fails saying how to install it: it is part of the suite, not optional.
fn cargo_lambda() -> PathBuf {
    let path = std::env::var_os("CARGO_LAMBDA").map_or_else(
        || Path::new(MANIFEST_DIR).join(".venv/bin/cargo-lambda"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no cargo-lambda at {}: run scripts/test (its scripts/venv installs cargo-lambda from \
         scripts/requirements-test.txt into .venv), or set CARGO_LAMBDA",
        path.display()
    );
    path
}

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ncf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `cargo lambda watch` on a free loopback port, in its own process group. Drop kills it and
/// every process under it: the function (`cargo run` and the binary) runs in a process group
/// of its own, so killing the watch's group alone would leave it behind.
struct Watch {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: TempDir,
    invocations: usize,
}

/// What one `cargo lambda invoke` ended with.
struct Invoked {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Watch {
    fn start(moto: &Moto, name: &str) -> Self {
        let dir = TempDir::new(name);
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log = dir.0.join("watch.log");
        let out = File::create(&log).expect("create the watch log");
        let err = out.try_clone().expect("clone the log file");
        let mut command = Command::new(cargo_lambda());
        command
            // Other edits in the tree must not restart the function in the middle of a test;
            // the build must neither change Cargo.lock nor reach the network.
            .args(["lambda", "watch", "--ignore-changes"])
            .args(["--locked", "--offline"])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()])
            .args(["--bin", FUNCTION]);
        if !cfg!(debug_assertions) {
            // `cargo test --release` built the binary with the release profile: use that one.
            command.arg("--release");
        }
        let child = command
            .current_dir(MANIFEST_DIR)
            // The function inherits this environment: moto's endpoint and dummy credentials,
            // and its own configuration.
            .envs(moto.env())
            .env("LOG_GROUP_TEMPLATE", "cargo-lambda-{log_type}")
            .env("RETENTION_DAYS", "14")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", cargo_lambda().display()));
        let mut watch = Watch {
            child,
            port,
            log,
            dir,
            invocations: 0,
        };
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), POLL).is_err() {
            if let Ok(Some(status)) = watch.child.try_wait() {
                panic!(
                    "cargo lambda watch exited before listening ({status}):\n{}",
                    watch.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on {port} within {LISTEN_TIMEOUT:?}:\n{}",
                watch.log_text()
            );
            std::thread::sleep(POLL); // poll interval, not a synchronisation sleep
        }
        watch
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `cargo lambda invoke FUNCTION --data-file <event>`, the event written to a file first.
    async fn invoke(&mut self, event: &Value) -> Invoked {
        self.invocations += 1;
        let n = self.invocations;
        let file = self.dir.0.join(format!("event-{n}.json"));
        std::fs::write(&file, event.to_string()).expect("write the event file");
        let (stdout, stderr) = (
            self.dir.0.join(format!("invoke-{n}.out")),
            self.dir.0.join(format!("invoke-{n}.err")),
        );
        let mut child = Command::new(cargo_lambda())
            .args(["lambda", "invoke", FUNCTION])
            .args(["--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &self.port.to_string()])
            .arg("--data-file")
            .arg(&file)
            .args(["--output-format", "json"])
            .current_dir(MANIFEST_DIR)
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("create a file"))
            .stderr(File::create(&stderr).expect("create a file"))
            .spawn()
            .expect("start cargo lambda invoke");
        let deadline = Instant::now() + INVOKE_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for cargo lambda invoke") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "cargo lambda invoke did not answer within {INVOKE_TIMEOUT:?}; the emulator said:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(POLL).await; // poll interval
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        Invoked {
            status,
            stdout: read(&stdout),
            stderr: read(&stderr),
        }
    }

    /// The function's `invocation summary` lines so far, waiting until there are `count`.
    async fn summaries(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            let found: Vec<Value> = self
                .log_text()
                .lines()
                .filter(|l| l.contains("\"invocation summary\""))
                .filter_map(|l| serde_json::from_str(&l[l.find('{')?..]).ok())
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} invocation summaries within {LOG_TIMEOUT:?}:\n{}",
                found.len(),
                self.log_text()
            );
            tokio::time::sleep(POLL).await; // poll interval
        }
    }
}

/// Every process under `pid`, children before grandchildren (from /proc).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

impl Drop for Watch {
    fn drop(&mut self) {
        let pid = self.child.id();
        let below = descendants(pid);
        // The watch's own group (it leads it: process_group(0)), then whatever ran below it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        for p in below {
            let _ = Command::new("kill")
                .args(["-KILL", &p.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.wait();
    }
}

/// The numbers of the markers `q<n>z` in `messages`, with how many messages carry each (a
/// message may name its marker more than once: `request` and `request_uri`).
fn markers(messages: &[(i64, String)]) -> BTreeMap<usize, usize> {
    let mut out = BTreeMap::new();
    for (_, m) in messages {
        let mut in_message = BTreeSet::new();
        let mut rest = m.as_str();
        while let Some(i) = rest.find('q') {
            rest = &rest[i + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() && rest[digits.len()..].starts_with('z') {
                in_message.insert(digits.parse::<usize>().expect("digits"));
            }
        }
        assert_eq!(in_message.len(), 1, "one marker per message: {m}");
        for n in in_message {
            *out.entry(n).or_default() += 1;
        }
    }
    out
}

fn assert_each_once(messages: &[(i64, String)], n: usize, what: &str) {
    let got = markers(messages);
    assert_eq!(messages.len(), n, "{what}: {} events", messages.len());
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "{what}: every line"
    );
    assert!(
        got.values().all(|&c| c == 1),
        "{what}: a line arrived twice: {:?}",
        got.iter().find(|(_, c)| **c != 1)
    );
}

/// An access log (gzip) and an error log (plain, entries with a continuation line), recent.
fn logs() -> (Vec<u8>, Vec<u8>) {
    let start = now_ms() - 120_000;
    let access: String = (0..ACCESS_LINES)
        .map(|i| combined_line("10.0.0.1", start + i as i64, &format!("/q{i}z"), 200) + "\n")
        .collect();
    let error: String = (0..ERROR_ENTRIES)
        .map(|i| {
            let t = jiff::Timestamp::from_millisecond(start + i as i64 * 1000).expect("a time");
            format!(
                "{} [error] 7#7: *{i} upstream failed q{i}z\nwhile reading the response\n",
                t.strftime("%Y/%m/%d %H:%M:%S")
            )
        })
        .collect();
    (gzip(access.as_bytes()), error.into_bytes())
}

fn answer(invoked: &Invoked, watch: &Watch) -> Value {
    assert!(
        invoked.status.success(),
        "cargo lambda invoke: {}\n{}\n{}\nthe emulator said:\n{}",
        invoked.status,
        invoked.stdout,
        invoked.stderr,
        watch.log_text()
    );
    serde_json::from_str(invoked.stdout.trim())
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {}", invoked.stdout))
}

#[tokio::test]
async fn cargo_lambda_watch_and_invoke_deliver_an_s3_event_exactly_once() {
    let started = Instant::now();
    let moto = Moto::start();
    let (s3, logs_client) = clients_from(&moto.sdk_config(), true);
    let bucket = "cargo-lambda-s3";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let (access, error) = logs();
    let keys = [
        format!("nginx/{INSTANCE}/access/2026/11/30/access.log-1.gz"),
        format!("nginx/{INSTANCE}/error/2026/11/30/error.log-1"),
    ];
    for (key, body) in keys.iter().zip([access, error]) {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }
    let mut watch = Watch::start(&moto, "cargo-lambda-s3");
    let event = s3_event(bucket, &[&keys[0], &keys[1]]);

    let first_started = Instant::now();
    let first = answer(&watch.invoke(&event).await, &watch);
    let first_took = first_started.elapsed();
    assert_eq!(
        (
            &first["objects_delivered"],
            &first["objects_failed"],
            &first["events"]
        ),
        (
            &Value::from(2),
            &Value::from(0),
            &Value::from(ACCESS_LINES + ERROR_ENTRIES)
        ),
        "{first:#}"
    );
    let access_events = read_stream(&logs_client, ACCESS_GROUP, INSTANCE).await;
    let error_events = read_stream(&logs_client, ERROR_GROUP, INSTANCE).await;
    assert_each_once(&access_events, ACCESS_LINES, "access");
    assert_each_once(&error_events, ERROR_ENTRIES, "error");
    assert!(
        error_events
            .iter()
            .all(|(_, m)| m.contains("while reading the response")),
        "continuation lines stay with their entry"
    );
    // The emulator's relative deadline was noticed, once, and did not stop the work.
    let log = watch.log_text();
    assert!(
        log.contains("600000") && log.contains("not milliseconds since the epoch"),
        "cargo-lambda 1.9 sends Lambda-Runtime-Deadline-Ms: 600000, which the function warns \
         about; the emulator said:\n{log}"
    );

    // The same event again: nothing is sent, and the answer says why.
    let second = answer(&watch.invoke(&event).await, &watch);
    assert_eq!(
        (
            &second["already_delivered"],
            &second["objects_delivered"],
            &second["events"]
        ),
        (&Value::from(2), &Value::from(0), &Value::from(0)),
        "{second:#}"
    );
    assert_eq!(
        (
            read_stream(&logs_client, ACCESS_GROUP, INSTANCE)
                .await
                .len(),
            read_stream(&logs_client, ERROR_GROUP, INSTANCE).await.len()
        ),
        (ACCESS_LINES, ERROR_ENTRIES),
        "no line twice"
    );
    let summaries = watch.summaries(2).await;
    assert_eq!(summaries[1]["already_delivered"], 2, "{:#}", summaries[1]);
    assert_eq!(
        watch
            .log_text()
            .matches("not milliseconds since the epoch")
            .count(),
        1,
        "the deadline warning is given once per process"
    );
    println!(
        "cargo lambda: first invoke {first_took:?} (includes the build check), whole test {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn cargo_lambda_invoke_with_motos_own_sqs_notifications_delivers_exactly_once() {
    let moto = Moto::start();
    let (_, logs_client) = clients_from(&moto.sdk_config(), true);
    let bucket = NotifyingBucket::create(&moto, "cargo-lambda-sqs").await;
    let (access, error) = logs();
    bucket
        .put(
            &format!("nginx/{INSTANCE}/access/2026/11/30/access log (1).gz"),
            access,
        )
        .await;
    bucket
        .put(
            &format!("nginx/{INSTANCE}/error/2026/11/30/error.log"),
            error,
        )
        .await;
    let event = bucket.lambda_event().await;
    let records = event["Records"].as_array().map_or(0, Vec::len);
    assert!(records >= 2, "moto announced both uploads: {event:#}");
    let mut watch = Watch::start(&moto, "cargo-lambda-sqs");

    // An SQS event is answered with the messages to retry: none.
    let first = answer(&watch.invoke(&event).await, &watch);
    assert_eq!(
        first,
        serde_json::json!({"batchItemFailures": []}),
        "{first:#}"
    );
    assert_each_once(
        &read_stream(&logs_client, ACCESS_GROUP, INSTANCE).await,
        ACCESS_LINES,
        "access",
    );
    assert_each_once(
        &read_stream(&logs_client, ERROR_GROUP, INSTANCE).await,
        ERROR_ENTRIES,
        "error",
    );

    // The same messages again (a redelivery): nothing is sent; the summary says why.
    let second = answer(&watch.invoke(&event).await, &watch);
    assert_eq!(second, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(
        (
            read_stream(&logs_client, ACCESS_GROUP, INSTANCE)
                .await
                .len(),
            read_stream(&logs_client, ERROR_GROUP, INSTANCE).await.len()
        ),
        (ACCESS_LINES, ERROR_ENTRIES),
        "no line twice"
    );
    let summaries = watch.summaries(2).await;
    assert_eq!(
        (
            &summaries[0]["objects_delivered"],
            &summaries[1]["already_delivered"],
            &summaries[1]["events"]
        ),
        (&Value::from(2), &Value::from(2), &Value::from(0)),
        "{summaries:#?}"
    );
}
