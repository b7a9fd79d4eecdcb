//! An IMDSv2 stand-in on a free loopback port: token PUT (a TTL header required), then the
//! instance-id GET (the token required), one request per connection, every request recorded;
//! modes for the ways IMDS fails; the instance's `Name` tag (`/latest/meta-data/tags/instance/Name`)
//! answered or not, as the test chooses ([`NameTag`]). Used by the shell shipper's and the
//! follower's tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub const INSTANCE_ID: &str = "i-0123456789abcdef0";
pub const TOKEN: &str = "AQAEAtestTOKENforIMDSv2==";

/// How the stand-in answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Imds {
    /// As EC2 does.
    Serve,
    /// 403 on the token PUT (IMDS disabled, or IMDSv2 refused).
    DenyToken,
    /// 200 with an empty token.
    EmptyToken,
    /// 401 on the instance-id GET whatever the token.
    RejectGet,
    /// 200 on the GET, but with something that is not an instance ID.
    NotAnId,
}

pub const NAME_TAG_PATH: &str = "/latest/meta-data/tags/instance/Name";

/// What `/latest/meta-data/tags/instance/Name` answers (with a valid token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameTag {
    /// 404, as EC2 answers when the instance does not allow tags in metadata (or has no Name).
    Absent,
    /// 200 with this value.
    Is(String),
    /// 403, as when IMDS refuses: a failure other than 404.
    Refused,
}

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 server thread on 127.0.0.1:0; records every request; stopped on drop.
pub struct ImdsServer {
    pub endpoint: String,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ImdsServer {
    /// No `Name` tag in metadata (404), as on an instance that does not allow tags there.
    pub fn start(mode: Imds) -> Self {
        Self::start_with(mode, NameTag::Absent)
    }

    pub fn start_with(mode: Imds, name: NameTag) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        serve(conn, mode, &name, &seen);
                    }
                }
            })
        };
        ImdsServer {
            endpoint: format!("http://{addr}"),
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }

    /// The IMDSv2 flow happened once, as EC2 wants it: token PUT with a TTL, then the GETs of
    /// the instance ID and of the Name tag with that token.
    pub fn assert_token_flow(&self) {
        let seen = self.requests();
        let flow: Vec<(&str, &str)> = seen
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect();
        assert_eq!(
            flow,
            [
                ("PUT", "/latest/api/token"),
                ("GET", "/latest/meta-data/instance-id"),
                ("GET", NAME_TAG_PATH)
            ],
            "IMDS requests"
        );
        assert_eq!(
            seen[0].header("x-aws-ec2-metadata-token-ttl-seconds"),
            Some("21600")
        );
        for get in &seen[1..] {
            assert_eq!(
                get.header("x-aws-ec2-metadata-token"),
                Some(TOKEN),
                "{}",
                get.path
            );
        }
    }
}

impl Drop for ImdsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request per connection (curl opens one per call), answered and closed.
fn serve(conn: TcpStream, mode: Imds, name: &NameTag, seen: &Mutex<Vec<Seen>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return; // the wake-up connection of Drop, or a client that went away
    }
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Seen {
        method,
        path,
        headers,
    };
    let len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }

    let ttl_ok = req
        .header("x-aws-ec2-metadata-token-ttl-seconds")
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|t| (1..=21_600).contains(&t));
    let token_ok = req.header("x-aws-ec2-metadata-token") == Some(TOKEN);
    let (status, text): (&str, &str) = match (req.method.as_str(), req.path.as_str()) {
        ("PUT", "/latest/api/token") if !ttl_ok => ("400 Bad Request", "missing or invalid TTL"),
        ("PUT", "/latest/api/token") => match mode {
            Imds::DenyToken => ("403 Forbidden", "Forbidden"),
            Imds::EmptyToken => ("200 OK", ""),
            _ => ("200 OK", TOKEN),
        },
        ("GET", "/latest/meta-data/instance-id") if !token_ok || mode == Imds::RejectGet => {
            ("401 Unauthorized", "Unauthorized")
        }
        ("GET", "/latest/meta-data/instance-id") if mode == Imds::NotAnId => {
            ("200 OK", "<html>captive portal</html>")
        }
        ("GET", "/latest/meta-data/instance-id") => ("200 OK", INSTANCE_ID),
        ("GET", NAME_TAG_PATH) if !token_ok => ("401 Unauthorized", "Unauthorized"),
        ("GET", NAME_TAG_PATH) => match name {
            NameTag::Absent => ("404 Not Found", "Not Found"),
            NameTag::Is(v) => ("200 OK", v.as_str()),
            NameTag::Refused => ("403 Forbidden", "Forbidden"),
        },
        _ => ("404 Not Found", "Not Found"),
    };
    // EC2 echoes the token's TTL; the SDK's IMDS client requires it.
    let ttl_header = match req.header("x-aws-ec2-metadata-token-ttl-seconds") {
        Some(t) if status.starts_with("200") && req.path == "/latest/api/token" => {
            format!("X-Aws-Ec2-Metadata-Token-Ttl-Seconds: {t}\r\n")
        }
        _ => String::new(),
    };
    seen.lock().expect("not poisoned").push(req);
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{ttl_header}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = conn.flush();
}
