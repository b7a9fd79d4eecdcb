//! End to end: a generated object of nginx access lines → parse → batches → the real
//! CloudWatch Logs client → a local endpoint that accepts every PutLogEvents; and, in the same
//! run and on the same content, the references the forwarder is judged against (issue 14): bare
//! decompression of the gzip object and the `parse` command on the plain-text object.
//!
//! `cargo bench --bench e2e -- [LINES]` (default 3,000,000 lines ≈ 600 MB of log text, 62 MB
//! gzip; 5,000,000 ≈ 1 GB). The objects are generated once under target/bench/
//! (`access-LINES.log.gz`, gzip level 6, and `access-LINES.log`, the same text uncompressed;
//! regenerated when a day old so the lines stay inside CloudWatch's window). Parts, in this
//! order:
//! - `decode`: the gzip object through the forwarder's own decoder, built as `crates/ncf-core/src/lines.rs`
//!   builds it (async-compression's tokio `GzipDecoder`, whose inflate is flate2's zlib-rs
//!   backend, as Cargo.toml selects it; 256 KiB buffers before and after it), on this process's runtime, the
//!   output counted and dropped;
//! - `flate2`: the same inflate without tokio (`flate2::read::MultiGzDecoder`, zlib-rs);
//! - `gzip`: `gzip -dc OBJECT > /dev/null` (GNU gzip's own inflate), when `gzip` is on PATH;
//! - `zlib`: the system zlib through python3's `zlib` module, when `python3` is on PATH;
//! - `e2e-gz`: the gzip object through `Handler::handle` (an S3 event naming it) to the endpoint;
//! - `e2e-plain`: the plain-text object the same way;
//! - `parse`: the release binary (`parse --kind access FILE > /dev/null`) on the plain object.
//!
//! Every figure is per byte of decompressed log text (MB = 10^6 bytes, GB = 10^9 bytes). CPU
//! time is user + system from /proc (`/proc/self/stat` for the parts run in this process, the
//! reaped children's times for `gzip`, `zlib` and `parse`, `/proc/<pid>/stat` for the endpoint),
//! at clock-tick resolution (10 ms). The e2e CPU is the forwarder's process alone; the endpoint
//! (a child process, so that peak RSS is the forwarder's alone) is shown beside it. Peak RSS
//! (VmHWM) and, with `BENCH_HEAP=1`, the peak of live heap bytes (counted by this bench's
//! allocator: not blurred by what the allocator keeps back) are reset at the start of each e2e
//! part (`/proc/self/clear_refs`), so they are that part's. Heap counting is off by default:
//! its shared counters cost the forwarder's threads about 3 % of their CPU (an atomic
//! read-modify-write on one cache line for every allocation and free), which the Lambda binary
//! does not pay and the `parse` reference does not either. The ratios are speeds
//! measured in this run: e2e-gz against each decoder, and e2e-plain against `parse`. The
//! endpoint and the forwarder share the machine's cores; `parse` has them to itself. Nothing is
//! asserted about timings; a busy machine shows as wall time well above CPU time (the load
//! average at the start is printed).
//!
//! Output: a table, a line `e2e lines=… peak_rss_mb=… peak_heap_mb=…` for the gzip object (as
//! before: scripts/bench/rss.py reads it), and one JSON line (starting with `{`) with every figure.
//!
//! Environment: the Lambda's settings, as the Lambda reads them (`MAX_CONCURRENT_PUTS=4 cargo
//! bench …`); `BENCH_HEAP=1` to count heap bytes (see above); and `BENCH_PARTS`, a comma-separated subset of the parts above (default all; e.g.
//! `BENCH_PARTS=e2e-gz` for the memory runs of scripts/bench/rss.py). Run one size per process:
//! peak RSS is per process.

