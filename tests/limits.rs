//! PutLogEvents at the limits and under faults, through the real SDK against the strict local
//! endpoint in tests/common/strict_logs.rs, which fails the test on any rule a call breaks.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::strict_logs::{Faults, StrictLogs};
use common::{FakeSource, combined_line, default_config, now_ms, s3_event};
use nginx_cloudwatch_forwarder::aws::{clients_from, cloudwatch::CloudWatchSink};
use nginx_cloudwatch_forwarder::handler::Handler;
use nginx_cloudwatch_forwarder::summary::Summary;
use serde_json::Value;

const INSTANCE: &str = "i-0123456789abcdef0";
const KEY: &str = "nginx/i-0123456789abcdef0/access/2026/11/24/big.log";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const HUGE_LINE: usize = 30_000;
const OLD: usize = 100;
const FUTURE: usize = 100;
const TOTAL: usize = 60_000;

/// 60,000 lines: out of order over 30 h, one 2.5 MiB line, 100 lines 15 days old and 100 lines
/// 5 hours in the future (interleaved). Returns the object and the paths that must arrive.
fn big_object(now: i64) -> (String, Vec<String>) {
    let start = now - 31 * HOUR;
    let mut text = String::new();
    let mut deliverable = Vec::new();
    let (mut old, mut future) = (0, 0);
    for i in 0..TOTAL {
        let line = if i % 300 == 150 && old < OLD {
            old += 1;
            combined_line(
                "10.0.0.1",
                now - 15 * DAY - i as i64,
                &format!("/old/{i}"),
                200,
            )
        } else if i % 300 == 151 && future < FUTURE {
            future += 1;
            combined_line(
                "10.0.0.1",
                now + 5 * HOUR + i as i64,
                &format!("/future/{i}"),
                200,
            )
        } else {
            let ts = start + ((i as i64 * 7919) % TOTAL as i64) * (30 * HOUR / TOTAL as i64);
            let path = if i == HUGE_LINE {
                format!("/big/{i}?pad={}", "x".repeat(5 * 1024 * 1024 / 2))
            } else {
                format!("/big/{i}")
            };
            deliverable.push(path.clone());
            combined_line("10.0.0.1", ts, &path, 200)
        };
        text.push_str(&line);
        text.push('\n');
    }
    assert_eq!((old, future), (OLD, FUTURE));
    (text, deliverable)
}

/// Messages of the stream back to request URIs, joining split parts.
fn arrived_paths(events: &[(i64, String)]) -> Vec<String> {
    let mut paths = Vec::new();
    let mut parts: BTreeMap<i64, Vec<(u64, u64, String)>> = BTreeMap::new();
    for (ts, m) in events {
        let v: Value = serde_json::from_str(m).expect("JSON message");
        if let Some(part) = v["part"].as_u64() {
            let chunk = v["chunk"].as_str().expect("chunk").to_string();
            parts
                .entry(*ts)
                .or_default()
                .push((part, v["parts"].as_u64().expect("parts"), chunk));
        } else {
            paths.push(v["request_uri"].as_str().expect("request_uri").to_string());
        }
    }
    for (_, mut p) in parts {
        p.sort();
        let n = p[0].1;
        assert_eq!(
            p.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>(),
            "every part once"
        );
        let joined: String = p.into_iter().map(|(_, _, c)| c).collect();
        let v: Value = serde_json::from_str(&joined).expect("joined parts are the JSON message");
        paths.push(v["request_uri"].as_str().expect("request_uri").to_string());
    }
    paths
}

async fn run(faults: Faults) -> (Summary, StrictLogs, Vec<String>) {
    let logs = StrictLogs::start(faults);
    let (_, client) = clients_from(&logs.sdk_config(), true);
    let (text, deliverable) = big_object(now_ms());
    let source = FakeSource::default().with("b", KEY, text.into_bytes());
    let h = Handler::new(
        source,
        // The endpoint stores before it answers: a lost answer's batch is found at once.
        CloudWatchSink::new(client, Some(30)).with_ambiguous_wait(Duration::from_millis(400)),
        default_config(),
    );
    let summary = h.handle(&s3_event("b", &[KEY])).await.expect("S3 event");
    (summary, logs, deliverable)
}

