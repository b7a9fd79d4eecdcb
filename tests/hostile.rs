//! Hostile and broken input in one event: every readable line delivered, each bad object
//! reported by key, nothing panics, and one bad object never affects another.

mod common;

use common::{FakeSink, FakeSource, combined_line, fixture_clock, gzip, s3_event};
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::handler::Handler;
use nginx_cloudwatch_forwarder::summary::{ObjectReport, Outcome, Summary};

const B: &str = "b";
const P: &str = "nginx/i-0123456789abcdef0/access/";

fn lines(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| {
            combined_line(
                "10.0.0.1",
                common::FIXTURE_NOW_MS - 60_000 + i as i64,
                &format!("/{tag}/{i}"),
                200,
            ) + "\n"
        })
        .collect()
}

fn objects() -> (FakeSource, Vec<String>) {
    let binary: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let mut invalid_utf8 = lines(3, "utf8").into_bytes();
    invalid_utf8.extend_from_slice(b"10.0.0.9 - - [24/Nov/2026:11:59:00 +0000] \"GET /caf\xe9 HTTP/1.1\" 200 1 \"-\" \"\xff\xfe\"\n");
    let full = gzip(lines(20_000, "gz").as_bytes());
    let truncated = full[..full.len() / 2].to_vec();
    let nul_ridden = format!("{}\0\0\0\0{}", lines(2, "nul"), lines(2, "nul2"))
        .replace("GET", "G\0ET")
        .into_bytes();
    let keys = [
        "binary.bin",
        "invalid-utf8.log",
        "truncated.log.gz",
        "empty.log",
        "nul.log",
    ]
    .iter()
    .map(|k| format!("{P}{k}"))
    .collect::<Vec<_>>();
    let source = FakeSource::default()
        .with(B, &keys[0], binary)
        .with(B, &keys[1], invalid_utf8)
        .with(B, &keys[2], truncated)
        .with(B, &keys[3], Vec::new())
        .with(B, &keys[4], nul_ridden)
        .with(
            B,
            "exports/not-a-log\n[fake] injected.csv",
            b"a,b\n".to_vec(),
        );
    let mut all = keys;
    all.push("exports/not-a-log\n[fake] injected.csv".to_string());
    all.push(format!("{P}deleted.log"));
    (source, all)
}

fn by<'a>(s: &'a Summary, suffix: &str) -> &'a ObjectReport {
    s.objects
        .iter()
        .find(|o| o.key.ends_with(suffix))
        .unwrap_or_else(|| panic!("no report for {suffix}"))
}

async fn run(config: Config) -> (Summary, FakeSink) {
    let (source, keys) = objects();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let h = Handler::new(source, FakeSink::default(), config).with_clock(fixture_clock());
    let s = h.handle(&s3_event(B, &keys)).await.expect("known shape");
    let sink = std::sync::Arc::try_unwrap(h.sink).ok().expect("sole owner");
    (s, sink)
}

#[tokio::test]
async fn a_hostile_event_delivers_every_readable_line_and_names_each_bad_object() {
    let (s, sink) = run(Config::from_lookup(|_| None).unwrap()).await;
    assert_eq!(s.objects.len(), 7);

    let binary = by(&s, "binary.bin");
    assert!(
        matches!(binary.outcome, Outcome::Delivered { .. }),
        "{binary:?}"
    );
    assert_eq!(binary.counters.binary_objects, 1);
    assert!(
        binary.counters.events > 0,
        "forwarded as raw, lossily decoded lines"
    );

    let utf8 = by(&s, "invalid-utf8.log");
    assert!(matches!(utf8.outcome, Outcome::Delivered { .. }));
    assert_eq!(utf8.counters.events, 4);

    let truncated = by(&s, "truncated.log.gz");
    match &truncated.outcome {
        Outcome::Failed { error } => {
            assert!(
                error.contains("truncated.log.gz") && error.contains("decompressed bytes"),
                "{error}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(
        truncated.counters.events > 1000,
        "the lines before the damage are delivered: {}",
        truncated.counters.events
    );

    let empty = by(&s, "empty.log");
    assert!(matches!(empty.outcome, Outcome::Delivered { .. }));
    assert_eq!(empty.counters.events, 0);

    let nul = by(&s, "nul.log");
    assert!(matches!(nul.outcome, Outcome::Delivered { .. }));
    assert_eq!(
        (
            nul.counters.events,
            nul.counters.nul_bytes_stripped,
            nul.counters.parse_errors
        ),
        (4, 8, 0)
    );

    match &by(&s, "injected.csv").outcome {
        Outcome::Refused { reason, .. } => assert!(
            reason.contains("KEY_PATTERN") && reason.contains("\\n[fake]"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    match &by(&s, "deleted.log").outcome {
        Outcome::Failed { error } => assert!(
            error.contains("deleted.log") && error.contains("does not exist"),
            "{error}"
        ),
        other => panic!("{other:?}"),
    }

    // What was sent: valid JSON, no NUL byte, invalid UTF-8 replaced (U+FFFD), never dropped.
    let messages: Vec<String> = sink
        .puts()
        .into_iter()
        .flat_map(|p| p.events.into_iter().map(|e| e.message.text()))
        .collect();
    assert!(
        messages
            .iter()
            .all(|m| serde_json::from_str::<serde_json::Value>(m).is_ok() && !m.contains('\0'))
    );
    assert!(messages.iter().any(|m| m.contains("/caf\u{fffd}")));
    assert_eq!(messages.len() as u64, s.totals.events);
    // The failure text names the two failed objects and nothing else.
    let text = s.failure_text();
    assert!(text.starts_with("2 of 7 objects failed"), "{text}");
}

#[tokio::test]
async fn skip_binary_skips_only_the_binary_object() {
    let config = Config::from_lookup(|k| (k == "SKIP_BINARY").then(|| "true".to_string())).unwrap();
    let (s, _) = run(config).await;
    match &by(&s, "binary.bin").outcome {
        Outcome::Skipped { reason } => assert!(
            reason.contains("binary.bin") && reason.contains("SKIP_BINARY"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        by(&s, "invalid-utf8.log").outcome,
        Outcome::Delivered { .. }
    ));
    assert!(matches!(
        by(&s, "nul.log").outcome,
        Outcome::Delivered { .. }
    ));
}
