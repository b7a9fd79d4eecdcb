//! Parse and batching throughput (criterion): `cargo bench --bench parse`.
//!
//! The `+dirty` cases run traffic where about 5% of the lines carry a token, an e-mail address
//! and a card number in their query (and a user name), and the `+redact-all` cases run that
//! traffic with every redaction rule on (issue 33): `cargo bench --bench parse -- redact`
//! compares them (`-- dirty` for the cases without the rules).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nginx_cloudwatch_forwarder::batch::Batcher;
use nginx_cloudwatch_forwarder::parse::redact::{self, HashKey, IpMask, RedactSpec};
use nginx_cloudwatch_forwarder::parse::{
    LineParser, LogEvent, LogFormat, OutputFormat, ParseSettings, Redaction,
};
use nginx_cloudwatch_forwarder::route::LogKind;

const LINES: usize = 20_000;
const TIMING_FORMAT: &str = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time "$upstream_response_time" $upstream_addr'"#;

/// Deterministic pseudo-random numbers (xorshift), so runs compare.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const PATHS: [&str; 6] = [
    "/",
    "/index.html",
    "/api/v1/orders",
    "/api/v1/users/42?expand=true",
    "/static/app.3f9a1c.js",
    "/search?q=caf%C3%A9+au+lait&page=2",
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "curl/8.5.0",
    "-",
];

/// One line in 20 (`dirty`): what the redaction rules are for.
fn dirty_path(r: &mut Rng) -> String {
    format!(
        "/account/reset?Token={:016x}&email=user{}%40example.com&card=4111-1111-1111-1111",
        r.next(u64::MAX),
        r.next(100_000)
    )
}

