//! Progress writes per object (issue 15): a small object, the follower's common case, costs
//! one progress write (PutObjectTagging), not two; redelivery is still detected.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{
    FakeCheckpoints, FakeSink, FakeSource, combined_line, fake_etag, fixture_clock, gzip,
    s3_event_with_etag,
};
use nginx_cloudwatch_forwarder::checkpoint::State;
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::handler::Handler;

const BUCKET: &str = "b";
const KEY: &str = "nginx/i-0123456789abcdef0/access/2026/11/24/access.log-803.4f21a.g1-0-1000.gz";

fn segment(lines: usize) -> Vec<u8> {
    let text: String = (0..lines)
        .map(|i| {
            combined_line(
                "10.0.0.1",
                common::FIXTURE_NOW_MS - 3_600_000 + i as i64 * 10,
                &format!("/p/{i}"),
                200,
            ) + "\n"
        })
        .collect();
    gzip(text.as_bytes())
}

async fn deliver(
    body: &[u8],
    store: &Arc<FakeCheckpoints>,
    config: Config,
) -> (nginx_cloudwatch_forwarder::summary::Summary, Arc<FakeSink>) {
    let etag = fake_etag(body);
    let source = FakeSource::default().with(BUCKET, KEY, body.to_vec());
    let h = Handler::new(source, FakeSink::default(), config)
        .with_checkpoints(store.clone())
        .with_clock(fixture_clock());
    let summary = h
        .handle(&s3_event_with_etag(BUCKET, KEY, &etag))
        .await
        .expect("known payload");
    (summary, h.sink)
}

#[tokio::test]
async fn a_single_batch_object_costs_one_progress_write_and_is_not_sent_again() {
    let body = segment(500);
    let store = Arc::new(FakeCheckpoints::default());
    let (first, sink) = deliver(&body, &store, common::default_config()).await;
    assert_eq!(first.objects_delivered, 1, "{first:?}");
    assert_eq!(first.totals.batches, 1);
    assert_eq!(sink.puts().len(), 1);
    // The batch's confirmation writes nothing: the last record ("done") follows at once.
    assert_eq!(store.saves.load(Ordering::Relaxed), 1);
    assert!(matches!(
        store.progress(BUCKET, KEY).map(|p| p.state),
        Some(State::Done { lines: 500 })
    ));

    // A duplicate notification: skipped by the record, nothing sent, nothing written.
    let (again, sink) = deliver(&body, &store, common::default_config()).await;
    assert_eq!(again.already_delivered, 1, "{again:?}");
    assert!(sink.puts().is_empty());
    assert_eq!(store.saves.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_multi_batch_object_still_records_progress_between_batches() {
    // Several batches (6 with these lines), one put at a time: each send finds the previous
    // put confirmed, while reading goes on.
    let n = 20_000;
    let body = segment(n);
    let store = Arc::new(FakeCheckpoints::default());
    let config =
        Config::from_lookup(|k| (k == "MAX_CONCURRENT_PUTS").then(|| "1".to_string())).unwrap();
    let (summary, sink) = deliver(&body, &store, config).await;
    assert_eq!(summary.objects_delivered, 1, "{summary:?}");
    let batches = summary.totals.batches;
    assert!(batches >= 3, "{batches} batches");
    let mut lines: Vec<u64> = sink
        .puts()
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.line))
        .collect();
    lines.sort_unstable();
    assert_eq!(lines, (1..=n as u64).collect::<Vec<_>>());
    let saves = store.saves.load(Ordering::Relaxed) as u64;
    // Batches confirmed while reading went on were recorded (the first one at least, as no
    // write was in flight then); the last confirmation is covered by the final record.
    assert!(saves >= 2, "{saves} saves for {batches} batches");
    assert!(saves <= batches, "{saves} saves for {batches} batches");
    assert!(matches!(
        store.progress(BUCKET, KEY).map(|p| p.state),
        Some(State::Done { .. })
    ));
}