fn check(summary: &Summary, logs: &StrictLogs, deliverable: &[String]) {
    let st = logs.lock();
    assert!(
        st.violations.is_empty(),
        "calls broke PutLogEvents rules: {:#?}",
        st.violations
    );
    assert_eq!(summary.objects_delivered, 1, "{summary:#?}");
    assert_eq!(
        (
            summary.totals.rejected_too_old,
            summary.totals.rejected_too_new
        ),
        (OLD as u64, FUTURE as u64)
    );
    assert_eq!(summary.totals.lines, TOTAL as u64);
    let events = &st.groups["nginx-access"][INSTANCE];
    let mut got = arrived_paths(events);
    let mut want = deliverable.to_vec();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "every deliverable line exactly once");
    assert!(
        got == want,
        "the lines that arrived are not the deliverable ones"
    );
    assert_eq!(st.retention.get("nginx-access"), Some(&30));
    let calls = st.put_bytes.len();
    let fill = st.put_bytes.iter().sum::<usize>() as f64 / calls as f64 / 1_048_576.0;
    println!(
        "PutLogEvents accepted: {calls}, mean batch fill {:.1} %, events stored {}, calls by operation {:?}, faults injected {:?}",
        fill * 100.0,
        events.len(),
        st.calls,
        st.faults_injected
    );
    assert_eq!(summary.totals.batches as usize, calls);
    assert_eq!(summary.totals.events as usize, events.len());
}

#[tokio::test]
async fn sixty_thousand_lines_over_30h_with_a_huge_line_and_out_of_window_lines() {
    let (summary, logs, deliverable) = run(Faults::default()).await;
    check(&summary, &logs, &deliverable);
    let st = logs.lock();
    // One create of each kind (create on the first ResourceNotFound), never per batch.
    assert_eq!(
        (
            st.calls.get("CreateLogGroup"),
            st.calls.get("CreateLogStream")
        ),
        (Some(&1), Some(&1))
    );
    // Every put names the instance its stream is for, in the shape CloudWatch documents.
    assert_eq!(st.entities.len(), st.put_bytes.len());
    let want = serde_json::json!({
        "keyAttributes": {"Type": "AWS::Resource", "ResourceType": "AWS::EC2::Instance",
                          "Identifier": INSTANCE},
        "attributes": {"PlatformType": "AWS::EC2", "EC2.InstanceId": INSTANCE},
    });
    assert!(
        st.entities
            .iter()
            .all(|(g, s, e)| g == "nginx-access" && s == INSTANCE && *e == want),
        "{:?}",
        st.entities.first()
    );
    assert_eq!(summary.totals.entity_rejected, 0);
}

#[tokio::test]
async fn nothing_is_lost_or_duplicated_under_throttling_500s_and_dropped_connections() {
    let faults = Faults {
        throttle: 200,
        server_error: 50,
        drop: 20,
        max_in_a_row: 4,
        ..Faults::default()
    };
    let (summary, logs, deliverable) = run(faults).await;
    check(&summary, &logs, &deliverable);
    let st = logs.lock();
    let injected: u64 = st.faults_injected.values().sum();
    assert!(injected > 0, "the fault plan injected nothing");
    // A put dropped before it was stored is found missing, then sent again (the fault plan
    // depends on the bodies, so how many puts it drops varies).
    assert_eq!(
        (
            summary.totals.ambiguous_puts,
            summary.totals.resent_after_check
        ),
        (st.dropped_puts, st.dropped_puts)
    );
}

#[tokio::test]
async fn lost_replies_to_stored_puts_are_checked_not_sent_twice() {
    // One PutLogEvents call in ten is stored, then the connection closes without an answer.
    let faults = Faults {
        lost_reply_every: 10,
        ..Faults::default()
    };
    let (summary, logs, deliverable) = run(faults).await;
    check(&summary, &logs, &deliverable);
    let st = logs.lock();
    assert!(st.lost_put_replies > 0, "{:?}", st.faults_injected);
    // Every lost answer was checked, found stored, and not sent again.
    assert_eq!(
        (
            summary.totals.ambiguous_puts,
            summary.totals.resent_after_check
        ),
        (st.lost_put_replies, 0)
    );
    let reads = st.calls.get("GetLogEvents").copied().unwrap_or(0);
    assert!(reads >= st.lost_put_replies);
    println!(
        "lost answers {}, checks {}, resent {}, GetLogEvents calls {reads}",
        st.lost_put_replies, summary.totals.ambiguous_puts, summary.totals.resent_after_check
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_as_before_not_checked() {
    use nginx_cloudwatch_forwarder::parse::{LogEvent, Message};
    use nginx_cloudwatch_forwarder::ports::LogSink;
    // A loopback port nothing listens on: every attempt is refused, so nothing was ever sent.
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let logs = StrictLogs::start(Faults::default());
    let conf = logs
        .sdk_config()
        .to_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let (_, client) = clients_from(&conf, true);
    let event = LogEvent {
        timestamp: now_ms(),
        message: Message::new("GET /"),
        line: 1,
        offset: 0,
        parse_failed: false,
        filtered: None,
        redacted: 0,
    };
    let err = CloudWatchSink::new(client, None)
        .put("nginx-access", INSTANCE, None, vec![event])
        .await
        .expect_err("nothing listens");
    let text = err.to_string();
    assert!(
        text.contains("after retries") && !text.contains("no answer"),
        "{text}"
    );
}