fn access_lines(timing: bool, dirty: bool) -> Vec<String> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    (0..LINES)
        .map(|i| {
            // The same draws in the same order as before the dirty lines, so the clean
            // traffic is what earlier runs measured.
            let ip = format!("{}.{}.{}.{}", r.next(223) + 1, r.next(256), r.next(256), r.next(254) + 1);
            let (path, user) = if dirty && r.next(20) == 0 {
                (dirty_path(&mut r), format!("user{}", r.next(100_000)))
            } else {
                (PATHS[r.next(6) as usize].to_string(), "-".to_string())
            };
            let mut l = format!(
                r#"{ip} - {user} [24/Nov/2026:{:02}:{:02}:{:02} +0000] "GET {path} HTTP/1.1" {} {} "https://www.example.com/" "{}""#,
                (i / 3600) % 24, (i / 60) % 60, i % 60,
                [200, 304, 404, 502][r.next(4) as usize], r.next(50_000), AGENTS[r.next(4) as usize]
            );
            if timing {
                l.push_str(&format!(r#" {}.{:03} "0.{:03}, 0.{:03}" 10.0.4.{}:8080, 10.0.4.{}:8080"#, r.next(3), r.next(1000), r.next(1000), r.next(1000), r.next(20), r.next(20)));
            }
            l
        })
        .collect()
}

fn error_lines(dirty: bool) -> Vec<String> {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    (0..LINES)
        .map(|i| match i % 4 {
            0 if dirty && r.next(5) == 0 => {
                let path = dirty_path(&mut r);
                format!(r#"2026/11/24 10:{:02}:{:02} [error] 1204#1204: *{i} open() "/usr/share/nginx/html/account/reset" failed (2: No such file or directory), client: 93.184.216.34, server: www.example.com, request: "GET {path} HTTP/1.1", host: "www.example.com", referrer: "https://www.example.com/""#, (i / 60) % 60, i % 60)
            }
            0 => format!(r#"2026/11/24 10:{:02}:{:02} [error] 1204#1204: *{i} open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: 93.184.216.34, server: www.example.com, request: "GET /favicon.ico HTTP/1.1", host: "www.example.com", referrer: "https://www.example.com/""#, (i / 60) % 60, i % 60),
            1 => format!(r#"2026/11/24 10:{:02}:{:02} [warn] 1204#1204: *{i} upstream server temporarily disabled while connecting to upstream, client: 10.0.0.2, server: api, request: "POST /api/v1/orders HTTP/2.0", upstream: "http://10.0.4.20:8080/api/v1/orders", host: "api""#, (i / 60) % 60, i % 60),
            2 => format!("2026/11/24 10:{:02}:{:02} [error] 1204#1204: *{i} FastCGI sent in stderr: \"PHP message: PHP Warning:  Undefined variable $x in /var/www/index.php on line 3", (i / 60) % 60, i % 60),
            _ => "PHP message: PHP Fatal error:  Uncaught Error in /var/www/index.php:4\" while reading response header from upstream, client: 10.0.0.3, server: app, request: \"GET / HTTP/1.1\", upstream: \"fastcgi://unix:/run/php-fpm/www.sock:\", host: \"app\"".to_string(),
        })
        .collect()
}

fn parse_all(
    settings: &ParseSettings,
    kind: LogKind,
    lines: &[String],
    out: &mut Vec<LogEvent>,
) -> usize {
    let mut p = LineParser::new(settings, kind, 0);
    let mut n = 0;
    for (i, l) in lines.iter().enumerate() {
        p.push(l, i as u64 + 1, out);
        n += out.len();
        out.clear();
    }
    p.finish(out);
    n + out.len()
}

/// Every rule on, as docs/user-guide.md's example sets them: `ANONYMIZE_IP=on`,
/// `REDACT_QUERY_PARAMS=token,access_token,email`, `REDACT_PATTERNS=email,card` and
/// `REDACT_FIELDS=fields` (hashed with a 32-byte key).
fn redact_all(fields: &str) -> Arc<Redaction> {
    let spec = RedactSpec {
        ip: IpMask::parse("on").expect("on"),
        query_params: redact::parse_query_params("token,access_token,email").expect("names"),
        fields: redact::parse_fields(fields).expect("fields"),
        patterns: redact::parse_patterns("email,card").expect("patterns"),
        hash_key: Some(HashKey::new("bench-hash-key-0123456789abcdef-01234").expect("key")),
    };
    Arc::new(Redaction::new(spec).expect("the rules compile"))
}

fn parse(c: &mut Criterion) {
    let combined = access_lines(false, false);
    let timing = access_lines(true, false);
    let errors = error_lines(false);
    let dirty = access_lines(false, true);
    let dirty_errors = error_lines(true);
    let settings = |fmt: &str| ParseSettings {
        access_format: LogFormat::parse_config(fmt).expect("compiles"),
        ..ParseSettings::default()
    };
    let raw = |s: ParseSettings| ParseSettings {
        output: OutputFormat::Raw,
        ..s
    };
    let redacting = |s: ParseSettings, fields: &str| ParseSettings {
        redaction: redact_all(fields),
        ..s
    };
    let cases: [(&str, ParseSettings, LogKind, &Vec<String>); 11] = [
        (
            "combined/json",
            settings("combined"),
            LogKind::Access,
            &combined,
        ),
        (
            "combined/raw",
            ParseSettings {
                output: OutputFormat::Raw,
                ..settings("combined")
            },
            LogKind::Access,
            &combined,
        ),
        (
            "timing/json",
            settings(TIMING_FORMAT),
            LogKind::Access,
            &timing,
        ),
        ("error/json", settings("combined"), LogKind::Error, &errors),
        (
            "combined/json+redact-all",
            redacting(settings("combined"), "remote_user:hash"),
            LogKind::Access,
            &combined,
        ),
        (
            "combined/json+dirty",
            settings("combined"),
            LogKind::Access,
            &dirty,
        ),
        (
            "combined/json+dirty+redact-all",
            redacting(settings("combined"), "remote_user:hash"),
            LogKind::Access,
            &dirty,
        ),
        (
            "combined/raw+dirty",
            raw(settings("combined")),
            LogKind::Access,
            &dirty,
        ),
        (
            "combined/raw+dirty+redact-all",
            redacting(raw(settings("combined")), "remote_user:hash"),
            LogKind::Access,
            &dirty,
        ),
        (
            "error/json+dirty",
            settings("combined"),
            LogKind::Error,
            &dirty_errors,
        ),
        (
            "error/json+dirty+redact-all",
            redacting(settings("combined"), "login:hash"),
            LogKind::Error,
            &dirty_errors,
        ),
    ];
    let mut g = c.benchmark_group("parse");
    for (name, s, kind, lines) in &cases {
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        let mut out = Vec::new();
        g.bench_function(*name, |b| {
            b.iter(|| black_box(parse_all(s, *kind, lines, &mut out)))
        });
    }
    g.finish();
}

fn batch(c: &mut Criterion) {
    let settings = ParseSettings::default();
    let mut events = Vec::new();
    let mut p = LineParser::new(&settings, LogKind::Access, 0);
    for (i, l) in access_lines(false, false).iter().enumerate() {
        p.push(l, i as u64 + 1, &mut events);
    }
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("20k events", |b| {
        b.iter(|| {
            let mut batcher = Batcher::new(OutputFormat::Json);
            let mut out = Vec::new();
            for e in events.iter().cloned() {
                batcher.push(e, &mut out);
            }
            batcher.finish(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, parse, batch);
criterion_main!(benches);
