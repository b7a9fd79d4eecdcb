//! The whole chain needs no ACCESS_LOG_FORMAT (issue 28). One real nginx writes three sites'
//! access logs in three formats to site-named files: `combined`, a timing format with the
//! upstream's variables, and an `escape=json` object with quoted strings and unquoted numbers.
//! One site's server block lives in a glob-`include`d file, and each site has its own error log.
//! The follower (`ship`) finds the files and their formats in nginx's configuration (`nginx -T`
//! through `NGINX_BIN`) and uploads them to moto. moto's own notifications feed the forwarder
//! (`replay`, with no ACCESS_LOG_FORMAT). Every field of every event CloudWatch holds is then
//! compared with nginx's own value of that variable for the same request, taken from a fourth,
//! unshipped `escape=json` log of every variable (the truth), matched by a request id in the
//! query. Then the timing format changes and nginx reloads while the follower runs: lines
//! of both formats must arrive right. What it cost (objects, S3 requests by kind, puts) is
//! counted where moto received it.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::block_on;
use common::imds::{INSTANCE_ID, Imds, ImdsServer};
use common::moto::{Moto, by_kind};
use common::nginx::{Nginx, free_port};
use common::notify::NotifyingBucket;
use common::truth::{
    format_vars, is_plain_number, lines_of, msec_to_ms, nginx_default_escape, parse_truth_line,
    strict_parse, truth_format,
};
use serde_json::Value;

/// nginx's built-in `combined` (the configuration names it by name; this is for its variables).
const COMBINED: &str = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'"#;
/// A timing format as fleets write one: the request's time and the upstream's address, status
/// and times (`-` for requests nginx answers itself).
const TIMING: &str = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent rt=$request_time uct="$upstream_connect_time" urt="$upstream_response_time" ua="$upstream_addr" us="$upstream_status"'"#;
/// [`TIMING`] with `$request_length` at the end: the change the reload brings.
const TIMING_V2: &str = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent rt=$request_time uct="$upstream_connect_time" urt="$upstream_response_time" ua="$upstream_addr" us="$upstream_status" rl=$request_length'"#;
/// A JSON object whose keys are not the variables' names: strings quoted, and `$status`,
/// `$body_bytes_sent` and `$request_time` unquoted (nginx writes them as JSON numbers).
const JSON: &str = r#"escape=json '{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request","status":$status,"bytes":$body_bytes_sent,"request_time":$request_time,"upstream_response_time":"$upstream_response_time","referer":"$http_referer","user_agent":"$http_user_agent"}'"#;

/// Every variable of the formats, and the parts of `$request` the forwarder adds.
const TRUTH_VARS: &[&str] = &[
    "remote_addr",
    "remote_user",
    "time_local",
    "time_iso8601",
    "msec",
    "request",
    "request_method",
    "request_uri",
    "server_protocol",
    "status",
    "body_bytes_sent",
    "http_referer",
    "http_user_agent",
    "request_time",
    "request_length",
    "upstream_connect_time",
    "upstream_response_time",
    "upstream_addr",
    "upstream_status",
];

/// The fields the forwarder adds from `$request` when the format lacks them.
const DERIVED: &[&str] = &["request_method", "request_uri", "server_protocol"];

/// Variables the forwarder writes as JSON numbers when nginx's value is one number.
const NUMERIC: &[&str] = &[
    "status",
    "body_bytes_sent",
    "request_time",
    "request_length",
    "msec",
    "upstream_connect_time",
    "upstream_response_time",
    "upstream_status",
];

/// One site: its server name, its access and error logs (under nginx's prefix), the
/// `log_format` that writes its access log, and whether that format is `escape=json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Site {
    /// `combined` to `shop.example.com.access.log`.
    Shop,
    /// The timing format to `api-access.log`, its server block in `sites-enabled/api.conf`.
    Api,
    /// The JSON format to `site/access.log`.
    Json,
}

const SITES: [Site; 3] = [Site::Shop, Site::Api, Site::Json];

