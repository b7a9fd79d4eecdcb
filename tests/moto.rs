//! Integration tests against a real AWS emulator: moto server for S3 and CloudWatch Logs,
//! started on a free loopback port per test (see tests/common/moto.rs).

mod common;

use std::collections::BTreeSet;

use aws_sdk_s3::primitives::ByteStream;
use common::moto::{Moto, read_stream, replay};
use common::notify::NotifyingBucket;
use common::{combined_line, gzip, now_ms, s3_event};
use nginx_cloudwatch_forwarder::aws::{clients_from, cloudwatch::CloudWatchSink, s3::S3Source};
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::handler::Handler;
use serde_json::Value;

const BUCKET: &str = "nginx-logs-test";

struct Env {
    moto: Moto,
    s3: aws_sdk_s3::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
}

async fn env() -> Env {
    let (moto, s3, logs) = common::moto::with_bucket(BUCKET).await;
    Env { moto, s3, logs }
}

impl Env {
    async fn upload(&self, key: &str, body: Vec<u8>) {
        common::moto::upload(&self.s3, BUCKET, key, body).await;
    }

    fn handler(&self, config: Config) -> Handler<S3Source, CloudWatchSink> {
        let retention = config.sink.retention_days;
        Handler::new(
            S3Source::new(self.s3.clone()),
            CloudWatchSink::new(self.logs.clone(), retention),
            config,
        )
    }
}

/// `n` access lines for `instance`, in the last hour, each with a unique path.
fn access_log(instance: &str, n: usize) -> (String, BTreeSet<String>) {
    let start = now_ms() - 3_600_000;
    let mut text = String::new();
    let mut paths = BTreeSet::new();
    for i in 0..n {
        let path = format!("/{instance}/{i}");
        text.push_str(&combined_line(
            "10.0.0.1",
            start + i as i64 * 100,
            &path,
            200,
        ));
        text.push('\n');
        paths.insert(path);
    }
    (text, paths)
}

fn uris(events: &[(i64, String)]) -> Vec<String> {
    events
        .iter()
        .map(|(_, m)| {
            let v: Value = serde_json::from_str(m).expect("JSON message");
            v["request_uri"].as_str().expect("request_uri").to_string()
        })
        .collect()
}

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .expect("valid config")
}

#[tokio::test]
async fn object_to_instance_stream_with_group_created_and_retention_set() {
    let env = env().await;
    let instance = "i-0123456789abcdef0";
    let (text, want) = access_log(instance, 5_000);
    let access_key = format!("nginx/{instance}/access/2026/11/24/access log.gz"); // a space: `+` in the event
    env.upload(&access_key, gzip(text.as_bytes())).await;
    let error_text = format!(
        "{} [error] 7#7: *1 FastCGI sent in stderr: \"first line\nsecond line\" while connecting to upstream, client: 10.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:9000/\", host: \"x\"\n",
        jiff::Timestamp::from_millisecond(now_ms() - 60_000)
            .unwrap()
            .strftime("%Y/%m/%d %H:%M:%S")
    );
    let error_key = format!("nginx/{instance}/error/2026/11/24/error.log");
    env.upload(&error_key, error_text.into_bytes()).await;

    let h = env.handler(config(&[("RETENTION_DAYS", "7")]));
    let summary = h
        .handle(&s3_event(BUCKET, &[&access_key, &error_key]))
        .await
        .expect("S3 event");
    assert_eq!(summary.objects_delivered, 2, "{summary:#?}");
    assert_eq!(summary.totals.events, 5_001);

    let access = read_stream(&env.logs, "nginx-access", instance).await;
    let got = uris(&access);
    assert_eq!(got.len(), 5_000, "every line exactly once");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert!(access.windows(2).all(|w| w[0].0 <= w[1].0));

    let errors = read_stream(&env.logs, "nginx-error", instance).await;
    assert_eq!(errors.len(), 1);
    let v: Value = serde_json::from_str(&errors[0].1).unwrap();
    assert_eq!(v["upstream"], "http://127.0.0.1:9000/");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .ends_with("while connecting to upstream"),
        "{v}"
    );

    let groups = env
        .logs
        .describe_log_groups()
        .log_group_name_prefix("nginx-")
        .send()
        .await
        .unwrap();
    let retention: Vec<_> = groups
        .log_groups()
        .iter()
        .map(|g| {
            (
                g.log_group_name().unwrap_or_default(),
                g.retention_in_days(),
            )
        })
        .collect();
    assert_eq!(
        retention,
        [("nginx-access", Some(7)), ("nginx-error", Some(7))]
    );
}

