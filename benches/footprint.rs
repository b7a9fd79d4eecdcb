//! The follower's footprint on a busy host (issue 32): memory and CPU of the real
//! `nginx-cloudwatch-forwarder ship` process while nginx's logs grow at 0, 100 and 2,000 access
//! lines a second (and an error line per 100), shipped to moto, at `--interval 5` and at the
//! default 60 s, all hosts at once (one follower, one bucket each).
//!
//! The lines are real nginx's: at start a real nginx (Debian's, as the tests find it) serves
//! 2,000 different requests (pages, scripts, API calls with query strings, images that 404;
//! browser, mobile and bot agents; referers; IPv4 and IPv6 clients through `X-Forwarded-For`
//! and the realip module) in the `combined` format; its access and error lines are the
//! templates the writers append in turn, with the time replaced by the time of writing (as
//! tests/steady_writes.rs writes: the lines due every 10 ms in one append).
//!
//! Measured per follower, from outside the process:
//! - CPU: user + system time (and its waited-for children's: the `nginx -V` and `hostname -f` it
//!   runs at start) from /proc/<pid>/stat, in clock ticks: at start (until it logs `following`),
//!   then from the first write until the state files say every byte written is in S3 (positions
//!   are saved only after S3 confirmed). CPU seconds are the process's own, so other load on
//!   the box does not inflate them (it stretches wall time only).
//! - Memory: VmRSS sampled every second from /proc/<pid>/status (median and largest sample) and
//!   VmHWM (the kernel's peak RSS) at the end.
//! - What it shipped, counted where it is received: its objects and S3 requests by kind from
//!   moto's request log, and every object read back and gunzipped (lines and bytes; they must
//!   equal what was written, which the table says).
//!
//! `cargo bench --bench footprint -- [SECONDS] [INTERVALS]` (default 300 s of writing;
//! intervals `5,60`: six followers in one run). Output: a Markdown table, then one JSON line.
//! Nothing is asserted here: tests/steady_writes.rs asserts objects and exactly-once.

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::block_on;
use common::imds::{Imds, ImdsServer};
use common::moto::Moto;
use common::nginx::Nginx;

/// Access lines a second per host: idle, a quiet site, a busy one.
const RATES: [u64; 3] = [0, 100, 2000];
/// One error line per this many access lines.
const ERROR_EVERY: u64 = 100;
/// How often memory is sampled.
const SAMPLE: Duration = Duration::from_secs(1);
/// How long a follower may take to start, and to ship the last lines after an interval.
const GRACE: Duration = Duration::from_secs(60);

/// Real nginx's lines, to write again with new times.
struct Templates {
    access: Vec<String>,
    error: Vec<String>,
}

/// How many distinct requests real nginx serves at start: the writers cycle through their
/// lines, 500 KB apart, farther than gzip's 32 KiB window, so the objects compress as a real
/// log does rather than as one line repeated.
const DISTINCT: u64 = 2_000;

