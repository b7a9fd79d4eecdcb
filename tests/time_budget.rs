//! The invocation's time budget with fakes: an invocation that stops on time names the last line
//! it delivered, the next one resumes exactly there; a deadline that makes no sense (an
//! emulator's) does not stop the work.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{FakeCheckpoints, FakeSink, FakeSource, combined_line, s3_event};
use nginx_cloudwatch_forwarder::checkpoint::State;
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::forward::epoch_ms;
use nginx_cloudwatch_forwarder::handler::{Budget, DeadlineProblem, Handler, budget};
use nginx_cloudwatch_forwarder::parse::LogEvent;
use nginx_cloudwatch_forwarder::ports::{Entity, LogSink, PutReport, SinkError};
use nginx_cloudwatch_forwarder::summary::{Outcome, Summary};
use serde_json::Value;

const BUCKET: &str = "b";
const KEY: &str = "nginx/i-0123456789abcdef0/access/big.log";
const NOW: i64 = common::FIXTURE_NOW_MS;
/// Several batches (about 3,500 events of ~300 bytes fill 1 MiB), all within one hour.
const LINES: usize = 20_000;

fn access_log(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            combined_line(
                "10.0.0.1",
                NOW - 3_600_000 + i as i64 * 10,
                &format!("/l/{i}"),
                200,
            ) + "\n"
        })
        .collect::<String>()
        .into_bytes()
}

/// A sink whose puts from the `fast`-th on last until `until`: the invocation's time runs out
/// while they are in flight.
struct SlowSink {
    inner: FakeSink,
    fast: usize,
    until: Instant,
    calls: AtomicUsize,
}

impl LogSink for SlowSink {
    async fn put(
        &self,
        group: &str,
        stream: &str,
        entity: Option<&Entity>,
        events: Vec<LogEvent>,
    ) -> Result<PutReport, SinkError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.fast {
            // A put that takes until the deadline (the time passing is the point, not a wait
            // for another task).
            tokio::time::sleep_until(self.until.into()).await;
        }
        self.inner.put(group, stream, entity, events).await
    }
}

fn one_put_at_a_time() -> Config {
    // One put at a time: the delivered lines are then a prefix of the object.
    Config::from_lookup(|k| (k == "MAX_CONCURRENT_PUTS").then(|| "1".to_string())).expect("valid")
}

/// request_uri index (`/l/<i>` is line i + 1) → how many times it arrived.
fn arrivals(sinks: &[&FakeSink]) -> BTreeMap<usize, usize> {
    let mut out = BTreeMap::new();
    for s in sinks {
        for p in s.puts() {
            for e in p.events {
                let v: Value = serde_json::from_str(&e.message.text()).expect("JSON");
                let uri = v["request_uri"].as_str().expect("uri");
                let i: usize = uri
                    .strip_prefix("/l/")
                    .and_then(|i| i.parse().ok())
                    .expect("/l/<i>");
                *out.entry(i).or_default() += 1;
            }
        }
    }
    out
}

