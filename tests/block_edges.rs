//! The Lambda reads objects in blocks of whole lines (1 MiB) parsed on every core: an error log
//! whose multi-line records straddle block edges, with leading stray lines, blank lines and NUL
//! bytes, is delivered exactly as line-by-line parsing gives it, and a failed delivery resumes
//! with each event once.

mod common;

use std::sync::Arc;

use common::{FakeCheckpoints, FakeSink};
use nginx_cloudwatch_forwarder::checkpoint::State;
use nginx_cloudwatch_forwarder::parse::{LineParser, LogEvent, ParseSettings};
use nginx_cloudwatch_forwarder::route::LogKind;
use nginx_cloudwatch_forwarder::summary::Summary;

const BUCKET: &str = "b";
const KEY: &str = "nginx/i-0123456789abcdef0/error/2026/11/24/error.log-20261124T1000";

/// About 3 MiB of error log: records with 0 to 40 continuation lines of varying length, so
/// that records cross the 1 MiB block edges at every kind of place.
fn error_log() -> Vec<u8> {
    let mut out = b"stray line before any record\n  continued\n".to_vec();
    for i in 0..12_000u32 {
        let (h, m, s) = (10 + i / 3600 % 2, i / 60 % 60, i % 60);
        out.extend_from_slice(
            format!(
                "2026/11/24 {h:02}:{m:02}:{s:02} [error] 12#12: *{i} upstream failed, client: 10.0.0.{}, server: a, request: \"GET /e/{i} HTTP/1.1\", host: \"a\"\n",
                i % 250
            )
            .as_bytes(),
        );
        for k in 0..(i * 7 % 41) {
            match k % 9 {
                0 => out.extend_from_slice(b"\n"),
                1 => out.extend_from_slice(b"\0\0padding\0\n"),
                _ => out.extend_from_slice(
                    format!(
                        "#{k} /srv/app/{}.php({i}): frame\n",
                        "x".repeat((k * 13 % 60) as usize)
                    )
                    .as_bytes(),
                ),
            }
        }
    }
    out
}

/// What line-by-line parsing gives (the reference the block road must match).
fn line_by_line(data: &[u8]) -> Vec<LogEvent> {
    let settings = ParseSettings::default();
    let mut parser = LineParser::new(&settings, LogKind::Error, 0);
    let mut out = Vec::new();
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let clean: Vec<u8> = line.iter().copied().filter(|&b| b != 0).collect();
        let line = String::from_utf8_lossy(&clean);
        if !line.trim().is_empty() {
            parser.push(&line, i as u64 + 1, &mut out);
        }
    }
    parser.finish(&mut out);
    out
}

async fn run(sink: FakeSink, store: &Arc<FakeCheckpoints>) -> (Summary, FakeSink) {
    common::forward_one(sink, store, (BUCKET, KEY, error_log()), "1").await
}

/// (first line, message) of every event stored, sorted by line.
fn stored(sinks: &[&FakeSink]) -> Vec<(u64, String)> {
    let mut got: Vec<(u64, String)> = sinks
        .iter()
        .flat_map(|s| s.puts())
        .flat_map(|p| p.events)
        .map(|e| (e.line, e.message.text()))
        .collect();
    got.sort();
    got
}

#[tokio::test]
async fn error_records_across_block_edges_arrive_as_line_by_line_parses_them() {
    let data = error_log();
    assert!(data.len() > 3 << 20, "{} bytes: several blocks", data.len());
    let want: Vec<(u64, String)> = line_by_line(&data)
        .into_iter()
        .map(|e| (e.line, e.message.text()))
        .collect();
    assert!(want[0].1.contains("continued"), "{}", want[0].1);

    let store = Arc::new(FakeCheckpoints::default());
    let (summary, sink) = run(FakeSink::default(), &store).await;
    assert_eq!(summary.objects_delivered, 1, "{summary:#?}");
    let got = stored(&[&sink]);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(summary.totals.lines, lines);
    assert!(matches!(
        store.progress(BUCKET, KEY).map(|p| p.state),
        Some(State::Done { lines: l }) if l == lines
    ));
}

#[tokio::test]
async fn a_failed_error_log_resumes_with_each_record_once() {
    let want: Vec<(u64, String)> = line_by_line(&error_log())
        .into_iter()
        .map(|e| (e.line, e.message.text()))
        .collect();
    let store = Arc::new(FakeCheckpoints::default());
    let failing = FakeSink {
        fail_after: Some(2),
        ..FakeSink::default()
    };
    let (first, sink1) = run(failing, &store).await;
    assert_eq!(first.objects_failed, 1, "{first:#?}");
    let (second, sink2) = run(FakeSink::default(), &store).await;
    assert_eq!(second.objects_delivered, 1, "{second:#?}");
    assert!(second.objects[0].resumed_from_line.is_some_and(|l| l > 1));
    assert_eq!(stored(&[&sink1, &sink2]), want);
}
