//! `backfill` against moto: a real ListObjectsV2 listing, the handler forwarding locally, the
//! progress records making a re-run send nothing, `--since/--until`, `--dry-run`, ctrl-c, and
//! `--enqueue` through moto's SQS back into the handler.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use common::moto::{Moto, forwarder_command, read_stream, replay, run, upload};
use common::notify::{receive_all, sqs_lambda_event};
use common::relay::SlowRelay;
use common::{gzip, numbered_log, s3_event_with_etag, uri_counts};
use serde_json::Value;

const BUCKET: &str = "nginx-logs-backfill";
const INSTANCES: [&str; 2] = ["i-0123456789abcdef0", "i-0123456789abcdef1"];
const LINES: usize = 20;

struct Rig {
    moto: Moto,
    s3: aws_sdk_s3::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

/// One uploaded log object.
struct Uploaded {
    key: String,
    etag: String,
    instance: &'static str,
    tag: String,
}

impl Rig {
    async fn start() -> Self {
        let (moto, s3, logs) = common::moto::with_bucket(BUCKET).await;
        Self { moto, s3, logs }
    }

    /// `n` gzip access logs of [`LINES`] numbered lines, alternating between the two instances;
    /// object `i` is of the day `days_ago[i % len]` days before today (`YYYY/MM/DD/` in its key).
    async fn upload_logs(&self, n: usize, days_ago: &[i64]) -> Vec<Uploaded> {
        let mut out = Vec::new();
        for i in 0..n {
            let instance = INSTANCES[i % 2];
            let day = day_ago(days_ago[i % days_ago.len()]).strftime("%Y/%m/%d");
            let tag = format!("o{i}");
            let key = format!("nginx/{instance}/access/{day}/access.log-{i:03}.gz");
            let body = gzip(numbered_log(LINES, &tag).as_bytes());
            let etag = upload(&self.s3, BUCKET, &key, body).await;
            out.push(Uploaded {
                key,
                etag,
                instance,
                tag,
            });
        }
        out
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        self.moto.env()
    }

    /// `request_uri` → times stored, over both streams.
    async fn stored(&self) -> BTreeMap<String, usize> {
        let mut all = BTreeMap::new();
        for instance in INSTANCES {
            let events = match self
                .logs
                .describe_log_streams()
                .log_group_name("nginx-access")
                .log_stream_name_prefix(instance)
                .send()
                .await
            {
                Ok(r) if !r.log_streams().is_empty() => {
                    read_stream(&self.logs, "nginx-access", instance).await
                }
                _ => Vec::new(),
            };
            for (uri, n) in uri_counts(&events) {
                *all.entry(uri).or_default() += n;
            }
        }
        all
    }
}

/// The UTC day `n` days before today (the tests' days follow the calendar: CloudWatch takes
/// nothing older than 14 days, and backfill does not read such objects).
fn day_ago(n: i64) -> jiff::civil::Date {
    use jiff::ToSpan;
    jiff::tz::Offset::UTC
        .to_datetime(jiff::Timestamp::now())
        .date()
        .checked_sub(n.days())
        .expect("a day")
}

fn json(stdout: &str, stderr: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("no JSON summary ({e}): {stdout}\nstderr: {stderr}"))
}

