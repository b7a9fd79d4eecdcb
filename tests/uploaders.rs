//! A host writes only its own stream (issue 31), through the real handler with fakes: every
//! attack of the threat model (docs/design.md) as the trigger would carry it, with what was
//! read and sent counted where the fakes receive it. "Nothing is read" is exact: no open, no
//! progress record read, no put.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{
    FakeCheckpoints, FakeSink, FakeSource, event_fixture, fixture_clock, gzip, read_fixture,
};
use nginx_cloudwatch_forwarder::checkpoint::ProgressRecord;
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::event::ObjectRef;
use nginx_cloudwatch_forwarder::handler::Handler;
use nginx_cloudwatch_forwarder::ports::{CheckpointError, CheckpointStore, Stored};
use nginx_cloudwatch_forwarder::summary::{Outcome, Summary};
use nginx_cloudwatch_forwarder::trust::Refusal;
use serde_json::{Value, json};

const BUCKET: &str = "nginx-logs-example";
/// The instance the fixtures' keys name (the victim).
const B: &str = "i-0123456789abcdef0";
/// Another instance (the uploader).
const A: &str = "i-0aaaaaaaaaaaaaaaa";
const ROLE: &str = "AROAEXAMPLEROLEID";
const ACCESS_KEY: &str = "nginx/i-0123456789abcdef0/access/2026/11/24/access.log-20261124T1000.gz";

/// Progress records in memory that count reads: a refused object's is never read.
#[derive(Default)]
struct CountingCheckpoints {
    inner: FakeCheckpoints,
    loads: AtomicUsize,
}

impl CheckpointStore for CountingCheckpoints {
    async fn load(&self, obj: &ObjectRef) -> Result<Stored, CheckpointError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(obj).await
    }

    async fn save(
        &self,
        obj: &ObjectRef,
        other_tags: &[(String, String)],
        progress: &ProgressRecord,
    ) -> Result<(), CheckpointError> {
        self.inner.save(obj, other_tags, progress).await
    }
}

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .expect("valid settings")
}

/// The access log of the fixtures under `key`, with the ETag the fixtures name.
fn source(keys: &[&str]) -> FakeSource {
    let body = gzip(&read_fixture("tests/data/access.log"));
    keys.iter().fold(FakeSource::default(), |s, k| {
        s.with_etag(BUCKET, k, body.clone(), "9b2cf535f27731c974343645a3985328")
    })
}

/// S3's record of an upload of `key` by `principal` (`None`: no `userIdentity`, as moto
/// writes), from events/s3-put.json's first record.
fn upload(key: &str, principal: Option<&str>) -> Value {
    let mut record = event_fixture("s3-put.json")["Records"][0].clone();
    record["s3"]["object"]["key"] = json!(key);
    match principal {
        Some(p) => record["userIdentity"] = json!({"principalId": p}),
        None => {
            record
                .as_object_mut()
                .expect("a record")
                .remove("userIdentity");
        }
    }
    json!({"Records": [record]})
}

/// `payloads` as the bodies of one SQS batch, message IDs `m-1`, `m-2` …
fn sqs_batch(payloads: &[Value]) -> Value {
    let records: Vec<Value> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"messageId": format!("m-{}", i + 1), "receiptHandle": "AQEB", "body": p.to_string(),
                   "attributes": {}, "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
                   "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:nginx-logs", "awsRegion": "us-east-1"})
        })
        .collect();
    json!({"Records": records})
}

struct Run {
    summary: Summary,
    opens: usize,
    loads: usize,
    /// Events sent, by stream.
    sent: std::collections::BTreeMap<String, usize>,
}

async fn run(config: Config, source: FakeSource, payload: &Value) -> Run {
    let h = Handler::new(source, FakeSink::default(), config)
        .with_clock(fixture_clock())
        .with_checkpoints(CountingCheckpoints::default());
    let summary = h.handle(payload).await.expect("known shape");
    let sent = h
        .sink
        .messages()
        .into_iter()
        .map(|((_, stream), m)| (stream, m.len()))
        .collect();
    Run {
        opens: h.source.opens.lock().expect("not poisoned").len(),
        loads: h.checkpoints.loads.load(Ordering::SeqCst),
        sent,
        summary,
    }
}

/// Nothing read, nothing sent, nothing to retry.
fn assert_untouched(r: &Run) {
    assert_eq!(
        (r.opens, r.loads, r.sent.len()),
        (0, 0, 0),
        "{:#?}",
        r.summary
    );
    assert!(!r.summary.has_failures(), "{:#?}", r.summary);
    assert!(r.summary.failed_messages.is_empty(), "{:#?}", r.summary);
}

