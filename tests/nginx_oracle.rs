//! nginx is the oracle (issue 13): a real nginx serves varied, hostile traffic and writes the same
//! requests in several access-log formats plus an `escape=json` log of every variable, which is
//! the ground truth. The forwarder's `parse` command (the real CLI) reads each log, and every
//! field it emits is compared with nginx's own value of that variable for the same request; the
//! error log's context fields are checked against the requests of their connection. Then the same
//! logs go through moto (S3 → SQS notifications moto writes itself) and `replay`, and CloudWatch
//! must hold exactly what `parse` printed.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::nginx::{Nginx, free_port, ipv6_loopback};
use common::truth::{
    format_vars, is_plain_number, lines_of, msec_to_ms, nginx_default_escape, parse_truth_line,
    strict_parse,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder");

/// nginx's built-in `combined`, as a format string (for the list of its variables).
const COMBINED_FORMAT: &str = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'"#;
const MAIN_FORMAT: &str = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for"'"#;
const TIMING_FORMAT: &str = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time uct="$upstream_connect_time" uht="$upstream_header_time" urt="$upstream_response_time" ua="$upstream_addr" us="$upstream_status" $request_uri $msec'"#;

/// Every variable of the other formats, the request's parts, and what the error-log checks need.
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
    "http_x_forwarded_for",
    "request_time",
    "upstream_connect_time",
    "upstream_header_time",
    "upstream_response_time",
    "upstream_addr",
    "upstream_status",
    "connection",
    "connection_requests",
    "server_name",
    "http_host",
];

/// Variables the forwarder writes as JSON numbers when nginx's value is a single number.
const NUMERIC: &[&str] = &[
    "status",
    "body_bytes_sent",
    "request_time",
    "msec",
    "upstream_connect_time",
    "upstream_header_time",
    "upstream_response_time",
    "upstream_status",
    "connection",
    "connection_requests",
];

/// The class of a derived field left out of a line nginx answered 400: without the version of
/// the nginx that wrote it, such a line may have been rejected by a newer nginx's parser (and
/// have no parts) or parsed by an older one (and have them); the forwarder leaves them out.
const MISSING_ON_400: &str = "derived field missing, answered 400";

/// The fields the forwarder adds from `$request` when the format lacks them.
const DERIVED: &[&str] = &["request_method", "request_uri", "server_protocol"];

fn truth_format() -> String {
    common::truth::truth_format(TRUTH_VARS)
}

// ---------------------------------------------------------------------------------------------
// A FastCGI responder that answers every request with stderr output, then a small page.

struct FastCgi {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const FCGI_END_REQUEST: u8 = 3;
const FCGI_PARAMS: u8 = 4;
const FCGI_STDIN: u8 = 5;
const FCGI_STDOUT: u8 = 6;
const FCGI_STDERR: u8 = 7;

fn fcgi_record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let mut r = vec![1, kind];
    r.extend_from_slice(&id.to_be_bytes());
    r.extend_from_slice(
        &u16::try_from(content.len())
            .expect("short record")
            .to_be_bytes(),
    );
    r.extend_from_slice(&[0, 0]);
    r.extend_from_slice(content);
    r
}

/// The value of `name` among FastCGI name-value pairs (lengths of 1 or 4 bytes).
fn fcgi_param(params: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let mut i = 0;
    let len = |i: &mut usize| -> Option<usize> {
        let b = *params.get(*i)?;
        if b < 0x80 {
            *i += 1;
            Some(b as usize)
        } else {
            let s = params.get(*i..*i + 4)?;
            *i += 4;
            Some(u32::from_be_bytes([s[0] & 0x7f, s[1], s[2], s[3]]) as usize)
        }
    };
    while i < params.len() {
        let n = len(&mut i)?;
        let v = len(&mut i)?;
        let k = params.get(i..i + n)?;
        let val = params.get(i + n..i + n + v)?;
        i += n + v;
        if k == name {
            return Some(val.to_vec());
        }
    }
    None
}

/// What the responder writes to stderr for a script: chosen by the script name.
fn fcgi_stderr(script: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(script);
    if s.contains("quote") {
        b"PHP message: a \"quoted\" \\ backslash and caf\xc3\xa9".to_vec()
    } else if s.contains("long") {
        let mut v = b"PHP message: long ".to_vec();
        v.extend(std::iter::repeat_n(b'x', 3000));
        v
    } else {
        b"PHP message: something failed\nsecond line".to_vec()
    }
}

fn serve_fcgi(mut s: TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut params = Vec::new();
    let mut id;
    loop {
        let mut h = [0u8; 8];
        s.read_exact(&mut h)?;
        id = u16::from_be_bytes([h[2], h[3]]);
        let len = u16::from_be_bytes([h[4], h[5]]) as usize;
        let mut body = vec![0; len + h[6] as usize];
        s.read_exact(&mut body)?;
        body.truncate(len);
        match h[1] {
            FCGI_PARAMS => params.extend_from_slice(&body),
            FCGI_STDIN if len == 0 => break,
            _ => {}
        }
    }
    let script = fcgi_param(&params, b"SCRIPT_NAME").unwrap_or_default();
    let mut out = fcgi_record(FCGI_STDERR, id, &fcgi_stderr(&script));
    out.extend(fcgi_record(
        FCGI_STDOUT,
        id,
        b"Status: 200\r\nContent-Type: text/plain\r\n\r\nok",
    ));
    out.extend(fcgi_record(FCGI_STDOUT, id, b""));
    out.extend(fcgi_record(FCGI_END_REQUEST, id, &[0, 0, 0, 0, 0, 0, 0, 0]));
    s.write_all(&out)?;
    s.shutdown(Shutdown::Write)
}

impl FastCgi {
    fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind FastCGI");
        let addr = listener.local_addr().expect("FastCGI address");
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (stop2, served2) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(s) = conn
                    && serve_fcgi(s).is_ok()
                {
                    served2.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        FastCgi {
            addr,
            stop,
            served,
            thread: Some(thread),
        }
    }
}

impl Drop for FastCgi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic.

struct Conn {
    addr: SocketAddr,
    bytes: Vec<u8>,
    /// Close our sending side after the bytes: for input after which nginx would wait for more
    /// (a cut request, blank lines, nothing). Otherwise nginx closes after its answer; closing
    /// early would make proxied requests 499 (client gone) and cut pipelines short.
    half_close: bool,
}