/// The kinds of request (target, referer, user agent); `{n}` and `{h}` become a number and a
/// hex string that differ per request.
const SHAPES: [(&str, &str, &str); 8] = [
    (
        "/products/shoes/trail-runner-{n}?color=blue&size=42",
        "https://shop.example.com/category/shoes?sort=price&page={n}",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    (
        "/static/js/app.{h}.js",
        "https://shop.example.com/products/shoes/trail-runner-{n}?color=blue&size=42",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    ),
    (
        "/api/v1/cart/items?session={h}",
        "https://shop.example.com/cart",
        "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    ),
    (
        "/search?q=waterproof+hiking+boots&page={n}&filter=brand%3Aacme",
        "https://www.google.com/",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    ),
    (
        "/images/products/{n}/side-view-1200x800.webp",
        "https://shop.example.com/products/shoes/trail-runner-{n}?color=blue&size=42",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
    ),
    (
        "/robots.txt",
        "-",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    ),
    (
        "/api/v1/products/{n}/reviews?limit=20&offset={n}",
        "https://shop.example.com/products/shoes/trail-runner-{n}",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    ),
    (
        "/",
        "https://duckduckgo.com/",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ),
];

/// Request `i` of the mix: (target, referer, user agent, client address).
fn request_mix(i: u64) -> (String, String, &'static str, String) {
    // A fixed pseudo-random sequence (splitmix64), so every run writes the same lines.
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let (target, referer, agent) = SHAPES[(x % SHAPES.len() as u64) as usize];
    let fill = |s: &str| {
        s.replace("{n}", &(x % 9_973).to_string())
            .replace("{h}", &format!("{:012x}", x >> 16))
    };
    let b = x.to_be_bytes();
    let client = if b[0] < 20 {
        format!("2001:db8:{:x}:{:x}::{:x}", b[1], b[2], b[3])
    } else {
        format!("{}.{}.{}.{}", 1 + b[1] % 223, b[2], b[3], 1 + b[4] % 254)
    };
    (fill(target), fill(referer), agent, client)
}

/// One request to nginx with a referer and a client address for realip.
fn request(addr: std::net::SocketAddr, i: u64) {
    let (target, referer, agent, client) = request_mix(i);
    let mut s = std::net::TcpStream::connect(addr).expect("connect to nginx");
    let referer = if referer == "-" {
        String::new()
    } else {
        format!("Referer: {referer}\r\n")
    };
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: {agent}\r\n{referer}\
         X-Forwarded-For: {client}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read the answer");
}

/// Real nginx serves [`DISTINCT`] requests of the mix (pages, scripts and the API answer 200;
/// images 404, with an error-log line) and its log lines become the templates.
fn real_lines() -> Templates {
    let port = common::nginx::free_port(std::net::Ipv4Addr::LOCALHOST.into());
    let mut nginx = Nginx::start_prepared(&common::nginx::nginx_binary(), |dir| {
        for page in ["index.html", "robots.txt"] {
            std::fs::write(dir.join("html").join(page), "x".repeat(4_000)).expect("a page");
        }
        format!(
            "server {{\n listen 127.0.0.1:{port};\n server_name shop.example.com;\n root html;\n\
             set_real_ip_from 127.0.0.1;\n real_ip_header X-Forwarded-For;\n\
             access_log logs/access.log combined;\n error_log logs/site-error.log error;\n\
             location / {{ try_files $uri /index.html; }}\n\
             location /api/ {{ default_type application/json; return 200 '{{\"items\":[]}}'; }}\n\
             location /images/ {{ }}\n}}"
        )
    });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for i in 0..DISTINCT {
        request(addr, i);
    }
    nginx.stop();
    let lines = |rel: &str| -> Vec<String> {
        String::from_utf8_lossy(&nginx.read(rel))
            .lines()
            .map(str::to_string)
            .collect()
    };
    let t = Templates {
        access: lines("logs/access.log"),
        error: lines("logs/site-error.log"),
    };
    assert_eq!(t.access.len() as u64, DISTINCT, "nginx's access lines");
    assert!(
        !t.error.is_empty(),
        "nginx wrote no error line for the 404s"
    );
    t
}

impl Templates {
    /// Access line `i`, written at `time` (`dd/Mon/yyyy:HH:MM:SS +0000`).
    fn access(&self, i: u64, time: &str) -> String {
        let t = &self.access[i as usize % self.access.len()];
        match (t.find('['), t.find(']')) {
            (Some(a), Some(b)) => format!("{}{time}{}", &t[..=a], &t[b..]),
            _ => t.clone(),
        }
    }

    /// Error line `i`, written at `time` (`yyyy/mm/dd HH:MM:SS`, the first 19 bytes).
    fn error(&self, i: u64, time: &str) -> String {
        let t = &self.error[i as usize % self.error.len()];
        format!("{time}{}", t.get(19..).unwrap_or_default())
    }
}

/// What a writer wrote: lines and bytes, both logs together.
#[derive(Clone, Copy, Default, serde::Serialize)]
struct Written {
    lines: u64,
    bytes: u64,
}

/// Appends `rate` access lines a second to `dir/access.log` (and an error line per
/// [`ERROR_EVERY`] to `dir/error.log`), the lines due every 10 ms in one write, until `stop`.
fn write_steadily(
    dir: PathBuf,
    rate: u64,
    templates: Arc<Templates>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Written> {
    std::thread::spawn(move || {
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(dir.join(name))
                .expect("open a log")
        };
        let (mut access, mut error) = (open("access.log"), open("error.log"));
        let start = Instant::now();
        let mut w = Written::default();
        let mut due_before = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
            let now = jiff::Timestamp::now();
            let (at, et) = (
                now.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string(),
                now.strftime("%Y/%m/%d %H:%M:%S").to_string(),
            );
            let (mut a, mut e) = (String::new(), String::new());
            for i in due_before..due {
                a.push_str(&templates.access(i, &at));
                a.push('\n');
                if i % ERROR_EVERY == ERROR_EVERY - 1 {
                    e.push_str(&templates.error(i / ERROR_EVERY, &et));
                    e.push('\n');
                }
            }
            access.write_all(a.as_bytes()).expect("append");
            error.write_all(e.as_bytes()).expect("append");
            w.lines += a.matches('\n').count() as u64 + e.matches('\n').count() as u64;
            w.bytes += (a.len() + e.len()) as u64;
            due_before = due;
            std::thread::sleep(Duration::from_millis(10)); // pacing
        }
        w
    })
}

/// A follower process and what was read of it.
struct Host {
    rate: u64,
    interval: u64,
    dir: PathBuf,
    bucket: String,
    follower: Child,
    /// CPU ticks once it was following (the start's cost), and when that was read.
    start_ticks: u64,
    started: Instant,
    start_rss_kb: u64,
    rss_kb: Vec<u64>,
    /// At the end: CPU ticks, VmHWM, when, and what was written.
    end_ticks: u64,
    hwm_kb: u64,
    ended: Option<Instant>,
    written: Written,
}

/// utime + stime + cutime + cstime of a process, in clock ticks (/proc/<pid>/stat).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14–17 of stat(5); `after` starts at field 3.
    (11..15).map(|i| fields.get(i).copied().unwrap_or(0)).sum()
}