#[tokio::test]
async fn three_instances_writing_concurrently_each_get_their_own_stream() {
    let env = env().await;
    let instances = [
        "i-0aaaaaaaaaaaaaaa1",
        "i-0bbbbbbbbbbbbbbb2",
        "i-0ccccccccccccccc3",
    ];
    let mut wanted = Vec::new();
    let mut keys = Vec::new();
    for (n, id) in instances.iter().enumerate() {
        // Several objects per instance so that writers to one stream also overlap.
        for part in 0..2 {
            let (text, paths) = access_log(&format!("{id}-{part}"), 2_500 + n * 500);
            let key = format!("nginx/{id}/access/2026/11/24/access.log-{part}.gz");
            env.upload(&key, gzip(text.as_bytes())).await;
            keys.push(key);
            wanted.push((*id, paths));
        }
    }
    let h = env.handler(config(&[("MAX_CONCURRENT_OBJECTS", "6")]));
    // Three invocations at once (as three Lambda instances would run), two objects each.
    let events: Vec<Value> = keys
        .chunks(2)
        .map(|k| s3_event(BUCKET, &[&k[0], &k[1]]))
        .collect();
    let (a, b, c) = tokio::join!(
        h.handle(&events[0]),
        h.handle(&events[1]),
        h.handle(&events[2])
    );
    for s in [a, b, c] {
        let s = s.expect("S3 event");
        assert_eq!((s.objects_delivered, s.objects_failed), (2, 0), "{s:#?}");
    }

    for id in instances {
        let got = uris(&read_stream(&env.logs, "nginx-access", id).await);
        let want: BTreeSet<String> = wanted
            .iter()
            .filter(|(i, _)| *i == id)
            .flat_map(|(_, p)| p.iter().cloned())
            .collect();
        assert_eq!(got.len(), want.len(), "{id}: every line exactly once");
        assert_eq!(
            got.into_iter().collect::<BTreeSet<_>>(),
            want,
            "{id}: only its own lines"
        );
    }
}

#[tokio::test]
async fn existing_group_and_stream_are_used_as_they_are() {
    let env = env().await;
    let instance = "i-0123456789abcdef0";
    env.logs
        .create_log_group()
        .log_group_name("nginx-access")
        .send()
        .await
        .unwrap();
    let (text, want) = access_log(instance, 10);
    let key = format!("nginx/{instance}/access/a.log");
    env.upload(&key, text.into_bytes()).await;
    let h = env.handler(config(&[]));
    // The second run finds group and stream in place (duplicates are issue 5's subject).
    for _ in 0..2 {
        let s = h.handle(&s3_event(BUCKET, &[&key])).await.unwrap();
        assert_eq!(s.objects_delivered, 1, "{s:#?}");
    }
    let got = uris(&read_stream(&env.logs, "nginx-access", instance).await);
    assert_eq!(got.len(), 2 * want.len());
}

#[tokio::test]
async fn replay_command_runs_the_handler_and_reports_failures_by_exit_code() {
    let env = env().await;
    let instance = "i-0fedcba9876543210";
    let (text, want) = access_log(instance, 100);
    let key = format!("nginx/{instance}/access/2026/11/24/access.log.gz");
    env.upload(&key, gzip(text.as_bytes())).await;
    let run = |event: Value| replay(&event, &env.moto.env());

    let (code, summary) = run(s3_event(BUCKET, &[&key]));
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["objects_delivered"], 1);
    assert_eq!(summary["events"], 100);
    assert_eq!(
        uris(&read_stream(&env.logs, "nginx-access", instance).await).len(),
        want.len()
    );

    let missing = format!("nginx/{instance}/access/2026/11/24/never-uploaded.log");
    let (code, summary) = run(s3_event(BUCKET, &[&missing]));
    assert_eq!(code, Some(1), "{summary:#}");
    assert_eq!(summary["objects_failed"], 1);
    assert!(
        summary["objects"][0]["error"]
            .as_str()
            .unwrap()
            .contains("never-uploaded.log"),
        "{summary:#}"
    );
}