#[tokio::test]
async fn an_instance_uploading_under_anothers_key_puts_nothing_in_its_stream() {
    let a = format!("AWS:{ROLE}:{A}");
    let direct = upload(ACCESS_KEY, Some(&a));
    for payload in [direct.clone(), sqs_batch(&[direct])] {
        let r = run(config(&[]), source(&[ACCESS_KEY]), &payload).await;
        assert_untouched(&r);
        assert_eq!(r.summary.trust.objects_untrusted, 1);
        let report = &r.summary.objects[0];
        assert_eq!(report.uploader.as_deref(), Some(a.as_str()));
        let Outcome::Untrusted {
            reason,
            key_instance,
            uploader_instance,
        } = &report.outcome
        else {
            panic!("{report:?}")
        };
        assert_eq!(
            (key_instance.as_str(), uploader_instance.as_deref()),
            (B, Some(A))
        );
        assert!(reason.contains(A) && reason.contains(B), "{reason}");
        // The summary line the function logs names both instances and the principal.
        let line = serde_json::to_string(&r.summary).unwrap();
        for needle in [
            A,
            B,
            a.as_str(),
            "\"status\":\"untrusted\"",
            "\"objects_untrusted\":1",
        ] {
            assert!(line.contains(needle), "{needle} not in {line}");
        }
    }
    // The same upload by B itself is delivered.
    let b = format!("AWS:{ROLE}:{B}");
    let r = run(
        config(&[]),
        source(&[ACCESS_KEY]),
        &upload(ACCESS_KEY, Some(&b)),
    )
    .await;
    assert_eq!(r.summary.objects_delivered, 1, "{:#?}", r.summary);
    assert_eq!(r.sent[B], 11);
    assert_eq!(r.summary.trust.objects_untrusted, 0);
}

#[tokio::test]
async fn the_host_policy_layout_is_checked_segment_for_segment() {
    let own = format!("nginx/{ROLE}:{A}/access/2026/11/24/a.log.gz");
    let other_role = format!("nginx/AROAOTHERROLE:{A}/access/2026/11/24/a.log.gz");
    let nested = format!("nginx/{ROLE}:{A}/{B}/access/2026/11/24/a.log.gz");
    let a = format!("AWS:{ROLE}:{A}");
    let src = || source(&[&own, &other_role, &nested]);
    let r = run(config(&[]), src(), &upload(&own, Some(&a))).await;
    assert_eq!(r.summary.objects_delivered, 1, "{:#?}", r.summary);
    assert_eq!(r.sent[A], 11, "the stream is the instance, not the role");

    let r = run(config(&[]), src(), &upload(&other_role, Some(&a))).await;
    assert_untouched(&r);
    assert_eq!(r.summary.trust.objects_untrusted, 1);

    // Allowed by the host policy (under A's prefix), routed by every pattern to B: refused.
    let r = run(config(&[]), src(), &upload(&nested, Some(&a))).await;
    assert_untouched(&r);
    assert_eq!(
        (
            r.summary.trust.records_refused,
            r.summary.trust.refused_outside_key_pattern
        ),
        (1, 1)
    );
    assert!(
        r.summary.trust.refusals[0].contains("names two instances"),
        "{:?}",
        r.summary.trust
    );
}

#[tokio::test]
async fn who_else_may_upload_is_the_deployments_choice() {
    let user = "AWS:AIDAJ4W5SF5AANMKCKRVW";
    let operator = "AWS:AROAOPSROLE1:alice";
    // A look-alike: another role's session named after the instance.
    let lookalike = format!("AWS:AROAOTHERROLE:{B}");
    let pinned = format!("instance-only,role/{ROLE}");
    // (UPLOADER_CHECK, principal, delivered?, uploader_other, uploader_unknown)
    let cases: [(&str, Option<&str>, bool, u64, u64); 9] = [
        ("instance", Some(user), true, 1, 0),
        ("instance", None, true, 0, 1),
        ("instance", Some(&lookalike), true, 0, 0),
        ("instance-only", Some(user), false, 0, 0),
        ("instance-only", None, false, 0, 0),
        ("instance-only,AROAOPSROLE1", Some(operator), true, 0, 0),
        (
            "instance-only,AIDAJ4W5SF5AANMKCKRVW",
            Some(user),
            true,
            0,
            0,
        ),
        (&pinned, Some(&lookalike), false, 0, 0),
        ("off", Some(&format!("AWS:{ROLE}:{A}")), true, 0, 0),
    ];
    for (check, principal, delivered, other, unknown) in cases {
        let r = run(
            config(&[("UPLOADER_CHECK", check)]),
            source(&[ACCESS_KEY]),
            &upload(ACCESS_KEY, principal),
        )
        .await;
        let t = &r.summary.trust;
        let got = (
            r.summary.objects_delivered == 1,
            t.objects_untrusted,
            t.objects_uploader_other,
            t.objects_uploader_unknown,
        );
        let want = (delivered, u64::from(!delivered), other, unknown);
        assert_eq!(got, want, "{check} {principal:?}: {:#?}", r.summary);
        if !delivered {
            assert_untouched(&r);
        }
    }
}