fn request(method: &str, target: &[u8], version: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(method.as_bytes());
    r.push(b' ');
    r.extend_from_slice(target);
    if !version.is_empty() {
        r.push(b' ');
        r.extend_from_slice(version.as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    common::nginx::end_headers(&mut r, headers);
    r
}

/// A simple HTTP/1.1 request that closes the connection after it.
fn get_close(target: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut h: Vec<(&str, &[u8])> = vec![("Host", b"front.test"), ("Connection", b"close")];
    h.extend_from_slice(extra);
    request("GET", target, "HTTP/1.1", &h)
}

const USER_AGENTS: &[&[u8]] = &[
    b"curl/8.5.0",
    b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    b"-",
    b"",
    b"agent with \"quotes\" and \\backslash\\",
    b"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80",
    b"bytes \xff\xfe\x80 end",
    b"ctl \x01\x02\x1b[31m del\x7f",
    b"tab\there",
];
const REFERERS: &[&[u8]] = &[
    b"https://example.com/page?a=1&b=2",
    b"-",
    b"",
    b"http://x.test/\"q\"",
    b"http://\xc3\xa9.test/",
];
const FORWARDED: &[&[u8]] = &[
    b"203.0.113.7",
    b"203.0.113.7, 198.51.100.2",
    b"-",
    b"",
    b"2001:db8::1, 203.0.113.9, unknown",
];
const PATHS: &[&str] = &[
    "/",
    "/ok",
    "/static/hello.txt",
    "/static/missing.txt",
    "/notfound",
    "/moved",
    "/live/a",
    "/dead/b",
    "/pair/c",
    "/bothdead/d",
    "/chain/e",
    "/limited",
    "/fcgi/plain.php",
    "/fcgi/quote.php",
    "/fcgi/long.php",
];

/// Varied ordinary requests: method, path, query, headers chosen from the lists by `i`.
fn ordinary(i: usize, close: bool) -> Vec<u8> {
    let methods = [
        "GET", "GET", "POST", "HEAD", "GET", "PUT", "DELETE", "OPTIONS",
    ];
    let method = methods[i % methods.len()];
    let path = PATHS[(i / 3) % PATHS.len()];
    let query = match i % 5 {
        0 => String::new(),
        1 => format!("?i={i}"),
        2 => format!("?i={i}&q=a%20b&x=%22y%22"),
        3 => format!("?i={i}&empty=&utf=%C3%A9"),
        _ => format!("?i={i}&list=1,2,3&sp=+"),
    };
    let target = format!("{path}{query}");
    let mut h: Vec<(&str, &[u8])> = vec![("Host", b"front.test")];
    if i % 4 != 3 {
        h.push(("User-Agent", USER_AGENTS[i % USER_AGENTS.len()]));
    }
    if !i.is_multiple_of(3) {
        h.push(("Referer", REFERERS[i % REFERERS.len()]));
    }
    if i.is_multiple_of(2) {
        h.push(("X-Forwarded-For", FORWARDED[i % FORWARDED.len()]));
    }
    if i.is_multiple_of(11) {
        h.push(("Authorization", b"Basic dXNlcjpwYXNz")); // user:pass
    }
    if i.is_multiple_of(13) {
        h.push(("Authorization", b"Basic YSJiXGM6cHc=")); // a"b\c:pw
    }
    if close {
        h.push(("Connection", b"close"));
    }
    let body: &[u8] = if method == "POST" || method == "PUT" {
        b"hello=world&x=1"
    } else {
        b""
    };
    let len = body.len().to_string();
    if !body.is_empty() {
        h.push(("Content-Length", len.as_bytes()));
        h.push(("Content-Type", b"application/x-www-form-urlencoded"));
    }
    let mut r = request(method, target.as_bytes(), "HTTP/1.1", &h);
    r.extend_from_slice(body);
    r
}

/// Request lines with odd bytes, odd spacing, odd forms: sent as they are.
fn odd_request_lines() -> Vec<Vec<u8>> {
    let lines: &[&[u8]] = &[
        b"GET /q?a=\"quoted\"&b=\\back HTTP/1.1",
        b"GET /caf\xc3\xa9/\xe2\x9c\x93?x=\xf0\x9f\x98\x80 HTTP/1.1",
        b"GET /bin\xff\xfe\x80?\xff HTTP/1.1",
        b"GET /ctl\x01x HTTP/1.1",
        b"GET /esc\x1b[0m HTTP/1.1",
        b"GET /del\x7fx HTTP/1.1",
        b"GET /tab\tx HTTP/1.1",
        b"GET /pct%22%5c%00?x=%ff HTTP/1.1",
        b"GET /pct%41%2F%2e%2e/x HTTP/1.1",
        b"GET /a b HTTP/1.1",
        b"GET /a  b HTTP/1.1",
        b"GET  /two-spaces HTTP/1.1",
        b"GET /two-spaces-after  HTTP/1.1",
        b"GET   /many   HTTP/1.1",
        b"GET /trailing HTTP/1.1 ",
        b"GET /x?a=b#frag HTTP/1.1",
        b"GET //double//slash HTTP/1.1",
        b"GET /../etc/passwd HTTP/1.1",
        b"GET /./a/../b HTTP/1.1",
        b"GET * HTTP/1.1",
        b"OPTIONS * HTTP/1.1",
        b"CONNECT front.test:443 HTTP/1.1",
        b"CONNECT front.test: HTTP/1.1",
        b"CONNECT [::1]:443 HTTP/1.1",
        b"CONNECT /connect-origin HTTP/1.1",
        b"CONNECT http://front.test/connect-abs HTTP/1.1",
        b"CONNECT front.test:443",
        b"GET http://front.test/abs?x=1 HTTP/1.1",
        b"GET http://front.test:8080/abs/port HTTP/1.1",
        b"GET https://front.test/secure HTTP/1.1",
        b"GET HTTP://FRONT.TEST/UPPER HTTP/1.1",
        b"GET http://front.test HTTP/1.1",
        b"GET http://user@front.test/userinfo HTTP/1.1",
        b"GET http://[::1]:8080/v6lit HTTP/1.1",
        b"GET ftp://front.test/ftp HTTP/1.1",
        b"GET http://front.test?x=1 HTTP/1.1",
        b"GET http://front.test:8080 HTTP/1.1",
        b"GET http://front.test:8080?y=2 HTTP/1.1",
        b"GET http://front.test/%20 HTTP/1.1",
        b"GET http://front.test/09abs",
        b"GET /09spaces  ",
        b"GET /%2e%2e/%2e%2e/x HTTP/1.1",
        b"GET /x?y HTTP/1.1  ",
        b"GET /x HTTP/1.01",
        b"GET /x HTTP/1.1\t",
        b"G /one-letter HTTP/1.1",
        b"GET2 /digit HTTP/1.1",
        b"GET front.test/noslash HTTP/1.1",
        b"get /lower HTTP/1.1",
        b"Get /mixed HTTP/1.1",
        b"G@T /at HTTP/1.1",
        b"FOO /foo HTTP/1.1",
        b"M-SEARCH * HTTP/1.1",
        b"PROP_FIND /underscore HTTP/1.1",
        b"VERYLONGMETHODNAMEVERYLONGMETHODNAMEVERYLONG /m HTTP/1.1",
        b"PATCH /patch HTTP/1.1",
        b"TRACE /trace HTTP/1.1",
        b"PRI * HTTP/2.0",
        b"GET /v HTTP/2.0",
        b"GET /v HTTP/3",
        b"GET /v HTTP/1.2",
        b"GET /v HTTP/1.10",
        b"GET /v HTTP/01.1",
        b"GET /v HTTP/1.1x",
        b"GET /v http/1.1",
        b"GET /v HTTP/",
        b"GET /v HTTP/1000.0",
        b"GET /v FOO/1.1",
        b"GET /v HTTP/1.1 extra",
        b"GET",
        b"GET ",
        b" GET /leading-space HTTP/1.1",
        b"/no-method HTTP/1.1",
        b"-",
        b"- - -",
        b"\"quoted\" line",
    ];
    lines
        .iter()
        .map(|l| {
            let mut r = l.to_vec();
            r.extend_from_slice(b"\r\nHost: front.test\r\nConnection: close\r\n\r\n");
            r
        })
        .collect()
}

/// Targets with spaces as clients send them, unencoded: nginx up to 1.21.0 serves them
/// (`$request_uri` keeps the spaces), 1.21.1 and later answer 400. With bad escapes, `..` above
/// the root, control bytes, UTF-8, absolute form, and an `H` after a space (always a 400).
const SPACED: &[&[u8]] = &[
    b"/files/annual report 2026.pdf",
    b"/static/hello.txt x",
    b"/static/my file.txt",
    b"/ok?q=a b&c=d e",
    b"/live/a b",
    b"/dead/a b",
    b"/fcgi/my script.php",
    b"/notfound/x y",
    b"/moved x",
    b"/a  two  spaces",
    b"/spaced Hello",
    b"/sp%41ce d",
    b"/bad%zz escape",
    b"/../above root",
    b"/./a/../b c",
    b"http://front.test/abs path",
    b"HTTP://FRONT.TEST/Upper Case",
    b"/ctl\x01 and space",
    b"/caf\xc3\xa9 cr\xc3\xa8me",
];

/// [`SPACED`] as HTTP/1.1, HTTP/1.0 and HTTP/0.9 requests, and on keep-alive connections
/// followed by a plain request (which nginx 1.18 serves on the same connection).
fn spaced_requests() -> Vec<Vec<u8>> {
    let host: (&str, &[u8]) = ("Host", b"front.test");
    let mut v = Vec::new();
    for (i, target) in SPACED.iter().enumerate() {
        v.push(get_close(target, &[]));
        v.push(request(
            ["HEAD", "POST", "DELETE"][i % 3],
            target,
            "HTTP/1.0",
            &[host, ("Content-Length", b"0")],
        ));
        if i % 4 == 0 {
            let mut r = b"GET ".to_vec();
            r.extend_from_slice(target);
            r.extend_from_slice(b"\r\n");
            v.push(r);
        }
        if i % 3 == 0 {
            let mut r = request("GET", target, "HTTP/1.1", &[host]);
            r.extend_from_slice(&get_close(format!("/ok?after-space={i}").as_bytes(), &[]));
            v.push(r);
        }
    }
    v
}

/// Input after which nginx waits for more.
const WAITING: &[&[u8]] = &[
    b"",
    b"\r\n",
    b"\r\n\r\n\r\n",
    b"GET /cut",
    b"GET /cut HTTP/1.1\r\nHost: fro",
];

/// Bytes that are not HTTP at all, or not quite.
fn junk() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        // TLS ClientHello starts.
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x5e\x8b\x00\x01\x02\x03".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
        b"\x16\x03\x03\x00\x2a\x01\x00\x00\x26\x03\x03 \" \\ \r\n".to_vec(),
        // SSH banner, HTTP/2 preface, random text.
        b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"hello\r\n\r\n".to_vec(),
        b"\x00\x01\x02\x03\r\n\r\n".to_vec(),
        // Empty request lines: blank lines before a request are skipped, alone they are nothing.
        b"\r\n".to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
        b"\r\n\r\nGET /after-blank-lines HTTP/1.1\r\nHost: front.test\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b" \r\n\r\n".to_vec(),
        b"\t\r\n\r\n".to_vec(),
        // Connected, sent nothing.
        Vec::new(),
        // A request line cut short.
        b"GET /cut".to_vec(),
        b"GET /cut HTTP/1.1\r\nHost: fro".to_vec(),
        // Bare LF line ends.
        b"GET /bare-lf HTTP/1.1\nHost: front.test\nConnection: close\n\n".to_vec(),
        // Bad headers.
        b"GET /bad-header HTTP/1.1\r\nHost: front.test\r\nX-Nul: a\x00b\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"GET /bad-host HTTP/1.1\r\nHost: front..test/\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /no-host HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /two-hosts HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"GET /host-case HTTP/1.1\r\nHost: FRONT.Test:80\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /host-utf8 HTTP/1.1\r\nHost: caf\xc3\xa9.test\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /hdr-space HTTP/1.1\r\nHost: front.test\r\nX Bad: 1\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"GET /folded HTTP/1.1\r\nHost: front.test\r\nUser-Agent: a\r\n b\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"GET /xff-twice HTTP/1.1\r\nHost: front.test\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"GET /ua-twice HTTP/1.1\r\nHost: front.test\r\nUser-Agent: one\r\nUser-Agent: two\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"GET /empty-values HTTP/1.1\r\nHost: front.test\r\nUser-Agent:\r\nReferer:\r\nX-Forwarded-For:\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"GET /dash-values HTTP/1.1\r\nHost: front.test\r\nUser-Agent: -\r\nReferer: -\r\nX-Forwarded-For: -\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"GET /bad-auth HTTP/1.1\r\nHost: front.test\r\nAuthorization: Basic !!!\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"GET /auth-utf8 HTTP/1.1\r\nHost: front.test\r\nAuthorization: Basic w6l0w6k6cHc=\r\nConnection: close\r\n\r\n"
            .to_vec(),
        b"POST /chunked HTTP/1.1\r\nHost: front.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_vec(),
        b"POST /bad-chunked HTTP/1.1\r\nHost: front.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n"
            .to_vec(),
        b"GET /both-lengths HTTP/1.1\r\nHost: front.test\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
            .to_vec(),
    ];
    // HTTP/0.9: no version, no headers; nginx answers with the body only.
    for target in [
        "/",
        "/ok?x=1",
        "/static/hello.txt",
        "/missing09",
        "/live/09",
        "/a\"b",
    ] {
        v.push(format!("GET {target}\r\n").into_bytes());
    }
    v.push(b"HEAD /\r\n".to_vec());
    v.push(b"POST /\r\n".to_vec());
    v.push(b"GET /x y\r\n".to_vec());
    // HTTP/1.0, with and without Host and keep-alive.
    v.push(b"GET /ten HTTP/1.0\r\n\r\n".to_vec());
    v.push(b"GET /ten-host HTTP/1.0\r\nHost: front.test\r\nUser-Agent: old/1.0\r\n\r\n".to_vec());
    v.push(
        b"GET /ten-ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /ten-ka-2 HTTP/1.0\r\n\r\n"
            .to_vec(),
    );
    v.push(b"HEAD /static/hello.txt HTTP/1.0\r\n\r\n".to_vec());
    v
}

