//! Handler tests: the events/*.json samples through the real handler with fake S3 and
//! CloudWatch (see tests/common).

mod common;

use common::{
    FakeSink, FakeSource, default_config, event_fixture, fixture_clock, gzip, read_fixture,
};
use nginx_cloudwatch_forwarder::handler::Handler;
use nginx_cloudwatch_forwarder::summary::Outcome;
use serde_json::Value;

const BUCKET: &str = "nginx-logs-example";
const ACCESS_KEY: &str = "nginx/i-0123456789abcdef0/access/2026/11/24/access.log-20261124T1000.gz";
const ERROR_KEY: &str = "nginx/i-0123456789abcdef0/error/2026/11/24/error.log-20261124T1000";

fn sample_source() -> FakeSource {
    // With the ETags the event fixtures name.
    let access = gzip(&read_fixture("tests/data/access.log"));
    FakeSource::default()
        .with_etag(
            BUCKET,
            ACCESS_KEY,
            access,
            "9b2cf535f27731c974343645a3985328",
        )
        .with_etag(
            BUCKET,
            ERROR_KEY,
            read_fixture("tests/data/error.log"),
            "c4ca4238a0b923820dcc509a6f75849b",
        )
}

fn key(group: &str, stream: &str) -> (String, String) {
    (group.to_string(), stream.to_string())
}

#[tokio::test]
async fn s3_put_event_delivers_both_objects_to_the_instance_stream() {
    let h = Handler::new(sample_source(), FakeSink::default(), default_config())
        .with_clock(fixture_clock());
    let summary = h
        .handle(&event_fixture("s3-put.json"))
        .await
        .expect("known shape");

    assert_eq!(
        (
            summary.objects_delivered,
            summary.objects_skipped,
            summary.objects_failed
        ),
        (2, 0, 0)
    );
    assert!(!summary.has_failures());
    // access.log: 12 lines, 1 blank, 1 not nginx; error.log: 9 lines, 6 events (one spans 4 lines).
    assert_eq!(summary.totals.lines, 21);
    assert_eq!(summary.totals.blank_lines, 1);
    assert_eq!(summary.totals.events, 11 + 6);
    assert_eq!(summary.totals.parse_errors, 1);

    let got = h.sink.messages();
    assert_eq!(got.len(), 2, "{:?}", got.keys());
    let access = &got[&key("nginx-access", "i-0123456789abcdef0")];
    let error = &got[&key("nginx-error", "i-0123456789abcdef0")];
    assert_eq!((access.len(), error.len()), (11, 6));

    let first: Value = serde_json::from_str(&access[0]).unwrap();
    assert_eq!(first["remote_addr"], "93.184.216.34");
    assert_eq!(first["status"], 200);
    let raw: Vec<Value> = access
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .filter(|v: &Value| v.get("raw").is_some())
        .collect();
    assert_eq!(raw.len(), 1);
    assert_eq!(
        raw[0]["raw"],
        "this line was written by something that is not nginx"
    );

    let fastcgi: Value = serde_json::from_str(&error[3]).unwrap();
    assert_eq!(fastcgi["connection"], 35);
    assert!(
        fastcgi["message"]
            .as_str()
            .unwrap()
            .contains("\nStack trace:\n#0 {main}\n")
    );
    assert_eq!(fastcgi["upstream"], "fastcgi://unix:/run/php-fpm/www.sock:");
}

#[tokio::test]
async fn encoded_key_is_decoded_before_reading() {
    let decoded = "nginx/i-0fedcba9876543210/access/2026/11/24/access log (rotated by hand)+1.log";
    let body = read_fixture("tests/data/access.log");
    let source =
        FakeSource::default().with_etag(BUCKET, decoded, body, "eccbc87e4b5ce2fe28308fd9f2a7baf3");
    let h = Handler::new(source, FakeSink::default(), default_config()).with_clock(fixture_clock());
    let summary = h
        .handle(&event_fixture("s3-put-encoded-key.json"))
        .await
        .unwrap();
    assert_eq!(summary.objects_delivered, 1, "{summary:#?}");
    assert_eq!(summary.objects[0].key, decoded);
    assert_eq!(
        h.sink.messages()[&key("nginx-access", "i-0fedcba9876543210")].len(),
        11
    );
}

