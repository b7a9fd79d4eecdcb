//! A real nginx on free loopback ports, run from a private prefix directory and killed on drop.
//!
//! `Nginx::start(body)` writes `DIR/nginx.conf` (the main-context settings below, then `body` inside
//! `http { … }`), runs `nginx -p DIR/ -c DIR/nginx.conf -g 'daemon off; master_process off;'` and
//! waits until every `listen` address of `body` accepts connections. Relative paths in `body`
//! (`access_log logs/x.log`, `root html`) are relative to DIR. nginx runs as one process
//! (`master_process off`), so killing the child stops it whole, and as the user running the tests
//! (no `user` switch happens without a master), so it can read and write DIR.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long nginx may take to listen (it usually needs a few milliseconds).
const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
    /// The binary it runs (for `-s reload`).
    bin: PathBuf,
    /// Runs a master process and a worker ([`Nginx::start_reloadable`]).
    master: bool,
}

/// `NGINX_BIN`, else /usr/sbin/nginx (Debian's), else `nginx` on `PATH`.
/// Writes an executable script at `at` that runs the real nginx ([`nginx_binary`]) on the
/// prefix `prefix` and configuration `conf` (`-p`, `-c`) with the arguments it is given: what a
/// follower takes as `NGINX_BIN` for a test's nginx.
pub fn write_wrapper(at: &Path, prefix: &Path, conf: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        at,
        format!(
            "#!/bin/sh\nexec {} -p {}/ -c {} \"$@\"\n",
            nginx_binary().display(),
            prefix.display(),
            conf.display()
        ),
    )
    .expect("write the nginx wrapper");
    std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

pub fn nginx_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NGINX_BIN") {
        return PathBuf::from(p);
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.exists() {
        return debian;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join("nginx");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "nginx not found (NGINX_BIN, /usr/sbin/nginx, PATH): run scripts/test, which installs \
         Debian's nginx-light when it is missing, or set NGINX_BIN"
    );
}

/// A free port on `ip`: bound to port 0, then released for nginx to take.
/// One HTTP/1.1 request for `target` with the headers `Host: host` and `User-Agent: agent`
/// that closes the connection; waits for nginx to close it (the line is logged by then).
pub fn get(addr: SocketAddr, host: &str, target: &str, agent: &str) {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).expect("connect to nginx");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read the answer");
    assert!(answer.starts_with(b"HTTP/1.1 "), "{answer:?}");
}

/// The bytes of an HTTP/1.1 request `GET target` with `Host: host`, `Connection: close` and
/// `headers` (values as bytes: a header may carry any byte nginx accepts).
pub fn request_with(host: &str, target: &str, headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut r =
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n").into_bytes();
    end_headers(&mut r, headers);
    r
}

/// Appends `headers` (values as bytes) and the empty line that ends a request's head.
pub fn end_headers(r: &mut Vec<u8>, headers: &[(&str, &[u8])]) {
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
}

/// Sends `request` (any bytes, one request that closes the connection) and reads the answer
/// until nginx closes the connection: the request is logged by then.
pub fn send(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).expect("connect to nginx");
    s.write_all(request).expect("send the request");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read the answer");
    answer
}

/// The `log_format` of [`logged_site`]'s access log.
pub const TIMING_FORMAT: &str =
    r#"'$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time'"#;

/// A real nginx's configuration and the logs it wrote: `access.log` in [`TIMING_FORMAT`] and
/// `error.log` under `logs`, one line per request for `targets` (with `Host: host`), nginx
/// stopped once they are written; `wrapper` runs that nginx on that configuration (the
/// shippers' NGINX_BIN), and `conf` and `prefix` are its NGINX_CONF and NGINX_PREFIX.
pub struct LoggedSite {
    _nginx: Nginx,
    pub wrapper: String,
    pub conf: String,
    pub prefix: String,
}

