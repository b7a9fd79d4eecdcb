//! The redaction counts through the handler with fakes: each rule counts the events it changed
//! (an event two rules changed counts for both, once each; a line `FILTER_RULES` took counts
//! for none; an event split into parts counts once), per object and in the totals, and a
//! failed delivery and its resume together count each event once.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::{
    FakeCheckpoints, FakeSink, FakeSource, combined_line, handle_keys as run, sent_messages as sent,
};
use nginx_cloudwatch_forwarder::config::Config;

const BUCKET: &str = common::FAKE_BUCKET;
const ACCESS: &str = "nginx/i-0123456789abcdef0/access/2026/11/24/access.log";
const ERROR: &str = "nginx/i-0123456789abcdef0/error/2026/11/24/error.log";
const HEALTH: &str = r#"[{"name": "health", "when": {"request_uri": {"matches": "^/healthz"}}}]"#;

fn config(settings: &[(&str, &str)]) -> Config {
    let settings: HashMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| settings.get(k).cloned()).expect("valid configuration")
}

/// The redaction of these tests, with `FILTER_RULES` taking health checks.
fn redacting(puts: &'static str) -> Config {
    config(&[
        ("ANONYMIZE_IP", "on"),
        ("REDACT_QUERY_PARAMS", "token"),
        ("REDACT_FIELDS", "http_user_agent"),
        ("FILTER_RULES", HEALTH),
        ("MAX_CONCURRENT_PUTS", puts),
    ])
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

/// `n` access lines: every 4th with a token in its query (ip, query and the dropped user
/// agent change it), every 4th + 1 a health check with a token (taken by the rule: counted
/// for no redaction), the rest plain (ip and user agent), and every 50th a line that is not
/// nginx's with an address and a token in it (ip and query, as free text).
fn access_log(n: usize) -> (String, BTreeMap<&'static str, u64>) {
    let t0 = common::FIXTURE_NOW_MS - 3_600_000;
    let mut text = String::new();
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    for i in 0..n {
        let ts = t0 + i as i64;
        let (kind, line) = if i % 50 == 49 {
            (
                "unparsed",
                format!("not nginx from 198.51.100.{} /x?token=s3cret-{i}", i % 200),
            )
        } else {
            match i % 4 {
                0 => (
                    "token",
                    combined_line(
                        "203.0.113.7",
                        ts,
                        &format!("/api/{i}?token=s3cret-{i}"),
                        200,
                    ),
                ),
                1 => (
                    "health",
                    combined_line("10.0.3.17", ts, &format!("/healthz?token=s3cret-{i}"), 200),
                ),
                _ => (
                    "plain",
                    combined_line("203.0.113.7", ts, &format!("/api/{i}"), 200),
                ),
            }
        };
        *kinds.entry(kind).or_default() += 1;
        text.push_str(&line);
        text.push('\n');
    }
    (text, kinds)
}

/// An error log: a record with a client and a token (ip and query), one with neither.
fn error_log() -> String {
    [
        "2026/11/24 10:00:02 [error] 1204#1204: *31 open() \"/usr/share/nginx/html/x\" failed (2: No such file or directory), client: 203.0.113.9, server: www.example.com, request: \"GET /x?token=s3cret-e HTTP/1.1\", host: \"www.example.com\"",
        "2026/11/24 10:00:04 [warn] 1204#1204: *33 an upstream response is buffered to a temporary file",
    ]
    .join("\n")
        + "\n"
}

#[tokio::test]
async fn each_rule_counts_the_events_it_changed_once_and_a_filtered_line_none() {
    let (text, kinds) = access_log(2_000);
    // One line too big for one event: sent in parts, counted once.
    let pad = "p".repeat(2_500_000);
    let big = combined_line(
        "203.0.113.8",
        common::FIXTURE_NOW_MS - 60_000,
        &format!("/big?token=s3cret-big&pad={pad}"),
        200,
    );
    let text = format!("{text}{big}\n");
    let source = FakeSource::default()
        .with(BUCKET, ACCESS, text.into_bytes())
        .with(BUCKET, ERROR, error_log().into_bytes());
    let store = Arc::new(FakeCheckpoints::default());
    let (s, sink) = run(
        source,
        FakeSink::default(),
        redacting("4"),
        &store,
        &[ACCESS, ERROR],
    )
    .await;
    assert_eq!(s.objects_delivered, 2, "{s:#?}");

    let (token, plain, unparsed) = (kinds["token"], kinds["plain"], kinds["unparsed"]);
    let access = counts(&[
        ("ip", token + plain + unparsed + 1),
        ("query", token + unparsed + 1),
        ("field:http_user_agent", token + plain + 1),
    ]);
    let report = |key: &str| {
        s.objects
            .iter()
            .find(|o| o.key == key)
            .expect("a report")
            .clone()
    };
    assert_eq!(report(ACCESS).redacted_by_rule, access);
    assert_eq!(
        report(ERROR).redacted_by_rule,
        counts(&[("ip", 1), ("query", 1)])
    );
    let mut total = access.clone();
    *total.get_mut("ip").expect("ip") += 1;
    *total.get_mut("query").expect("query") += 1;
    assert_eq!(s.redacted_by_rule, total);
    assert_eq!(s.filtered_by_rule, counts(&[("health", kinds["health"])]));
    // Every access event sent was changed (the big one once, not per part); of the error
    // log's two records, one.
    let big_parts = sent(&sink)
        .iter()
        .filter(|m| m.contains("\"parts\":"))
        .count() as u64;
    assert!(big_parts >= 3, "{big_parts} parts");
    assert_eq!(
        report(ACCESS).counters.lines_redacted,
        token + plain + unparsed + 1
    );
    assert_eq!(
        report(ACCESS).counters.events,
        token + plain + unparsed + big_parts
    );
    assert_eq!(report(ERROR).counters.lines_redacted, 1);
    assert_eq!(s.totals.lines_redacted, token + plain + unparsed + 2);

    // What the counts say happened did: no token, no full address left.
    for m in sent(&sink) {
        assert!(
            !m.contains("s3cret") && !m.contains("203.0.113.7") && !m.contains("integration-test"),
            "{}",
            &m[..m.len().min(300)]
        );
    }
    // The summary's field names, as JSON and as a metric.
    let json = serde_json::to_value(&s).expect("JSON");
    assert_eq!(
        json["redacted_by_rule"]["field:http_user_agent"],
        token + plain + 1
    );
    assert_eq!(json["lines_redacted"], token + plain + unparsed + 2);
    assert_eq!(json["objects"][0]["redacted_by_rule"]["ip"], access["ip"]);
    let emf = s.emf_line("fwd", 0);
    assert_eq!(emf["lines_redacted"], token + plain + unparsed + 2);
}

/// No rule: no counts, and the summary has no new field.
#[tokio::test]
async fn without_rules_nothing_is_counted_and_no_field_is_added() {
    let (text, _) = access_log(200);
    let source = FakeSource::default().with(BUCKET, ACCESS, text.into_bytes());
    let store = Arc::new(FakeCheckpoints::default());
    let (s, _) = run(source, FakeSink::default(), config(&[]), &store, &[ACCESS]).await;
    assert_eq!(s.objects_delivered, 1);
    assert!(s.redacted_by_rule.is_empty() && s.totals.lines_redacted == 0);
    let json = serde_json::to_value(&s).expect("JSON");
    assert!(json.get("redacted_by_rule").is_none() && json.get("lines_redacted").is_none());
    assert!(json["objects"][0].get("redacted_by_rule").is_none());
    assert_eq!(s.emf_line("fwd", 0)["lines_redacted"], 0);
}

/// Refused after 2 puts (one at a time), then resumed: the two deliveries together count
/// what one delivery in one go counts, each event once.
#[tokio::test]
async fn a_failure_and_its_resume_count_each_event_once() {
    let (text, _) = access_log(30_000);
    let source = || FakeSource::default().with(BUCKET, ACCESS, text.clone().into_bytes());
    let (whole, _) = run(
        source(),
        FakeSink::default(),
        redacting("4"),
        &Arc::new(FakeCheckpoints::default()),
        &[ACCESS],
    )
    .await;
    assert_eq!(whole.objects_delivered, 1, "{whole:#?}");

    let store = Arc::new(FakeCheckpoints::default());
    let failing = FakeSink {
        fail_after: Some(2),
        ..FakeSink::default()
    };
    let (first, _) = run(source(), failing, redacting("1"), &store, &[ACCESS]).await;
    assert_eq!(first.objects_failed, 1, "{first:#?}");
    assert!(first.totals.lines_redacted > 0, "{first:#?}");
    let (second, _) = run(
        source(),
        FakeSink::default(),
        redacting("1"),
        &store,
        &[ACCESS],
    )
    .await;
    assert_eq!(second.objects_delivered, 1, "{second:#?}");
    assert!(second.objects[0].resumed_from_line.is_some());

    let mut both = first.clone();
    both.absorb(second.clone());
    assert_eq!(both.redacted_by_rule, whole.redacted_by_rule);
    assert_eq!(both.totals.lines_redacted, whole.totals.lines_redacted);
    assert_eq!(both.totals.events, whole.totals.events);
    assert_eq!(
        first.redacted_by_rule["ip"] + second.redacted_by_rule["ip"],
        whole.redacted_by_rule["ip"]
    );
}