/// Long request lines and headers: over 8 KB is too long for nginx's buffers (414 / 400), and
/// any request over ~2 KB makes error-log lines that nginx cuts at 2048 bytes.
fn long_requests() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for n in [2100usize, 3000, 5000, 7000, 9000, 12000, 20000] {
        let pad = "a".repeat(n);
        v.push(get_close(format!("/static/long-{pad}").as_bytes(), &[]));
        v.push(get_close(format!("/dead/long?{pad}").as_bytes(), &[]));
        v.push(get_close(format!("/limited/{pad}").as_bytes(), &[]));
    }
    let ua = "u".repeat(9000);
    v.push(get_close(b"/long-ua", &[("User-Agent", ua.as_bytes())]));
    let ua = "v".repeat(3000);
    v.push(get_close(
        b"/static/missing-long-ua",
        &[("User-Agent", ua.as_bytes())],
    ));
    let host = format!("{}.test", "h".repeat(2500));
    v.push(request(
        "GET",
        b"/static/missing-long-host",
        "HTTP/1.1",
        &[("Host", host.as_bytes()), ("Connection", b"close")],
    ));
    let referer = format!("http://r.test/{}", "r".repeat(2500));
    v.push(get_close(
        b"/dead/long-referer",
        &[("Referer", referer.as_bytes())],
    ));
    v
}

