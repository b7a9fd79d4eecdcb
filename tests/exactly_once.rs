//! Per-object progress with fakes: redelivery, failure and resume, overwrite, time budget, and
//! a checkpoint store that refuses access.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use common::{
    FakeCheckpoints, FakeSink, FakeSource, combined_line, default_config, gzip, s3_event,
};
use nginx_cloudwatch_forwarder::checkpoint::State;
use nginx_cloudwatch_forwarder::handler::Handler;
use nginx_cloudwatch_forwarder::summary::{Outcome, Summary};
use serde_json::Value;

const BUCKET: &str = "b";
const NOW: i64 = common::FIXTURE_NOW_MS;

fn access_log(n: usize) -> String {
    (0..n)
        .map(|i| {
            combined_line(
                "10.0.0.1",
                NOW - 3_600_000 + i as i64 * 10,
                &format!("/l/{i}"),
                200,
            ) + "\n"
        })
        .collect()
}

/// Runs one invocation for `key` with this sink and the shared store.
async fn run(
    source: FakeSource,
    sink: FakeSink,
    store: &Arc<FakeCheckpoints>,
    key: &str,
    deadline: Option<Instant>,
) -> (Summary, FakeSink) {
    let (summary, sink, _) = run_with_opens(source, sink, store, key, deadline).await;
    (summary, sink)
}

/// Also returns the range starts the source was asked for.
async fn run_with_opens(
    source: FakeSource,
    sink: FakeSink,
    store: &Arc<FakeCheckpoints>,
    key: &str,
    deadline: Option<Instant>,
) -> (Summary, FakeSink, Vec<u64>) {
    // One put at a time: which batches succeed before the refusal is then deterministic (with
    // parallel puts any 5 may), so the test can check where the retry resumes.
    let config = nginx_cloudwatch_forwarder::config::Config::from_lookup(|k| {
        (k == "MAX_CONCURRENT_PUTS").then(|| "1".to_string())
    })
    .expect("valid");
    let h = Handler::new(source, sink, config)
        .with_clock(common::fixture_clock())
        .with_checkpoints(store.clone());
    let summary = h
        .handle_until(&s3_event(BUCKET, &[key]), deadline)
        .await
        .expect("S3 event");
    let opens = h
        .source
        .opens
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|r| r.from_offset)
        .collect();
    let sink = Arc::try_unwrap(h.sink).ok().expect("no other owner");
    (summary, sink, opens)
}

/// request_uri → how many times it arrived, over several sinks.
fn arrivals(sinks: &[&FakeSink]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in sinks {
        for p in s.puts() {
            for e in p.events {
                let v: Value = serde_json::from_str(&e.message.text()).expect("JSON");
                *out.entry(v["request_uri"].as_str().expect("uri").to_string())
                    .or_default() += 1;
            }
        }
    }
    out
}

