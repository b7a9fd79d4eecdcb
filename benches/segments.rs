//! Per-object cost of small objects (issue 15): what the forwarder does for one gzip segment of
//! the size the follower (`ship`) uploads every 60 s, through `Handler::handle` with the
//! production S3 and CloudWatch Logs clients, against moto server.
//!
//! `cargo bench --bench segments -- [OBJECTS]` (default 20 warm objects per scenario). Moto is
//! found as the tests find it (`MOTO_SERVER`, `.venv/bin/moto_server`, `PATH`) and started on a
//! free loopback port. Scenarios: a segment of about 100 KB of gzip (about 1 MB of `combined`
//! lines: a busy host's minute) and about 10 KB (a quiet host's), each with `OUTPUT_FORMAT=json`
//! (the default) and `raw`. Each segment is made as the follower makes it (whole lines, the
//! follower's own `ship::gzip`, a follower-style key, `If-None-Match: *`), announced by its own
//! one-record S3 event (what S3 sends per object), and handled by one handler per scenario (a
//! warm Lambda): the first object is the cold one (its stream does not exist yet), the next
//! OBJECTS are the warm ones measured; then the first warm object is announced once more (a
//! duplicate notification).
//!
//! The AWS calls are counted by an SDK interceptor on both clients: operations (one per
//! `send()`, by the operation name in the config bag) and HTTP attempts with their status codes
//! (retries and the 404s that make the sink create a stream show there). Time is the wall time
//! of `Handler::handle` per object and the CPU time (user + system, /proc/self/stat, 10 ms
//! ticks) of this process (the forwarder alone: moto is a child process) over the warm objects.
//! Nothing is asserted about timings; against moto (Python) most of the wall time is moto's.
//!
//! Output: a table and one JSON line (starting with `{`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::ship::gzip;
use nginx_cloudwatch_forwarder::wiring::production_handler;
use serde_json::{Value, json};

#[path = "../tests/common/moto.rs"]
#[allow(dead_code)]
mod moto;

/// For `tests/common/moto.rs`, which looks for `.venv/bin/moto_server` here.
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");
const BUCKET: &str = "bench-segments";
const DEFAULT_OBJECTS: usize = 20;

/// Calls by "Service.Operation": operations started, HTTP attempts, and attempts by status.
#[derive(Debug, Default, Clone)]
struct Calls {
    ops: BTreeMap<String, u64>,
    attempts: BTreeMap<String, u64>,
    statuses: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone)]
struct Counter(Arc<Mutex<Calls>>);

fn op_name(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>().map_or_else(
        || "?".to_string(),
        |m| format!("{}.{}", m.service(), m.name()),
    )
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "bench-call-counter"
    }

    // Once per operation; the operation's name is in the bag from here on.
    fn read_before_serialization(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = op_name(cfg);
        *self.0.lock().unwrap().ops.entry(name).or_default() += 1;
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        ctx: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = op_name(cfg);
        let status = ctx.response().status().as_u16();
        let mut calls = self.0.lock().unwrap();
        *calls.attempts.entry(name.clone()).or_default() += 1;
        *calls
            .statuses
            .entry(format!("{name} {status}"))
            .or_default() += 1;
        Ok(())
    }
}