/// Sends each connection's bytes and reads until nginx closes, so every request of it has been
/// logged (nginx writes the access log before it closes the connection). Returns how many
/// connections nginx left open until the read timeout (then we close our side and go on).
fn drive(conns: &[Conn]) -> usize {
    let mut slow = 0;
    for c in conns {
        let mut s = TcpStream::connect_timeout(&c.addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {}: {e}", c.addr));
        s.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("write timeout");
        // nginx may answer (and close) before reading everything: a failed write is fine.
        let _ = s.write_all(&c.bytes);
        if c.half_close {
            let _ = s.shutdown(Shutdown::Write);
        }
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("read timeout");
        let mut buf = [0u8; 16384];
        let mut closed_ours = c.half_close;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    if closed_ours {
                        break;
                    }
                    slow += 1;
                    closed_ours = true;
                    let _ = s.shutdown(Shutdown::Write);
                }
                Err(_) => break, // reset after a rejected request
            }
        }
    }
    slow
}

/// Keep-alive the way browsers do it: each request waits for the answer to the one before.
/// Returns the number of connections.
fn drive_sequential(front: &[SocketAddr]) -> usize {
    let targets = [
        "/ok",
        "/static/hello.txt",
        "/notfound",
        "/moved",
        "/live/seq",
        "/dead/seq",
        "/pair/seq",
        "/bothdead/seq",
        "/chain/seq",
        "/static/missing-seq",
    ];
    let conns = 40;
    for c in 0..conns {
        let addr = front[c % front.len()];
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let k = 2 + c % 6;
        for j in 0..k {
            let last = j + 1 == k;
            let target = format!("{}?seq={c}.{j}", targets[(c + j) % targets.len()]);
            let ua = USER_AGENTS[(c + j) % USER_AGENTS.len()];
            let mut h: Vec<(&str, &[u8])> = vec![("Host", b"front.test"), ("User-Agent", ua)];
            if last {
                h.push(("Connection", b"close"));
            }
            s.write_all(&request("GET", target.as_bytes(), "HTTP/1.1", &h))
                .expect("send a keep-alive request");
            read_response(&mut s).unwrap_or_else(|e| panic!("answer to {target}: {e}"));
        }
        // nginx closes after the `Connection: close` answer.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    conns
}

/// Reads one HTTP/1.1 response with a Content-Length body.
fn read_response(s: &mut TcpStream) -> Result<(), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&buf)));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .ok_or_else(|| format!("no Content-Length in {head:?}"))?
        .trim()
        .parse()
        .map_err(|e| format!("Content-Length: {e}"))?;
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed in the body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if buf.len() != head_end + len {
        return Err("more bytes than one response".into());
    }
    Ok(())
}

fn build_traffic(front: &[SocketAddr]) -> Vec<Conn> {
    let mut conns = Vec::new();
    let mut add = |i: usize, bytes: Vec<u8>| {
        let half_close = WAITING.contains(&bytes.as_slice());
        conns.push(Conn {
            addr: front[i % front.len()],
            bytes,
            half_close,
        })
    };
    let mut n = 0;
    // One request per connection.
    for i in 0..700 {
        add(n, ordinary(i, true));
        n += 1;
    }
    // Keep-alive: several requests per connection (pipelined), the last one closes.
    for c in 0..180 {
        let mut bytes = Vec::new();
        let k = 3 + c % 5;
        for j in 0..k {
            bytes.extend_from_slice(&ordinary(1000 + c * 7 + j, false));
        }
        bytes.extend_from_slice(&get_close(format!("/ok?last={c}").as_bytes(), &[]));
        add(n, bytes);
        n += 1;
    }
    for (i, r) in odd_request_lines().into_iter().enumerate() {
        for rep in 0..3 {
            add(n + rep, r.clone());
        }
        n += 3 + i % 2;
    }
    for r in junk() {
        for rep in 0..2 {
            add(n + rep, r.clone());
        }
        n += 2;
    }
    for r in long_requests() {
        add(n, r);
        n += 1;
    }
    for r in spaced_requests() {
        for rep in 0..2 {
            add(n + rep, r.clone());
        }
        n += 2;
    }
    conns
}

// ---------------------------------------------------------------------------------------------
// The forwarder's CLI.

struct ParsedEvent {
    timestamp: i64,
    /// The message text as printed.
    message: String,
    /// The message parsed (keys unique), or why it could not be.
    fields: Result<serde_json::Map<String, Value>, String>,
}

/// `parse --kind KIND [--log-format FMT] [--nginx-version VERSION] FILE`.
fn run_parse(
    kind: &str,
    log_format: Option<&str>,
    file: &Path,
    version: Option<&str>,
) -> Vec<ParsedEvent> {
    run_parse_with(kind, log_format, file, version, &[])
}

