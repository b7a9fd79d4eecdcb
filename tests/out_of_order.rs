//! Batches that complete out of order, across the blocks of an object, then a resume: the
//! progress record has a hole where an early batch failed while later ones were stored, and
//! the next attempt sends exactly the lines of that hole.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{FakeCheckpoints, combined_line};
use nginx_cloudwatch_forwarder::checkpoint::State;
use nginx_cloudwatch_forwarder::parse::LogEvent;
use nginx_cloudwatch_forwarder::ports::{Entity, LogSink, PutReport, SinkError};
use nginx_cloudwatch_forwarder::summary::Summary;
use serde_json::Value;
use tokio::sync::Semaphore;

const BUCKET: &str = "b";
const KEY: &str = "nginx/i-0123456789abcdef0/access/shuffled.log";
const NOW: i64 = common::FIXTURE_NOW_MS;
/// Puts in flight at once, and the size of each group of puts completed in reverse order.
const GROUP: usize = 4;
const LINES: usize = 40_000;

/// Lines in chunks of 1,000 that alternate between two days, so that each batch (one day's
/// events) carries several runs of lines with gaps between them.
fn access_log() -> String {
    (0..LINES)
        .map(|i| {
            let day_back = if (i / 1000) % 2 == 0 { 0 } else { 86_400_000 };
            let ts = NOW - 3_600_000 - day_back + i as i64 * 10;
            combined_line("10.0.0.1", ts, &format!("/l/{i}"), 200) + "\n"
        })
        .collect()
}

/// Completes the puts of each group of [`GROUP`] in reverse order of arrival (the last to
/// arrive first), without sleeping: put `i` waits until put `i + 1` of its group is done. The
/// put that arrives `fail`-th is refused.
struct ReorderingSink {
    /// How many puts will arrive in all (the last group may be short).
    total: usize,
    fail: Option<usize>,
    arrived: AtomicUsize,
    gates: Vec<Semaphore>,
    /// (arrival index, line of each event) of every stored put, in completion order.
    stored: Mutex<Vec<(usize, Vec<LogEvent>)>>,
}

impl ReorderingSink {
    fn new(total: usize, fail: Option<usize>) -> Self {
        Self {
            total,
            fail,
            arrived: AtomicUsize::new(0),
            gates: (0..total).map(|_| Semaphore::new(0)).collect(),
            stored: Mutex::new(Vec::new()),
        }
    }

    /// Completes every put at once, in arrival order.
    fn in_order() -> Self {
        Self::new(0, None)
    }

    fn stored(&self) -> Vec<(usize, Vec<LogEvent>)> {
        self.stored.lock().expect("not poisoned").clone()
    }
}

impl LogSink for ReorderingSink {
    async fn put(
        &self,
        group: &str,
        stream: &str,
        _entity: Option<&Entity>,
        events: Vec<LogEvent>,
    ) -> Result<PutReport, SinkError> {
        common::assert_batch_valid(&events);
        let i = self.arrived.fetch_add(1, Ordering::SeqCst);
        let reorder = !self.gates.is_empty();
        assert!(
            !reorder || i < self.total,
            "more puts than the dry run made"
        );
        let last_of_group = i % GROUP == GROUP - 1 || i + 1 == self.total;
        if reorder && !last_of_group {
            let permit = self.gates[i].acquire().await.expect("gate open");
            permit.forget();
        }
        let result = if self.fail == Some(i) {
            Err(SinkError::Rejected {
                group: group.into(),
                stream: stream.into(),
                detail: "injected failure".into(),
            })
        } else {
            self.stored.lock().expect("not poisoned").push((i, events));
            Ok(PutReport::default())
        };
        if reorder && !i.is_multiple_of(GROUP) {
            self.gates[i - 1].add_permits(1);
        }
        result
    }
}