impl Counter {
    fn take(&self) -> Calls {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const AGENTS: [&str; 8] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "curl/8.5.0",
    "ELB-HealthChecker/2.0",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
];
const WORDS: [&str; 12] = [
    "shoes", "red", "cafe", "nginx", "lambda", "sale", "winter", "coat", "blue", "kids", "gift",
    "phone",
];

/// One `combined` access-log line at `t_ms`, with the variety of a real site (client addresses,
/// ids in paths, sizes) so that gzip gets a realistic ratio (about 8-10:1), not 30:1.
fn line(rng: &mut Rng, t_ms: i64) -> String {
    let t = jiff::Timestamp::from_millisecond(t_ms).expect("time");
    let path = match rng.below(8) {
        0 => format!("/api/v1/orders/{}", rng.below(10_000_000)),
        1 => format!(
            "/api/v1/users/{}?expand=true&fields={}",
            rng.below(1_000_000),
            rng.pick(&WORDS)
        ),
        2 => format!("/static/app.{:08x}.js", rng.next() as u32),
        3 => format!("/products/{}-{}", rng.pick(&WORDS), rng.below(100_000)),
        4 => format!(
            "/search?q={}+{}&page={}",
            rng.pick(&WORDS),
            rng.pick(&WORDS),
            rng.below(20)
        ),
        5 => format!("/images/{:x}.jpg", rng.next() & 0xff_ffff_ffff),
        6 => "/healthz".to_string(),
        _ => "/".to_string(),
    };
    let referer = match rng.below(3) {
        0 => "-".to_string(),
        1 => format!("https://www.example.com/products/{}", rng.below(100_000)),
        _ => "https://www.google.com/".to_string(),
    };
    let (ip, method) = (rng.next(), rng.pick(&["GET", "GET", "GET", "POST"]));
    let status = rng.pick(&["200", "200", "200", "200", "304", "404", "301", "502"]);
    let bytes = rng.below(60_000);
    let agent = rng.pick(&AGENTS);
    format!(
        "{}.{}.{}.{} - - [{}] \"{method} {path} HTTP/1.1\" {status} {bytes} \"{referer}\" \"{agent}\"\n",
        ip % 223 + 1,
        (ip >> 8) % 256,
        (ip >> 16) % 256,
        (ip >> 24) % 254 + 1,
        t.strftime("%d/%b/%Y:%H:%M:%S +0000"),
    )
}

/// Whole lines whose gzip (the follower's own) is about `gz_target` bytes: (text, gzip).
async fn segment(rng: &mut Rng, gz_target: usize, start_ms: i64) -> (Vec<u8>, Vec<u8>) {
    let mut lines: Vec<String> = Vec::new();
    let mut t = start_ms;
    let mut grow = |lines: &mut Vec<String>, n: usize| {
        for _ in 0..n {
            t += rng.below(25) as i64;
            lines.push(line(rng, t));
        }
    };
    // Estimate the ratio on a sample, then settle on the line count by bisection.
    grow(&mut lines, 500);
    let sample = gzip(lines.concat().as_bytes()).await.expect("gzip").len();
    let estimate = (gz_target * 500 / sample.max(1)).max(1);
    let more = (estimate * 3 / 2).saturating_sub(lines.len());
    grow(&mut lines, more);
    let (mut lo, mut hi) = (1, lines.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if gzip(lines[..mid].concat().as_bytes())
            .await
            .expect("gzip")
            .len()
            < gz_target
        {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let text = lines[..lo].concat().into_bytes();
    let gz = gzip(&text).await.expect("gzip");
    (text, gz)
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 (utime, stime), counted from 1 before the name: 11 and 12 after ")".
    (ticks(11) + ticks(12)) / 100.0
}

fn event(key: &str, size: usize, etag: &str) -> Value {
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": BUCKET, "arn": format!("arn:aws:s3:::{BUCKET}")},
            "object": {"key": key, "size": size, "eTag": etag}
        }
    }]})
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

/// Calls per object by operation, over `n` objects.
fn per_object(calls: &BTreeMap<String, u64>, n: usize) -> BTreeMap<String, f64> {
    calls
        .iter()
        .map(|(k, v)| (k.clone(), round(*v as f64 / n as f64, 2)))
        .collect()
}

struct Scenario {
    name: &'static str,
    gz_target: usize,
    output: &'static str,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    sc: &Scenario,
    index: u64,
    objects: usize,
    setup: &aws_sdk_s3::Client,
    counter: &Counter,
    s3: &aws_sdk_s3::Client,
    logs: &aws_sdk_cloudwatchlogs::Client,
) -> Value {
    let output = sc.output;
    let config = Config::from_lookup(|k| match k {
        "OUTPUT_FORMAT" => Some(output.to_string()),
        _ => std::env::var(k).ok(),
    })
    .expect("configuration");
    let handler = production_handler(config, s3.clone(), logs.clone());
    let instance = format!("i-{:017x}", 0xbe0c_0000 + index);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (index + 1));
    let day = jiff::Timestamp::now().strftime("%Y/%m/%d").to_string();
    let start_ms = jiff::Timestamp::now().as_millisecond() - 3_600_000;
    let (mut offset, mut text_bytes, mut gz_bytes) = (0u64, 0usize, 0usize);
    let mut keys = Vec::new();
    // Objects first (uploads are not the forwarder's calls), then the handler on each.
    for i in 0..=objects {
        let (text, gz) = segment(&mut rng, sc.gz_target, start_ms + i as i64 * 60_000).await;
        let end = offset + text.len() as u64;
        let key =
            format!("nginx/{instance}/access/{day}/access.log-803.4f21a.g1-{offset}-{end}.gz");
        offset = end;
        if i > 0 {
            text_bytes += text.len();
            gz_bytes += gz.len();
        }
        let size = gz.len();
        let put = setup
            .put_object()
            .bucket(BUCKET)
            .key(&key)
            .content_type("application/gzip")
            .if_none_match("*")
            .body(gz.into())
            .send()
            .await
            .expect("upload a segment");
        let etag = put
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_string();
        keys.push(event(&key, size, &etag));
    }
    counter.take();

    let handle = |ev: &Value| {
        let ev = ev.clone();
        let handler = &handler;
        async move {
            let t = Instant::now();
            let summary = handler.handle(&ev).await.expect("a known payload");
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let s = serde_json::to_value(&summary).expect("summary");
            (ms, s)
        }
    };
    let (cold_ms, cold_summary) = handle(&keys[0]).await;
    let cold_calls = counter.take();
    let mut times = Vec::new();
    let mut delivered = 0;
    let (mut events, mut batches) = (0u64, 0u64);
    let cpu0 = cpu_seconds();
    for ev in &keys[1..] {
        let (ms, s) = handle(ev).await;
        times.push(ms);
        if s["objects_delivered"] == json!(1) {
            delivered += 1;
        }
        events += s["events"].as_u64().unwrap_or(0);
        batches += s["batches"].as_u64().unwrap_or(0);
    }
    let cpu = cpu_seconds() - cpu0;
    let warm = counter.take();
    let (dup_ms, dup_summary) = handle(&keys[1]).await;
    let dup_calls = counter.take();
    times.sort_by(|a, b| a.total_cmp(b));
    let n = objects;
    json!({
        "scenario": sc.name,
        "output": output,
        "objects": n,
        "delivered": delivered,
        "gzip_bytes_mean": gz_bytes / n,
        "text_bytes_mean": text_bytes / n,
        "lines_per_object": events as f64 / n as f64,
        "puts_per_object": round(batches as f64 / n as f64, 2),
        "ms_median": round(percentile(&times, 0.5), 1),
        "ms_p90": round(percentile(&times, 0.9), 1),
        "ms_min": round(percentile(&times, 0.0), 1),
        "ms_max": round(percentile(&times, 1.0), 1),
        "cpu_ms_per_object": round(cpu * 1000.0 / n as f64, 1),
        "calls_per_object": per_object(&warm.ops, n),
        "attempts_per_object": per_object(&warm.attempts, n),
        "statuses_per_object": per_object(&warm.statuses, n),
        "cold": {
            "ms": round(cold_ms, 1),
            "calls": cold_calls.ops,
            "statuses": cold_calls.statuses,
            "outcome": cold_summary["objects_delivered"],
        },
        "duplicate": {
            "ms": round(dup_ms, 1),
            "calls": dup_calls.ops,
            "already_delivered": dup_summary["already_delivered"],
        },
    })
}