// The forwarder's futures (forward_object inside FuturesOrdered) are deeper than rustc's
// default layout query limit in a release build.
#![recursion_limit = "256"]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatchlogs::config::{Credentials, SharedCredentialsProvider};
use nginx_cloudwatch_forwarder::aws::cloudwatch::CloudWatchSink;
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::event::ObjectRef;
use nginx_cloudwatch_forwarder::handler::Handler;
use nginx_cloudwatch_forwarder::ports::{ObjectSource, OpenRequest, OpenedObject, SourceError};
use serde_json::{Value, json};

#[path = "../tests/common/http.rs"]
#[allow(dead_code)]
mod http;

const DEFAULT_LINES: u64 = 3_000_000;
/// The read buffer `crates/ncf-core/src/lines.rs` puts before and after its decoder (`READ_BUFFER` there).
const READ_BUFFER: usize = 256 * 1024;
const PARTS: [&str; 7] = [
    "decode",
    "flate2",
    "gzip",
    "zlib",
    "e2e-gz",
    "e2e-plain",
    "parse",
];

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
            metadata: Vec::new(),
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
/// Whether allocations are counted (`BENCH_HEAP=1`, set before anything runs).
static COUNTING: AtomicBool = AtomicBool::new(false);

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            let now =
                LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed) + layout.size() as u64;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The plain-text object: the gzip object decompressed once (rewritten when the gzip is newer).
fn plain_object(gz: &Path) -> PathBuf {
    let path = gz.with_extension("");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(plain), Some(packed)) = (modified(&path), modified(gz))
        && plain >= packed
    {
        return path;
    }
    let mut input = flate2::read::MultiGzDecoder::new(BufReader::new(
        std::fs::File::open(gz).expect("open the gzip object"),
    ));
    let mut out = BufWriter::new(std::fs::File::create(&path).expect("create the plain object"));
    std::io::copy(&mut input, &mut out).expect("write the plain object");
    out.flush().expect("flush the plain object");
    path
}

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

/// Starts a part's memory figures afresh: VmHWM back to the current RSS (false where the kernel
/// does not allow it: the peak is then the process's so far), the heap peak to what is live.
fn reset_peaks() -> bool {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Clock ticks per second for /proc's times (`getconf CLK_TCK`, else Linux's usual 100).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds of a process from /proc/PID/stat: (its own user + system, and that of its
/// children it has reaped).
fn cpu_of(pid: &str, hz: f64) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15, cutime 16, cstime 17.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let at = |n: usize| f.get(n - 3).copied().unwrap_or(f64::NAN) / hz;
    (at(14) + at(15), at(16) + at(17))
}

/// One part's figures.
struct Part {
    name: &'static str,
    what: String,
    wall_s: f64,
    text_bytes: u64,
    cpu_s: f64,
    endpoint_cpu_s: Option<f64>,
    peak_rss_mb: Option<f64>,
    peak_heap_mb: Option<f64>,
    extra: Value,
}

impl Part {
    fn mb_s(&self) -> f64 {
        self.text_bytes as f64 / 1e6 / self.wall_s
    }

    fn per_gb(&self, cpu_s: f64) -> f64 {
        cpu_s / (self.text_bytes as f64 / 1e9)
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "what": self.what,
            "wall_s": round(self.wall_s, 3),
            "text_bytes": self.text_bytes,
            "mb_per_s": round(self.mb_s(), 1),
            "cpu_s": round(self.cpu_s, 2),
            "cpu_s_per_gb": round(self.per_gb(self.cpu_s), 2),
        });
        if let Some(e) = self.endpoint_cpu_s {
            v["endpoint_cpu_s"] = json!(round(e, 2));
            v["cpu_s_per_gb_with_endpoint"] = json!(round(self.per_gb(self.cpu_s + e), 2));
        }
        if let Some(r) = self.peak_rss_mb {
            v["peak_rss_mb"] = json!(round(r, 1));
        }
        if let Some(h) = self.peak_heap_mb {
            v["peak_heap_mb"] = json!(round(h, 1));
        }
        if let Value::Object(extra) = &self.extra {
            for (k, x) in extra {
                v[k] = x.clone();
            }
        }
        v
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Times `f` in this process: wall and CPU seconds.
fn timed<T>(hz: f64, f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (cpu0, _) = cpu_of("self", hz);
    let t = Instant::now();
    let out = f();
    let wall = t.elapsed().as_secs_f64();
    let (cpu1, _) = cpu_of("self", hz);
    (out, wall, cpu1 - cpu0)
}

