//! Two deliveries of one object at the same time, and a holder that dies mid-object: real
//! `replay` processes against moto (S3 conditional writes hold the leases), with CloudWatch
//! behind a relay that holds every request so that the deliveries truly overlap.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::moto::{Moto, read_stream, replay, replay_command, replay_result, upload};
use common::relay::SlowRelay;
use common::{numbered_log, s3_event_with_etag, uri_counts};
use nginx_cloudwatch_forwarder::aws::leases::DEFAULT_LEASE_PREFIX;
use nginx_cloudwatch_forwarder::checkpoint::TAG_KEY;
use serde_json::Value;

const BUCKET: &str = "nginx-logs-leases";
const INSTANCE: &str = "i-0123456789abcdef0";

/// moto with a bucket, and CloudWatch Logs reached through a relay holding each request.
struct Rig {
    moto: Moto,
    relay: SlowRelay,
    s3: aws_sdk_s3::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

impl Rig {
    async fn start(delay: Duration) -> Self {
        let (moto, s3, logs) = common::moto::with_bucket(BUCKET).await;
        let relay = SlowRelay::start(&moto.endpoint, delay);
        Self {
            moto,
            relay,
            s3,
            logs,
        }
    }

    /// Uploads `body` as `key`; the S3 event announcing it.
    async fn upload(&self, key: &str, body: String) -> Value {
        let etag = upload(&self.s3, BUCKET, key, body.into_bytes()).await;
        s3_event_with_etag(BUCKET, key, &etag)
    }

    fn env(&self, settings: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut env = self.moto.env();
        env.push((
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS",
            self.relay.endpoint.clone(),
        ));
        env.extend(settings.iter().map(|(k, v)| (*k, v.to_string())));
        env
    }