#[tokio::test]
async fn eventbridge_and_s3_keys_with_space_plus_and_percent_reach_the_object() {
    let env = env().await;
    let key = format!(
        "nginx/{}/access/2026/11/24/a b+c%d.log",
        "i-0123456789abcdef0"
    );
    let (text, _) = access_log("i-0123456789abcdef0", 20);
    env.upload(&key, text.into_bytes()).await;
    let eventbridge = serde_json::json!({
        "version": "0", "id": "1", "detail-type": "Object Created", "source": "aws.s3", "account": "123456789012",
        "time": "2026-11-24T10:00:12Z", "region": "us-east-1", "resources": [],
        "detail": {"version": "0", "bucket": {"name": BUCKET}, "object": {"key": key, "size": 1},
                   "request-id": "r", "requester": "123456789012", "reason": "PutObject"}
    });
    // With progress records (real S3 tags): the decoded key does not exist, the key as given does.
    let h = nginx_cloudwatch_forwarder::wiring::production_handler(
        config(&[]),
        env.s3.clone(),
        env.logs.clone(),
    );
    let s = h.handle(&eventbridge).await.unwrap();
    assert_eq!(s.objects_delivered, 1, "{s:#?}");
    assert_eq!(s.objects[0].key, key);
    // The S3 notification for the same object (URL-encoded key) finds it delivered.
    let s = h.handle(&s3_event(BUCKET, &[&key])).await.unwrap();
    assert_eq!(s.already_delivered, 1, "{s:#?}");
    assert_eq!(
        read_stream(&env.logs, "nginx-access", "i-0123456789abcdef0")
            .await
            .len(),
        20
    );
}

/// The notifications moto itself writes to SQS (records without `userIdentity`,
/// `requestParameters` …, `eventTime` without a zone) drive `replay`: every object is
/// delivered, keys with spaces, `+` and non-ASCII included, and a second run sends nothing.
#[tokio::test]
async fn moto_s3_to_sqs_notifications_deliver_every_object() {
    let moto = Moto::start();
    let bucket = NotifyingBucket::create(&moto, "nginx-logs-notified").await;
    let instances = ["i-0123456789abcdef0", "i-0fedcba9876543210"];
    let mut want = Vec::new();
    for (n, instance) in instances.iter().enumerate() {
        let (text, uris) = access_log(instance, 50 + n);
        let key = format!("nginx/{instance}/access/2026/11/30/access log+{n} é.gz");
        bucket.put(&key, gzip(text.as_bytes())).await;
        want.push((*instance, uris));
    }
    let event = bucket.lambda_event().await;
    let records = event["Records"].as_array().expect("Records");
    // moto may announce the configuration with an s3:TestEvent first; that one is ignored.
    assert!(records.len() >= instances.len(), "{event:#}");

    let run = || replay(&event, &moto.env());
    let (code, summary) = run();
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["objects_delivered"], instances.len(), "{summary:#}");
    assert_eq!(
        summary["records_invalid"],
        serde_json::json!([]),
        "{summary:#}"
    );

    let (_, logs) = clients_from(&moto.sdk_config(), true);
    for (instance, uris_want) in &want {
        let got = uris(&read_stream(&logs, "nginx-access", instance).await);
        assert_eq!(
            got.len(),
            uris_want.len(),
            "{instance}: every line exactly once"
        );
        assert_eq!(&got.into_iter().collect::<BTreeSet<_>>(), uris_want);
    }

    let (code, summary) = run();
    assert_eq!(code, Some(0), "{summary:#}");
    assert_eq!(summary["already_delivered"], instances.len(), "{summary:#}");
    assert_eq!(summary["events"], 0, "{summary:#}");
}