pub fn logged_site(logs: &Path, wrapper: &Path, host: &str, targets: &[&str]) -> LoggedSite {
    let addr = SocketAddr::from((
        std::net::Ipv4Addr::LOCALHOST,
        free_port(std::net::Ipv4Addr::LOCALHOST.into()),
    ));
    let l = logs.display();
    let mut nginx = Nginx::start(&format!(
        "log_format timing {TIMING_FORMAT};\n\
         server {{\n\
           listen {addr};\n\
           root html;\n\
           access_log {l}/access.log timing;\n\
           error_log {l}/error.log;\n\
         }}"
    ));
    for target in targets {
        get(addr, host, target, "curl/8.5.0");
    }
    nginx.stop();
    for live in ["access.log", "error.log"] {
        let text = std::fs::read_to_string(logs.join(live)).expect("nginx wrote it");
        assert!(!text.is_empty(), "{live} is empty");
    }
    write_wrapper(wrapper, &nginx.dir, &nginx.path("nginx.conf"));
    LoggedSite {
        conf: nginx.path("nginx.conf").display().to_string(),
        prefix: nginx.dir.display().to_string(),
        _nginx: nginx,
        wrapper: wrapper.display().to_string(),
    }
}

pub fn free_port(ip: std::net::IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
        .port()
}

/// Whether `[::1]` can be bound on this machine.
pub fn ipv6_loopback() -> bool {
    TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// The addresses of the `listen` directives of a configuration body.
fn listen_addrs(body: &str) -> Vec<SocketAddr> {
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("listen "))
        .map(|rest| {
            let addr = rest
                .split(|c: char| c.is_whitespace() || c == ';')
                .next()
                .unwrap_or_default();
            addr.parse()
                .unwrap_or_else(|e| panic!("listen {addr:?}: give an ip:port ({e})"))
        })
        .collect()
}