/// Runs a child to completion with stdout counted or dropped: wall seconds, its CPU seconds (from
/// our reaped-children times), its stdout when `capture`. None when it cannot start or fails.
fn run_child(cmd: &mut Command, capture: bool, hz: f64) -> Option<(f64, f64, String)> {
    let (_, kids0) = cpu_of("self", hz);
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .ok()?;
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut text).ok()?;
    }
    let ok = child.wait().ok()?.success();
    let wall = t.elapsed().as_secs_f64();
    let (_, kids1) = cpu_of("self", hz);
    ok.then_some((wall, kids1 - kids0, text))
}

/// The forwarder's decoder as `LineReader::open` builds it, read to the end: decompressed bytes.
async fn decode_async(path: &Path) -> u64 {
    use tokio::io::AsyncBufReadExt;
    let file = tokio::fs::File::open(path)
        .await
        .expect("open the gzip object");
    let body: Box<dyn tokio::io::AsyncRead + Send + Unpin> = Box::new(file);
    let raw = tokio::io::BufReader::with_capacity(READ_BUFFER, body);
    let mut gz = async_compression::tokio::bufread::GzipDecoder::new(raw);
    gz.multiple_members(true);
    let mut text = tokio::io::BufReader::with_capacity(READ_BUFFER, gz);
    let mut n = 0u64;
    loop {
        let got = text.fill_buf().await.expect("decompress").len();
        if got == 0 {
            return n;
        }
        n += got as u64;
        text.consume(got);
    }
}

fn decode_flate2(path: &Path) -> u64 {
    let file = std::fs::File::open(path).expect("open the gzip object");
    let mut gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, file));
    let mut buf = vec![0; READ_BUFFER];
    let mut n = 0u64;
    loop {
        match gz.read(&mut buf).expect("decompress") {
            0 => return n,
            got => n += got as u64,
        }
    }
}

/// Reads a gzip file (of one or more members) with python3's zlib, 256 KiB of output at a time
/// (no large buffers), and prints the byte count and the zlib version.
const PY_ZLIB: &str = r#"
import sys, zlib
f, n, d = open(sys.argv[1], "rb", buffering=0), 0, zlib.decompressobj(31)
while True:
    b = f.read(1 << 20)
    if not b:
        break
    while b:
        n += len(d.decompress(b, 1 << 18))
        if d.eof:
            b, d = d.unused_data, zlib.decompressobj(31)
        else:
            b = d.unconsumed_tail
print(n, zlib.ZLIB_RUNTIME_VERSION)
"#;

/// Everything one e2e part needs.
struct Forwarding<'a> {
    rt: &'a tokio::runtime::Runtime,
    endpoint: &'a Endpoint,
    client: &'a aws_sdk_cloudwatchlogs::Client,
    hz: f64,
}