/// [`run_parse`] with settings (`OUTPUT_FORMAT` …).
fn run_parse_with(
    kind: &str,
    log_format: Option<&str>,
    file: &Path,
    version: Option<&str>,
    env: &[(&str, &str)],
) -> Vec<ParsedEvent> {
    let mut cmd = Command::new(BIN);
    cmd.args(["parse", "--kind", kind]);
    if let Some(f) = log_format {
        cmd.args(["--log-format", f]);
    }
    if let Some(v) = version {
        cmd.args(["--nginx-version", v]);
    }
    let out = cmd
        .arg(file)
        .env_remove("ACCESS_LOG_FORMAT")
        .env_remove("OUTPUT_FORMAT")
        .env_remove("ERROR_LOG_TIMEZONE")
        .envs(env.iter().copied())
        .output()
        .expect("run the forwarder's parse command");
    assert!(
        out.status.success(),
        "parse --kind {kind} {}: {}\n{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("parse prints UTF-8");
    stdout
        .lines()
        .map(|l| {
            let outer = strict_parse(l).unwrap_or_else(|e| panic!("parse output line {l:?}: {e}"));
            let timestamp = outer["timestamp"]
                .as_i64()
                .unwrap_or_else(|| panic!("no timestamp in {l}"));
            let message = outer["message"]
                .as_str()
                .unwrap_or_else(|| panic!("no message in {l}"))
                .to_string();
            let fields = strict_parse(&message).and_then(|v| match v {
                Value::Object(m) => Ok(m),
                other => Err(format!("message is not an object: {other}")),
            });
            ParsedEvent {
                timestamp,
                message,
                fields,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Comparison.

#[derive(Default)]
struct Tally {
    lines: BTreeMap<String, usize>,
    fields: usize,
    dash_omitted: usize,
    empty_omitted: usize,
    mismatches: Vec<String>,
    mismatch_count: usize,
    parse_errors: usize,
    duplicate_keys: usize,
    classes: BTreeMap<String, usize>,
    /// The first three examples of each class.
    examples: BTreeMap<String, Vec<String>>,
}

impl Tally {
    fn mismatch(&mut self, class: &str, detail: String) {
        self.mismatch_count += 1;
        *self.classes.entry(class.to_string()).or_default() += 1;
        let detail = short(&detail);
        let ex = self.examples.entry(class.to_string()).or_default();
        if ex.len() < 3 {
            ex.push(detail.clone());
        }
        if self.mismatches.len() < 20 {
            self.mismatches.push(format!("[{class}] {detail}"));
        }
    }
}

/// The line nginx wrote for `format` (nginx syntax, quoted), rebuilt from a json-compact event:
/// each variable's field, else `$time_local` from the timestamp (and `time_offset`), `$request`
/// from its parts, or `-`.
fn rebuild_line(format: &str, timestamp: i64, fields: &serde_json::Map<String, Value>) -> String {
    let format = format.trim_matches('\'');
    let mut out = String::new();
    let mut rest = format;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let name_len = rest[at + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len() - at - 1);
        let name = &rest[at + 1..at + 1 + name_len];
        let text = |k: &str| {
            fields
                .get(k)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        };
        let value = match (text(name), name) {
            (Some(v), _) => v,
            (None, "time_local") => {
                let off = text("time_offset").unwrap_or_else(|| "+0000".into());
                let sign = if off.starts_with('-') { -1 } else { 1 };
                let secs = off[1..3].parse::<i32>().expect("hours") * 3600
                    + off[3..5].parse::<i32>().expect("minutes") * 60;
                let t = jiff::tz::Offset::from_seconds(sign * secs)
                    .expect("an offset")
                    .to_datetime(jiff::Timestamp::from_millisecond(timestamp).expect("a time"));
                format!("{} {off}", t.strftime("%d/%b/%Y:%H:%M:%S"))
            }
            (None, "request") => match (
                text("request_method"),
                text("request_uri"),
                text("server_protocol"),
            ) {
                (Some(m), Some(u), Some(p)) => format!("{m} {u} {p}"),
                _ => "-".into(),
            },
            (None, _) => "-".into(),
        };
        out.push_str(&value);
        rest = &rest[at + 1 + name_len..];
    }
    out.push_str(rest);
    out
}

/// At most 400 characters of a mismatch's detail.
fn short(s: &str) -> String {
    if s.chars().count() <= 400 {
        return s.to_string();
    }
    let head: String = s.chars().take(400).collect();
    format!("{head}…({} bytes)", s.len())
}

/// Compares the forwarder's events for one access log with nginx's values.
fn compare_access(
    name: &str,
    nginx_fmt: &str,
    json: bool,
    events: &[ParsedEvent],
    truth: &[HashMap<String, Vec<u8>>],
    t: &mut Tally,
) {
    t.lines.insert(name.to_string(), events.len());
    if events.len() != truth.len() {
        t.mismatch(
            "event count",
            format!(
                "{name}: {} events for {} requests",
                events.len(),
                truth.len()
            ),
        );
        return;
    }
    let vars = format_vars(nginx_fmt);
    let has_msec = vars.iter().any(|v| v == "msec");
    // What nginx's value looks like in this log, as the forwarder should give it back.
    let expected = |raw: &[u8]| -> String {
        if json {
            String::from_utf8_lossy(raw).into_owned()
        } else {
            nginx_default_escape(raw)
        }
    };
    for (i, (ev, tr)) in events.iter().zip(truth).enumerate() {
        let req = i + 1;
        let fields = match &ev.fields {
            Ok(f) => f,
            Err(e) => {
                t.duplicate_keys += usize::from(e.contains("duplicate key"));
                t.mismatch(
                    "message not unique-key JSON",
                    format!("{name} #{req}: {e}: {}", ev.message),
                );
                continue;
            }
        };
        if fields.contains_key("parse_error") {
            t.parse_errors += 1;
            t.mismatch("parse_error", format!("{name} #{req}: {}", ev.message));
            continue;
        }
        let msec = String::from_utf8_lossy(&tr["msec"]).into_owned();
        let want_ts = if has_msec {
            msec_to_ms(&msec)
        } else {
            msec_to_ms(&msec) / 1000 * 1000
        };
        if ev.timestamp != want_ts {
            t.mismatch(
                "timestamp",
                format!("{name} #{req}: ours {} nginx $msec {msec}", ev.timestamp),
            );
        }
        for (key, ours) in fields {
            t.fields += 1;
            let Some(raw) = tr.get(key) else {
                t.mismatch(
                    "key nginx does not have",
                    format!("{name} #{req}: {key}={ours}"),
                );
                continue;
            };
            let nginx_text = String::from_utf8_lossy(raw).into_owned();
            let want = expected(raw);
            match ours {
                Value::Number(n) => {
                    let equal = is_plain_number(&nginx_text)
                        && nginx_text.parse::<f64>().ok() == n.as_f64();
                    if !equal {
                        t.mismatch(
                            "number",
                            format!("{name} #{req} {key}: ours {n} nginx {nginx_text:?}"),
                        );
                    }
                }
                Value::String(s) => {
                    if *s != want {
                        t.mismatch(
                            "string",
                            format!("{name} #{req} {key}: ours {s:?} nginx {want:?}"),
                        );
                    } else if NUMERIC.contains(&key.as_str()) && is_plain_number(&nginx_text) {
                        t.mismatch(
                            "number written as a string",
                            format!("{name} #{req} {key}: ours {s:?}"),
                        );
                    }
                }
                other => t.mismatch("value type", format!("{name} #{req} {key}: ours {other}")),
            }
        }
        // Everything nginx has a value for must be there.
        let derived: Vec<String> = if vars.iter().any(|v| v == "request") {
            DERIVED.iter().map(|s| s.to_string()).collect()
        } else {
            Vec::new()
        };
        for var in vars.iter().chain(&derived) {
            if fields.contains_key(var.as_str()) {
                continue;
            }
            match tr.get(var.as_str()).map(Vec::as_slice) {
                None => t.mismatch("unknown variable", format!("{name}: ${var}")),
                Some(b"") => t.empty_omitted += 1,
                Some(b"-") => t.dash_omitted += 1,
                Some(v) => t.mismatch(
                    if DERIVED.contains(&var.as_str()) && !vars.contains(var) {
                        if tr["status"] == b"400" {
                            MISSING_ON_400
                        } else {
                            "derived field missing"
                        }
                    } else {
                        "field missing"
                    },
                    format!(
                        "{name} #{req} {var}: absent, nginx {:?} (request {:?})",
                        expected(v),
                        expected(&tr["request"])
                    ),
                ),
            }
        }
    }
}

/// The raw error log: per event (a line with a timestamp, plus the lines that continue it),
/// its level, connection and byte length.
struct RawErrorEvent {
    level: String,
    connection: Option<u64>,
    time: String,
    len: usize,
    /// Whether nginx wrote the `, client: …` context, on the first line or a continuation
    /// (1.30 also logs connection events without it: `client 127.0.0.1 closed keepalive
    /// connection`).
    context: bool,
}

fn raw_error_events(data: &[u8]) -> Vec<RawErrorEvent> {
    let mut out: Vec<RawErrorEvent> = Vec::new();
    for line in lines_of(data) {
        let starts = line.len() >= 19
            && line[4] == b'/'
            && line[7] == b'/'
            && line[10] == b' '
            && line[13] == b':'
            && line[..4].iter().all(u8::is_ascii_digit);
        if !starts {
            if let Some(last) = out.last_mut() {
                last.len += 1 + line.len();
                last.context |= lossy_contains(line, ", client: ");
            }
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let level = text[21..].split(']').next().unwrap_or_default().to_string();
        let connection = text
            .split_once(": *")
            .and_then(|(_, r)| r.split(' ').next())
            .and_then(|n| n.parse().ok());
        out.push(RawErrorEvent {
            level,
            connection,
            time: text[..19].to_string(),
            len: line.len(),
            context: lossy_contains(line, ", client: "),
        });
    }
    out
}

#[derive(Default)]
struct ErrorTally {
    events: usize,
    levels: BTreeMap<String, usize>,
    truncated: usize,
    with_request: usize,
    fields_checked: usize,
}

fn error_time_ms(t: &str) -> i64 {
    let ts: jiff::Timestamp = format!("{}Z", t.replace('/', "-").replace(' ', "T"))
        .parse()
        .expect("error-log time");
    ts.as_millisecond()
}

fn compare_error(
    events: &[ParsedEvent],
    raw: &[RawErrorEvent],
    truth: &[HashMap<String, Vec<u8>>],
    listen: &HashSet<String>,
    t: &mut Tally,
    e: &mut ErrorTally,
) {
    let mut by_conn: HashMap<u64, Vec<&HashMap<String, Vec<u8>>>> = HashMap::new();
    let mut clients = HashSet::new();
    for tr in truth {
        let c: u64 = String::from_utf8_lossy(&tr["connection"])
            .parse()
            .expect("$connection");
        by_conn.entry(c).or_default().push(tr);
        clients.insert(String::from_utf8_lossy(&tr["remote_addr"]).into_owned());
    }
    e.events = events.len();
    if events.len() != raw.len() {
        t.mismatch(
            "error event count",
            format!(
                "{} events for {} timestamped lines",
                events.len(),
                raw.len()
            ),
        );
        return;
    }
    // The error log holds raw bytes: nginx's value as the forwarder gives it back is the lossy
    // UTF-8 decoding with NUL bytes stripped (docs/design.md, "Broken and hostile input").
    let lossy = |v: &[u8]| String::from_utf8_lossy(v).replace('\0', "");
    for (k, (ev, rw)) in events.iter().zip(raw).enumerate() {
        let n = k + 1;
        let f = match &ev.fields {
            Ok(f) => f,
            Err(err) => {
                t.duplicate_keys += usize::from(err.contains("duplicate key"));
                t.mismatch("error message not unique-key JSON", format!("#{n}: {err}"));
                continue;
            }
        };
        if f.contains_key("parse_error") {
            t.parse_errors += 1;
            t.mismatch("error parse_error", format!("#{n}: {}", ev.message));
            continue;
        }
        *e.levels.entry(rw.level.clone()).or_default() += 1;
        let s = |key: &str| f.get(key).and_then(Value::as_str);
        let truncated = f.get("truncated") == Some(&Value::Bool(true));
        e.truncated += usize::from(truncated);
        if truncated != (rw.len == 2047) {
            t.mismatch(
                "truncated flag",
                format!("#{n}: flagged {truncated}, raw event of {} bytes", rw.len),
            );
        }
        if s("level") != Some(rw.level.as_str()) {
            t.mismatch(
                "error level",
                format!("#{n}: ours {:?} nginx {:?}", f.get("level"), rw.level),
            );
        }
        if ev.timestamp != error_time_ms(&rw.time) {
            t.mismatch(
                "error timestamp",
                format!("#{n}: ours {} nginx {}", ev.timestamp, rw.time),
            );
        }
        let conn = f.get("connection").and_then(Value::as_u64);
        if conn != rw.connection {
            t.mismatch(
                "error connection",
                format!("#{n}: ours {conn:?} nginx {:?}", rw.connection),
            );
        }
        e.fields_checked += 3;
        let Some(c) = rw.connection else {
            for key in ["client", "server", "request", "upstream", "host"] {
                if f.contains_key(key) {
                    t.mismatch(
                        "context without a connection",
                        format!("#{n} {key}: {}", ev.message),
                    );
                }
            }
            continue;
        };
        let reqs = by_conn.get(&c).map(Vec::as_slice).unwrap_or_default();
        // Equal, or for a line nginx cut, a prefix.
        let agrees = |ours: &str, nginx: &str| {
            ours == nginx || (truncated && !ours.is_empty() && nginx.starts_with(ours))
        };
        match s("client") {
            Some(cl) if clients.contains(cl) && rw.context => {}
            None if truncated || !rw.context => {}
            other => t.mismatch(
                "error client",
                format!(
                    "#{n}: ours {other:?}, nginx clients {clients:?}: {}",
                    ev.message
                ),
            ),
        }
        e.fields_checked += 1;
        if let Some(sv) = s("server") {
            e.fields_checked += 1;
            let ok =
                listen.contains(sv) || reqs.iter().any(|r| agrees(sv, &lossy(&r["server_name"])));
            if !ok {
                t.mismatch("error server", format!("#{n}: ours {sv:?}: {}", ev.message));
            }
        } else if !truncated && rw.context {
            t.mismatch("error server missing", format!("#{n}: {}", ev.message));
        }
        if let Some(rq) = s("request") {
            e.with_request += 1;
            e.fields_checked += 1;
            if !reqs.iter().any(|r| agrees(rq, &lossy(&r["request"]))) {
                t.mismatch(
                    "error request",
                    format!(
                        "#{n} (connection {c}): ours {rq:?}, nginx {:?}",
                        reqs.iter()
                            .map(|r| lossy(&r["request"]))
                            .collect::<Vec<_>>()
                    ),
                );
            }
        }
        if let Some(h) = s("host") {
            e.fields_checked += 1;
            if !reqs.iter().any(|r| agrees(h, &lossy(&r["http_host"]))) {
                t.mismatch("error host", format!("#{n}: ours {h:?}"));
            }
        }
        if let Some(rf) = s("referrer") {
            e.fields_checked += 1;
            if !reqs.iter().any(|r| agrees(rf, &lossy(&r["http_referer"]))) {
                t.mismatch("error referrer", format!("#{n}: ours {rf:?}"));
            }
        }
        if let Some(up) = s("upstream") {
            e.fields_checked += 1;
            let ok = reqs.iter().any(|r| {
                let addrs = lossy(&r["upstream_addr"]);
                // `, ` separates servers tried, ` : ` the upstreams of internal redirects.
                addrs.split(", ").flat_map(|a| a.split(" : ")).any(|a| {
                    let http = format!("http://{a}/");
                    up.starts_with(&http)
                        || up == format!("fastcgi://{a}")
                        || (truncated && http.starts_with(up))
                })
            });
            if !ok {
                t.mismatch(
                    "error upstream",
                    format!(
                        "#{n}: ours {up:?}, nginx $upstream_addr {:?}",
                        reqs.iter()
                            .map(|r| lossy(&r["upstream_addr"]))
                            .collect::<Vec<_>>()
                    ),
                );
            }
        }
    }
}

/// Debian's nginx (`NGINX_BIN`, else /usr/sbin/nginx: 1.22.1), whose rules the forwarder took
/// before it knew other versions.
#[test]
fn forwarder_agrees_with_nginx_on_every_field() {
    let bin = common::nginx::nginx_binary();
    let version = version_of(&bin);
    agree_with(&bin, &version);
}

/// nginx 1.18.0 (Ubuntu 20.04, Debian 11): spaces and control bytes in URIs are served.
#[test]
fn forwarder_agrees_with_nginx_1_18_on_every_field() {
    agree_with(&common::oracles::nginx_bin("1.18.0"), "1.18.0");
}

/// nginx 1.30.4, the stable branch: `CONNECT host:port` is parsed.
#[test]
fn forwarder_agrees_with_nginx_1_30_on_every_field() {
    agree_with(&common::oracles::nginx_bin("1.30.4"), "1.30.4");
}

/// What `nginx -v` says the binary is (`nginx version: nginx/1.22.1` → `1.22.1`).
fn version_of(bin: &Path) -> String {
    let out = Command::new(bin)
        .arg("-v")
        .output()
        .unwrap_or_else(|e| panic!("{} -v: {e}", bin.display()));
    let text = String::from_utf8_lossy(&out.stderr);
    text.split("nginx/")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("{} -v said {text:?}", bin.display()))
        .to_string()
}

/// Whether nginx `version` is `min` or later (1.21.1 rejects spaces in URIs, 1.29.3 parses
/// `CONNECT host:port`).
fn version_at_least(version: &str, min: (u32, u32, u32)) -> bool {
    let n: Vec<u32> = version
        .split('.')
        .map(|p| p.parse().expect("a version number"))
        .collect();
    (n[0], n[1], n[2]) >= min
}

/// The oracle run against the nginx `bin`, which is nginx `version`: its logs read with
/// `--nginx-version version` must match nginx's own values field for field, and read without
/// a version (by what each line proves) too.
fn agree_with(bin: &Path, version: &str) {
    let started = Instant::now();
    let v6 = ipv6_loopback();
    let fcgi = FastCgi::start();
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let up = free_port(lo);
    let dead = free_port(lo);
    let dead2 = free_port(lo);
    let mut front = vec![SocketAddr::new(lo, free_port(lo))];
    if v6 {
        let l6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        front.push(SocketAddr::new(l6, free_port(l6)));
    }
    let listens: String = front.iter().map(|a| format!("listen {a};\n")).collect();
    let conf = format!(
        r#"
log_format main {MAIN_FORMAT};
log_format timing {TIMING_FORMAT};
log_format truth {truth};
limit_req_zone $binary_remote_addr zone=tiny:1m rate=1r/m;
upstream pair {{ server 127.0.0.1:{dead} max_fails=0; server 127.0.0.1:{up}; }}
upstream bothdead {{ server 127.0.0.1:{dead} max_fails=0; server 127.0.0.1:{dead2} max_fails=0; }}
server {{
listen 127.0.0.1:{up};
server_name upstream.test;
location / {{ return 200 "upstream ok\n"; }}
}}
server {{
{listens}server_name front.test;
access_log logs/combined.log combined;
access_log logs/main.log main;
access_log logs/timing.log timing;
access_log logs/truth.json truth;
root html;
location / {{ return 200 "ok\n"; }}
location /static/ {{ }}
location = /moved {{ return 301 /static/hello.txt; }}
location /notfound {{ return 404; }}
location /live/ {{ proxy_pass http://127.0.0.1:{up}; }}
location /dead/ {{ proxy_pass http://127.0.0.1:{dead}; }}
location /pair/ {{ proxy_pass http://pair; }}
location /bothdead/ {{ proxy_pass http://bothdead; }}
location /chain/ {{ proxy_pass http://127.0.0.1:{dead}; error_page 502 = @fallback; }}
location @fallback {{ proxy_pass http://127.0.0.1:{up}; }}
location /limited {{ limit_req zone=tiny; try_files /static/hello.txt =404; }}
location /fcgi/ {{
fastcgi_pass {fcgi};
fastcgi_param SCRIPT_NAME $uri;
fastcgi_param REQUEST_METHOD $request_method;
fastcgi_param CONTENT_LENGTH $content_length;
}}
}}
"#,
        truth = truth_format(),
        fcgi = fcgi.addr,
    );
    let mut nginx = Nginx::start_with(bin, &conf);
    std::fs::create_dir_all(nginx.path("html/static")).expect("html/static");
    std::fs::write(nginx.path("html/static/hello.txt"), "hello\n").expect("static file");

    let traffic = build_traffic(&front);
    let sent_at = Instant::now();
    let slow = drive(&traffic);
    let sequential = drive_sequential(&front);
    let traffic_time = sent_at.elapsed();

    // A last request; once it is in the log, every request before it is too.
    drive(&[Conn {
        addr: front[0],
        bytes: get_close(b"/__done", &[]),
        half_close: false,
    }]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let truth_data = loop {
        let d = nginx.read("logs/truth.json");
        if lines_of(&d)
            .last()
            .is_some_and(|l| l.windows(7).any(|w| w == b"/__done"))
        {
            break d;
        }
        assert!(Instant::now() < deadline, "nginx did not log /__done");
        std::thread::sleep(Duration::from_millis(10)); // poll interval, not a synchronisation sleep
    };
    // Every log is final from here on.
    nginx.stop();
    let truth: Vec<HashMap<String, Vec<u8>>> = lines_of(&truth_data)
        .iter()
        .enumerate()
        .map(|(i, l)| {
            parse_truth_line(l).unwrap_or_else(|e| {
                panic!("truth line {}: {e}: {}", i + 1, String::from_utf8_lossy(l))
            })
        })
        .collect();
    let requests = truth.len();
    assert!(requests >= 2000, "only {requests} requests were logged");

    let mut t = Tally::default();
    // The same logs read without the version: each line by what it proves.
    let mut unknown = Tally::default();
    let formats: [(&str, &str, &str, bool); 4] = [
        ("combined", "combined", COMBINED_FORMAT, false),
        ("main", "main", MAIN_FORMAT, false),
        ("timing", TIMING_FORMAT, TIMING_FORMAT, false),
        ("truth", &truth_format(), &truth_format(), true),
    ];
    let file_of = |name: &str| {
        if name == "truth" {
            "logs/truth.json".to_string()
        } else {
            format!("logs/{name}.log")
        }
    };
    let mut parsed: HashMap<&str, Vec<ParsedEvent>> = HashMap::new();
    for (name, cli_fmt, nginx_fmt, json) in &formats {
        let file = nginx.path(&file_of(name));
        let lines = lines_of(&nginx.read(&file_of(name))).len();
        assert_eq!(
            lines, requests,
            "{name} has {lines} lines, truth {requests}"
        );
        let events = run_parse("access", Some(cli_fmt), &file, Some(version));
        compare_access(name, nginx_fmt, *json, &events, &truth, &mut t);
        parsed.insert(name, events);
        let events = run_parse("access", Some(cli_fmt), &file, None);
        compare_access(name, nginx_fmt, *json, &events, &truth, &mut unknown);
    }

    let error_data = nginx.read("error.log");
    let raw_errors = raw_error_events(&error_data);
    let error_events = run_parse("error", None, &nginx.path("error.log"), None);
    let mut listen_texts: HashSet<String> = front.iter().map(|a| a.to_string()).collect();
    listen_texts.insert(format!("127.0.0.1:{up}"));
    let mut et = ErrorTally::default();
    compare_error(
        &error_events,
        &raw_errors,
        &truth,
        &listen_texts,
        &mut t,
        &mut et,
    );

    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for tr in &truth {
        *statuses
            .entry(String::from_utf8_lossy(&tr["status"]).into_owned())
            .or_default() += 1;
    }
    let v6_requests = truth
        .iter()
        .filter(|tr| tr["remote_addr"] == b"::1")
        .count();
    // What tells the versions apart: URIs with spaces served, `CONNECT host:port` parsed.
    let spaced_uris = truth
        .iter()
        .filter(|tr| tr["request_uri"].contains(&b' '))
        .count();
    let connect_authority = truth
        .iter()
        .filter(|tr| tr["request_method"] == b"CONNECT" && tr["request_uri"] == b"/")
        .count();
    println!(
        "nginx oracle {version} ({}): {requests} requests on {} connections ({} over IPv6{}), \
         {spaced_uris} with a space in $request_uri, {connect_authority} CONNECT host:port parsed, \
         statuses {statuses:?}; \
         lines {:?}; {} fields compared, {} mismatches, {} omitted where nginx wrote '-' for a value, \
         {} omitted where nginx's value is not found/empty; parse errors {}, duplicate keys {}; \
         error log: {} events, levels {:?}, {} truncated, {} with request, {} fields checked; \
         FastCGI served {}; slow reads {slow}; traffic {traffic_time:?}",
        bin.display(),
        traffic.len() + sequential + 1,
        v6_requests,
        if v6 { "" } else { ", ::1 cannot be bound here" },
        t.lines,
        t.fields + et.fields_checked,
        t.mismatch_count,
        t.dash_omitted,
        t.empty_omitted,
        t.parse_errors,
        t.duplicate_keys,
        et.events,
        et.levels,
        et.truncated,
        et.with_request,
        et.fields_checked,
        fcgi.served.load(Ordering::SeqCst),
    );
    println!(
        "nginx oracle {version}: without --nginx-version (by what each line proves): {} fields \
         compared, {} mismatches, parse errors {}, duplicate keys {}",
        unknown.fields, unknown.mismatch_count, unknown.parse_errors, unknown.duplicate_keys
    );
    for (mode, tally) in [("--nginx-version", &t), ("no version", &unknown)] {
        for (class, n) in &tally.classes {
            println!("{version} {mode}: mismatch class {class:?}: {n}, e.g.");
            for ex in &tally.examples[class] {
                println!("    {ex}");
            }
        }
    }
    assert_eq!(
        spaced_uris > 0,
        !version_at_least(version, (1, 21, 1)),
        "nginx {version} served {spaced_uris} requests with a space in the URI"
    );
    assert_eq!(
        connect_authority > 0,
        version_at_least(version, (1, 29, 3)),
        "nginx {version} parsed {connect_authority} CONNECT host:port requests"
    );

    // The traffic reached what it was meant to: each kind of answer and each error-log source.
    for status in ["200", "301", "400", "404", "414", "502", "503"] {
        assert!(
            statuses.contains_key(status),
            "no {status} among {statuses:?}"
        );
    }
    for sep in [", ", " : "] {
        assert!(
            truth
                .iter()
                .any(|tr| lossy_contains(&tr["upstream_addr"], sep)),
            "no request with an upstream list separated by {sep:?}"
        );
    }
    for needle in [
        "limiting requests",
        "FastCGI sent in stderr",
        "upstream: \"http://",
        "client sent invalid",
    ] {
        assert!(
            lossy_contains(&error_data, needle),
            "the error log has no {needle:?}"
        );
    }
    assert!(et.truncated > 0, "no truncated error-log line");
    if v6 {
        assert!(v6_requests > 0, "no request over IPv6");
    }

    assert!(
        t.mismatch_count == 0 && t.parse_errors == 0 && t.duplicate_keys == 0,
        "nginx {version}: {} mismatches ({} parse errors, {} duplicate keys) by class {:?}; \
         first ones:\n{}",
        t.mismatch_count,
        t.parse_errors,
        t.duplicate_keys,
        t.classes,
        t.mismatches.join("\n")
    );
    // Without the version, parts may be left out of lines answered 400, never wrong.
    assert!(
        unknown.classes.keys().all(|c| c == MISSING_ON_400),
        "nginx {version}, no version: mismatches by class {:?}; first ones:\n{}",
        unknown.classes,
        unknown.mismatches.join("\n")
    );
    // json-compact on nginx's own lines: every line rebuilt exactly from its event (timestamp
    // and message), for the formats whose `$request` and `$time_local` it leaves out.
    for (name, nginx_fmt) in [("combined", COMBINED_FORMAT), ("main", MAIN_FORMAT)] {
        let data = nginx.read(&file_of(name));
        let lines = lines_of(&data);
        let events = run_parse_with(
            "access",
            Some(name),
            &nginx.path(&file_of(name)),
            Some(version),
            &[("OUTPUT_FORMAT", "json-compact")],
        );
        assert_eq!(events.len(), lines.len(), "{name}");
        let (mut without_request, mut plain_bytes, mut compact_bytes) = (0, 0, 0);
        for (line, ev) in lines.iter().zip(&events) {
            let line = String::from_utf8_lossy(line);
            let fields = ev.fields.as_ref().expect("a JSON message");
            assert!(
                !fields.contains_key("time_local") && !fields.contains_key("raw"),
                "{name}: {}",
                ev.message
            );
            without_request += usize::from(!fields.contains_key("request"));
            assert_eq!(
                rebuild_line(nginx_fmt, ev.timestamp, fields),
                line,
                "{name}: json-compact lost something of this line: {}",
                ev.message
            );
            compact_bytes += ev.message.len() + 26;
        }
        for ev in &parsed[name] {
            plain_bytes += ev.message.len() + 26;
        }
        println!(
            "nginx oracle {version}: json-compact rebuilt all {} {name} lines ({without_request} without `request`); \
             {compact_bytes} bytes to ingest against json's {plain_bytes} ({:.2}×)",
            lines.len(),
            compact_bytes as f64 / plain_bytes as f64
        );
    }

    // The same logs through moto: S3 → SQS notifications moto writes itself → `replay` →
    // CloudWatch Logs, which must then hold exactly what `parse` printed.
    let moto_started = Instant::now();
    let access_log = nginx.read("logs/timing.log");
    let delivered = tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(replay_through_moto(
            &access_log,
            &error_data,
            &parsed["timing"],
            &error_events,
            version,
        ));
    println!(
        "nginx oracle {version}: moto replay delivered {delivered} events, as parse printed them, in {:?}; \
         whole test {:?}",
        moto_started.elapsed(),
        started.elapsed()
    );
}

/// Uploads the timing access log and the error log, with the `nginx-version` metadata the
/// shippers write, to a bucket whose notifications moto sends to SQS, runs `replay` on the SQS
/// event those messages make, and checks that each stream holds the events `parse
/// --nginx-version` printed: same messages, same timestamps, same count. Returns the count.
async fn replay_through_moto(
    access_log: &[u8],
    error_log: &[u8],
    access_events: &[ParsedEvent],
    error_events: &[ParsedEvent],
    version: &str,
) -> usize {
    const INSTANCE: &str = "i-0123456789abcdef0";
    let moto = common::moto::Moto::start();
    // One bucket name per version: the tests of several versions run at once in this process,
    // and the bucket's name names its files.
    let name = format!("nginx-oracle-{}", version.replace('.', "-"));
    let bucket = common::notify::NotifyingBucket::create(&moto, &name).await;
    let access_key = format!("nginx/{INSTANCE}/access/2026/11/30/access.log-20261130T0300.gz");
    let error_key = format!("nginx/{INSTANCE}/error/2026/11/30/error.log-20261130T0300.gz");
    let meta = [("nginx-version", version)];
    bucket
        .put_with_metadata(&access_key, common::gzip(access_log), &meta)
        .await;
    bucket
        .put_with_metadata(&error_key, common::gzip(error_log), &meta)
        .await;
    let event = bucket.lambda_event().await;

    let mut env = moto.env();
    env.push(("ACCESS_LOG_FORMAT", TIMING_FORMAT.to_string()));
    let (code, summary) = common::moto::replay(&event, &env);
    assert_eq!(code, Some(0), "replay: {summary:#}");
    assert_eq!(summary["objects_delivered"], 2, "{summary:#}");
    assert_eq!(
        summary["records_invalid"],
        serde_json::json!([]),
        "{summary:#}"
    );

    let logs = aws_sdk_cloudwatchlogs::Client::new(&moto.sdk_config());
    let mut total = 0;
    for (group, printed) in [
        ("nginx-access", access_events),
        ("nginx-error", error_events),
    ] {
        let mut got = common::moto::read_stream(&logs, group, INSTANCE).await;
        let mut want: Vec<(i64, String)> = printed
            .iter()
            .map(|e| (e.timestamp, e.message.clone()))
            .collect();
        assert_eq!(
            got.len(),
            want.len(),
            "{group}/{INSTANCE}: {} events in CloudWatch, parse printed {}",
            got.len(),
            want.len()
        );
        // CloudWatch orders by time; lines of the same millisecond may come in any order.
        got.sort();
        want.sort();
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "{group}/{INSTANCE}: event {i} (by time) differs:\n  cloudwatch {:?}\n  parse      {:?}",
                got[i], want[i]
            );
        }
        total += got.len();
    }
    total
}

fn lossy_contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