/// A `Vm…:` line of /proc/<pid>/status, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The bytes of the logs the follower's state files say are in S3 (`offset N`).
fn shipped_offsets(state: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(state) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pos"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("offset "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

fn start_host(moto: &Moto, imds: &ImdsServer, root: &Path, rate: u64, interval: u64) -> Host {
    let dir = root.join(format!("r{rate}-i{interval}"));
    std::fs::create_dir_all(&dir).expect("host dir");
    for log in ["access.log", "error.log"] {
        std::fs::write(dir.join(log), "").expect("create a log");
    }
    let bucket = format!("footprint-r{rate}-i{interval}");
    let (s3, _) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    block_on(s3.create_bucket().bucket(&bucket).send()).expect("create bucket");
    let follower = common::spawn_follower(moto, imds, &bucket, &dir, interval);
    Host {
        rate,
        interval,
        dir,
        bucket,
        follower,
        start_ticks: 0,
        started: Instant::now(),
        start_rss_kb: 0,
        rss_kb: Vec::new(),
        end_ticks: 0,
        hwm_kb: 0,
        ended: None,
        written: Written::default(),
    }
}

impl Host {
    fn pid(&self) -> u32 {
        self.follower.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("follower.log")).unwrap_or_default()
    }

    /// Waits until the follower says it is following, then reads its start's cost.
    fn wait_started(&mut self) {
        let deadline = Instant::now() + GRACE;
        while !self.log().contains("following ") {
            if let Ok(Some(status)) = self.follower.try_wait() {
                panic!("follower exited {status}: {}", self.log());
            }
            assert!(Instant::now() < deadline, "not following: {}", self.log());
            std::thread::sleep(Duration::from_millis(50)); // poll the log
        }
        self.start_ticks = cpu_ticks(self.pid());
        self.start_rss_kb = status_kb(self.pid(), "VmRSS:");
        self.started = Instant::now();
    }

    fn sample(&mut self) {
        if self.ended.is_none() {
            self.rss_kb.push(status_kb(self.pid(), "VmRSS:"));
        }
    }

    /// Once every byte written is in S3: the end's figures, then SIGTERM.
    fn end_if_shipped(&mut self) {
        if self.ended.is_some() || shipped_offsets(&self.dir.join("state")) < self.written.bytes {
            return;
        }
        self.end();
    }

    fn end(&mut self) {
        self.end_ticks = cpu_ticks(self.pid());
        self.hwm_kb = status_kb(self.pid(), "VmHWM:");
        self.ended = Some(Instant::now());
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let _ = self.follower.wait();
    }
}