/// Every line of `uploaded` stored exactly once, and nothing else.
fn assert_each_line_once(stored: &BTreeMap<String, usize>, uploaded: &[Uploaded]) {
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let want: Vec<String> = uploaded
        .iter()
        .flat_map(|u| (0..LINES).map(move |i| format!("/{}/{i}", u.tag)))
        .collect();
    let missing: Vec<_> = want.iter().filter(|u| !stored.contains_key(*u)).collect();
    assert!(
        missing.is_empty(),
        "{} lines missing: {missing:?}",
        missing.len()
    );
    assert_eq!(stored.len(), want.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_delivers_only_what_is_not_delivered_and_a_rerun_sends_nothing() {
    let rig = Rig::start().await;
    let uploaded = rig.upload_logs(50, &[1, 2, 3, 4, 5]).await;
    // Not logs of this layout: listed, not sent.
    upload(&rig.s3, BUCKET, "nginx/README.txt", b"hello".to_vec()).await;
    // 10 of the 50 were delivered by their notifications before the backfill.
    for u in uploaded.iter().step_by(5) {
        let (code, summary) = replay(&s3_event_with_etag(BUCKET, &u.key, &u.etag), &rig.env());
        assert_eq!(code, Some(0), "{summary}");
    }
    let target = format!("s3://{BUCKET}/nginx/");

    let (code, stdout, stderr) = run(&["backfill", &target], &rig.env());
    let summary = json(&stdout, &stderr);
    assert_eq!(code, Some(0), "{summary}\n{stderr}");
    assert_eq!(summary["objects_delivered"], 40, "{summary}");
    assert_eq!(summary["already_delivered"], 10, "{summary}");
    assert_eq!(summary["objects_failed"], 0, "{summary}");
    assert_eq!(summary["events"], 40 * LINES as u64, "{summary}");
    assert_eq!(summary["delivery"], "exactly-once");
    assert!(
        stderr.contains("listed 51 objects: 50 selected")
            && stderr.contains("1 not matching KEY_PATTERN"),
        "{stderr}"
    );
    // The last progress line (standard error is not a terminal: plain lines).
    assert!(
        stderr.contains("objects 50/50 (10 already delivered)") && stderr.contains("· done"),
        "{stderr}"
    );
    assert_each_line_once(&rig.stored().await, &uploaded);

    let (code, stdout, stderr) = run(&["backfill", &target], &rig.env());
    let again = json(&stdout, &stderr);
    assert_eq!(code, Some(0), "{again}\n{stderr}");
    assert_eq!(
        (
            &again["already_delivered"],
            &again["objects_delivered"],
            &again["events"],
            &again["batches"]
        ),
        (
            &Value::from(50),
            &Value::from(0),
            &Value::from(0),
            &Value::from(0)
        ),
        "{again}"
    );
    assert_each_line_once(&rig.stored().await, &uploaded);
}

#[tokio::test(flavor = "multi_thread")]
async fn since_and_until_select_by_the_keys_day_and_a_dry_run_sends_nothing() {
    let rig = Rig::start().await;
    // 5..=1 days ago, two objects each.
    let uploaded = rig.upload_logs(10, &[5, 4, 3, 2, 1]).await;
    let delivered = &uploaded[1]; // 4 days ago
    let (code, summary) = replay(
        &s3_event_with_etag(BUCKET, &delivered.key, &delivered.etag),
        &rig.env(),
    );
    assert_eq!(code, Some(0), "{summary}");
    // No date in the key: its LastModified (today, by moto's clock) decides.
    let undated = "nginx/i-0123456789abcdef0/access/access.log.gz";
    upload(
        &rig.s3,
        BUCKET,
        undated,
        gzip(numbered_log(3, "undated").as_bytes()),
    )
    .await;
    // Older than CloudWatch accepts: never selected.
    let old = format!(
        "nginx/{}/access/{}/access.log.gz",
        INSTANCES[0],
        day_ago(20).strftime("%Y/%m/%d")
    );
    upload(
        &rig.s3,
        BUCKET,
        &old,
        gzip(numbered_log(3, "old").as_bytes()),
    )
    .await;
    let before = rig.stored().await;

    let target = format!("s3://{BUCKET}/nginx/");
    let (since, until) = (day_ago(4).to_string(), day_ago(3).to_string());
    let (code, stdout, stderr) = run(
        &[
            "backfill",
            &target,
            "--since",
            &since,
            "--until",
            &until,
            "--dry-run",
        ],
        &rig.env(),
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    let keys: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    let days = [day_ago(4), day_ago(3)].map(|d| d.strftime("/%Y/%m/%d/").to_string());
    let want: Vec<&str> = uploaded
        .iter()
        .filter(|u| days.iter().any(|d| u.key.contains(d.as_str())))
        .map(|u| u.key.as_str())
        .collect();
    assert_eq!((keys.len(), want.len()), (4, 4), "{stdout}");
    for k in &want {
        assert!(keys.contains(k), "{k} not in {stdout}");
    }
    for r in &rows {
        let u = uploaded
            .iter()
            .find(|u| u.key == r[0])
            .expect("an uploaded key");
        assert_eq!(r[2], format!("nginx-access/{}", u.instance), "{r:?}");
        let state = if u.key == delivered.key {
            "delivered"
        } else {
            "new"
        };
        assert_eq!(r[3], state, "{r:?}");
    }
    assert!(
        stderr.contains("would forward 3 objects") && stderr.contains("1 already delivered"),
        "{stderr}"
    );
    assert_eq!(rig.stored().await, before, "a dry run sent something");

    // Today's LastModified is inside an open-ended --since and outside a past --until.
    let today = day_ago(0).to_string();
    let (_, stdout, _) = run(
        &["backfill", &target, "--since", &today, "--dry-run"],
        &rig.env(),
    );
    assert_eq!(
        stdout
            .lines()
            .map(|l| l.split('\t').next())
            .collect::<Vec<_>>(),
        [Some(undated)]
    );
    let (_, stdout, stderr) = run(
        &[
            "backfill",
            &target,
            "--until",
            &day_ago(5).to_string(),
            "--dry-run",
        ],
        &rig.env(),
    );
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stderr.contains("1 older than CloudWatch accepts"),
        "{stderr}"
    );

    // Bad usage is exit 64, as before the subcommand existed.
    let (code, _, stderr) = run(
        &["backfill", &target, "--since", &until, "--until", &since],
        &rig.env(),
    );
    assert_eq!(code, Some(64), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn enqueued_notifications_round_trip_through_moto_sqs_into_the_handler() {
    let rig = Rig::start().await;
    let uploaded = rig.upload_logs(23, &[0, 1, 2]).await;
    let sqs = aws_sdk_sqs::Client::new(&rig.moto.sdk_config());
    let queue = sqs
        .create_queue()
        .queue_name("nginx-backfill")
        .send()
        .await
        .expect("queue");
    let queue_url = queue.queue_url().expect("a queue URL").to_string();

    let target = format!("s3://{BUCKET}/nginx/");
    let (code, stdout, stderr) = run(&["backfill", &target, "--enqueue", &queue_url], &rig.env());
    let out = json(&stdout, &stderr);
    assert_eq!(code, Some(0), "{out}\n{stderr}");
    assert_eq!(out["objects_enqueued"], 23, "{out}");
    assert!(
        rig.stored().await.is_empty(),
        "--enqueue forwarded by itself"
    );

    let messages = receive_all(&sqs, &queue_url).await;
    assert_eq!(messages.len(), 23);
    // What Lambda's poller would hand the function, in batches of 10 as the template sets.
    for batch in messages.chunks(10) {
        let event = sqs_lambda_event(batch, "arn:aws:sqs:us-east-1:123456789012:nginx-backfill");
        let (code, summary) = replay(&event, &rig.env());
        assert_eq!(code, Some(0), "{summary}");
        assert_eq!(summary["objects_delivered"], batch.len(), "{summary}");
        assert!(summary.get("failed_messages").is_none(), "{summary}");
    }
    assert_each_line_once(&rig.stored().await, &uploaded);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_cleanly_and_the_next_run_sends_the_rest_once() {
    let rig = Rig::start().await;
    let uploaded = rig.upload_logs(12, &[1]).await;
    // CloudWatch behind a relay holding each request, so that the interrupt finds work left.
    let relay = SlowRelay::start(&rig.moto.endpoint, Duration::from_millis(300));
    let mut env = rig.env();
    env.push(("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", relay.endpoint.clone()));
    env.push(("MAX_CONCURRENT_OBJECTS", "2".into()));
    let target = format!("s3://{BUCKET}/nginx/");
    let child = forwarder_command(&["backfill", &target], &env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the backfill");
    // Interrupt once some lines are stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rig.stored().await.is_empty() {
        assert!(Instant::now() < deadline, "nothing stored within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(ok.success());
    let out = child.wait_with_output().expect("the backfill ends");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    let first = json(&stdout, &stderr);
    assert!(stderr.contains("objects not started"), "{stderr}");
    let done = first["objects_delivered"].as_u64().expect("a count");
    assert!(
        done < 12,
        "everything finished before the interrupt: {first}"
    );
    let partial = rig.stored().await;
    assert!(partial.values().all(|n| *n == 1), "{partial:?}");

    let (code, stdout, stderr) = run(&["backfill", &target], &rig.env());
    let second = json(&stdout, &stderr);
    assert_eq!(code, Some(0), "{second}\n{stderr}");
    assert_eq!(second["already_delivered"], done, "{second}");
    assert_each_line_once(&rig.stored().await, &uploaded);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_longer_than_one_page_is_read_to_the_end() {
    // ListObjectsV2 returns at most 1,000 keys a page.
    const N: usize = 1_003;
    let rig = Rig::start().await;
    let s3 = &rig.s3;
    futures_util::stream::iter(0..N)
        .map(|i| async move {
            let instance = INSTANCES[i % 2];
            let day = day_ago(1).strftime("%Y/%m/%d");
            let key = format!("nginx/{instance}/error/{day}/error.log-{i:04}");
            upload(s3, BUCKET, &key, b"x\n".to_vec()).await;
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let mut env = rig.env();
    // Without progress records the dry run reads no tags: the listing alone is tested.
    env.push(("CHECKPOINT_STORE", "none".into()));
    let target = format!("s3://{BUCKET}/nginx/");
    let (code, stdout, stderr) = run(&["backfill", &target, "--dry-run"], &env);
    assert_eq!(code, Some(0), "{stderr}");
    let mut keys: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(keys.len(), N, "{stderr}");
    keys.dedup();
    assert_eq!(keys.len(), N, "a key listed twice");
    assert!(
        stderr.contains(&format!("listed {N} objects: {N} selected")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_bucket_or_queue_is_named_and_fails_the_command() {
    let rig = Rig::start().await;
    let (code, _, stderr) = run(&["backfill", "s3://no-such-bucket/nginx/"], &rig.env());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("bucket \"no-such-bucket\" does not exist"),
        "{stderr}"
    );
    rig.upload_logs(2, &[1]).await;
    let queue = format!("{}/123456789012/no-such-queue", rig.moto.endpoint);
    let target = format!("s3://{BUCKET}/nginx/");
    let (code, _, stderr) = run(&["backfill", &target, "--enqueue", &queue], &rig.env());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("does not exist") && stderr.contains("no-such-queue"),
        "{stderr}"
    );
    assert!(stderr.contains("0 of 2 objects were enqueued"), "{stderr}");
}
