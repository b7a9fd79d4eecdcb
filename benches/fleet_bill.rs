//! A host's monthly bill, measured (issue 27): hosts whose nginx serves 1, 100 and 2,000
//! requests a second, each followed by `ship` at the default interval (and at 10 s), shipped to
//! moto, whose own S3 notifications feed the forwarder one object per invocation, as S3 invokes
//! the function. Everything that costs money is counted where it is received:
//! - objects and S3 requests by kind from moto's request log (per bucket: one bucket per host);
//! - Lambda invocations (one per notification) and each one's handler duration, PutLogEvents
//!   calls (`batches`) and `ingested_bytes` from the forwarder's own summary.
//!
//! Then priced at us-east-1 list prices per host-month (730 hours), and the interval's trade
//! (10 s, 60 s, 300 s) derived from the measured per-object costs.
//!
//! `cargo bench --bench fleet_bill -- [SECONDS] [INTERVALS]` (default 600 s; intervals
//! `300,60,10`: nine hosts in one run).
//! Traffic: a realistic `combined` access line per request (about 230 bytes) and an error-log
//! line per 100 requests. Durations are against moto (Python) on this box, slower than AWS per
//! round trip: the Lambda line is an upper estimate. Nothing is asserted here; the tests in
//! tests/steady_writes.rs assert the bound.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::block_on;
use common::imds::{Imds, ImdsServer};
use common::moto::Moto;
use common::notify::NotifyingBucket;
use serde_json::{Value, json};

const RATES: [u64; 3] = [1, 100, 2000];
/// us-east-1 list prices (2026-12): S3 Standard requests, Lambda arm64, CloudWatch Logs
/// Standard ingestion, S3 Standard storage.
const S3_PUT_PER_1000: f64 = 0.005;
const S3_GET_PER_1000: f64 = 0.0004;
const LAMBDA_PER_MILLION: f64 = 0.20;
const LAMBDA_ARM_PER_GB_S: f64 = 0.000_013_333_4;
const LAMBDA_MEMORY_GB: f64 = 256.0 / 1024.0;
const LOGS_INGEST_PER_GB: f64 = 0.50;
const S3_STORAGE_PER_GB_MONTH: f64 = 0.023;
/// The template's default expiration of uploads (days kept in S3).
const BUCKET_DAYS: f64 = 30.0;
const HOURS_PER_MONTH: f64 = 730.0;

struct Host {
    rate: u64,
    interval: u64,
    bucket: NotifyingBucket,
    follower: Child,
    /// Per invocation: handler duration (ms), PutLogEvents calls, ingested bytes, events,
    /// stored bytes of the object.
    invocations: Vec<(u64, u64, u64, u64)>,
    lines: Arc<std::sync::atomic::AtomicU64>,
}

fn access_line(i: u64) -> String {
    let t = jiff::Timestamp::now().strftime("%d/%b/%Y:%H:%M:%S +0000");
    format!(
        r#"198.51.100.{} - - [{t}] "GET /products/{}?page=2&sort=price HTTP/1.1" 200 {} "https://shop.example.com/category/shoes" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36""#,
        i % 250,
        i,
        2_000 + i % 5_000
    )
}

fn error_line(i: u64) -> String {
    let t = jiff::Timestamp::now().strftime("%Y/%m/%d %H:%M:%S");
    format!(
        r#"{t} [error] 1234#1234: *{i} open() "/srv/www/shop/static/missing-{i}.png" failed (2: No such file or directory), client: 198.51.100.7, server: shop.example.com, request: "GET /static/missing-{i}.png HTTP/1.1", host: "shop.example.com", referrer: "https://shop.example.com/""#
    )
}

/// Writes `rate` access lines a second (an error line per 100) until `stop`.
fn write_steadily(
    dir: PathBuf,
    rate: u64,
    stop: Arc<AtomicBool>,
    lines: Arc<std::sync::atomic::AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .expect("open a log")
        };
        let (mut access, mut error) = (open("access.log"), open("error.log"));
        let start = Instant::now();
        let mut written = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64 + 1;
            let (mut a, mut e) = (String::new(), String::new());
            for i in written..due {
                a.push_str(&access_line(i));
                a.push('\n');
                if i % 100 == 99 {
                    e.push_str(&error_line(i));
                    e.push('\n');
                }
            }
            if due > written {
                access.write_all(a.as_bytes()).expect("append");
                error.write_all(e.as_bytes()).expect("append");
                lines.fetch_add(
                    due - written + (due / 100 - written / 100),
                    Ordering::SeqCst,
                );
                written = due;
            }
            std::thread::sleep(Duration::from_millis(10)); // pacing
        }
    })
}