fn unique_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!(
        "nginx-oracle-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

impl Nginx {
    /// Starts nginx ([`nginx_binary`]) with `http_body` as the contents of its `http { }` block.
    pub fn start(http_body: &str) -> Self {
        Self::start_with(&nginx_binary(), http_body)
    }

    /// [`Nginx::start`] with the nginx binary `bin` (another version: [`super::oracles`]).
    pub fn start_with(bin: &Path, http_body: &str) -> Self {
        Self::start_prepared(bin, |_| http_body.to_string())
    }

    /// [`Nginx::start_with`] in a prefix the caller prepares first: `setup` gets DIR (with its
    /// `logs`, `html` and `temp` made) before nginx starts, may write files under it (an
    /// `include`d site, log directories) and returns the contents of the `http { }` block, which
    /// may name DIR's absolute paths. Only the `listen` addresses of that block are waited for:
    /// nginx binds every listener of its configuration before it accepts on any.
    pub fn start_prepared(bin: &Path, setup: impl FnOnce(&Path) -> String) -> Self {
        Self::launch(bin, setup, false)
    }

    /// [`Nginx::start_prepared`] with a master process (`master_process on`, one worker), as
    /// nginx runs in production: [`Nginx::reload`] applies a changed configuration (one process
    /// alone re-reads it but keeps serving new connections with the old one). Stopped with
    /// SIGTERM, so that the master takes its worker with it.
    pub fn start_reloadable(bin: &Path, setup: impl FnOnce(&Path) -> String) -> Self {
        Self::launch(bin, setup, true)
    }

    fn launch(bin: &Path, setup: impl FnOnce(&Path) -> String, master: bool) -> Self {
        let dir = unique_dir();
        for sub in ["", "logs", "html", "temp"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("create {}: {e}", dir.join(sub).display()));
        }
        let http_body = &setup(&dir);
        let d = dir.display();
        let conf = format!(
            "worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
             access_log off;\n\
             client_body_temp_path {d}/temp/client_body;\n\
             proxy_temp_path {d}/temp/proxy;\n\
             fastcgi_temp_path {d}/temp/fastcgi;\n\
             uwsgi_temp_path {d}/temp/uwsgi;\n\
             scgi_temp_path {d}/temp/scgi;\n\
             {http_body}\n\
             }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("create stderr.log");
        let child = Command::new(bin)
            .arg("-p")
            .arg(format!("{d}/"))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args([
                "-g",
                if master {
                    "daemon off;"
                } else {
                    "daemon off; master_process off;"
                },
            ])
            // Error-log times are local time without an offset; the forwarder reads them as UTC.
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): run scripts/test, which installs nginx, or set NGINX_BIN",
                    bin.display()
                )
            });
        let mut nginx = Nginx {
            child,
            dir,
            bin: bin.to_path_buf(),
            master,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        for addr in listen_addrs(http_body) {
            // Readiness poll: nginx accepts once it has bound and entered its event loop.
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = nginx.child.try_wait() {
                    panic!(
                        "nginx exited before listening ({status}): {}",
                        nginx.stderr_text()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "nginx did not listen on {addr} within {READY_TIMEOUT:?}: {}",
                    nginx.stderr_text()
                );
                std::thread::sleep(Duration::from_millis(10)); // poll interval, not a synchronisation sleep
            }
        }
        nginx
    }

    /// `nginx -p DIR/ -c DIR/nginx.conf -s reload`, as an operator runs it after changing the
    /// configuration (of an nginx from [`Nginx::start_reloadable`]). Returns once the signal is
    /// sent: the master then starts a worker with the new configuration and retires the old one,
    /// so wait for the change by what nginx writes.
    pub fn reload(&self) {
        let out = Command::new(&self.bin)
            .arg("-p")
            .arg(format!("{}/", self.dir.display()))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"))
            .args(["-s", "reload"])
            .env("TZ", "UTC")
            .output()
            .unwrap_or_else(|e| panic!("{} -s reload: {e}", self.bin.display()));
        assert!(
            out.status.success(),
            "nginx -s reload: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops nginx (its files stay until drop), so that its logs are final.
    pub fn stop(&mut self) {
        // SIGTERM: the master stops its worker, then exits (SIGKILL would leave the worker
        // running).
        self.signal_and_wait("-TERM");
    }

    /// Stops nginx gracefully (SIGQUIT): the workers finish what they serve first, logging
    /// included. nginx ≥ 1.19 logs a request it closes lingeringly (a 400, an unread body) only
    /// after the lingering close, so after the client saw the answer end: a fast stop
    /// ([`Nginx::stop`]) can lose that line.
    pub fn quit(&mut self) {
        self.signal_and_wait("-QUIT");
    }

    /// Sends the master `signal` and waits for it to exit (at most [`READY_TIMEOUT`]), then
    /// makes sure it is gone.
    fn signal_and_wait(&mut self, signal: &str) {
        if self.master && matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args([signal, &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + READY_TIMEOUT;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10)); // poll for exit
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// [`write_wrapper`] for this nginx's prefix and `nginx.conf`, at `rel` in its prefix.
    pub fn wrapper(&self, rel: &str) -> PathBuf {
        let at = self.path(rel);
        write_wrapper(&at, &self.dir, &self.path("nginx.conf"));
        at
    }

    /// A file of the prefix, as bytes (log files may hold any byte).
    pub fn read(&self, rel: &str) -> Vec<u8> {
        read_or_empty(&self.path(rel))
    }

    /// What nginx wrote to stderr (start-up errors) and the end of its error log.
    pub fn stderr_text(&self) -> String {
        let err = read_or_empty(&self.path("stderr.log"));
        let log = read_or_empty(&self.path("error.log"));
        let tail = &log[log.len().saturating_sub(2000)..];
        format!(
            "stderr: {} error.log tail: {}",
            String::from_utf8_lossy(&err),
            String::from_utf8_lossy(tail)
        )
    }
}

fn read_or_empty(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(mut f) = std::fs::File::open(p) {
        let _ = f.read_to_end(&mut out);
    }
    out
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("NGINX_ORACLE_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