#[tokio::test]
async fn messages_not_to_act_on_are_refused_before_any_request() {
    let settings = [
        ("SOURCE_BUCKET", BUCKET),
        ("SOURCE_ACCOUNT", "123456789012"),
    ];
    let b = format!("AWS:{ROLE}:{B}");
    let mut forged_bucket = upload(ACCESS_KEY, Some(&b));
    forged_bucket["Records"][0]["s3"]["bucket"]["name"] = json!("someone-elses-bucket");
    let outside = upload("nginx/report.csv", Some(&b));
    let forged_test =
        json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "someone-elses-bucket"});
    let mut other_account = event_fixture("eventbridge-object-created.json");
    other_account["account"] = json!("999988887777");
    let mut other_requester = event_fixture("eventbridge-object-created.json");
    other_requester["detail"]["requester"] = json!("999988887777");
    let cases = [
        (forged_bucket, Refusal::OtherBucket, "someone-elses-bucket"),
        (outside, Refusal::OutsideKeyPattern, "KEY_PATTERN"),
        (
            forged_test,
            Refusal::ForgedTestEvent,
            "someone-elses-bucket",
        ),
        (other_account, Refusal::OtherAccount, "999988887777"),
        (other_requester, Refusal::OtherAccount, "999988887777"),
    ];
    for (payload, refusal, named) in cases {
        // Alone, and in an SQS batch beside a genuine upload that is delivered.
        let r = run(config(&settings), source(&[ACCESS_KEY]), &payload).await;
        assert_untouched(&r);
        let t = &r.summary.trust;
        let counted = match refusal {
            Refusal::OtherBucket => t.refused_other_bucket,
            Refusal::OutsideKeyPattern => t.refused_outside_key_pattern,
            Refusal::ForgedTestEvent => t.refused_forged_test_event,
            Refusal::OtherAccount => t.refused_other_account,
        };
        assert_eq!((t.records_refused, counted), (1, 1), "{refusal:?}: {t:#?}");
        assert!(
            t.refusals[0].contains(named),
            "{refusal:?}: {:?}",
            t.refusals
        );

        let batch = sqs_batch(&[payload, upload(ACCESS_KEY, Some(&b))]);
        let r = run(config(&settings), source(&[ACCESS_KEY]), &batch).await;
        assert_eq!(
            (
                r.summary.objects_delivered,
                r.summary.trust.records_refused,
                r.opens
            ),
            (1, 1, 1),
            "{refusal:?}: {:#?}",
            r.summary
        );
        assert!(
            r.summary.failed_messages.is_empty(),
            "a refusal is not retried"
        );
    }
    // S3's own test event and EventBridge event of this account pass.
    let genuine = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET});
    let r = run(config(&settings), source(&[]), &genuine).await;
    assert_eq!(
        (
            r.summary.records_ignored.len(),
            r.summary.trust.records_refused
        ),
        (1, 0)
    );
    let eb = event_fixture("eventbridge-object-created.json");
    let r = run(config(&settings), source(&[ACCESS_KEY]), &eb).await;
    assert_eq!(r.summary.objects_delivered, 1, "{:#?}", r.summary);
    assert_eq!(r.summary.trust.objects_uploader_unknown, 1);
}

#[tokio::test]
async fn the_counts_are_metrics() {
    let a = format!("AWS:{ROLE}:{A}");
    let r = run(
        config(&[]),
        source(&[ACCESS_KEY]),
        &upload(ACCESS_KEY, Some(&a)),
    )
    .await;
    let line = r.summary.emf_line("fwd", 0);
    let declared: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    for name in [
        "objects_untrusted",
        "objects_uploader_other",
        "objects_uploader_unknown",
        "records_refused",
        "refused_other_bucket",
        "refused_outside_key_pattern",
        "refused_forged_test_event",
        "refused_other_account",
    ] {
        assert!(declared.contains(&name), "{name} is not a metric");
        assert!(line[name].is_u64(), "{name}: {}", line[name]);
    }
    assert_eq!(line["objects_untrusted"], 1);
}

/// The samples in events/ (what docs/design.md's threat model names), with the stack's
/// settings: each comes out as the threat model says.
#[tokio::test]
async fn the_sample_events_come_out_as_the_threat_model_says() {
    let settings = [
        ("SOURCE_BUCKET", BUCKET),
        ("SOURCE_ACCOUNT", "123456789012"),
    ];
    let new_layout = "nginx/AROAEXAMPLEROLEID:i-0123456789abcdef0/access/2026/12/05/access.log-803.1311.g0-0-52.gz";
    let cross = "nginx/i-0123456789abcdef0/access/2026/12/05/access.log-20261205.gz";
    let src = || source(&[new_layout, cross, ACCESS_KEY]);
    let r = run(
        config(&settings),
        src(),
        &event_fixture("s3-put-new-layout.json"),
    )
    .await;
    assert_eq!(
        (r.summary.objects_delivered, r.sent[B]),
        (1, 11),
        "{:#?}",
        r.summary
    );
    for (file, untrusted, refused) in [
        ("s3-put-cross-instance.json", 1, 0),
        ("sqs-forged-bucket.json", 0, 1),
        ("eventbridge-other-account.json", 0, 1),
    ] {
        let r = run(config(&settings), src(), &event_fixture(file)).await;
        assert_untouched(&r);
        let t = &r.summary.trust;
        assert_eq!(
            (t.objects_untrusted, t.records_refused),
            (untrusted, refused),
            "{file}: {t:#?}"
        );
    }
}
