//! Parse and batching throughput (criterion): `cargo bench --bench parse`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nginx_cloudwatch_forwarder::batch::Batcher;
use nginx_cloudwatch_forwarder::parse::{
    LineParser, LogEvent, LogFormat, OutputFormat, ParseSettings,
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

fn access_lines(timing: bool) -> Vec<String> {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    (0..LINES)
        .map(|i| {
            let mut l = format!(
                r#"{}.{}.{}.{} - - [24/Nov/2026:{:02}:{:02}:{:02} +0000] "GET {} HTTP/1.1" {} {} "https://www.example.com/" "{}""#,
                r.next(223) + 1, r.next(256), r.next(256), r.next(254) + 1,
                (i / 3600) % 24, (i / 60) % 60, i % 60,
                PATHS[r.next(6) as usize], [200, 304, 404, 502][r.next(4) as usize], r.next(50_000), AGENTS[r.next(4) as usize]
            );
            if timing {
                l.push_str(&format!(r#" {}.{:03} "0.{:03}, 0.{:03}" 10.0.4.{}:8080, 10.0.4.{}:8080"#, r.next(3), r.next(1000), r.next(1000), r.next(1000), r.next(20), r.next(20)));
            }
            l
        })
        .collect()
}

fn error_lines() -> Vec<String> {
    (0..LINES)
        .map(|i| match i % 4 {
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

fn parse(c: &mut Criterion) {
    let combined = access_lines(false);
    let timing = access_lines(true);
    let errors = error_lines();
    let settings = |fmt: &str| ParseSettings {
        access_format: LogFormat::parse_config(fmt).expect("compiles"),
        ..ParseSettings::default()
    };
    let cases: [(&str, ParseSettings, LogKind, &Vec<String>); 4] = [
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
    for (i, l) in access_lines(false).iter().enumerate() {
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