impl Forwarding<'_> {
    fn run(&self, name: &'static str, what: &str, path: &Path, key: &str) -> Part {
        // The environment's settings apply (MAX_CONCURRENT_PUTS, OUTPUT_FORMAT, …), else the
        // defaults.
        let config = Config::from_lookup(|k| std::env::var(k).ok()).expect("configuration");
        let handler = Handler::new(
            FileSource(path.to_path_buf()),
            CloudWatchSink::new(self.client.clone(), None),
            config,
        );
        let event = json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-11-24T10:00:00Z",
            "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "x"},
            "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "x", "bucket": {"name": "b", "arn": "arn:aws:s3:::b"},
            "object": {"key": key, "size": 1, "sequencer": "0"}}}]});
        let endpoint_pid = self.endpoint.child.id().to_string();
        let (puts0, sent0) = self.endpoint.stats();
        let (endpoint0, _) = cpu_of(&endpoint_pid, self.hz);
        let rss_reset = reset_peaks();
        let (summary, wall, cpu) = timed(self.hz, || {
            self.rt.block_on(handler.handle(&event)).expect("S3 event")
        });
        let rss = peak_rss_mb();
        let heap = COUNTING
            .load(Ordering::Relaxed)
            .then(|| PEAK.load(Ordering::Relaxed) as f64 / 1_048_576.0);
        let (endpoint1, _) = cpu_of(&endpoint_pid, self.hz);
        let (puts1, sent1) = self.endpoint.stats();
        assert_eq!(summary.objects_delivered, 1, "{summary:?}");
        let t = &summary.totals;
        let puts = puts1 - puts0;
        Part {
            name,
            what: what.to_string(),
            wall_s: wall,
            text_bytes: t.bytes,
            cpu_s: cpu,
            endpoint_cpu_s: Some(endpoint1 - endpoint0),
            peak_rss_mb: Some(rss),
            peak_heap_mb: heap,
            extra: json!({
                "lines": t.lines,
                "events": t.events,
                "lines_per_s": (t.lines as f64 / wall).round() as u64,
                "put_calls": puts,
                "mean_put_body_kib": ((sent1 - sent0) as f64 / puts.max(1) as f64 / 1024.0).round() as u64,
                "peak_rss_reset": rss_reset,
            }),
        }
    }
}