impl Host {
    /// Forwards what was announced: one invocation per notification, as S3 invokes.
    fn forward(&mut self, env: &[(&'static str, String)]) {
        let event = block_on(self.bucket.lambda_event());
        for record in event["Records"].as_array().into_iter().flatten() {
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap_or("{}"))
                .expect("an S3 notification");
            for r in body["Records"].as_array().into_iter().flatten() {
                let (code, summary) = common::moto::replay(&json!({"Records": [r]}), env);
                assert_eq!(code, Some(0), "{summary}");
                let n = |f: &str| summary[f].as_u64().unwrap_or(0);
                self.invocations.push((
                    summary["duration_ms"].as_u64().unwrap_or(0),
                    n("batches"),
                    n("ingested_bytes"),
                    n("events"),
                ));
            }
        }
    }
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    // `--price FILE`: the bill again from a run's JSON line, without running anything.
    if let Some(file) = all.windows(2).find(|w| w[0] == "--price").map(|w| &w[1]) {
        let text = std::fs::read_to_string(file).expect("read the measurements");
        let line = text
            .lines()
            .rfind(|l| l.starts_with('['))
            .expect("a JSON line");
        let measured: Vec<Measured> = serde_json::from_str(line).expect("measurements");
        print_bill(&measured);
        return;
    }
    let args: Vec<String> = all.into_iter().filter(|a| !a.starts_with("--")).collect();
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(600);
    let intervals: Vec<u64> = args
        .get(1)
        .map(|a| a.split(',').filter_map(|i| i.parse().ok()).collect())
        .unwrap_or_else(|| vec![300, 60, 10]);
    let moto = Moto::start_logged();
    let imds = ImdsServer::start(Imds::Serve);
    let mut env = moto.env();
    env.push(("AMBIGUOUS_PUT_WAIT_MS", "1000".into()));
    let root = std::env::temp_dir().join(format!("ncf-fleet-bill-{}", std::process::id()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut hosts = Vec::new();
    let mut writers = Vec::new();
    for &interval in &intervals {
        for &rate in &RATES {
            let dir = root.join(format!("r{rate}-i{interval}"));
            std::fs::create_dir_all(&dir).expect("host dir");
            let name = format!("bill-r{rate}-i{interval}");
            let bucket = block_on(NotifyingBucket::create(&moto, &name));
            let lines = Arc::new(std::sync::atomic::AtomicU64::new(0));
            writers.push(write_steadily(
                dir.clone(),
                rate,
                stop.clone(),
                lines.clone(),
            ));
            let follower = common::spawn_follower(&moto, &imds, &name, &dir, interval);
            hosts.push(Host {
                rate,
                interval,
                bucket,
                follower,
                invocations: Vec::new(),
                lines,
            });
        }
    }
    eprintln!(
        "{} hosts writing for {seconds} s (rates {RATES:?}, intervals {intervals:?})",
        hosts.len()
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        for h in &mut hosts {
            h.forward(&env);
        }
        std::thread::sleep(Duration::from_secs(2)); // poll interval
    }
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    // What was written before the stop ships at the next interval; then the last invocations.
    let longest = intervals.iter().max().copied().unwrap_or(60);
    std::thread::sleep(Duration::from_secs(longest + 3)); // one interval, for the last segments
    for h in &mut hosts {
        let _ = Command::new("kill")
            .args(["-TERM", &h.follower.id().to_string()])
            .status();
        let _ = h.follower.wait();
        h.forward(&env);
    }
    let received = moto.received();
    let (s3, _) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    let measured: Vec<Measured> = hosts
        .iter()
        .map(|h| {
            let prefix = format!("/{}/", h.bucket.bucket);
            let requests: BTreeMap<String, u64> = common::moto::by_kind(&received, &prefix)
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect();
            // The follower's uploads are under nginx/; the forwarder's own PutObjects are leases.
            let uploads = format!("{prefix}nginx/");
            Measured {
                rate: h.rate,
                interval: h.interval,
                seconds,
                lines_written: h.lines.load(Ordering::SeqCst),
                events_delivered: h.invocations.iter().map(|i| i.3).sum(),
                objects: received
                    .iter()
                    .filter(|r| r.s3_kind() == "PutObject" && r.path.starts_with(&uploads))
                    .count() as u64,
                requests,
                invocations: h.invocations.len() as u64,
                duration_ms_total: h.invocations.iter().map(|i| i.0).sum(),
                put_log_events: h.invocations.iter().map(|i| i.1).sum(),
                ingested_bytes: h.invocations.iter().map(|i| i.2).sum(),
                stored_gzip_bytes: block_on(stored_bytes(&s3, &h.bucket.bucket)),
            }
        })
        .collect();
    print_bill(&measured);
    let _ = std::fs::remove_dir_all(&root);
}

/// What one host's run measured (the JSON line the bench prints; `--price FILE` prices it again).
#[derive(serde::Serialize, serde::Deserialize)]
struct Measured {
    rate: u64,
    interval: u64,
    /// Seconds of traffic.
    seconds: u64,
    lines_written: u64,
    events_delivered: u64,
    /// The follower's uploads.
    objects: u64,
    /// S3 requests by kind, as moto received them.
    requests: BTreeMap<String, u64>,
    invocations: u64,
    duration_ms_total: u64,
    put_log_events: u64,
    ingested_bytes: u64,
    stored_gzip_bytes: u64,
}

impl Measured {
    /// Per month of steady traffic. What scales with objects leaves out the first look of each
    /// file at start (an object a host makes once, not every interval: in a 10-minute run at
    /// 300 s it would be a third of the objects); what scales with traffic is taken whole.
    fn month(&self) -> Month {
        let traffic = HOURS_PER_MONTH * 3600.0 / self.seconds as f64;
        let start = self.objects.min(2) as f64;
        let steady = if self.objects == 0 {
            0.0
        } else {
            (self.objects as f64 - start) / self.objects as f64
        };
        let k = |name: &str| self.requests.get(name).copied().unwrap_or(0) as f64;
        let per_object = |x: f64| x * steady * traffic;
        Month {
            objects_per_hour: per_object(self.objects as f64) / HOURS_PER_MONTH,
            put_tier: per_object(k("PutObject") + k("PutObjectTagging")),
            get_tier: per_object(k("GetObject") + k("GetObjectTagging")),
            invocations: per_object(self.invocations as f64),
            gb_s: per_object(self.duration_ms_total as f64) / 1000.0 * LAMBDA_MEMORY_GB,
            put_log_events: self.put_log_events as f64 * traffic,
            ingested_gb: self.ingested_bytes as f64 * traffic / 1e9,
            // A day's uploads, kept for the bucket's expiration.
            stored_gb: self.stored_gzip_bytes as f64 * traffic / (HOURS_PER_MONTH / 24.0)
                * BUCKET_DAYS
                / 1e9,
        }
    }
}

struct Month {
    objects_per_hour: f64,
    put_tier: f64,
    get_tier: f64,
    invocations: f64,
    gb_s: f64,
    put_log_events: f64,
    ingested_gb: f64,
    /// Gzip kept in S3 at any time (the bucket's expiration).
    stored_gb: f64,
}

/// The bill per host-month, as a Markdown table, then the measurements as one JSON line.
fn print_bill(measured: &[Measured]) {
    println!(
        "\n| host | interval | objects/h | S3 PUT-tier | S3 GET-tier | Lambda invocations | mean duration | PutLogEvents | ingested | $ S3 requests | $ Lambda | $ S3 storage | $ ingestion | $ total |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for m in measured {
        let mo = m.month();
        let s3_requests =
            mo.put_tier / 1000.0 * S3_PUT_PER_1000 + mo.get_tier / 1000.0 * S3_GET_PER_1000;
        let lambda = mo.invocations / 1e6 * LAMBDA_PER_MILLION + mo.gb_s * LAMBDA_ARM_PER_GB_S;
        let storage = mo.stored_gb * S3_STORAGE_PER_GB_MONTH;
        let ingestion = mo.ingested_gb * LOGS_INGEST_PER_GB;
        println!(
            "| {} req/s | {} s | {:.0} | {:.0}k | {:.0}k | {:.0}k | {:.0} ms | {:.0}k | {:.1} GB | ${:.2} | ${:.2} | ${:.2} | ${:.2} | ${:.2} |",
            m.rate,
            m.interval,
            mo.objects_per_hour,
            mo.put_tier / 1000.0,
            mo.get_tier / 1000.0,
            mo.invocations / 1000.0,
            m.duration_ms_total as f64 / m.invocations.max(1) as f64,
            mo.put_log_events / 1000.0,
            mo.ingested_gb,
            s3_requests,
            lambda,
            storage,
            ingestion,
            s3_requests + lambda + storage + ingestion,
        );
    }
    println!(
        "{}",
        serde_json::to_string(measured).unwrap_or_else(|e| format!("not JSON: {e}"))
    );
}

/// Bytes stored under nginx/ in a bucket (the follower's gzip segments).
async fn stored_bytes(s3: &aws_sdk_s3::Client, bucket: &str) -> u64 {
    let mut total = 0;
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix("nginx/")
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        total += page
            .contents()
            .iter()
            .map(|o| u64::try_from(o.size().unwrap_or(0)).unwrap_or(0))
            .sum::<u64>();
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return total,
        }
    }
}
