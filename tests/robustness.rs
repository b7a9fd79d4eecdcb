//! Property tests: any bytes in, never a panic, every non-blank line accounted for, and every
//! message valid JSON (in JSON mode) and valid UTF-8.

mod common;

use common::{FakeSink, FakeSource, default_config, gzip};
use nginx_cloudwatch_forwarder::handler::Handler;
use nginx_cloudwatch_forwarder::parse::{LineParser, LogFormat, ParseSettings};
use nginx_cloudwatch_forwarder::route::LogKind;
use proptest::prelude::*;

const FORMATS: [&str; 3] = [
    "combined",
    r#"escape=json '$remote_addr [$time_iso8601] "$request" $status $upstream_addr $request_time "$http_user_agent"'"#,
    r#"'$msec $remote_addr "$request" $status'"#,
];

/// Lines that look like nginx's, damaged at random, plus raw noise.
fn line() -> impl Strategy<Value = String> {
    let nginx = prop_oneof![
        Just(r#"10.0.0.1 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.5.0""#.to_string()),
        Just(r#"2026/11/24 10:00:01 [error] 1#1: *2 oops, client: 1.2.3.4, server: x, request: "GET / HTTP/1.1", host: "h""#.to_string()),
        Just(r#"10.0.0.1 [2026-11-24T10:00:01+00:00] "GET /\"x\" HTTP/1.1" 200 a, b 0.1 "ua""#.to_string()),
        Just(r#"1764000001.123 10.0.0.1 "GET / HTTP/1.1" 200"#.to_string()),
    ];
    prop_oneof![
        (nginx, any::<usize>(), any::<usize>(), ".{0,3}").prop_map(|(l, cut, at, ins)| {
            // Cut and splice at char boundaries.
            let chars: Vec<char> = l.chars().collect();
            let cut = cut % (chars.len() + 1);
            let at = at % (cut + 1);
            let mut s: String = chars[..cut].iter().collect();
            s.insert_str(s.char_indices().nth(at).map_or(s.len(), |(i, _)| i), &ins);
            s
        }),
        ".{0,200}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn any_line_yields_events_with_valid_json(lines in prop::collection::vec(line(), 1..20), fmt in 0..FORMATS.len()) {
        let settings = ParseSettings {
            access_format: LogFormat::parse_config(FORMATS[fmt]).expect("test formats compile"),
            ..ParseSettings::default()
        };
        for kind in [LogKind::Access, LogKind::Error] {
            let mut p = LineParser::new(&settings, kind, 7);
            let mut out = Vec::new();
            let mut fed = 0;
            for (i, l) in lines.iter().enumerate() {
                if l.trim().is_empty() || l.contains('\n') || l.contains('\r') {
                    continue;
                }
                fed += 1;
                p.push(l, i as u64 + 1, &mut out);
            }
            p.finish(&mut out);
            if kind == LogKind::Access {
                prop_assert_eq!(out.len(), fed, "one event per access line");
            } else {
                prop_assert!(out.len() <= fed && (fed == 0 || !out.is_empty()));
            }
            for ev in &out {
                let v: serde_json::Value = serde_json::from_str(&ev.message.text())
                    .map_err(|e| TestCaseError::fail(format!("{e}: {}", ev.message)))?;
                prop_assert!(v.is_object());
            }
        }
    }

    #[test]
    fn random_and_broken_gzip_bytes_through_the_handler(body in prop::collection::vec(any::<u8>(), 0..4096), cut in any::<usize>(), zip in any::<bool>()) {
        let body = if zip {
            let z = gzip(&body);
            let keep = cut % (z.len() + 1);
            z[..keep].to_vec()
        } else {
            body
        };
        let key = "nginx/i-0123456789abcdef0/access/fuzz.log";
        let h = Handler::new(FakeSource::default().with("b", key, body), FakeSink::default(), default_config())
            .with_clock(common::fixture_clock());
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let summary = rt.block_on(h.handle(&common::s3_event("b", &[key]))).expect("known shape");
        prop_assert_eq!(summary.objects.len(), 1);
        // Every event that was sent is valid JSON (FakeSink also checks every batch limit).
        for put in h.sink.puts() {
            for ev in put.events {
                prop_assert!(serde_json::from_str::<serde_json::Value>(&ev.message.text()).is_ok(), "{}", ev.message);
            }
        }
        // Whatever was read is accounted for: each non-blank line was sent or counted as outside
        // CloudWatch's time window.
        let t = &summary.totals;
        prop_assert_eq!(t.events + t.rejected_too_old + t.rejected_too_new + t.rejected_expired, t.lines - t.blank_lines);
    }
}
