//! A loopback TCP relay that holds each HTTP request for a while before passing it on: slow
//! puts in front of moto, so that two deliveries truly overlap.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::Duration;

pub struct SlowRelay {
    pub endpoint: String,
}

impl SlowRelay {
    /// Relays to `upstream` (`http://host:port`), holding every request `delay` first.
    pub fn start(upstream: &str, delay: Duration) -> Self {
        let target = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                std::thread::spawn(move || pipe(client, server, Some(delay)));
                std::thread::spawn(move || pipe(s2, c2, None));
            }
        });
        Self { endpoint }
    }
}

/// Copies `from` to `to`; with a delay, holds each chunk that starts a request.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Option<Duration>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(d) = delay
            && (buf[..n].starts_with(b"POST ") || buf[..n].starts_with(b"PUT "))
        {
            std::thread::sleep(d);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}