fn main() {
    // First: what is allocated from here on is counted, and freed after.
    if std::env::var_os("BENCH_HEAP").is_some_and(|v| v == "1") {
        COUNTING.store(true, Ordering::Relaxed);
    }
    if std::env::args().any(|a| a == "--serve") {
        return serve();
    }
    let lines: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(DEFAULT_LINES);
    let wanted: Vec<String> = match std::env::var("BENCH_PARTS") {
        Ok(s) if !s.trim().is_empty() => s.split(',').map(|p| p.trim().to_string()).collect(),
        _ => PARTS.iter().map(|p| p.to_string()).collect(),
    };
    if let Some(bad) = wanted.iter().find(|p| !PARTS.contains(&p.as_str())) {
        panic!("BENCH_PARTS: unknown part {bad:?}; the parts are {PARTS:?}");
    }
    let on = |p: &str| wanted.iter().any(|w| w == p);
    let hz = clock_ticks();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: String = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    let path = object(lines);
    let gz_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let plain = (on("e2e-plain") || on("parse")).then(|| plain_object(&path));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut parts: Vec<Part> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();

    if on("decode") {
        let (n, wall, cpu) = timed(hz, || rt.block_on(decode_async(&path)));
        parts.push(Part {
            name: "decode",
            what: "async-compression tokio GzipDecoder (flate2/zlib-rs), as crates/ncf-core/src/lines.rs".into(),
            wall_s: wall,
            text_bytes: n,
            cpu_s: cpu,
            endpoint_cpu_s: None,
            peak_rss_mb: None,
            peak_heap_mb: None,
            extra: json!({}),
        });
    }
    if on("flate2") {
        let (n, wall, cpu) = timed(hz, || decode_flate2(&path));
        parts.push(Part {
            name: "flate2",
            what: "flate2::read::MultiGzDecoder (zlib-rs), no tokio".into(),
            wall_s: wall,
            text_bytes: n,
            cpu_s: cpu,
            endpoint_cpu_s: None,
            peak_rss_mb: None,
            peak_heap_mb: None,
            extra: json!({}),
        });
    }
    // The children's byte counts are not theirs to report (gzip's goes to /dev/null): the
    // text size is the object's, read by the parts above or the forwarder.
    let mut text_bytes = parts.first().map(|p| p.text_bytes);
    let mut children: Vec<(&'static str, String, f64, f64)> = Vec::new();
    if on("gzip") {
        let version = run_child(Command::new("gzip").arg("--version"), true, hz)
            .and_then(|(_, _, v)| v.lines().next().map(str::to_string));
        match run_child(Command::new("gzip").arg("-dc").arg(&path), false, hz) {
            Some((wall, cpu, _)) => children.push((
                "gzip",
                format!(
                    "gzip -dc > /dev/null ({})",
                    version.as_deref().unwrap_or("gzip")
                ),
                wall,
                cpu,
            )),
            None => skipped.push("gzip (no gzip on PATH, or it failed)".into()),
        }
    }
    if on("zlib") {
        match run_child(
            Command::new("python3").args(["-c", PY_ZLIB]).arg(&path),
            true,
            hz,
        ) {
            Some((wall, cpu, out)) => {
                let mut it = out.split_whitespace();
                let n: Option<u64> = it.next().and_then(|n| n.parse().ok());
                let version = it.next().unwrap_or("?").to_string();
                text_bytes = text_bytes.or(n);
                children.push((
                    "zlib",
                    format!("system zlib {version} via python3 zlib.decompressobj"),
                    wall,
                    cpu,
                ));
            }
            None => skipped.push("zlib (no python3 on PATH, or it failed)".into()),
        }
    }

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
    let forwarding = Forwarding {
        rt: &rt,
        endpoint: &endpoint,
        client: &client,
        hz,
    };
    if on("e2e-gz") {
        parts.push(forwarding.run(
            "e2e-gz",
            "gzip object -> Handler::handle -> CloudWatch Logs client -> local endpoint",
            &path,
            "nginx/i-0123456789abcdef0/access/bench.log.gz",
        ));
        text_bytes = text_bytes.or(parts.last().map(|p| p.text_bytes));
    }
    let plain_bytes = plain
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len());
    if on("e2e-plain")
        && let Some(plain) = &plain
    {
        parts.push(forwarding.run(
            "e2e-plain",
            "plain-text object, same content, same road",
            plain,
            "nginx/i-0123456789abcdef0/access/bench.log",
        ));
    }
    if on("parse")
        && let Some(plain) = &plain
    {
        let bin = env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder");
        match run_child(
            Command::new(bin)
                .args(["parse", "--kind", "access"])
                .arg(plain),
            false,
            hz,
        ) {
            Some((wall, cpu, _)) => children.push((
                "parse",
                "nginx-cloudwatch-forwarder parse --kind access FILE > /dev/null (release)".into(),
                wall,
                cpu,
            )),
            None => skipped.push("parse (the command failed)".into()),
        }
    }
    drop(endpoint);

    // Only children ran (`BENCH_PARTS=gzip`, say): the text size is needed all the same.
    let text_bytes = text_bytes
        .or(plain_bytes)
        .unwrap_or_else(|| decode_flate2(&path));
    for (name, what, wall, cpu) in children {
        parts.push(Part {
            name,
            what,
            wall_s: wall,
            text_bytes,
            cpu_s: cpu,
            endpoint_cpu_s: None,
            peak_rss_mb: None,
            peak_heap_mb: None,
            extra: json!({}),
        });
    }
    // The table follows PARTS' order whatever order the parts ran in.
    parts.sort_by_key(|p| PARTS.iter().position(|n| *n == p.name));
    let get = |name: &str| parts.iter().find(|p| p.name == name);
    for p in &parts {
        if p.text_bytes != text_bytes {
            eprintln!(
                "warning: {} saw {} bytes of text, other parts {text_bytes}",
                p.name, p.text_bytes
            );
        }
    }

    // Ratios of speeds (MB/s over MB/s) measured above.
    let ratio = |a: &str, b: &str| Some(get(a)?.mb_s() / get(b)?.mb_s());
    let ratios = [
        (
            "e2e_gz_vs_decode",
            ratio("e2e-gz", "decode"),
            "e2e-gz / decode",
        ),
        (
            "e2e_gz_vs_flate2",
            ratio("e2e-gz", "flate2"),
            "e2e-gz / flate2",
        ),
        (
            "e2e_gz_vs_gzip",
            ratio("e2e-gz", "gzip"),
            "e2e-gz / gzip -dc",
        ),
        ("e2e_gz_vs_zlib", ratio("e2e-gz", "zlib"), "e2e-gz / zlib"),
        (
            "e2e_plain_vs_parse",
            ratio("e2e-plain", "parse"),
            "e2e-plain / parse",
        ),
    ];

    println!(
        "e2e bench: {lines} lines, {:.1} MB of log text, {:.1} MB gzip; {cores} cores; load average at start {load}",
        text_bytes as f64 / 1e6,
        gz_bytes as f64 / 1e6
    );
    println!(
        "{:<10} {:>8} {:>8} {:>8} {:>9} {:>10} {:>8} {:>8}",
        "part", "wall s", "MB/s", "CPU s", "CPU s/GB", "+endpoint", "RSS MB", "heap MB"
    );
    let opt = |x: Option<f64>, w: usize, d: usize| {
        x.map_or(format!("{:>w$}", "-"), |x| format!("{x:>w$.d$}"))
    };
    for p in &parts {
        println!(
            "{:<10} {:>8.2} {:>8.1} {:>8.2} {:>9.2} {} {} {}",
            p.name,
            p.wall_s,
            p.mb_s(),
            p.cpu_s,
            p.per_gb(p.cpu_s),
            opt(p.endpoint_cpu_s.map(|e| p.per_gb(p.cpu_s + e)), 10, 2),
            opt(p.peak_rss_mb, 8, 1),
            opt(p.peak_heap_mb, 8, 1),
        );
    }
    let shown: Vec<String> = ratios
        .iter()
        .filter_map(|(_, r, label)| r.map(|r| format!("{label} {:.0} %", r * 100.0)))
        .collect();
    if !shown.is_empty() {
        println!("speed ratios: {}", shown.join("; "));
    }
    for p in &parts {
        println!("  {:<10} {}", p.name, p.what);
    }
    println!(
        "  CPU s/GB: user + system of the part's process per 10^9 bytes of text; +endpoint adds the endpoint's (a child process); RSS and heap: that part's peaks"
    );
    for s in &skipped {
        println!("  skipped: {s}");
    }
    if let Some(p) = get("e2e-gz") {
        let x = &p.extra;
        println!(
            "e2e lines={} log_bytes={} gzip_bytes={} wall_s={:.2} log_MB_per_s={:.1} lines_per_s={} events={} put_calls={} mean_put_body_kib={} peak_rss_mb={:.1} peak_heap_mb={:.1} cpu_s={:.2} cpu_s_per_gb={:.2} endpoint_cpu_s={:.2}",
            x["lines"],
            p.text_bytes,
            gz_bytes,
            p.wall_s,
            p.mb_s(),
            x["lines_per_s"],
            x["events"],
            x["put_calls"],
            x["mean_put_body_kib"],
            p.peak_rss_mb.unwrap_or(f64::NAN),
            p.peak_heap_mb.unwrap_or(f64::NAN),
            p.cpu_s,
            p.per_gb(p.cpu_s),
            p.endpoint_cpu_s.unwrap_or(f64::NAN),
        );
    }
    let mut report = json!({
        "bench": "e2e",
        "lines": lines,
        "text_bytes": text_bytes,
        "gzip_bytes": gz_bytes,
        "cores": cores,
        "loadavg_at_start": load,
        "clock_ticks_per_s": hz,
        "parts": {},
        "ratios": {},
    });
    for p in &parts {
        report["parts"][p.name] = p.json();
    }
    for (key, r, _) in &ratios {
        if let Some(r) = r {
            report["ratios"][*key] = json!(round(*r, 3));
        }
    }
    println!("{report}");
}