/// Every object under nginx/ in a bucket, read back: (objects, gzip bytes, lines, bytes).
async fn read_back(s3: &aws_sdk_s3::Client, bucket: &str) -> (u64, u64, u64, u64) {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("nginx/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("list");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    let (mut objects, mut gz, mut lines, mut bytes) = (0, 0, 0, 0);
    for key in &keys {
        if key.contains("/formats/") {
            continue;
        }
        let got = s3.get_object().bucket(bucket).key(key).send().await;
        let body = got.expect("get").body.collect().await.expect("body");
        let body = body.into_bytes();
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(&body[..])
            .read_to_end(&mut text)
            .expect("gunzip");
        objects += 1;
        gz += body.len() as u64;
        lines += text.iter().filter(|&&b| b == b'\n').count() as u64;
        bytes += text.len() as u64;
    }
    (objects, gz, lines, bytes)
}

/// What one follower's run measured (the JSON line).
#[derive(serde::Serialize)]
struct Measured {
    rate: u64,
    interval: u64,
    /// Seconds from the first write until every line was in S3.
    seconds: f64,
    written: Written,
    shipped_lines: u64,
    shipped_bytes: u64,
    objects: u64,
    gzip_bytes: u64,
    /// S3 requests under the host's bucket, by kind, as moto received them.
    requests: BTreeMap<String, u64>,
    start_cpu_s: f64,
    cpu_s: f64,
    start_rss_mb: f64,
    median_rss_mb: f64,
    max_rss_mb: f64,
    hwm_mb: f64,
}

fn measure(h: &Host, moto: &Moto, s3: &aws_sdk_s3::Client, tck: f64) -> Measured {
    let (objects, gzip_bytes, shipped_lines, shipped_bytes) = block_on(read_back(s3, &h.bucket));
    let mut rss = h.rss_kb.clone();
    rss.sort_unstable();
    let mb = |kb: u64| kb as f64 / 1024.0;
    let received = moto.received();
    let requests = common::moto::by_kind(&received, &format!("/{}/", h.bucket))
        .into_iter()
        .filter(|(k, _)| !["CreateBucket", "ListObjectsV2", "GetObject"].contains(k))
        .map(|(k, n)| (k.to_string(), n))
        .collect();
    let ended = h.ended.unwrap_or_else(Instant::now);
    Measured {
        rate: h.rate,
        interval: h.interval,
        seconds: ended.duration_since(h.started).as_secs_f64(),
        written: h.written,
        shipped_lines,
        shipped_bytes,
        objects,
        gzip_bytes,
        requests,
        start_cpu_s: h.start_ticks as f64 / tck,
        cpu_s: h.end_ticks.saturating_sub(h.start_ticks) as f64 / tck,
        start_rss_mb: mb(h.start_rss_kb),
        median_rss_mb: mb(rss.get(rss.len() / 2).copied().unwrap_or(0)),
        max_rss_mb: mb(rss.last().copied().unwrap_or(0)),
        hwm_mb: mb(h.hwm_kb),
    }
}

fn print_table(measured: &[Measured]) {
    println!(
        "\n| lines/s | interval | s | lines written | shipped | objects | PutObject | CPU at start | CPU | CPU s per GB | CPU s per hour | RSS at start | RSS median | RSS max sampled | VmHWM |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for m in measured {
        let gb = m.shipped_bytes as f64 / 1e9;
        let per_gb = if gb > 0.0 {
            format!("{:.1}", m.cpu_s / gb)
        } else {
            "-".into()
        };
        let same = m.shipped_bytes == m.written.bytes && m.shipped_lines == m.written.lines;
        println!(
            "| {} | {} s | {:.0} | {} ({:.1} MB) | {} | {} | {} | {:.2} s | {:.2} s | {per_gb} | {:.1} | {:.1} MB | {:.1} MB | {:.1} MB | {:.1} MB |",
            m.rate,
            m.interval,
            m.seconds,
            m.written.lines,
            m.written.bytes as f64 / 1e6,
            if same { "all" } else { "NOT ALL" },
            m.objects,
            m.requests.get("PutObject").copied().unwrap_or(0),
            m.start_cpu_s,
            m.cpu_s,
            m.cpu_s / m.seconds * 3600.0,
            m.start_rss_mb,
            m.median_rss_mb,
            m.max_rss_mb,
            m.hwm_mb,
        );
    }
    println!(
        "{}",
        serde_json::to_string(measured).unwrap_or_else(|e| format!("not JSON: {e}"))
    );
}

/// Samples memory every second for `seconds` of writing, stops the writers, then waits until
/// each follower has shipped everything (or [`GRACE`] after its interval) and ends it.
fn run(hosts: &mut [Host], templates: &Arc<Templates>, seconds: u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = hosts
        .iter()
        .map(|h| write_steadily(h.dir.clone(), h.rate, templates.clone(), stop.clone()))
        .collect();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        hosts.iter_mut().for_each(Host::sample);
        std::thread::sleep(SAMPLE); // sampling period
    }
    stop.store(true, Ordering::SeqCst);
    for (h, w) in hosts.iter_mut().zip(writers) {
        h.written = w.join().expect("writer");
    }
    let stopped = Instant::now();
    while hosts.iter().any(|h| h.ended.is_none()) {
        for h in hosts.iter_mut() {
            h.sample();
            h.end_if_shipped();
            if h.ended.is_none() && stopped.elapsed() > Duration::from_secs(h.interval) + GRACE {
                eprintln!("r{} i{}: not everything shipped", h.rate, h.interval);
                h.end();
            }
        }
        std::thread::sleep(Duration::from_millis(200)); // poll the state files
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(300);
    let intervals: Vec<u64> = args
        .get(1)
        .map(|a| a.split(',').filter_map(|i| i.parse().ok()).collect())
        .unwrap_or_else(|| vec![5, 60]);
    let templates = Arc::new(real_lines());
    let moto = Moto::start_logged();
    let imds = ImdsServer::start(Imds::Serve);
    let root = std::env::temp_dir().join(format!("ncf-footprint-{}", std::process::id()));
    let mut hosts: Vec<Host> = intervals
        .iter()
        .flat_map(|&i| RATES.map(|r| (r, i)))
        .map(|(r, i)| start_host(&moto, &imds, &root, r, i))
        .collect();
    hosts.iter_mut().for_each(Host::wait_started);
    let mean = |v: &[String]| v.iter().map(String::len).sum::<usize>() / v.len().max(1);
    eprintln!(
        "{} followers, {seconds} s of writing at {RATES:?} lines/s, intervals {intervals:?}; real nginx's lines: access {} bytes, error {} bytes on average",
        hosts.len(),
        mean(&templates.access),
        mean(&templates.error),
    );
    run(&mut hosts, &templates, seconds);
    let (s3, _) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    let tck = clock_ticks_per_second();
    let measured: Vec<Measured> = hosts.iter().map(|h| measure(h, &moto, &s3, tck)).collect();
    print_table(&measured);
    let _ = std::fs::remove_dir_all(&root);
}
