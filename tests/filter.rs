//! `FILTER_RULES` through the handler with fakes: a realistic mix of lines counted by rule, the
//! counts adding up to the lines read, the ingested bytes per output mode, and a sample that
//! decides the same across a failure and its resume (each kept line once).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::{
    FakeCheckpoints, FakeSink, FakeSource, combined_line, handle_keys as run, sent_messages as sent,
};
use nginx_cloudwatch_forwarder::config::Config;
use serde_json::Value;

const BUCKET: &str = common::FAKE_BUCKET;
const ACCESS: &str = "nginx/i-0123456789abcdef0/access/2026/11/24/access.log";
const ERROR: &str = "nginx/i-0123456789abcdef0/error/2026/11/24/error.log";

const RULES: &str = r#"[
  {"name": "health", "when": {"request_uri": {"matches": "^/(healthz|ping)$"}}},
  {"name": "elb", "when": {"http_user_agent": {"contains": "ELB-HealthChecker"}}},
  {"name": "bots", "when": {"http_user_agent": {"matches": "(?i)(bot|crawler|spider)"}}},
  {"name": "static", "when": {"request_uri": {"matches": "\\.(js|css|png|ico)$"}, "status": {"between": [200, 399]}}, "keep": 0.1},
  {"name": "chatter", "log": "error", "when": {"level": {"in": ["debug", "info", "notice"]}}}
]"#;

/// What a line of the mix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Api,
    Health,
    Elb,
    Bot,
    Static,
    StaticMissing,
    Unparsable,
    Blank,
}

/// `n` lines of a day on a busy site: API calls, load-balancer health checks, static files
/// (some 404), crawlers, a line that is not nginx's and a blank line now and then.
fn mix(n: usize) -> (String, Vec<Kind>) {
    let t0 = common::FIXTURE_NOW_MS - 3_600_000;
    let mut text = String::new();
    let mut kinds = Vec::new();
    for i in 0..n {
        let ts = t0 + i as i64 * 10;
        let (kind, line) = match i % 20 {
            0..=6 => (
                Kind::Api,
                combined_line(
                    "203.0.113.7",
                    ts,
                    &format!("/api/v1/orders/{i}"),
                    if i % 40 == 3 { 500 } else { 200 },
                ),
            ),
            7..=9 => (
                Kind::Health,
                combined_line("10.0.3.17", ts, "/healthz", 200),
            ),
            10 => (
                Kind::Elb,
                combined_line("10.0.3.17", ts, &format!("/status?i={i}"), 200)
                    .replace("integration-test/1.0", "ELB-HealthChecker/2.0"),
            ),
            11 | 12 => (
                Kind::Bot,
                combined_line("66.249.66.1", ts, &format!("/page/{i}"), 200).replace(
                    "integration-test/1.0",
                    "Mozilla/5.0 (compatible; Googlebot/2.1)",
                ),
            ),
            13..=17 => (
                Kind::Static,
                combined_line(
                    "203.0.113.7",
                    ts,
                    &format!("/static/app.{i}.js"),
                    if i % 2 == 0 { 200 } else { 304 },
                ),
            ),
            18 => (
                Kind::StaticMissing,
                combined_line("203.0.113.7", ts, &format!("/static/gone.{i}.png"), 404),
            ),
            _ if i % 100 == 19 => (Kind::Unparsable, format!("not nginx {i}")),
            _ => (Kind::Blank, String::new()),
        };
        text.push_str(&line);
        text.push('\n');
        kinds.push(kind);
    }
    (text, kinds)
}

fn config(settings: &[(&str, &str)]) -> Config {
    let settings: BTreeMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| settings.get(k).cloned()).expect("valid configuration")
}

fn error_log() -> String {
    [
        "2026/11/24 10:00:01 [notice] 1201#1201: signal process started",
        "2026/11/24 10:00:02 [error] 1204#1204: *31 open() \"/usr/share/nginx/html/favicon.ico\" failed (2: No such file or directory), client: 203.0.113.9, server: www.example.com, request: \"GET /favicon.ico HTTP/1.1\", host: \"www.example.com\"",
        "2026/11/24 10:00:03 [info] 1204#1204: *32 client closed keepalive connection",
        "2026/11/24 10:00:04 [warn] 1204#1204: *33 an upstream response is buffered to a temporary file",
        "2026/11/24 10:00:05 [debug] 1204#1204: *34 http cleanup add: 0000",
        "and a continuation line of it",
    ]
    .join("\n")
        + "\n"
}