impl Site {
    fn access(self) -> &'static str {
        match self {
            Site::Shop => "logs/shop.example.com.access.log",
            Site::Api => "logs/api-access.log",
            Site::Json => "logs/site/access.log",
        }
    }

    fn server_name(self) -> &'static str {
        match self {
            Site::Shop => "shop.example.com",
            Site::Api => "api.example.com",
            Site::Json => "site.example.com",
        }
    }

    fn error(self) -> &'static str {
        match self {
            Site::Shop => "logs/shop.example.com.error.log",
            Site::Api => "logs/api-error.log",
            Site::Json => "logs/site/error.log",
        }
    }

    /// The paths its traffic asks for: answered by nginx itself, from a file, not found (an
    /// error-log line), or through an upstream (a live one, and for the API a dead one: 502
    /// and an error-log line).
    fn paths(self) -> &'static [&'static str] {
        match self {
            Site::Shop => &[
                "/",
                "/products/shoes",
                "/static/logo.txt",
                "/static/missing.png",
                "/cart/add",
            ],
            Site::Api => &[
                "/v1/orders",
                "/health",
                "/v1/users/42",
                "/down/orders",
                "/v1/search",
            ],
            Site::Json => &[
                "/",
                "/app/page",
                "/static/missing.css",
                "/app/api/items",
                "/static/logo.txt",
            ],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// nginx with three sites, and the follower's view of it.

struct Rig {
    nginx: Nginx,
    ports: BTreeMap<Site, u16>,
    /// What the follower runs as nginx: the real one, on this configuration.
    wrapper: PathBuf,
    /// The next request id (`rid=N` in every request's query).
    next_rid: usize,
    /// Request id → the site it was sent to.
    sent: BTreeMap<usize, Site>,
}

impl Rig {
    /// nginx with a master process ([`Nginx::start_reloadable`]), as it runs on a host.
    fn start() -> Self {
        let lo = std::net::IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ports: BTreeMap<Site, u16> = SITES.iter().map(|s| (*s, free_port(lo))).collect();
        let (up, dead) = (free_port(lo), free_port(lo));
        let nginx = Nginx::start_reloadable(&common::nginx::nginx_binary(), |dir| {
            let d = dir.display();
            std::fs::create_dir_all(dir.join("logs/site")).expect("logs/site");
            std::fs::create_dir_all(dir.join("sites-enabled")).expect("sites-enabled");
            std::fs::create_dir_all(dir.join("html/static")).expect("html/static");
            std::fs::write(dir.join("html/static/logo.txt"), "logo\n").expect("a static file");
            let access = |s: Site| format!("{d}/{}", s.access());
            let error = |s: Site| format!("{d}/{}", s.error());
            std::fs::write(
                dir.join("sites-enabled/api.conf"),
                format!(
                    "server {{\n\
                     listen 127.0.0.1:{api};\n\
                     server_name api.example.com;\n\
                     access_log {api_access} timing;\n\
                     access_log {d}/logs/truth.json truth;\n\
                     error_log {api_error};\n\
                     location /v1/ {{ proxy_pass http://127.0.0.1:{up}; }}\n\
                     location /down/ {{ proxy_pass http://127.0.0.1:{dead}; }}\n\
                     location /health {{ return 200 \"ok\\n\"; }}\n\
                     }}\n",
                    api = ports[&Site::Api],
                    api_access = access(Site::Api),
                    api_error = error(Site::Api),
                ),
            )
            .expect("write the api site");
            format!(
                "log_format timing {TIMING};\n\
                 log_format site_json {JSON};\n\
                 log_format truth {truth};\n\
                 server {{\n\
                 listen 127.0.0.1:{up};\n\
                 server_name upstream.test;\n\
                 location / {{ return 200 \"upstream ok\\n\"; }}\n\
                 }}\n\
                 server {{\n\
                 listen 127.0.0.1:{shop};\n\
                 server_name shop.example.com;\n\
                 access_log {shop_access} combined;\n\
                 access_log {d}/logs/truth.json truth;\n\
                 error_log {shop_error};\n\
                 root {d}/html;\n\
                 location / {{ return 200 \"shop\\n\"; }}\n\
                 location /static/ {{ }}\n\
                 }}\n\
                 server {{\n\
                 listen 127.0.0.1:{site};\n\
                 server_name site.example.com;\n\
                 access_log {site_access} site_json;\n\
                 access_log {d}/logs/truth.json truth;\n\
                 error_log {site_error};\n\
                 root {d}/html;\n\
                 location / {{ return 200 \"site\\n\"; }}\n\
                 location /static/ {{ }}\n\
                 location /app/ {{ proxy_pass http://127.0.0.1:{up}; }}\n\
                 }}\n\
                 include sites-enabled/*.conf;",
                truth = truth_format(TRUTH_VARS),
                shop = ports[&Site::Shop],
                site = ports[&Site::Json],
                shop_access = access(Site::Shop),
                shop_error = error(Site::Shop),
                site_access = access(Site::Json),
                site_error = error(Site::Json),
            )
        });
        let wrapper = nginx.wrapper("nginx-wrapper");
        Rig {
            nginx,
            ports,
            wrapper,
            next_rid: 1,
            sent: BTreeMap::new(),
        }
    }

    fn addr(&self, site: Site) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports[&site]))
    }

    /// The varied traffic of one site (see [`requests`]), sent one connection at a time.
    fn traffic(&mut self, site: Site, n: usize) {
        let conns = requests(site, &mut self.next_rid, n, &mut self.sent);
        let addr = self.addr(site);
        for bytes in conns {
            drive(addr, &bytes);
        }
    }

    /// Waits until the truth log holds a line for every request sent (nginx may log a request
    /// it answered 400 after the client saw the connection close); the truth by request id.
    fn truth(&self) -> HashMap<usize, HashMap<String, Vec<u8>>> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let data = self.nginx.read("logs/truth.json");
            let mut truth = HashMap::new();
            for (i, line) in lines_of(&data).into_iter().enumerate() {
                let t = parse_truth_line(line).unwrap_or_else(|e| {
                    panic!(
                        "truth line {}: {e}: {}",
                        i + 1,
                        String::from_utf8_lossy(line)
                    )
                });
                let rid = rid_of(&t["request"]).unwrap_or_else(|| {
                    panic!("a request without rid: {}", String::from_utf8_lossy(line))
                });
                assert!(truth.insert(rid, t).is_none(), "rid {rid} logged twice");
            }
            if self.sent.keys().all(|r| truth.contains_key(r)) {
                assert_eq!(truth.len(), self.sent.len(), "requests nobody sent");
                return truth;
            }
            assert!(
                Instant::now() < deadline,
                "nginx logged {} of {} requests: {}",
                truth.len(),
                self.sent.len(),
                self.nginx.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20)); // poll interval
        }
    }

    fn files(&self, kinds: &[fn(Site) -> &'static str]) -> Vec<PathBuf> {
        kinds
            .iter()
            .flat_map(|k| SITES.iter().map(|s| self.nginx.path(k(*s))))
            .collect()
    }
}