async fn run(sink: ReorderingSink, store: &Arc<FakeCheckpoints>) -> (Summary, ReorderingSink) {
    common::forward_one(
        sink,
        store,
        (BUCKET, KEY, access_log().into_bytes()),
        &GROUP.to_string(),
    )
    .await
}

/// Line number (1-based, from the request path) → how many times it arrived.
fn arrivals(sinks: &[&ReorderingSink]) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for s in sinks {
        for (_, events) in s.stored() {
            for e in events {
                let v: Value = serde_json::from_str(&e.message.text()).expect("JSON");
                let uri = v["request_uri"].as_str().expect("uri");
                let i: u64 = uri.trim_start_matches("/l/").parse().expect("number");
                assert_eq!(e.line, i + 1, "the event's line is the line it came from");
                *out.entry(i + 1).or_default() += 1;
            }
        }
    }
    out
}

#[tokio::test]
async fn a_resume_after_batches_completed_out_of_order_across_blocks_sends_each_line_once() {
    // A dry run (no reordering, no failure) counts the puts the object makes.
    let dry_store = Arc::new(FakeCheckpoints::default());
    let (dry, _) = run(ReorderingSink::in_order(), &dry_store).await;
    let total = dry.totals.batches as usize;
    assert!(total > GROUP + 1, "{total} batches");
    // The first put of the last group fails; it completes after the later ones, which succeed.
    let fail = (total - 1) / GROUP * GROUP;
    assert!(
        fail + 1 < total,
        "the last group has puts after the failing one"
    );

    let store = Arc::new(FakeCheckpoints::default());
    let (first, sink1) = run(ReorderingSink::new(total, Some(fail)), &store).await;
    assert_eq!(first.objects_failed, 1, "{first:#?}");
    // Completion order was not arrival order.
    let order: Vec<usize> = sink1.stored().iter().map(|(i, _)| *i).collect();
    assert_ne!(order, (0..order.len()).collect::<Vec<_>>(), "{order:?}");
    assert_eq!(order.len(), total - 1);

    // The record: a hole (the failed batch's runs of lines) before lines already delivered.
    let state = store.progress(BUCKET, KEY).map(|p| p.state);
    let Some(State::Partial {
        resume_line,
        pending,
        next_line,
        ..
    }) = state
    else {
        panic!("{state:?}")
    };
    let failed_lines: Vec<u64> = {
        let first_run = arrivals(&[&sink1]);
        (1..=LINES as u64)
            .filter(|l| !first_run.contains_key(l))
            .collect()
    };
    assert!(!failed_lines.is_empty());
    assert_eq!(resume_line, failed_lines[0]);
    assert!(
        pending.len() > 1,
        "the failed batch's lines have gaps: {pending:?}"
    );
    for l in &failed_lines {
        assert!(
            pending.iter().any(|(a, b)| (*a..=*b).contains(l)),
            "line {l} is pending"
        );
    }
    let delivered_after_hole = arrivals(&[&sink1])
        .keys()
        .any(|&l| l > pending[pending.len() - 1].1);
    assert!(
        delivered_after_hole,
        "later lines were stored before the hole was"
    );
    assert_eq!(next_line, LINES as u64 + 1);

    // The retry sends exactly the lines of the hole.
    let (second, sink2) = run(ReorderingSink::in_order(), &store).await;
    assert_eq!(second.objects_delivered, 1, "{second:#?}");
    assert_eq!(second.objects[0].resumed_from_line, Some(resume_line));
    let got = arrivals(&[&sink1, &sink2]);
    assert_eq!(got.len(), LINES, "every line arrived");
    let dup: Vec<_> = got.iter().filter(|(_, c)| **c != 1).take(3).collect();
    assert!(dup.is_empty(), "lines sent twice, e.g. {dup:?}");
    assert_eq!(
        arrivals(&[&sink2]).keys().copied().collect::<Vec<_>>(),
        failed_lines
    );
    assert!(matches!(
        store.progress(BUCKET, KEY).map(|p| p.state),
        Some(State::Done { .. })
    ));
}