#[tokio::test]
async fn a_realistic_mix_is_counted_by_rule_and_the_counts_add_up_to_the_lines_read() {
    const N: usize = 20_000;
    let (text, kinds) = mix(N);
    let count = |k: Kind| kinds.iter().filter(|&&x| x == k).count() as u64;
    let source = || {
        FakeSource::default()
            .with(BUCKET, ACCESS, text.clone().into_bytes())
            .with(BUCKET, ERROR, error_log().into_bytes())
    };
    let store = Arc::new(FakeCheckpoints::default());
    let (s, sink) = run(
        source(),
        FakeSink::default(),
        config(&[("FILTER_RULES", RULES)]),
        &store,
        &[ACCESS, ERROR],
    )
    .await;
    assert_eq!(s.objects_delivered, 2, "{s:#?}");

    let by_rule = |r: &str| s.filtered_by_rule.get(r).copied().unwrap_or(0);
    assert_eq!(by_rule("health"), count(Kind::Health));
    assert_eq!(by_rule("elb"), count(Kind::Elb));
    assert_eq!(by_rule("bots"), count(Kind::Bot));
    // notice, info, and debug with its continuation line (one event).
    assert_eq!(by_rule("chatter"), 3);
    let statics = count(Kind::Static);
    let kept_static = statics - by_rule("static");
    assert!(
        (statics * 8 / 100..=statics * 12 / 100).contains(&kept_static),
        "kept {kept_static} of {statics} static files, not about 10 %"
    );
    assert_eq!(s.totals.sampled_out, by_rule("static"));
    assert_eq!(
        s.totals.dropped,
        by_rule("health") + by_rule("elb") + by_rule("bots") + 3
    );
    // Every line is accounted for: sent as an event (parsed or not), taken by a rule, or blank.
    let error_lines = error_log().lines().count() as u64;
    assert_eq!(s.totals.lines, N as u64 + error_lines);
    assert_eq!(
        s.totals.events + s.totals.dropped + s.totals.sampled_out + s.totals.blank_lines,
        s.totals.lines - 1, // the continuation line is part of its event
    );
    assert_eq!(
        s.totals.parse_errors,
        count(Kind::Unparsable),
        "unparsable lines are never dropped"
    );

    // What was sent: none of what the rules dropped; all API calls, 404s and unparsable lines.
    let messages = sent(&sink);
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for m in &messages {
        let v: Value = serde_json::from_str(m).expect("JSON");
        let uri = v["request_uri"].as_str().unwrap_or("");
        let what = if v.get("raw").is_some() {
            "unparsable"
        } else if v.get("level").is_some() {
            "error log"
        } else if uri.starts_with("/api/") {
            "api"
        } else if uri.ends_with(".png") {
            "static 404"
        } else if uri.ends_with(".js") {
            "static kept"
        } else {
            panic!("sent although a rule takes it: {m}")
        };
        *seen.entry(what).or_default() += 1;
    }
    assert_eq!(seen["api"], count(Kind::Api));
    assert_eq!(seen["static 404"], count(Kind::StaticMissing));
    assert_eq!(seen["static kept"], kept_static);
    assert_eq!(seen["unparsable"], count(Kind::Unparsable));
    assert_eq!(seen["error log"], 2); // error and warn

    // Ingested bytes per output mode, with and without the rules, on the same mix.
    let raw_bytes = (text.len() + error_log().len()) as f64;
    let mut figures = Vec::new();
    for mode in ["raw", "json", "json-compact"] {
        let mut ingested = [0u64; 2];
        for (i, rules) in [None, Some(RULES)].into_iter().enumerate() {
            let mut settings = vec![("OUTPUT_FORMAT", mode)];
            settings.extend(rules.map(|r| ("FILTER_RULES", r)));
            let store = Arc::new(FakeCheckpoints::default());
            let (s, sink) = run(
                source(),
                FakeSink::default(),
                config(&settings),
                &store,
                &[ACCESS, ERROR],
            )
            .await;
            let billed: u64 = sent(&sink).iter().map(|m| m.len() as u64 + 26).sum();
            assert_eq!(s.totals.ingested_bytes, billed, "{mode}");
            ingested[i] = billed;
        }
        figures.push((mode, ingested));
    }
    let json = figures[1].1[0];
    for (mode, [all, filtered]) in &figures {
        eprintln!(
            "{mode}: {:.2} bytes ingested per log byte ({:.2}× json), {:.2} with the rules (saving {:.0} %)",
            *all as f64 / raw_bytes,
            *all as f64 / json as f64,
            *filtered as f64 / raw_bytes,
            100.0 * (1.0 - *filtered as f64 / *all as f64)
        );
        assert!(filtered < all, "{mode}");
    }
    assert!(figures[0].1[0] < figures[2].1[0] && figures[2].1[0] < json);
}