/// A fleet moving from td-agent: `FIELD_NAMES=fluentd` and `EXTRA_FIELDS` naming the instance
/// (from the key) and the host (from the object metadata the shippers attach,
/// percent-encoded). The access events read back have exactly td-agent's keys for a line with
/// every value present (its `host` is the literal `-` of stock formats, which is never written)
/// plus `instance_id` and `hostname`; the error events td-agent's too, beside the context
/// fields.
#[tokio::test]
async fn fluentd_names_and_extra_fields_reach_cloudwatch() {
    let env = env().await;
    let instance = "i-0123456789abcdef0";
    let when = jiff::Timestamp::from_millisecond(now_ms() - 60_000).unwrap();
    let access = format!(
        "10.0.0.1 - alice [{}] \"GET /a?b=1 HTTP/1.1\" 404 12 \"https://r/\" \"curl/8\"\n",
        when.strftime("%d/%b/%Y:%H:%M:%S +0000")
    );
    let error = format!(
        "{} [warn] 7#8: *3 an upstream response is buffered, client: 10.0.0.1, server: _, request: \"GET / HTTP/1.1\"\n",
        when.strftime("%Y/%m/%d %H:%M:%S")
    );
    let keys = [
        format!("nginx/{instance}/access/2026/11/24/access.log.gz"),
        format!("nginx/{instance}/error/2026/11/24/error.log"),
    ];
    for (key, body) in [
        (&keys[0], gzip(access.as_bytes())),
        (&keys[1], error.into_bytes()),
    ] {
        env.s3
            .put_object()
            .bucket(BUCKET)
            .key(key.as_str())
            .metadata("instance-id", instance)
            .metadata("hostname", "web%2001%20caf%C3%A9")
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put object");
    }
    let h = env.handler(config(&[
        ("FIELD_NAMES", "fluentd"),
        (
            "EXTRA_FIELDS",
            "instance_id={instance_id},hostname={meta:hostname},version={meta:nginx-version}",
        ),
    ]));
    let summary = h
        .handle(&s3_event(BUCKET, &[&keys[0], &keys[1]]))
        .await
        .expect("S3 event");
    assert_eq!(summary.objects_delivered, 2, "{summary:#?}");

    let stored = read_stream(&env.logs, "nginx-access", instance).await;
    assert_eq!(stored.len(), 1);
    let v: Value = serde_json::from_str(&stored[0].1).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({
            "remote": "10.0.0.1", "user": "alice", "method": "GET", "path": "/a?b=1",
            "code": 404, "size": 12, "referer": "https://r/", "agent": "curl/8",
            "instance_id": instance, "hostname": "web 01 café",
        })
    );
    assert_eq!(stored[0].0, when.as_second() * 1000, "the time of the line");

    let stored = read_stream(&env.logs, "nginx-error", instance).await;
    assert_eq!(stored.len(), 1);
    let v: Value = serde_json::from_str(&stored[0].1).expect("JSON");
    assert_eq!(
        v,
        serde_json::json!({
            "time": when.strftime("%Y/%m/%d %H:%M:%S").to_string(), "log_level": "warn",
            "pid": 7, "tid": 8, "connection": 3,
            "message": "*3 an upstream response is buffered, client: 10.0.0.1, server: _, request: \"GET / HTTP/1.1\"",
            "client": "10.0.0.1", "server": "_", "request": "GET / HTTP/1.1",
            "instance_id": instance, "hostname": "web 01 café",
        })
    );
}