fn assert_exactly_once(got: &BTreeMap<String, usize>, n: usize) {
    assert_eq!(got.len(), n, "every line arrived");
    let dup: Vec<_> = got.iter().filter(|(_, c)| **c != 1).collect();
    assert!(
        dup.is_empty(),
        "{} lines arrived more than once, e.g. {:?}",
        dup.len(),
        dup.iter().take(3).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_same_event_twice_sends_nothing_the_second_time() {
    let key = "nginx/i-0123456789abcdef0/access/a.log";
    let store = Arc::new(FakeCheckpoints::default());
    let source = || FakeSource::default().with(BUCKET, key, access_log(100).into_bytes());
    let (first, sink1) = run(source(), FakeSink::default(), &store, key, None).await;
    assert_eq!((first.objects_delivered, first.totals.events), (1, 100));
    assert!(matches!(
        store.progress(BUCKET, key).map(|p| p.state),
        Some(State::Done { lines: 100 })
    ));

    let (second, sink2) = run(source(), FakeSink::default(), &store, key, None).await;
    assert_eq!(
        (second.already_delivered, second.totals.events),
        (1, 0),
        "{second:#?}"
    );
    assert!(matches!(
        second.objects[0].outcome,
        Outcome::AlreadyDelivered
    ));
    assert!(sink2.puts().is_empty());
    assert_exactly_once(&arrivals(&[&sink1, &sink2]), 100);
}

async fn fail_then_resume(body: Vec<u8>, n: usize, ranged: bool) {
    let body_len = body.len();
    let key = "nginx/i-0123456789abcdef0/access/big.log";
    let store = Arc::new(FakeCheckpoints::default());
    let source = || FakeSource::default().with(BUCKET, key, body.clone());
    // CloudWatch refuses every put after the 5th (a non-retryable error).
    let (first, sink1) = run(
        source(),
        FakeSink {
            fail_after: Some(5),
            ..FakeSink::default()
        },
        &store,
        key,
        None,
    )
    .await;
    assert_eq!(first.objects_failed, 1, "{first:#?}");
    assert!(matches!(
        store.progress(BUCKET, key).map(|p| p.state),
        Some(State::Partial { .. })
    ));
    let delivered_first = first.totals.events;
    assert!(delivered_first > 0 && (delivered_first as usize) < n);

    // Fault lifted: the retry resumes and sends only what is missing.
    let (second, sink2, opens) =
        run_with_opens(source(), FakeSink::default(), &store, key, None).await;
    assert_eq!(second.objects_delivered, 1, "{second:#?}");
    let resumed = second.objects[0].resumed_from_line.expect("resumed");
    assert!(resumed > 1);
    // Plain text resumes with a ranged read at the resume line; gzip reads from the start.
    assert_eq!(opens.len(), 1);
    assert_eq!(opens[0] > 0, ranged, "range start {}", opens[0]);
    if ranged {
        assert!(
            second.totals.lines < n as u64,
            "only the rest was read: {}",
            second.totals.lines
        );
    }
    assert_eq!(first.totals.events + second.totals.events, n as u64);
    assert_exactly_once(&arrivals(&[&sink1, &sink2]), n);
    assert!(matches!(
        store.progress(BUCKET, key).map(|p| p.state),
        Some(State::Done { .. })
    ));
    // At most one progress write per confirmed batch, plus the final one per run.
    let saves = store.saves.load(std::sync::atomic::Ordering::Relaxed) as u64;
    let batches = first.totals.batches + second.totals.batches;
    assert!(saves <= batches + 2, "{saves} saves for {batches} batches");
    let sent: usize = [&sink1, &sink2]
        .iter()
        .flat_map(|s| s.puts())
        .flat_map(|p| p.events)
        .map(|e| e.message.len() + 26)
        .sum();
    println!(
        "{} bytes of log → {sent} bytes sent in {batches} batches; {saves} progress writes",
        body_len
    );
}

#[tokio::test]
async fn a_failed_plain_object_resumes_with_a_ranged_read_and_sends_each_line_once() {
    fail_then_resume(access_log(40_000).into_bytes(), 40_000, true).await;
}

#[tokio::test]
async fn a_failed_gzip_object_resumes_by_skipping_and_sends_each_line_once() {
    fail_then_resume(gzip(access_log(40_000).as_bytes()), 40_000, false).await;
}

#[tokio::test]
async fn an_overwritten_object_is_forwarded_again() {
    let key = "nginx/i-0123456789abcdef0/access/a.log";
    let store = Arc::new(FakeCheckpoints::default());
    let (_, sink1) = run(
        FakeSource::default().with(BUCKET, key, access_log(10).into_bytes()),
        FakeSink::default(),
        &store,
        key,
        None,
    )
    .await;
    let (again, sink2) = run(
        FakeSource::default().with(BUCKET, key, access_log(12).into_bytes()),
        FakeSink::default(),
        &store,
        key,
        None,
    )
    .await;
    assert_eq!(
        (again.objects_delivered, again.totals.events),
        (1, 12),
        "{again:#?}"
    );
    assert_eq!((sink1.puts().len(), sink2.puts().len()), (1, 1));
}

#[tokio::test]
async fn out_of_time_stops_cleanly_and_the_next_attempt_finishes() {
    let key = "nginx/i-0123456789abcdef0/error/e.log";
    let text: String = (0..3000)
        .map(|i| {
            format!(
                "2026/11/24 11:00:{:02} [error] 7#7: *{i} boom {i}\ncontinued {i}\n",
                i % 60
            )
        })
        .collect();
    let store = Arc::new(FakeCheckpoints::default());
    let source = || FakeSource::default().with(BUCKET, key, text.clone().into_bytes());
    // The deadline has passed: nothing may start.
    let (first, sink1) = run(
        source(),
        FakeSink::default(),
        &store,
        key,
        Some(Instant::now()),
    )
    .await;
    match &first.objects[0].outcome {
        Outcome::Failed { error } => assert!(
            error.contains("Lambda timeout") && error.contains("resumes"),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(sink1.puts().is_empty());
    let (second, sink2) = run(source(), FakeSink::default(), &store, key, None).await;
    assert_eq!(
        (second.objects_delivered, second.totals.events),
        (1, 3000),
        "{second:#?}"
    );
    let msgs: Vec<String> = sink2
        .puts()
        .into_iter()
        .flat_map(|p| p.events.into_iter().map(|e| e.message.text()))
        .collect();
    assert!(
        msgs.iter().all(|m| m.contains("continued")),
        "continuation lines stay with their event"
    );
}

#[tokio::test]
async fn without_access_to_tags_it_forwards_anyway_and_says_at_least_once() {
    let keys = [
        "nginx/i-0123456789abcdef0/access/a.log",
        "nginx/i-0123456789abcdef0/access/b.log",
    ];
    let source = FakeSource::default()
        .with(BUCKET, keys[0], access_log(5).into_bytes())
        .with(BUCKET, keys[1], access_log(7).into_bytes());
    let store = FakeCheckpoints {
        deny: true,
        ..FakeCheckpoints::default()
    };
    let h = Handler::new(source, FakeSink::default(), default_config())
        .with_clock(common::fixture_clock())
        .with_checkpoints(store);
    let s = h.handle(&s3_event(BUCKET, &keys)).await.unwrap();
    assert_eq!(
        (s.objects_delivered, s.totals.events, s.delivery),
        (2, 12, "at-least-once"),
        "{s:#?}"
    );
    assert!(s.objects.iter().all(|o| {
        o.checkpoint_error
            .as_deref()
            .is_some_and(|e| e.contains("s3:GetObjectTagging"))
    }));
    assert!(!s.has_failures());
}