fn main() {
    let objects: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_OBJECTS);
    let scenarios = [
        Scenario {
            name: "busy-100KB",
            gz_target: 100_000,
            output: "json",
        },
        Scenario {
            name: "busy-100KB",
            gz_target: 100_000,
            output: "raw",
        },
        Scenario {
            name: "quiet-10KB",
            gz_target: 10_000,
            output: "json",
        },
        Scenario {
            name: "quiet-10KB",
            gz_target: 10_000,
            output: "raw",
        },
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let moto = moto::Moto::start();
    let shared = moto.sdk_config();
    let counter = Counter::default();
    let (setup, _) = nginx_cloudwatch_forwarder::aws::clients_from(&shared, true);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .retry_config(nginx_cloudwatch_forwarder::aws::retry_config())
            .interceptor(counter.clone())
            .build(),
    );
    let logs = aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::config::Builder::from(&shared)
            .retry_config(nginx_cloudwatch_forwarder::aws::retry_config())
            .interceptor(counter.clone())
            .build(),
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: String = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let results: Vec<Value> = rt.block_on(async {
        setup
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("create the bucket");
        let mut out = Vec::new();
        for (i, sc) in scenarios.iter().enumerate() {
            out.push(run(sc, i as u64, objects, &setup, &counter, &s3, &logs).await);
        }
        out
    });
    drop(moto);

    println!(
        "segments: {objects} warm objects per scenario through Handler::handle against moto (load average {load})"
    );
    println!(
        "{:<11} {:<4} {:>7} {:>8} {:>6} {:>5} {:>8} {:>8} {:>8} {:>7}  calls per warm object",
        "scenario",
        "out",
        "gz B",
        "text B",
        "lines",
        "puts",
        "ms med",
        "ms p90",
        "ms min",
        "cpu ms"
    );
    for r in &results {
        let calls: Vec<String> = r["calls_per_object"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        println!(
            "{:<11} {:<4} {:>7} {:>8} {:>6} {:>5} {:>8} {:>8} {:>8} {:>7}  {}",
            r["scenario"].as_str().unwrap_or(""),
            r["output"].as_str().unwrap_or(""),
            r["gzip_bytes_mean"],
            r["text_bytes_mean"],
            r["lines_per_object"],
            r["puts_per_object"],
            r["ms_median"],
            r["ms_p90"],
            r["ms_min"],
            r["cpu_ms_per_object"],
            calls.join(", ")
        );
    }
    for r in &results {
        println!(
            "{} {}: cold object {} ms, calls {}; duplicate notification {} ms, calls {}; statuses per warm object {}",
            r["scenario"].as_str().unwrap_or(""),
            r["output"].as_str().unwrap_or(""),
            r["cold"]["ms"],
            r["cold"]["calls"],
            r["duplicate"]["ms"],
            r["duplicate"]["calls"],
            r["statuses_per_object"]
        );
    }
    println!(
        "{}",
        json!({"bench": "segments", "objects": objects, "load": load, "results": results})
    );
}