fn failure(summary: &Summary) -> &str {
    match &summary.objects[0].outcome {
        Outcome::Failed { error } => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn stopping_on_time_names_the_last_delivered_line_and_the_next_attempt_resumes_there() {
    let store = Arc::new(FakeCheckpoints::default());
    let source = || FakeSource::default().with(BUCKET, KEY, access_log(LINES));

    // Time is up before anything could be sent.
    let h = Handler::new(source(), FakeSink::default(), one_put_at_a_time())
        .with_clock(common::fixture_clock())
        .with_checkpoints(store.clone());
    let early = h
        .handle_until(&s3_event(BUCKET, &[KEY]), Some(Instant::now()))
        .await
        .expect("S3 event");
    let error = failure(&early);
    assert!(
        error.contains("no line delivered yet") && error.contains("resumes at line 1"),
        "{error}"
    );
    assert!(h.sink.puts().is_empty());

    // Two puts go through at once, the third lasts until the deadline: the next batch finds
    // the time up (the deadline minus a quarter of it) and the object stops.
    let deadline = Instant::now() + Duration::from_secs(4);
    let slow = SlowSink {
        inner: FakeSink::default(),
        fast: 2,
        until: deadline,
        calls: AtomicUsize::new(0),
    };
    let h = Handler::new(source(), slow, one_put_at_a_time())
        .with_clock(common::fixture_clock())
        .with_checkpoints(store.clone());
    let first = h
        .handle_until(&s3_event(BUCKET, &[KEY]), Some(deadline))
        .await
        .expect("S3 event");
    let sink1 = &h.sink.inner;
    let got = arrivals(&[sink1]);
    let delivered = got.len();
    assert!(
        delivered > 0 && delivered < LINES,
        "{delivered} of {LINES} delivered"
    );
    // What arrived is lines 1..=delivered, each once.
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..delivered).collect::<Vec<_>>()
    );
    assert!(got.values().all(|&c| c == 1));
    assert_eq!(first.totals.events, delivered as u64);
    let error = failure(&first);
    assert!(
        error.contains(&format!("every line up to {delivered} is delivered"))
            && error.contains(&format!("resumes at line {}", delivered + 1)),
        "{error}"
    );
    // The reader got further than what was delivered; the message says both apart.
    let reader_at: u64 = error
        .split("the reader was at line ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no reader position in {error}"));
    assert!(reader_at > delivered as u64 + 1, "{error}");
    // The record holds only what was confirmed.
    match store.progress(BUCKET, KEY).map(|p| p.state) {
        Some(State::Partial { resume_line, .. }) => {
            assert_eq!(resume_line, delivered as u64 + 1)
        }
        other => panic!("expected a partial record, got {other:?}"),
    }

    // The next attempt, with time enough, resumes at the next line and sends the rest.
    let h2 = Handler::new(source(), FakeSink::default(), one_put_at_a_time())
        .with_clock(common::fixture_clock())
        .with_checkpoints(store.clone());
    let second = h2
        .handle_until(
            &s3_event(BUCKET, &[KEY]),
            Some(Instant::now() + Duration::from_secs(600)),
        )
        .await
        .expect("S3 event");
    assert_eq!(second.objects_delivered, 1, "{second:#?}");
    assert_eq!(
        second.objects[0].resumed_from_line,
        Some(delivered as u64 + 1)
    );
    assert_eq!(second.totals.events, (LINES - delivered) as u64);
    let all = arrivals(&[sink1, &h2.sink]);
    assert_eq!(all.len(), LINES, "every line arrived");
    assert!(
        all.values().all(|&c| c == 1),
        "a line arrived twice: {:?}",
        all.iter().find(|(_, c)| **c != 1)
    );
    assert!(matches!(
        store.progress(BUCKET, KEY).map(|p| p.state),
        Some(State::Done { lines }) if lines == LINES as u64
    ));
}

#[tokio::test]
async fn an_emulators_relative_deadline_does_not_stop_the_work() {
    // `cargo lambda watch` sends Lambda-Runtime-Deadline-Ms: 600000.
    let b = budget(
        600_000,
        epoch_ms(std::time::SystemTime::now()),
        Instant::now(),
    );
    assert!(
        matches!(
            b,
            Budget::Fallback {
                problem: DeadlineProblem::Relative { .. },
                ..
            }
        ),
        "{b:?}"
    );
    let store = Arc::new(FakeCheckpoints::default());
    let h = Handler::new(
        FakeSource::default().with(BUCKET, KEY, access_log(LINES)),
        FakeSink::default(),
        one_put_at_a_time(),
    )
    .with_clock(common::fixture_clock())
    .with_checkpoints(store.clone());
    let s = h
        .handle_within(&s3_event(BUCKET, &[KEY]), b)
        .await
        .expect("S3 event");
    assert_eq!(
        (s.objects_delivered, s.objects_failed, s.totals.events),
        (1, 0, LINES as u64),
        "{s:#?}"
    );
    assert_eq!(arrivals(&[&h.sink]).len(), LINES);
    assert!(matches!(
        store.progress(BUCKET, KEY).map(|p| p.state),
        Some(State::Done { .. })
    ));
}