/// The request id in a request line: the digits after `rid=`.
fn rid_of(request: &[u8]) -> Option<usize> {
    let at = request.windows(4).position(|w| w == b"rid=")? + 4;
    let digits: Vec<u8> = request[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

const USER_AGENTS: &[&[u8]] = &[
    b"curl/8.5.0",
    b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) café ✓ 😀 日本語".as_bytes(),
    b"agent with \"quotes\" and \\backslash\\",
    // Strings that look like what they are not: a number, a JSON object, a dash.
    b"12345",
    b"{\"status\":500,\"nested\":{\"a\":\"b\"}}",
    b"-",
    b"",
    b"bytes \xff\xfe end",
    b"tab\there",
];

const REFERERS: &[&[u8]] = &[
    b"https://www.example.com/search?q=shoes&page=2",
    b"-",
    b"http://x.test/\"q\"",
    "https://bücher.example/ü".as_bytes(),
];

fn request_bytes(method: &str, target: &[u8], version: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(method.as_bytes());
    r.push(b' ');
    r.extend_from_slice(target);
    r.push(b' ');
    r.extend_from_slice(version.as_bytes());
    r.extend_from_slice(b"\r\n");
    common::nginx::end_headers(&mut r, headers);
    r
}

/// About `n` requests to `site` (the bytes of each connection), each with its own `rid=N`:
/// GET, POST with a body, HEAD; queries with escapes, quotes, backslashes and raw UTF-8;
/// UTF-8 and hostile user agents; a space in the URI (nginx 1.22 answers 400); long request
/// lines and headers; HTTP/1.0; and keep-alive connections of several requests.
fn requests(
    site: Site,
    next_rid: &mut usize,
    n: usize,
    sent: &mut BTreeMap<usize, Site>,
) -> Vec<Vec<u8>> {
    let mut rid = || {
        let r = *next_rid;
        *next_rid += 1;
        sent.insert(r, site);
        r
    };
    let host = site.server_name().as_bytes();
    let ordinary = |i: usize, rid: usize, close: bool| -> Vec<u8> {
        let method = ["GET", "GET", "POST", "HEAD", "GET", "PUT"][i % 6];
        let path = site.paths()[i % site.paths().len()];
        let query = match i % 5 {
            0 => format!("?rid={rid}"),
            1 => format!("?rid={rid}&q=a%20b&x=%22y%22"),
            2 => format!("?rid={rid}&utf=%C3%A9&raw=caf\u{e9}&quote=\"x\"&back=\\y"),
            3 => format!("?rid={rid}&list=1,2,3&sp=+&empty="),
            _ => format!("?rid={rid}&page={i}"),
        };
        let target = format!("{path}{query}");
        let mut h: Vec<(&str, &[u8])> = vec![("Host", host)];
        if i % 7 != 6 {
            h.push(("User-Agent", USER_AGENTS[i % USER_AGENTS.len()]));
        }
        if i % 3 == 1 {
            h.push(("Referer", REFERERS[i % REFERERS.len()]));
        }
        if close {
            h.push(("Connection", b"close"));
        }
        let body: &[u8] = if method == "POST" || method == "PUT" {
            b"{\"order\":42,\"note\":\"caf\xc3\xa9\"}"
        } else {
            b""
        };
        let len = body.len().to_string();
        if !body.is_empty() {
            h.push(("Content-Length", len.as_bytes()));
            h.push(("Content-Type", b"application/json"));
        }
        let mut r = request_bytes(method, target.as_bytes(), "HTTP/1.1", &h);
        r.extend_from_slice(body);
        r
    };
    let mut conns = Vec::new();
    for i in 0..n {
        conns.push(ordinary(i, rid(), true));
    }
    // Keep-alive: a few requests on one connection, the last one closes it.
    for c in 0..3 {
        let mut bytes = Vec::new();
        for j in 0..3 {
            bytes.extend(ordinary(c * 3 + j, rid(), j == 2));
        }
        conns.push(bytes);
    }
    let close: (&str, &[u8]) = ("Connection", b"close");
    let h: (&str, &[u8]) = ("Host", host);
    // A space in the URI, sent as some clients do: 400 from nginx 1.21.1 on.
    conns.push(request_bytes(
        "GET",
        format!("/files/annual report 2026.pdf?rid={}", rid()).as_bytes(),
        "HTTP/1.1",
        &[h, close],
    ));
    conns.push(request_bytes(
        "GET",
        format!("/search?rid={}&q=a b", rid()).as_bytes(),
        "HTTP/1.1",
        &[h, close],
    ));
    // Raw UTF-8 and percent-escapes in the path, a quote and a backslash.
    conns.push(request_bytes(
        "GET",
        format!("/caf\u{e9}/\u{2713}?rid={}", rid()).as_bytes(),
        "HTTP/1.1",
        &[h, close],
    ));
    conns.push(request_bytes(
        "GET",
        format!("/pct%22%5c%00/a\"b\\c?rid={}&x=%ff", rid()).as_bytes(),
        "HTTP/1.1",
        &[h, close],
    ));
    // Long lines: a 6,000-byte query, a 3,000-byte user agent and referer.
    conns.push(request_bytes(
        "GET",
        format!("{}?rid={}&q={}", site.paths()[0], rid(), "x".repeat(6000)).as_bytes(),
        "HTTP/1.1",
        &[h, close],
    ));
    let long_ua = "Mozilla/5.0 ".repeat(250);
    let long_ref = format!("https://r.example/{}", "r".repeat(3000));
    conns.push(request_bytes(
        "GET",
        format!("{}?rid={}", site.paths()[1], rid()).as_bytes(),
        "HTTP/1.1",
        &[
            h,
            ("User-Agent", long_ua.as_bytes()),
            ("Referer", long_ref.as_bytes()),
            close,
        ],
    ));
    // HTTP/1.0 without a Host.
    conns.push(request_bytes(
        "GET",
        format!("{}?rid={}", site.paths()[1], rid()).as_bytes(),
        "HTTP/1.0",
        &[("User-Agent", b"old/1.0")],
    ));
    conns
}

/// Sends one connection's bytes and reads until nginx closes it (every request of it is then
/// answered; nginx logs a 400 when it closes, which [`Rig::truth`] waits for).
fn drive(addr: SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    // nginx may answer (and close) before reading everything: a failed write is fine.
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = s.shutdown(Shutdown::Both);
}

// ---------------------------------------------------------------------------------------------
// Shipping and forwarding.

/// moto with a bucket whose notifications go to SQS, and the IMDS stand-in the follower asks.
struct Cloud {
    moto: Moto,
    imds: ImdsServer,
    bucket: NotifyingBucket,
    s3: aws_sdk_s3::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    state: PathBuf,
    /// The test's own listings ([`wait_shipped`]), not to be counted as the follower's.
    own_lists: std::cell::Cell<u64>,
}

impl Cloud {
    fn start(bucket: &str) -> Self {
        let moto = Moto::start_logged();
        let imds = ImdsServer::start(Imds::Serve);
        let bucket = block_on(NotifyingBucket::create(&moto, bucket));
        let (s3, logs) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
        let state = std::env::temp_dir().join(format!(
            "ncf-nginx-formats-{}-{}",
            std::process::id(),
            bucket.bucket
        ));
        let _ = std::fs::remove_dir_all(&state);
        Cloud {
            moto,
            imds,
            bucket,
            s3,
            logs,
            state,
            own_lists: std::cell::Cell::new(0),
        }
    }

    /// `ship FILE…` with `rig`'s nginx: `NGINX_BIN` its wrapper (`nginx -V`, `-v`, `-T` on its
    /// configuration), `NGINX_CONF` and `NGINX_PREFIX` where that configuration is (for a
    /// follower that reads the files themselves).
    fn ship(&self, rig: &Rig, files: &[PathBuf]) -> Command {
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let mut cmd = common::ship_command_files(
            &self.moto,
            &self.imds,
            &self.bucket.bucket,
            &self.state,
            &files,
        );
        cmd.env("NGINX_BIN", &rig.wrapper)
            .env("NGINX_CONF", rig.nginx.path("nginx.conf"))
            .env("NGINX_PREFIX", &rig.nginx.dir);
        cmd
    }

    /// `replay` on every notification moto has sent, with no format setting; its summary.
    fn forward(&self) -> Value {
        let event = block_on(self.bucket.lambda_event());
        let (code, summary) = common::moto::replay(&event, &self.moto.env());
        assert_eq!(code, Some(0), "replay: {summary:#}");
        summary
    }

    /// The bucket's keys under `nginx/` with their user metadata.
    fn objects(&self) -> Vec<(String, HashMap<String, String>)> {
        block_on(async {
            let list = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket.bucket)
                .prefix("nginx/")
                .send()
                .await
                .expect("list the bucket");
            let mut out = Vec::new();
            for o in list.contents() {
                let key = o.key().unwrap_or_default().to_string();
                let head = self
                    .s3
                    .head_object()
                    .bucket(&self.bucket.bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
                out.push((key, head.metadata().cloned().unwrap_or_default()));
            }
            out
        })
    }

    /// Every event of `group`'s stream for the instance.
    fn events(&self, group: &str) -> Vec<(i64, String)> {
        block_on(common::moto::read_stream(&self.logs, group, INSTANCE_ID))
    }

    /// The S3 requests moto received for the bucket since `from` (an index into
    /// [`Moto::received`]), by kind, and the index to count from next.
    fn requests_since(&self, from: usize) -> (BTreeMap<&'static str, u64>, usize) {
        let received = self.moto.received();
        (
            by_kind(&received[from..], &format!("/{}/", self.bucket.bucket)),
            received.len(),
        )
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison with the truth.

/// What was compared for one format.
#[derive(Default, Debug)]
struct Tally {
    lines: usize,
    fields: usize,
    numbers: usize,
    strings: usize,
    /// Fields left out where nginx wrote `-` (or nothing).
    omitted: usize,
    mismatch_count: usize,
    mismatches: Vec<String>,
}

impl Tally {
    fn mismatch(&mut self, detail: String) {
        self.mismatch_count += 1;
        if self.mismatches.len() < 20 {
            let mut d: String = detail.chars().take(400).collect();
            if d.len() < detail.len() {
                d.push('…');
            }
            self.mismatches.push(d);
        }
    }
}

/// The variables of `format` that it writes without quotes around them.
fn unquoted_vars(format: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in format.match_indices('$') {
        if format[..at].ends_with('"') {
            continue;
        }
        let name: String = format[at + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

/// Compares one event (its timestamp and message) that the `format` (nginx syntax) wrote with
/// nginx's values for its request: every field is a variable of the format (or a part of
/// `$request`) holding nginx's value, escaped as the format escapes it; numbers are numbers
/// and strings are strings; a value is left out only where nginx wrote `-` or nothing.
fn compare(
    name: &str,
    format: &str,
    event: &(i64, String),
    truth: &HashMap<String, Vec<u8>>,
    t: &mut Tally,
) {
    t.lines += 1;
    let json = format.starts_with("escape=json");
    let (ts, message) = event;
    let fields = match strict_parse(message) {
        Ok(Value::Object(m)) => m,
        Ok(other) => return t.mismatch(format!("{name}: not an object: {other}")),
        Err(e) => return t.mismatch(format!("{name}: {e}: {message}")),
    };
    if fields.contains_key("parse_error") {
        return t.mismatch(format!("{name}: parse_error: {message}"));
    }
    // Encoded twice: a `\"` escaped again.
    if message.contains(r#"\\\""#) {
        t.mismatch(format!("{name}: an escape escaped again: {message}"));
    }
    let msec = String::from_utf8_lossy(&truth["msec"]).into_owned();
    if *ts != msec_to_ms(&msec) / 1000 * 1000 {
        t.mismatch(format!("{name}: timestamp {ts}, nginx $msec {msec}"));
    }
    let vars = format_vars(format);
    let unquoted = unquoted_vars(format);
    let allowed: Vec<&str> = vars
        .iter()
        .map(String::as_str)
        .chain(
            DERIVED
                .iter()
                .copied()
                .filter(|_| vars.iter().any(|v| v == "request")),
        )
        .collect();
    let rid = rid_of(&truth["request"]).unwrap_or_default();
    for (key, ours) in &fields {
        t.fields += 1;
        let at = format!("{name} rid={rid} {key}");
        if !allowed.contains(&key.as_str()) {
            t.mismatch(format!("{at}: not a variable of the format: {ours}"));
            continue;
        }
        let Some(raw) = truth.get(key) else {
            t.mismatch(format!("{at}: not in the truth"));
            continue;
        };
        let text = String::from_utf8_lossy(raw).into_owned();
        match ours {
            Value::Number(n) => {
                t.numbers += 1;
                if !(NUMERIC.contains(&key.as_str())
                    && is_plain_number(&text)
                    && text.parse::<f64>().ok() == n.as_f64())
                {
                    t.mismatch(format!("{at}: ours {n}, nginx {text:?}"));
                }
            }
            Value::String(s) => {
                t.strings += 1;
                let want = if json {
                    text.clone()
                } else {
                    nginx_default_escape(raw)
                };
                if *s != want {
                    t.mismatch(format!("{at}: ours {s:?}, nginx {want:?}"));
                } else if NUMERIC.contains(&key.as_str()) && is_plain_number(&text) {
                    t.mismatch(format!("{at}: the number {s:?} written as a string"));
                } else if json && unquoted.contains(key) {
                    t.mismatch(format!("{at}: written unquoted by nginx, a string here"));
                }
            }
            other => t.mismatch(format!("{at}: ours {other}")),
        }
    }
    for var in &allowed {
        if fields.contains_key(*var) {
            continue;
        }
        match truth.get(*var).map(Vec::as_slice) {
            None => t.mismatch(format!("{name}: ${var} is not in the truth")),
            Some(b"-" | b"") => t.omitted += 1,
            Some(v) => t.mismatch(format!(
                "{name} rid={rid} {var}: absent, nginx {:?}",
                String::from_utf8_lossy(v)
            )),
        }
    }
}

/// The events of the access stream by request id (each must have one), and the ids seen twice.
fn events_by_rid(events: &[(i64, String)]) -> (BTreeMap<usize, (i64, String)>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut bad = Vec::new();
    for e in events {
        let request = strict_parse(&e.1)
            .ok()
            .and_then(|v| v["request"].as_str().map(str::to_string));
        match request.as_deref().and_then(|r| rid_of(r.as_bytes())) {
            Some(rid) => {
                if out.insert(rid, e.clone()).is_some() {
                    bad.push(format!("rid {rid} delivered twice"));
                }
            }
            None => bad.push(format!("an event without a request id: {}", e.1)),
        }
    }
    (out, bad)
}

/// The error log's events: lines that start with nginx's `YYYY/MM/DD HH:MM:SS` time.
fn error_events_in(data: &[u8]) -> usize {
    lines_of(data)
        .iter()
        .filter(|l| l.len() > 19 && l[4] == b'/' && l[7] == b'/' && l[13] == b':')
        .count()
}

// ---------------------------------------------------------------------------------------------

/// Three sites in three formats, one `ship --once`, one `replay` with no ACCESS_LOG_FORMAT:
/// every event equals nginx's own values, field for field, and the error logs arrive parsed.
#[test]
fn three_formats_from_nginxs_configuration_arrive_field_for_field() {
    let started = Instant::now();
    let mut rig = Rig::start();
    for site in SITES {
        rig.traffic(site, 60);
    }
    let truth = rig.truth();
    // The traffic reached what it was meant to: each kind of answer, the upstream and not.
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for t in truth.values() {
        *statuses
            .entry(String::from_utf8_lossy(&t["status"]).into_owned())
            .or_default() += 1;
    }
    for status in ["200", "400", "404", "502"] {
        assert!(statuses.contains_key(status), "no {status}: {statuses:?}");
    }
    let api = |upstream: bool| {
        truth
            .iter()
            .filter(|(rid, t)| {
                // (The truth, `escape=json`, writes a variable without a value as nothing.)
                rig.sent[*rid] == Site::Api && t["upstream_addr"].is_empty() != upstream
            })
            .count()
    };
    let (through, not) = (api(true), api(false));
    assert!(
        through > 10 && not > 10,
        "API requests through an upstream ({through}) and not ({not})"
    );
    let cloud = Cloud::start("nginx-formats");
    let (_, from) = cloud.requests_since(0);

    // The follower, on the three sites' files: the configuration says what each is and which
    // format writes it.
    let files = rig.files(&[Site::access, Site::error]);
    let out = cloud
        .ship(&rig, &files)
        .arg("--once")
        .output()
        .expect("run ship");
    let ship_err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ship --once: {ship_err}");
    let (shipped, _) = cloud.requests_since(from);
    let objects = cloud.objects();
    // (The listing and heads above are the test's own: counted from here.)
    let (_, from) = cloud.requests_since(0);
    let formats: BTreeSet<&str> = objects
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.contains("/formats/"))
        .collect();
    let logs: Vec<&(String, HashMap<String, String>)> = objects
        .iter()
        .filter(|(k, _)| !k.contains("/formats/"))
        .collect();
    // One format object per format; the logs in one object per file, or per kind where the
    // follower ships the files of a kind together (a bundle).
    assert_eq!(formats.len(), 3, "{objects:#?}");
    assert!(
        (2..=6).contains(&logs.len()),
        "{} log objects for 6 files: {objects:#?}\n{ship_err}",
        logs.len()
    );
    // Each access object names the formats its lines are in (one, or the candidates of a
    // bundle), every format is named, and error objects name none.
    let mut named = BTreeSet::new();
    for (key, meta) in &logs {
        let names: Vec<&str> = ["ncf-log-format", "ncf-log-formats"]
            .iter()
            .filter_map(|m| meta.get(*m))
            .flat_map(|v| v.split(' '))
            .collect();
        if key.contains("/access/") {
            assert!(!names.is_empty(), "{key} names no format: {meta:?}");
            for n in names {
                assert!(formats.contains(n), "{key} names {n}: {formats:?}");
                named.insert(n);
            }
        } else {
            assert!(names.is_empty(), "{key}: {meta:?}");
        }
    }
    assert_eq!(named, formats, "the formats the access objects name");

    let summary = cloud.forward();
    let (forwarded, _) = cloud.requests_since(from);
    assert_eq!(summary["parse_errors"], 0, "{summary:#}");
    assert_eq!(summary["objects_failed"], 0, "{summary:#}");
    assert_eq!(summary["objects_delivered"], logs.len(), "{summary:#}");
    assert_eq!(summary["objects_skipped"], formats.len(), "{summary:#}");
    assert_eq!(summary["format_ambiguous"].as_u64().unwrap_or_default(), 0);

    // Access: every request once, every field nginx's.
    let access = cloud.events("nginx-access");
    let (by_rid, bad) = events_by_rid(&access);
    assert!(bad.is_empty(), "{bad:#?}");
    let sent: BTreeSet<usize> = rig.sent.keys().copied().collect();
    let got: BTreeSet<usize> = by_rid.keys().copied().collect();
    assert_eq!(got, sent, "requests missing or unknown in CloudWatch");
    let mut tallies: BTreeMap<Site, Tally> = BTreeMap::new();
    for (rid, event) in &by_rid {
        let site = rig.sent[rid];
        let format = match site {
            Site::Shop => COMBINED,
            Site::Api => TIMING,
            Site::Json => JSON,
        };
        compare(
            &format!("{site:?}"),
            format,
            event,
            &truth[rid],
            tallies.entry(site).or_default(),
        );
    }
    for site in SITES {
        let lines = lines_of(&rig.nginx.read(site.access())).len();
        assert_eq!(
            tallies[&site].lines, lines,
            "{site:?}: events for its lines"
        );
    }

    // Error logs: every event arrived, none failed to parse.
    let errors = cloud.events("nginx-error");
    let written: usize = SITES
        .iter()
        .map(|s| error_events_in(&rig.nginx.read(s.error())))
        .sum();
    assert!(written >= 3, "each site wrote error lines ({written})");
    assert_eq!(errors.len(), written, "error events");
    // Each names the request it is about, on the site whose error log nginx wrote it to.
    let mut raw_rids = BTreeSet::new();
    for site in SITES {
        for line in lines_of(&rig.nginx.read(site.error())) {
            if let Some(rid) = rid_of(line) {
                assert_eq!(rig.sent[&rid], site, "{}", String::from_utf8_lossy(line));
                raw_rids.insert(rid);
            }
        }
    }
    let mut event_rids = BTreeSet::new();
    for (_, m) in &errors {
        let v = strict_parse(m).unwrap_or_else(|e| panic!("{e}: {m}"));
        assert!(v.get("parse_error").is_none(), "{m}");
        assert!(v["level"].is_string(), "{m}");
        if let Some(rid) = v["request"].as_str().and_then(|r| rid_of(r.as_bytes())) {
            assert_eq!(v["server"], rig.sent[&rid].server_name(), "{m}");
            event_rids.insert(rid);
        }
    }
    assert!(!raw_rids.is_empty());
    assert_eq!(event_rids, raw_rids, "the requests the error events name");

    // What it cost: the follower put each segment and each format once and did nothing else;
    // the forwarder read each object once, each format once.
    let puts_cloudwatch = summary["batches"].as_u64().unwrap_or_default();
    eprintln!(
        "nginx formats: {} requests (statuses {statuses:?}), {} access events, {} error events; per format {:?}; \
         {} log objects, {} format objects; follower S3 requests {shipped:?}; \
         forwarder S3 requests {forwarded:?}; PutLogEvents {puts_cloudwatch}; {:?}",
        rig.sent.len(),
        access.len(),
        errors.len(),
        tallies
            .iter()
            .map(|(s, t)| format!(
                "{s:?}: {} lines, {} fields ({} numbers, {} strings, {} omitted as '-'), {} mismatches",
                t.lines, t.fields, t.numbers, t.strings, t.omitted, t.mismatch_count
            ))
            .collect::<Vec<_>>(),
        logs.len(),
        formats.len(),
        started.elapsed()
    );
    for (site, t) in &tallies {
        assert!(
            t.mismatch_count == 0,
            "{site:?}: {} mismatches, first ones:\n{}",
            t.mismatch_count,
            t.mismatches.join("\n")
        );
    }
    let (logs, formats) = (logs.len() as u64, formats.len() as u64);
    assert_eq!(
        shipped,
        BTreeMap::from([("PutObject", logs + formats)]),
        "the follower's requests: a put per object, nothing else"
    );
    assert_eq!(
        forwarded.get("GetObject").copied().unwrap_or_default(),
        logs + formats,
        "the forwarder reads each object and each format once: {forwarded:?}"
    );
    // Besides the reads, per log object: its lease (put, delete) and its progress tag (get, put).
    let total: u64 = forwarded.values().sum();
    assert!(
        total <= logs * 5 + formats,
        "{total} S3 requests from the forwarder: {forwarded:?}"
    );
    assert!(
        (1..=logs).contains(&puts_cloudwatch),
        "PutLogEvents {puts_cloudwatch}: {summary:#}"
    );
}

/// The API's timing format gains `$request_length` and nginx reloads while the follower runs
/// (`--interval 1`). The follower is paused (SIGSTOP) across the reload, so that one segment
/// holds lines of both formats; lines before, across and after the reload each arrive once with
/// every field nginx's, read with the format that wrote them.
#[test]
fn a_format_changed_by_a_reload_reads_right_before_and_after() {
    let started = Instant::now();
    let mut rig = Rig::start();
    let cloud = Cloud::start("nginx-formats-reload");
    let (_, from) = cloud.requests_since(0);
    let access = rig.nginx.path(Site::Api.access());
    let follower_log = rig.nginx.path("follower.log");
    let follower = Running(Some(
        cloud
            .ship(&rig, std::slice::from_ref(&access))
            .args(["--interval", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&follower_log).expect("the follower's log"))
            .spawn()
            .expect("start the follower"),
    ));
    let pid = follower
        .0
        .as_ref()
        .map(std::process::Child::id)
        .unwrap_or_default();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill {sig} {pid}");
    };

    // Lines in the first format, shipped.
    rig.traffic(Site::Api, 20);
    wait_shipped(&cloud, &access);
    // Paused: what follows waits for it.
    signal("-STOP");
    rig.traffic(Site::Api, 10);
    let conf = rig.nginx.path("nginx.conf");
    let text = std::fs::read_to_string(&conf).expect("read nginx.conf");
    assert!(text.contains(TIMING));
    std::fs::write(&conf, text.replace(TIMING, TIMING_V2)).expect("write nginx.conf");
    rig.nginx.reload();
    // The reload has applied once a request's line has the new field.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rid = rig.next_rid;
        rig.next_rid += 1;
        rig.sent.insert(rid, Site::Api);
        drive(
            rig.addr(Site::Api),
            format!("GET /health?rid={rid}&probe HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let data = rig.nginx.read(Site::Api.access());
        let line = lines_of(&data)
            .into_iter()
            .find(|l| rid_of(l) == Some(rid))
            .map(|l| String::from_utf8_lossy(l).into_owned());
        if line.is_some_and(|l| l.contains(" rl=")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nginx did not apply the new format: {}",
            rig.nginx.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20)); // poll interval
    }
    // (The old worker may still take a few connections: lines of both formats interleave for a
    // moment, as on a host. Each line is compared with the format that wrote it.)
    rig.traffic(Site::Api, 10);
    signal("-CONT");
    wait_shipped(&cloud, &access);
    // Lines in the new format only.
    rig.traffic(Site::Api, 10);
    wait_shipped(&cloud, &access);
    signal("-TERM");
    let out = follower.finish();
    assert!(
        out.status.success(),
        "the follower: {}",
        String::from_utf8_lossy(&rig.nginx.read("follower.log"))
    );
    let truth = rig.truth();
    let (mut shipped, _) = cloud.requests_since(from);
    if let Some(lists) = shipped.get_mut("ListObjectsV2") {
        *lists -= cloud.own_lists.get();
    }
    shipped.retain(|_, n| *n > 0);
    let objects = cloud.objects();
    let (_, from) = cloud.requests_since(0);
    let format_objects = objects
        .iter()
        .filter(|(k, _)| k.contains("/formats/"))
        .count();
    let segments: Vec<_> = objects
        .iter()
        .filter(|(k, _)| !k.contains("/formats/"))
        .collect();
    let mixed = segments
        .iter()
        .filter(|(_, m)| {
            m.get("ncf-log-formats")
                .is_some_and(|v| v.split(' ').count() == 2)
        })
        .count();

    let summary = cloud.forward();
    let (forwarded, _) = cloud.requests_since(from);
    let events = cloud.events("nginx-access");
    let (by_rid, bad) = events_by_rid(&events);
    // Which format wrote each line: the new one has ` rl=`.
    let data = rig.nginx.read(Site::Api.access());
    let new_format: BTreeSet<usize> = lines_of(&data)
        .into_iter()
        .filter(|l| l.windows(4).any(|w| w == b" rl="))
        .filter_map(rid_of)
        .collect();
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for (rid, event) in &by_rid {
        let (name, format) = if new_format.contains(rid) {
            ("timing+request_length", TIMING_V2)
        } else {
            ("timing", TIMING)
        };
        compare(
            name,
            format,
            event,
            &truth[rid],
            tallies.entry(name).or_default(),
        );
    }
    eprintln!(
        "nginx formats, reload: {} requests ({} in the new format), {} events; per format {:?}; \
         {} segments ({mixed} naming two formats), {format_objects} format objects; \
         follower S3 requests {shipped:?}; forwarder S3 requests {forwarded:?}; PutLogEvents {}; \
         lines read with an older candidate {}; {:?}",
        rig.sent.len(),
        new_format.len(),
        events.len(),
        tallies
            .iter()
            .map(|(n, t)| format!(
                "{n}: {} lines, {} fields, {} mismatches",
                t.lines, t.fields, t.mismatch_count
            ))
            .collect::<Vec<_>>(),
        segments.len(),
        summary["batches"],
        summary["format_fallbacks"],
        started.elapsed()
    );
    assert!(bad.is_empty(), "{bad:#?}");
    let sent: BTreeSet<usize> = rig.sent.keys().copied().collect();
    let got: BTreeSet<usize> = by_rid.keys().copied().collect();
    assert_eq!(got, sent, "requests missing or unknown in CloudWatch");
    assert!(
        new_format.len() >= 20,
        "{} lines in the new format",
        new_format.len()
    );
    for (name, t) in &tallies {
        assert!(
            t.mismatch_count == 0,
            "{name}: {} mismatches, first ones:\n{}",
            t.mismatch_count,
            t.mismatches.join("\n")
        );
    }
    assert_eq!(summary["parse_errors"], 0, "{summary:#}");
    assert_eq!(summary["objects_failed"], 0, "{summary:#}");
    // No line matches both formats to its end (the new one has a field more); a line that
    // falls back to an older candidate is one in the old format.
    assert_eq!(
        summary["format_ambiguous"].as_u64().unwrap_or_default(),
        0,
        "{summary:#}"
    );
    let fallbacks = summary["format_fallbacks"].as_u64().unwrap_or_default();
    assert!(
        fallbacks <= (by_rid.len() - new_format.len()) as u64,
        "{fallbacks} fallbacks: {summary:#}"
    );
    // The segment shipped after the pause holds both formats and names both.
    assert!(mixed >= 1, "no segment names two formats: {objects:#?}");
    assert_eq!(format_objects, 2, "{objects:#?}");
    // Three waits for the follower, one object each (and no more than one per interval).
    assert!(
        (3..=6).contains(&segments.len()),
        "{} segments: {objects:#?}",
        segments.len()
    );
    assert_eq!(
        shipped,
        BTreeMap::from([("PutObject", (segments.len() + format_objects) as u64)]),
        "the follower's requests: a put per segment and per format, nothing else"
    );
}

/// Waits until the follower's segments of `access` reach its end (the byte ranges in their keys,
/// `…-<start>-<end>.gz`).
fn wait_shipped(cloud: &Cloud, access: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let len = std::fs::metadata(access)
        .map(|m| m.len())
        .unwrap_or_default();
    loop {
        cloud.own_lists.set(cloud.own_lists.get() + 1);
        let end = block_on(
            cloud
                .s3
                .list_objects_v2()
                .bucket(&cloud.bucket.bucket)
                .prefix("nginx/")
                .send(),
        )
        .expect("list the bucket")
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| k.contains("/access/"))
        .filter_map(|k| {
            k.strip_suffix(".gz")?
                .rsplit('-')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .max()
        .unwrap_or_default();
        if end == len {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the follower shipped {end} of {len} bytes of {}",
            access.display()
        );
        std::thread::sleep(Duration::from_millis(100)); // poll interval
    }
}

/// A follower process, killed and reaped if the test ends before [`Running::finish`].
struct Running(Option<std::process::Child>);

impl Running {
    fn finish(mut self) -> std::process::Output {
        self.0
            .take()
            .expect("not finished yet")
            .wait_with_output()
            .expect("wait for the follower")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
