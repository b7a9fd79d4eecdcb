//! Just enough HTTP/1.1 for the loopback stand-ins (keep-alive, Content-Length bodies).

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The next request on the connection, or `None` when the peer closed it.
pub fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        if h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut req = Request {
        path: request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string(),
        headers,
        body: Vec::new(),
    };
    let len = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Read into spare capacity: a zeroed buffer would cost the bench endpoint a memset of every
    // 1 MiB body on the cores it shares with the forwarder.
    req.body = Vec::with_capacity(len);
    let read = reader.take(len as u64).read_to_end(&mut req.body).ok()?;
    (read == len).then_some(req)
}