    async fn lease_exists(&self, key: &str) -> bool {
        self.s3
            .head_object()
            .bucket(BUCKET)
            .key(format!("{DEFAULT_LEASE_PREFIX}{key}"))
            .send()
            .await
            .is_ok()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replays_of_one_event_started_together_send_every_line_once() {
    const ROUNDS: usize = 2;
    const LINES: usize = 20_000;
    let rig = Rig::start(Duration::from_millis(100)).await;
    let env = rig.env(&[("MAX_CONCURRENT_PUTS", "2")]);
    for round in 0..ROUNDS {
        let key = format!("nginx/{INSTANCE}/access/race-{round}.log");
        let event = rig
            .upload(&key, numbered_log(LINES, &format!("r{round}")))
            .await;
        let start = || {
            let (mut cmd, path) = replay_command(&event, &env);
            let child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start replay");
            (child, path)
        };
        let (a, b) = (start(), start());
        let mut summaries = Vec::new();
        for (child, path) in [a, b] {
            let out = child.wait_with_output().expect("replay ran");
            let _ = std::fs::remove_file(path);
            let (code, summary) = replay_result(&out);
            assert_eq!(code, Some(0), "{summary:#}");
            summaries.push(summary);
        }
        let total = |field: &str| {
            summaries
                .iter()
                .map(|s| s[field].as_u64().expect(field))
                .sum::<u64>()
        };
        // One sent the object; the other waited for it, then found it delivered.
        assert_eq!(
            (
                total("objects_delivered"),
                total("already_delivered"),
                total("lease_waits"),
                total("events")
            ),
            (1, 1, 1, LINES as u64),
            "{summaries:#?}"
        );
        assert!(!rig.lease_exists(&key).await, "the lease is released");
    }
    let got = uri_counts(&read_stream(&rig.logs, "nginx-access", INSTANCE).await);
    assert_eq!(got.len(), ROUNDS * LINES, "every line arrived");
    let twice = got.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "lines sent more than once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_killed_mid_object_is_taken_over_once_its_lease_expires() {
    const LINES: usize = 40_000;
    let rig = Rig::start(Duration::from_millis(300)).await;
    let env = rig.env(&[("MAX_CONCURRENT_PUTS", "1"), ("LEASE_SECONDS", "2")]);
    let key = format!("nginx/{INSTANCE}/access/killed.log");
    let event = rig.upload(&key, numbered_log(LINES, "k")).await;

    let (mut cmd, path) = replay_command(&event, &env);
    let mut holder = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start replay");
    // Kill the holder once it has recorded progress (it is then mid-object).
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let tags = rig
            .s3
            .get_object_tagging()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .expect("tags");
        if tags.tag_set().iter().any(|t| t.key() == TAG_KEY) {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "the first delivery recorded no progress"
        );
        assert!(
            holder.try_wait().expect("poll").is_none(),
            "the first delivery ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    holder.kill().expect("kill");
    holder.wait().expect("reaped");
    let _ = std::fs::remove_file(path);
    assert!(
        rig.lease_exists(&key).await,
        "a killed holder leaves its lease"
    );

    let (code, summary) = replay(&event, &env);
    assert_eq!(code, Some(0), "{summary:#}");
    let obj = &summary["objects"][0];
    assert_eq!(
        (
            summary["objects_delivered"].as_u64(),
            summary["lease_waits"].as_u64(),
            summary["lease_takeovers"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{summary:#}"
    );
    let resumed = obj["resumed_from_line"].as_u64().expect("resumed");
    assert!(resumed > 1, "{summary:#}");
    assert!(!rig.lease_exists(&key).await, "the lease is released");

    let got = uri_counts(&read_stream(&rig.logs, "nginx-access", INSTANCE).await);
    assert_eq!(got.len(), LINES, "every line arrived");
    // What the killed holder had in flight may have been stored without its record saying so:
    // the taker-over looks each batch up before sending it, so nothing arrives twice.
    let twice = got.values().filter(|n| **n > 1).count();
    assert_eq!(twice, 0, "lines sent more than once");
    println!(
        "resumed at line {resumed}; found stored after the takeover: {}",
        summary["found_after_takeover"]
    );
}

// --- with fakes: what a dead holder stored beyond its record is not sent again -------------

#[tokio::test]
async fn a_taker_over_does_not_resend_what_the_dead_holder_stored_beyond_its_record() {
    use common::{FakeCheckpoints, FakeLeases, FakeSink, FakeSource, s3_event};
    use nginx_cloudwatch_forwarder::config::Config;
    use nginx_cloudwatch_forwarder::handler::Handler;
    use std::sync::Arc;

    const KEY: &str = "nginx/i-0123456789abcdef0/access/dead.log";
    let body = numbered_log(12_000, "d").into_bytes();
    let source = || FakeSource::default().with("b", KEY, body.clone());
    let config = || {
        Config::from_lookup(|k| (k == "MAX_CONCURRENT_PUTS").then(|| "1".to_string()))
            .expect("valid")
    };
    let event = s3_event("b", &[KEY]);
    // Every batch the object makes (one put at a time: always the same ones).
    let all = Handler::new(source(), FakeSink::default(), config());
    all.handle(&event).await.expect("S3 event");
    let batches = all.sink.puts();
    assert!(batches.len() >= 3, "{} batches", batches.len());

    // The holder stored the first batch and recorded it; then it stored the second and died
    // before recording that.
    let store = Arc::new(FakeCheckpoints::default());
    let holder = Handler::new(
        source(),
        FakeSink {
            fail_after: Some(1),
            ..FakeSink::default()
        },
        config(),
    )
    .with_checkpoints(store.clone());
    let first = holder.handle(&event).await.expect("S3 event");
    assert_eq!(first.objects_failed, 1, "{first:#?}");
    let mut sink = Arc::try_unwrap(holder.sink).ok().expect("no other owner");
    sink.puts
        .lock()
        .expect("not poisoned")
        .push(batches[1].clone());
    sink.fail_after = None;
    let leases = Arc::new(FakeLeases::default());
    leases.expired(KEY, "lambda log stream 2026/12/02/[$LATEST]dead");

    let next = Handler::new(source(), sink, config())
        .with_checkpoints(store.clone())
        .with_leases(leases.clone(), Duration::from_secs(60));
    let summary = next.handle(&event).await.expect("S3 event");
    assert_eq!(
        (
            summary.objects_delivered,
            summary.totals.lease_takeovers,
            summary.totals.found_after_takeover
        ),
        (1, 1, batches[1].events.len() as u64),
        "{summary:#?}"
    );
    let messages: Vec<String> = next
        .sink
        .puts()
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.message.text()))
        .collect();
    let got = uri_counts(&messages.into_iter().map(|m| (0, m)).collect::<Vec<_>>());
    assert_eq!(got.len(), 12_000, "every line arrived");
    assert!(got.values().all(|n| *n == 1), "no line twice");
    assert!(
        leases.leases.lock().expect("not poisoned").is_empty(),
        "the lease is released"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_in_a_bucket_that_does_not_exist_fails_at_once() {
    let moto = Moto::start();
    let key = format!("nginx/{INSTANCE}/access/gone.log");
    let event = common::s3_event("no-such-bucket", &[&key]);
    let (code, summary) = replay(&event, &moto.env());
    assert_eq!(code, Some(1), "{summary:#}");
    assert_eq!(summary["objects_failed"], 1, "{summary:#}");
    let error = summary["objects"][0]["error"].as_str().expect("error");
    assert!(error.contains("does not exist"), "{error}");
}
