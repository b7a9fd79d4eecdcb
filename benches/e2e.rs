//! End to end: a generated gzip object of nginx access lines → parse → batches → the real
//! CloudWatch Logs client → a local endpoint that accepts every PutLogEvents.
//! Reports wall time, throughput, peak RSS (of the forwarder: the endpoint is a child process)
//! and calls, and the peak of live heap bytes (a counting allocator: not blurred by what the
//! allocator keeps back).
//!
//! `cargo bench --bench e2e -- [LINES]` (default 5,000,000 lines ≈ 1 GB of log text). The gzip
//! file is generated once under target/bench/. Run one size per process: peak RSS is per process.
//! Settings come from the environment like the Lambda's (`MAX_CONCURRENT_PUTS=4 cargo bench …`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatchlogs::config::{Credentials, SharedCredentialsProvider};
use nginx_cloudwatch_forwarder::aws::cloudwatch::CloudWatchSink;
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::event::ObjectRef;
use nginx_cloudwatch_forwarder::handler::Handler;
use nginx_cloudwatch_forwarder::ports::{ObjectSource, OpenRequest, OpenedObject, SourceError};

#[path = "../tests/common/http.rs"]
#[allow(dead_code)]
mod http;

const DEFAULT_LINES: u64 = 5_000_000;

struct FileSource(PathBuf);

impl ObjectSource for FileSource {
    async fn open(&self, obj: &ObjectRef, _req: &OpenRequest) -> Result<OpenedObject, SourceError> {
        let f = tokio::fs::File::open(&self.0)
            .await
            .map_err(|e| SourceError::Other {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                detail: e.to_string(),
            })?;
        Ok(OpenedObject {
            body: Box::new(f),
            last_modified_ms: None,
            etag: None,
        })
    }
}

/// Writes the object once: `lines` combined lines over the last few hours, gzip level 6.
fn object(lines: u64) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let path = dir.join(format!("access-{lines}.log.gz"));
    let now = jiff::Timestamp::now().as_millisecond();
    // Regenerate when older than a day: the lines must stay inside CloudWatch's 14-day window.
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() < 86_400));
    if fresh {
        return path;
    }
    let file = std::fs::File::create(&path).expect("create");
    let mut gz = flate2::write::GzEncoder::new(BufWriter::new(file), flate2::Compression::new(6));
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        "curl/8.5.0",
    ];
    let start = now - 12 * 3_600_000;
    let step = (10 * 3_600_000 / lines.max(1)).max(1) as i64;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let t = jiff::Timestamp::from_millisecond(start + i as i64 * step).expect("time");
        writeln!(
            gz,
            r#"{}.{}.{}.{} - - [{}] "GET /api/v1/items/{}?page={} HTTP/1.1" {} {} "https://www.example.com/" "{}""#,
            x % 223 + 1, (x >> 8) % 256, (x >> 16) % 256, (x >> 24) % 254 + 1,
            t.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            x % 100_000, (x >> 32) % 50,
            [200, 200, 304, 404][(x % 4) as usize], (x >> 20) % 50_000, agents[(x % 3) as usize]
        )
        .expect("write");
    }
    gz.finish()
        .and_then(|mut w| w.flush())
        .expect("finish gzip");
    path
}

/// The local endpoint runs in a child process (this binary with `--serve`), so that the peak
/// RSS reported is the forwarder's alone, not the endpoint's request buffers too.
struct Endpoint {
    child: Child,
    url: String,
}

impl Endpoint {
    fn start() -> Self {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .arg("--serve")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the endpoint process");
        let mut url = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut url)
            .expect("endpoint address");
        Self {
            child,
            url: url.trim().to_string(),
        }
    }

    /// PutLogEvents calls and body bytes received so far (`GET /stats`).
    fn stats(&self) -> (u64, u64) {
        let addr = self.url.trim_start_matches("http://");
        let mut conn = TcpStream::connect(addr).expect("connect to the endpoint");
        conn.write_all(b"GET /stats HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .expect("ask for stats");
        let mut reader = BufReader::new(conn);
        let mut len = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("stats reply");
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("stats length");
            }
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut text = vec![0; len];
        reader.read_exact(&mut text).expect("stats body");
        let text = String::from_utf8_lossy(&text);
        let mut it = text.split_whitespace().map(|n| n.parse().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child: accepts every call, counts PutLogEvents calls and bytes, prints its address.
fn serve() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    println!("http://{}", listener.local_addr().expect("addr"));
    std::io::stdout().flush().expect("flush the address");
    let (calls, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    for conn in listener.incoming().flatten() {
        let (calls, bytes) = (calls.clone(), bytes.clone());
        std::thread::spawn(move || {
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut out = conn;
            while let Some(req) = http::read_request(&mut reader) {
                let body = if req.path == "/stats" {
                    format!(
                        "{} {}",
                        calls.load(Ordering::Relaxed),
                        bytes.load(Ordering::Relaxed)
                    )
                } else {
                    if req
                        .header("x-amz-target")
                        .is_some_and(|t| t.ends_with("PutLogEvents"))
                    {
                        calls.fetch_add(1, Ordering::Relaxed);
                        bytes.fetch_add(req.body.len() as u64, Ordering::Relaxed);
                    }
                    "{}".to_string()
                };
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if out.write_all(reply.as_bytes()).is_err() {
                    return;
                }
            }
        });
    }
}

/// Counts live heap bytes and their peak: unlike RSS, this does not depend on what the allocator
/// keeps back or on which pages happen to be touched, so it shows what the forwarder holds.
struct Counting;

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now =
                LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed) + layout.size() as u64;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        return serve();
    }
    let lines: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_LINES);
    let path = object(lines);
    let gz_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let endpoint = Endpoint::start();
    let url = endpoint.url.clone();
    let shared = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
        .retry_config(nginx_cloudwatch_forwarder::aws::retry_config())
        .build();
    let client = aws_sdk_cloudwatchlogs::Client::new(&shared);
    // The environment's settings apply (MAX_CONCURRENT_PUTS, OUTPUT_FORMAT, …), else the defaults.
    let config = Config::from_lookup(|k| std::env::var(k).ok()).expect("configuration");
    let handler = Handler::new(
        FileSource(path.clone()),
        CloudWatchSink::new(client, None),
        config,
    );
    let event = serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-11-24T10:00:00Z",
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "x"},
        "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "x", "bucket": {"name": "b", "arn": "arn:aws:s3:::b"},
        "object": {"key": "nginx/i-0123456789abcdef0/access/bench.log.gz", "size": 1, "sequencer": "0"}}}]});
    let started = Instant::now();
    let summary = rt.block_on(handler.handle(&event)).expect("S3 event");
    let secs = started.elapsed().as_secs_f64();
    let t = &summary.totals;
    assert_eq!(summary.objects_delivered, 1, "{summary:?}");
    let (puts, sent) = endpoint.stats();
    println!(
        "e2e lines={} log_bytes={} gzip_bytes={} wall_s={:.2} log_MB_per_s={:.1} lines_per_s={:.0} events={} put_calls={} mean_put_body_kib={:.0} peak_rss_mb={:.1} peak_heap_mb={:.1}",
        t.lines,
        t.bytes,
        gz_bytes,
        secs,
        t.bytes as f64 / 1e6 / secs,
        t.lines as f64 / secs,
        t.events,
        puts,
        sent as f64 / puts.max(1) as f64 / 1024.0,
        peak_rss_mb(),
        PEAK.load(Ordering::Relaxed) as f64 / 1_048_576.0
    );
}