/// Issue 31's forgery end to end, on the notifications moto writes: instance A uploads its own
/// log and, with the README's old `nginx/*` grant, one under instance B's key. moto writes no
/// `userIdentity`, so each record is given the `principalId` S3 writes for A's instance profile
/// session. `replay` (the handler as the Lambda runs it) delivers A's object to A's stream and
/// nothing to B's: the forged object is refused, counted and named, and never read (no GET,
/// no tagging request on its key). A message naming another bucket is refused too.
#[tokio::test]
async fn an_upload_under_another_instances_key_reaches_no_stream() {
    let moto = Moto::start_logged();
    let bucket = NotifyingBucket::create(&moto, "nginx-logs-guarded").await;
    let (a, b) = ("i-0aaaaaaaaaaaaaaaa", "i-0bbbbbbbbbbbbbbbb");
    let principal = format!("AWS:AROA3XFRBF535EXAMPLE1:{a}");
    let (own_text, own_uris) = access_log(a, 20);
    let (forged_text, _) = access_log(b, 7);
    let own_key = format!("nginx/{a}/access/2026/12/05/access.log-20261205T1000.gz");
    let forged_key = format!("nginx/{b}/access/2026/12/05/access.log-20261205T1000.gz");
    bucket.put(&own_key, gzip(own_text.as_bytes())).await;
    bucket.put(&forged_key, gzip(forged_text.as_bytes())).await;
    let mut event = bucket.lambda_event().await;
    let mut forged_bucket = None;
    for record in event["Records"].as_array_mut().expect("Records") {
        let mut body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        let Some(records) = body["Records"].as_array_mut() else {
            continue; // moto's s3:TestEvent
        };
        for r in records.iter_mut() {
            assert!(r.get("userIdentity").is_none(), "moto writes none: {r}");
            r["userIdentity"] = serde_json::json!({"principalId": principal});
        }
        record["body"] = Value::String(body.to_string());
        // moto encodes `/` in keys as `%2F`.
        if body.to_string().contains(&own_key.replace('/', "%2F")) {
            let mut other = body.clone();
            other["Records"][0]["s3"]["bucket"]["name"] = "someone-elses-bucket".into();
            let mut m = record.clone();
            m["messageId"] = "forged-bucket".into();
            m["body"] = Value::String(other.to_string());
            forged_bucket = Some(m);
        }
    }
    let forged_bucket = forged_bucket.expect("A's own upload was announced");
    event["Records"].as_array_mut().unwrap().push(forged_bucket);

    let mut env = moto.env();
    env.push(("SOURCE_BUCKET", bucket.bucket.clone()));
    let before = moto.received().len();
    let (code, summary) = replay(&event, &env);
    assert_eq!(code, Some(0), "a refusal is not a failure: {summary:#}");
    assert_eq!(
        (
            &summary["objects_delivered"],
            &summary["objects_untrusted"],
            &summary["records_refused"],
            &summary["refused_other_bucket"],
        ),
        (&1.into(), &1.into(), &1.into(), &1.into()),
        "{summary:#}"
    );
    let untrusted = summary["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["status"] == "untrusted")
        .expect("the forged object's report");
    assert_eq!(
        (
            &untrusted["key"],
            &untrusted["key_instance"],
            &untrusted["uploader_instance"],
            &untrusted["uploader"]
        ),
        (
            &forged_key.clone().into(),
            &b.into(),
            &a.into(),
            &principal.clone().into()
        ),
        "{summary:#}"
    );

    let (_, logs) = clients_from(&moto.sdk_config(), true);
    let got = uris(&read_stream(&logs, "nginx-access", a).await);
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), own_uris);
    let streams = logs
        .describe_log_streams()
        .log_group_name("nginx-access")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = streams
        .log_streams()
        .iter()
        .filter_map(|s| s.log_stream_name())
        .collect();
    assert_eq!(names, [a], "B's stream was never written");
    // Nothing of the forged object was read: no GET, no tagging request, no lease on its key.
    let encoded = forged_key.replace('/', "%2F");
    let touched: Vec<_> = moto.received()[before..]
        .iter()
        .filter(|r| {
            [forged_key.as_str(), &encoded, "someone-elses-bucket"]
                .iter()
                .any(|k| r.path.contains(k))
        })
        .cloned()
        .collect();
    assert!(touched.is_empty(), "{touched:#?}");
    let own_reads = moto.received()[before..]
        .iter()
        .filter(|r| r.path.contains(&own_key) && r.s3_kind() == "GetObject")
        .count();
    assert_eq!(own_reads, 1, "the same log matching finds A's own read");
}