#[tokio::test]
async fn each_record_fails_or_skips_on_its_own() {
    let h = Handler::new(sample_source(), FakeSink::default(), default_config())
        .with_clock(fixture_clock());
    let summary = h.handle(&event_fixture("s3-mixed.json")).await.unwrap();

    assert_eq!(
        (
            summary.objects_delivered,
            summary.trust.refused_outside_key_pattern,
            summary.objects_failed
        ),
        (1, 1, 1)
    );
    assert_eq!(
        summary.records_ignored.len(),
        1,
        "the deletion is acknowledged and ignored"
    );
    assert!(summary.has_failures());
    let by_key = |k: &str| {
        summary
            .objects
            .iter()
            .find(|o| o.key.ends_with(k))
            .unwrap()
            .outcome
            .clone()
    };
    match by_key("deleted-before-we-ran.log") {
        Outcome::Failed { error } => {
            assert!(error.contains("s3://nginx-logs-example/nginx/i-0123456789abcdef0/access/2026/11/24/deleted-before-we-ran.log"), "{error}");
            assert!(error.contains("does not exist"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    match by_key("report-2026-11.csv") {
        Outcome::Refused { reason, .. } => assert!(reason.contains("KEY_PATTERN"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        by_key("access.log-20261124T1000.gz"),
        Outcome::Delivered { .. }
    ));
    assert_eq!(
        h.sink.messages()[&key("nginx-access", "i-0123456789abcdef0")].len(),
        11
    );
    assert!(summary.failure_text().contains("deleted-before-we-ran.log"));
}

#[tokio::test]
async fn test_event_is_acknowledged() {
    let h = Handler::new(FakeSource::default(), FakeSink::default(), default_config())
        .with_clock(fixture_clock());
    let summary = h
        .handle(&event_fixture("s3-test-event.json"))
        .await
        .unwrap();
    assert!(!summary.has_failures());
    assert!(summary.objects.is_empty());
    assert_eq!(summary.records_ignored, ["s3:TestEvent"]);
    assert!(h.sink.puts().is_empty());
}

#[tokio::test]
async fn sink_failure_fails_the_object_and_says_where() {
    let sink = FakeSink {
        fail_after: Some(0),
        ..FakeSink::default()
    };
    let h = Handler::new(sample_source(), sink, default_config()).with_clock(fixture_clock());
    let summary = h.handle(&event_fixture("s3-put.json")).await.unwrap();
    assert_eq!(summary.objects_failed, 2);
    for o in &summary.objects {
        match &o.outcome {
            Outcome::Failed { error } => {
                assert!(
                    error.contains(&o.key) && error.contains("injected failure"),
                    "{error}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn raw_output_sends_lines_verbatim() {
    let config = nginx_cloudwatch_forwarder::config::Config::from_lookup(|k| {
        (k == "OUTPUT_FORMAT").then(|| "raw".to_string())
    })
    .unwrap();
    let h = Handler::new(sample_source(), FakeSink::default(), config).with_clock(fixture_clock());
    let summary = h.handle(&event_fixture("s3-put.json")).await.unwrap();
    // What CloudWatch bills: every stored message's UTF-8 bytes + 26.
    let billed: usize = h
        .sink
        .messages()
        .values()
        .flatten()
        .map(|m| m.len() + 26)
        .sum();
    assert_eq!(summary.totals.ingested_bytes, billed as u64);
    let want: Vec<String> = String::from_utf8(read_fixture("tests/data/access.log"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let mut got = h.sink.messages()[&key("nginx-access", "i-0123456789abcdef0")].clone();
    // Batches are sorted by time (stable), and the unparsed line takes its predecessor's time,
    // so the order is the file's order.
    assert_eq!(got.len(), want.len());
    got.iter_mut()
        .zip(&want)
        .for_each(|(g, w)| assert_eq!(g, w));
}

#[tokio::test]
async fn unknown_payload_is_an_error() {
    let h = Handler::new(FakeSource::default(), FakeSink::default(), default_config())
        .with_clock(fixture_clock());
    let err = h
        .handle(&serde_json::json!({"detail-type": "something"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("detail-type"), "{err}");
}

#[tokio::test]
async fn events_outside_cloudwatchs_time_window_are_counted_not_sent() {
    let day = 86_400_000;
    for (now, old, new) in [
        (common::FIXTURE_NOW_MS + 15 * day, 17, 0), // the fixtures are 15 days old
        (common::FIXTURE_NOW_MS - day, 0, 17),      // the fixtures are a day in the future
    ] {
        let h = Handler::new(sample_source(), FakeSink::default(), default_config())
            .with_clock(std::sync::Arc::new(move || now));
        let s = h.handle(&event_fixture("s3-put.json")).await.unwrap();
        assert_eq!(
            (
                s.totals.rejected_too_old,
                s.totals.rejected_too_new,
                s.totals.events,
                s.totals.ingested_bytes
            ),
            (old, new, 0, 0)
        );
        assert_eq!(
            s.objects_delivered, 2,
            "nothing failed: the lines cannot be stored, a retry would not help"
        );
        assert!(h.sink.puts().is_empty());
    }
}

#[tokio::test]
async fn every_envelope_delivers_the_same_objects() {
    let reference = {
        let h = Handler::new(sample_source(), FakeSink::default(), default_config())
            .with_clock(fixture_clock());
        h.handle(&event_fixture("s3-put.json")).await.unwrap();
        h.sink.messages()
    };
    for (file, objects) in [
        ("sqs-s3.json", 2),
        // What moto's own S3 → SQS notification writes (no userIdentity, `/` as %2F, an
        // s3:TestEvent message first, eventTime without a zone).
        ("sqs-moto-s3.json", 2),
        ("sns-s3.json", 2),
        ("sqs-sns-s3.json", 2),
        ("sqs-eventbridge.json", 2),
        ("eventbridge-object-created.json", 1),
        // What a failure leaves behind (docs/operations.md, "Recovering from the dead-letter queues"): the
        // on-failure destination's record of a failed S3 or EventBridge invocation, that record
        // delivered by an event bus, as an SQS event of the dead-letter queue, and both
        // dead-letter queues' messages as `aws sqs receive-message` prints them (captured
        // from moto).
        ("lambda-on-failure-s3.json", 2),
        ("lambda-on-failure-eventbridge.json", 1),
        ("eventbridge-lambda-failure.json", 2),
        ("sqs-on-failure.json", 2),
        ("dead-letter-receive-message.json", 2),
        ("notification-dead-letter-receive-message.json", 1),
    ] {
        let h = Handler::new(sample_source(), FakeSink::default(), default_config())
            .with_clock(fixture_clock());
        let s = h
            .handle(&event_fixture(file))
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            (s.objects_delivered, s.objects_failed),
            (objects, 0),
            "{file}: {s:#?}"
        );
        assert!(s.failed_messages.is_empty(), "{file}");
        assert_eq!(s.from_sqs, file.starts_with("sqs-"), "{file}");
        let got = h.sink.messages();
        for (stream, messages) in &got {
            assert_eq!(messages, &reference[stream], "{file}: {stream:?}");
        }
        assert_eq!(got.len(), objects as usize, "{file}");
    }
}

#[tokio::test]
async fn an_sqs_batch_reports_exactly_the_failed_message() {
    let h = Handler::new(sample_source(), FakeSink::default(), default_config())
        .with_clock(fixture_clock());
    let s = h
        .handle(&event_fixture("sqs-batch-one-missing.json"))
        .await
        .unwrap();
    assert!(s.from_sqs);
    assert_eq!((s.objects_delivered, s.objects_failed), (2, 1), "{s:#?}");
    assert_eq!(s.failed_messages, ["9a3c1f52-4d1e-4f0b-a1a7-3b5e6d7c8f90"]);
    assert_eq!(
        s.records_ignored.len(),
        1,
        "the test event inside a message is acknowledged"
    );
}

#[tokio::test]
async fn keys_with_space_plus_and_percent_are_found_whatever_the_encoding() {
    let key = "nginx/i-0123456789abcdef0/access/a b+c%d.log";
    let body = read_fixture("tests/data/access.log");
    let s3 = common::s3_event(BUCKET, &[key]); // encoded as S3 does: a+b%2Bc%25d.log
    let mut eventbridge = event_fixture("eventbridge-object-created.json");
    eventbridge["detail"]["object"]["key"] = Value::from(key); // as given, unencoded
    eventbridge["detail"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("etag");
    for payload in [s3, eventbridge] {
        let source = FakeSource::default().with(BUCKET, key, body.clone());
        let h =
            Handler::new(source, FakeSink::default(), default_config()).with_clock(fixture_clock());
        let s = h.handle(&payload).await.unwrap();
        assert_eq!(s.objects_delivered, 1, "{s:#?}");
        assert_eq!(s.objects[0].key, key);
    }
}

/// Every payload in events/ is one the handler understands: each announces objects (or only a
/// test event) and no record is invalid (a new fixture is checked without new code).
#[tokio::test]
async fn every_event_file_is_understood() {
    let dir = format!("{}/events", common::MANIFEST_DIR);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("events/")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert!(files.len() >= 17, "{files:?}");
    for file in &files {
        let h = Handler::new(sample_source(), FakeSink::default(), default_config())
            .with_clock(fixture_clock());
        let s = h
            .handle(&event_fixture(file))
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            s.records_invalid.is_empty(),
            "{file}: {:?}",
            s.records_invalid
        );
        assert!(
            s.objects.len() + s.records_ignored.len() > 0,
            "{file}: nothing announced: {s:#?}"
        );
    }
}

/// The object's `nginx-version` metadata picks the request-line rules its lines are read by;
/// without it each line is read by what it proves.
#[tokio::test]
async fn request_lines_are_read_by_the_version_of_the_nginx_that_wrote_the_object() {
    let object = "nginx/i-0123456789abcdef0/access/2026/11/24/access.log-20261124T1000.gz";
    let body = concat!(
        r#"198.51.100.7 - - [24/Nov/2026:10:00:01 +0000] "GET /files/annual report 2026.pdf HTTP/1.1" 200 508249 "-" "curl/8.5.0""#,
        "\n",
        r#"198.51.100.7 - - [24/Nov/2026:10:00:02 +0000] "GET /bad%zz escape HTTP/1.1" 400 157 "-" "curl/8.5.0""#,
        "\n",
    );
    let parts = |m: &Value| {
        ["request_method", "request_uri", "server_protocol"]
            .map(|k| m.get(k).and_then(Value::as_str).map(str::to_string))
    };
    let some = |s: &str| Some(s.to_string());
    let annual = [
        some("GET"),
        some("/files/annual report 2026.pdf"),
        some("HTTP/1.1"),
    ];
    // (nginx-version, the parts of each line)
    let cases = [
        // Served: an nginx before 1.21.1 wrote it. Answered 400: maybe a newer one's parser.
        (None, [annual.clone(), [None, None, None]]),
        // 1.18 parsed both, then rejected the second one's URI (a bad `%` escape).
        (
            Some("1.18.0"),
            [annual.clone(), [some("GET"), None, some("HTTP/1.1")]],
        ),
        // 1.22 rejects both lines: a space in the URI.
        (Some("1.22.1"), [[None, None, None], [None, None, None]]),
    ];
    for (version, want) in cases {
        let mut source = FakeSource::default().with(BUCKET, object, gzip(body.as_bytes()));
        source.metadata = version
            .map(|v| vec![("nginx-version".to_string(), v.to_string())])
            .unwrap_or_default();
        let h =
            Handler::new(source, FakeSink::default(), default_config()).with_clock(fixture_clock());
        let s = h
            .handle(&common::s3_event(BUCKET, &[object]))
            .await
            .unwrap();
        assert_eq!(s.objects_delivered, 1, "{version:?}: {s:#?}");
        let got: Vec<_> = h.sink.messages()[&key("nginx-access", "i-0123456789abcdef0")]
            .iter()
            .map(|m| parts(&serde_json::from_str(m).expect("JSON")))
            .collect();
        assert_eq!(got, want, "{version:?}");
    }
}