#[tokio::test]
async fn a_sample_decides_the_same_across_a_failure_and_its_resume() {
    const N: usize = 30_000;
    let log: String = (0..N)
        .map(|i| {
            combined_line(
                "203.0.113.7",
                common::FIXTURE_NOW_MS - 3_600_000 + i as i64,
                &format!("/static/{i}.js"),
                200,
            ) + "\n"
        })
        .collect();
    let rules = r#"[{"name": "half", "when": {"request_uri": {"contains": ".js"}}, "keep": 0.5}]"#;
    let settings =
        |puts: &'static str| config(&[("FILTER_RULES", rules), ("MAX_CONCURRENT_PUTS", puts)]);
    let source = || FakeSource::default().with(BUCKET, ACCESS, log.clone().into_bytes());
    let uris = |sink: &FakeSink| -> Vec<String> {
        sent(sink)
            .iter()
            .map(|m| {
                serde_json::from_str::<Value>(m).expect("JSON")["request_uri"]
                    .as_str()
                    .expect("uri")
                    .to_string()
            })
            .collect()
    };

    // In one go: the lines the sample keeps.
    let (whole, sink) = run(
        source(),
        FakeSink::default(),
        settings("4"),
        &Arc::new(FakeCheckpoints::default()),
        &[ACCESS],
    )
    .await;
    let kept: BTreeSet<String> = uris(&sink).into_iter().collect();
    assert_eq!(kept.len() as u64, whole.totals.events);
    assert_eq!(whole.totals.events + whole.totals.sampled_out, N as u64);

    // Refused after 2 puts (one at a time), then resumed: the same lines, each once.
    let store = Arc::new(FakeCheckpoints::default());
    let failing = FakeSink {
        fail_after: Some(2),
        ..FakeSink::default()
    };
    let (first, sink1) = run(source(), failing, settings("1"), &store, &[ACCESS]).await;
    assert_eq!(first.objects_failed, 1, "{first:#?}");
    let (second, sink2) = run(
        source(),
        FakeSink::default(),
        settings("1"),
        &store,
        &[ACCESS],
    )
    .await;
    assert_eq!(second.objects_delivered, 1, "{second:#?}");
    assert!(second.objects[0].resumed_from_line.is_some());
    let mut both = uris(&sink1);
    both.extend(uris(&sink2));
    let once: BTreeSet<String> = both.iter().cloned().collect();
    assert_eq!(once.len(), both.len(), "a kept line was sent twice");
    assert_eq!(once, kept, "the resume sampled other lines");
}

/// The rules and json-compact as a deployment sets them (environment variables), through the
/// binary against moto: what is stored, and the summary's counts by rule.
#[tokio::test(flavor = "multi_thread")]
async fn the_rules_and_json_compact_through_replay_against_moto() {
    use common::moto::{read_stream, replay, upload};
    const BUCKET: &str = "nginx-logs-filter";
    let (moto, s3, logs) = common::moto::with_bucket(BUCKET).await;
    let (text, kinds) = mix(400);
    let count = |k: Kind| kinds.iter().filter(|&&x| x == k).count();
    // Lines from an hour ago: within CloudWatch's window whenever the test runs.
    let now = common::now_ms();
    let text: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let shifted = if l.contains(" - - [") {
                let ts = jiff::Timestamp::from_millisecond(now - 3_600_000 + i as i64)
                    .expect("a time")
                    .strftime("%d/%b/%Y:%H:%M:%S +0000")
                    .to_string();
                let (a, rest) = l.split_once('[').expect("a time");
                let (_, b) = rest.split_once(']').expect("a time");
                format!("{a}[{ts}]{b}")
            } else {
                l.to_string()
            };
            shifted + "\n"
        })
        .collect();
    let etag = upload(&s3, BUCKET, ACCESS, text.into_bytes()).await;
    let mut env = moto.env();
    env.push(("FILTER_RULES", RULES.to_string()));
    env.push(("OUTPUT_FORMAT", "json-compact".to_string()));
    let (code, summary) = replay(&common::s3_event_with_etag(BUCKET, ACCESS, &etag), &env);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        summary["filtered_by_rule"]["health"],
        count(Kind::Health),
        "{summary}"
    );
    assert_eq!(
        summary["filtered_by_rule"]["bots"],
        count(Kind::Bot),
        "{summary}"
    );
    let stored = read_stream(&logs, "nginx-access", "i-0123456789abcdef0").await;
    assert_eq!(
        stored.len() as u64,
        summary["events"].as_u64().expect("events")
    );
    let billed: u64 = stored.iter().map(|(_, m)| m.len() as u64 + 26).sum();
    assert_eq!(summary["ingested_bytes"], billed, "{summary}");
    for (_, m) in &stored {
        let v: Value = serde_json::from_str(m).expect("JSON");
        assert!(
            v.get("time_local").is_none() && v.get("request").is_none() || v.get("raw").is_some(),
            "{m}"
        );
        let uri = v["request_uri"].as_str().unwrap_or("");
        assert!(
            uri != "/healthz" && !uri.starts_with("/page/"),
            "dropped, yet stored: {m}"
        );
    }
}
