//! `ship::nginx_conf` against real nginx (issue 28): nginx prints its configuration (`nginx -T`),
//! the module says which file each log goes to and in which format, then the same nginx serves
//! requests to every server and location and the files it wrote are the oracle. Every line of
//! every file must read in a format the module named for that file, every format it named must
//! have written there, and nginx must have written no other file.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::nginx::{free_port, nginx_binary};
use nginx_cloudwatch_forwarder::ship::discover;
use nginx_cloudwatch_forwarder::ship::nginx_conf::{
    Defaults, Format, Logs, Unfollowable, Writes, parse_dump,
};
use regex::Regex;

/// A private prefix directory: nginx.conf, sites-enabled/, logs/, temp/, html/.
struct Prefix(PathBuf);

impl Prefix {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nginx-conf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // html: the root nginx checks before it opens a log whose path has variables.
        for sub in ["sites-enabled", "logs", "temp", "html"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create the prefix");
        }
        Prefix(dir)
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.0.join(rel), text).unwrap_or_else(|e| panic!("write {rel}: {e}"));
    }

    /// `nginx -p DIR/ -c DIR/nginx.conf` plus `args`.
    fn nginx(&self) -> Command {
        let mut c = Command::new(nginx_binary());
        c.arg("-p")
            .arg(format!("{}/", self.0.display()))
            .arg("-c")
            .arg(self.0.join("nginx.conf"));
        c
    }

    /// `nginx -T`'s standard output (the dump); fails with its standard error.
    fn dump(&self) -> String {
        let out = self.nginx().arg("-T").output().expect("run nginx -T");
        assert!(
            out.status.success(),
            "nginx -T: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("the dump is UTF-8")
    }

    /// What nginx runs with here: this prefix, and nginx's own relative defaults under it.
    fn defaults(&self) -> Defaults {
        Defaults {
            prefix: format!("{}/", self.0.display()),
            ..Defaults::nginx()
        }
    }

    fn logs(&self) -> String {
        format!("{}/logs", self.0.display())
    }

    /// Runs nginx, sends each (port, path, Host) request, then stops it gracefully (`nginx -s
    /// quit`, which writes out gzip buffers) so that its logs are complete.
    fn serve(&self, requests: &[(u16, &str, &str)]) {
        let mut child = self
            .nginx()
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        for (port, _, _) in requests {
            while TcpStream::connect((Ipv4Addr::LOCALHOST, *port)).is_err() {
                assert!(child.try_wait().expect("nginx").is_none(), "nginx exited");
                std::thread::sleep(std::time::Duration::from_millis(10)); // readiness poll
            }
        }
        for (port, path, host) in requests {
            get(*port, path, host);
        }
        let quit = self
            .nginx()
            .args(["-s", "quit"])
            .status()
            .expect("nginx -s quit");
        assert!(quit.success());
        let status = child.wait().expect("nginx exits");
        assert!(status.success(), "nginx: {status}");
    }

    /// The files under logs/ that hold something.
    fn written(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.logs())
            .expect("logs/")
            .map(|e| e.expect("an entry").path())
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .map(|p| p.display().to_string())
            .collect()
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        if std::env::var_os("NGINX_ORACLE_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The configuration issue 28 asks for: combined, a timing format with `$request_time` and
/// `$upstream_*`, an `escape=json` object, an included server block, `access_log off` in a
/// location, several access_logs at one level, a site-named file, a syslog target, variables
/// in a path, a gzip'd log, and one file written by two formats.
fn issue_28_conf(p: &Prefix, front: u16, shop: u16, syslog: u16) {
    let d = p.0.display();
    p.write(
        "nginx.conf",
        &format!(
            "worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log logs/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
             \x20   client_body_temp_path temp/body; proxy_temp_path temp/proxy;\n\
             \x20   fastcgi_temp_path temp/fastcgi; uwsgi_temp_path temp/uwsgi; scgi_temp_path temp/scgi;\n\
             \x20   log_format timing '$remote_addr [$time_local] \"$request\" $status '\n\
             \x20                     'rt=$request_time uct=\"$upstream_connect_time\" '\n\
             \x20                     'urt=\"$upstream_response_time\" us=\"$upstream_status\"';\n\
             \x20   log_format js escape=json '{{\"uri\":\"$uri\",\"status\":$status,\"rt\":$request_time}}';\n\
             \x20   log_format other 'other $status $uri';\n\
             \x20   access_log logs/main.access.log;   # combined\n\
             \x20   include sites-enabled/*;\n\
             \x20   server {{\n\
             \x20       listen 127.0.0.1:{front};\n\
             \x20       location / {{ return 200 \"front\\n\"; }}\n\
             \x20       location /quiet {{ access_log off; return 200 \"quiet\\n\"; }}\n\
             \x20       location /timed/ {{\n\
             \x20           access_log logs/timing.log timing;\n\
             \x20           access_log logs/api-access.log js;\n\
             \x20           proxy_pass http://127.0.0.1:{shop}/;\n\
             \x20       }}\n\
             \x20       location /gz {{ access_log logs/gz.log other gzip; return 200 \"gz\\n\"; }}\n\
             \x20   }}\n\
             }}\n"
        ),
    );
    p.write(
        "sites-enabled/shop",
        &format!(
            "server {{   # the shop, named by site as Debian names files\n\
             \x20   listen 127.0.0.1:{shop};\n\
             \x20   access_log \"logs/shop.example.com.access.log\" js;\n\
             \x20   access_log syslog:server=127.0.0.1:{syslog} timing;\n\
             \x20   access_log logs/$host.vhost.log other;\n\
             \x20   error_log logs/shop.error.log warn;\n\
             \x20   location / {{ return 200 \"shop\\n\"; }}\n\
             \x20   location /both {{ access_log logs/main.access.log other; return 200 \"both\\n\"; }}\n\
             }}\n"
        ),
    );
    // glob(3) skips names that start with a dot: nginx does not read this one (if it did,
    // nginx -T would fail on it).
    p.write("sites-enabled/.hidden", "this is not nginx syntax");
}

/// A format as a regular expression: its literal text, and any text for each variable.
fn line_regex(f: &Format) -> Regex {
    let var = Regex::new(r"\$\{?[A-Za-z0-9_]+\}?").expect("variable pattern");
    let mut re = String::from("^");
    let mut last = 0;
    for m in var.find_iter(&f.text) {
        re.push_str(&regex::escape(&f.text[last..m.start()]));
        re.push_str(".*?");
        last = m.end();
    }
    re.push_str(&regex::escape(&f.text[last..]));
    re.push('$');
    Regex::new(&re).unwrap_or_else(|e| panic!("{}: {e}", f.name))
}

fn get(port: u16, path: &str, host: &str) {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to nginx");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send the request");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read the reply");
    assert!(reply.starts_with("HTTP/1.1 "), "GET {path}: {reply}");
}

/// A file's lines; a gzip'd log is decompressed first.
fn lines(path: &Path, gzip: bool) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = if gzip {
        assert_eq!(
            bytes.get(..2),
            Some(&[0x1f, 0x8b][..]),
            "{} is gzip",
            path.display()
        );
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        s
    } else {
        String::from_utf8(bytes).expect("log lines are UTF-8 here")
    };
    text.lines().map(str::to_string).collect()
}

#[test]
fn every_file_nginx_writes_reads_in_the_format_the_dump_names() {
    let p = Prefix::new("issue28");
    let (front, shop) = (
        free_port(Ipv4Addr::LOCALHOST.into()),
        free_port(Ipv4Addr::LOCALHOST.into()),
    );
    // Somewhere for the syslog lines to go (nginx sends them over UDP whether read or not).
    let syslog = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP port");
    let syslog_port = syslog.local_addr().expect("its address").port();
    issue_28_conf(&p, front, shop, syslog_port);

    let dump = p.dump();
    let logs: Logs = parse_dump(&dump)
        .and_then(|d| d.logs(&p.defaults()))
        .unwrap_or_else(|e| panic!("{e}\n{dump}"));
    let l = p.logs();

    // What the module says, file by file.
    let said: Vec<(String, Vec<String>)> = logs
        .files
        .iter()
        .map(|f| {
            let ws = f
                .writers
                .iter()
                .map(|w| match &w.writes {
                    Writes::Access { format, gzip, .. } => {
                        format!("{}{}", format.name, if *gzip { " gzip" } else { "" })
                    }
                    Writes::Error => "error".to_string(),
                })
                .collect();
            (f.path.clone(), ws)
        })
        .collect();
    let want: Vec<(String, Vec<String>)> = [
        ("api-access.log", vec!["js"]),
        ("error.log", vec!["error"]),
        ("gz.log", vec!["other gzip"]),
        // The included shop server comes first in the configuration.
        ("main.access.log", vec!["other", "combined"]),
        ("shop.error.log", vec!["error"]),
        ("shop.example.com.access.log", vec!["js"]),
        ("timing.log", vec!["timing"]),
    ]
    .into_iter()
    .map(|(f, ws)| {
        (
            format!("{l}/{f}"),
            ws.into_iter().map(String::from).collect(),
        )
    })
    .collect();
    assert_eq!(said, want);
    let not: Vec<(&str, Unfollowable, Option<&str>, &str)> = logs
        .not_followed
        .iter()
        .map(|n| {
            let Writes::Access { format, .. } = &n.writes else {
                panic!("{}: not an access log", n.target);
            };
            (
                n.target.as_str(),
                n.reason,
                n.glob.as_deref(),
                format.name.as_str(),
            )
        })
        .collect();
    let syslog_target = format!("syslog:server=127.0.0.1:{syslog_port}");
    let per_host_glob = format!("{l}/*.vhost.log");
    assert_eq!(
        not,
        [
            (syslog_target.as_str(), Unfollowable::Syslog, None, "timing"),
            (
                "logs/$host.vhost.log",
                Unfollowable::Variables,
                Some(per_host_glob.as_str()),
                "other"
            )
        ]
    );
    let conflict = logs.file(&format!("{l}/main.access.log")).unwrap();
    assert!(conflict.writer().is_err(), "two formats: reported");

    // Now nginx itself: requests to every server and location, then every file it wrote.
    let requests = [
        (front, "/", "front"),
        (front, "/quiet", "front"),
        (front, "/timed/a", "front"),
        (front, "/gz", "front"),
        (shop, "/", "shop.example.com"),
        (shop, "/both", "shop.example.com"),
        (shop, "/nothing-here", "shop.example.com"),
    ];
    p.serve(&requests);
    let mut udp = [0u8; 2048];
    syslog.set_nonblocking(true).expect("nonblocking");
    let n = syslog.recv(&mut udp).expect("nginx sent the syslog lines");
    assert!(String::from_utf8_lossy(&udp[..n]).contains("rt="));

    let mut written = p.written();
    // The per-host files (shop.example.com, and 127.0.0.1 for the proxied request) come from
    // the variable target the module listed as not followed.
    let per_host: Vec<String> = written
        .iter()
        .filter(|p| p.ends_with(".vhost.log"))
        .cloned()
        .collect();
    assert_eq!(
        per_host,
        [
            format!("{l}/127.0.0.1.vhost.log"),
            format!("{l}/shop.example.com.vhost.log")
        ]
    );
    written.retain(|p| !p.ends_with(".vhost.log"));
    // Each holds lines of the variable target's format.
    let other = line_regex(match &logs.not_followed[1].writes {
        Writes::Access { format, .. } => format,
        Writes::Error => unreachable!("checked above"),
    });
    for f in &per_host {
        for line in lines(Path::new(f), false) {
            assert!(other.is_match(&line), "{f}: {line}");
        }
    }
    assert_eq!(access_files(&written), access_files_of(&logs));
    // front: / (combined), /timed/a (timing, js), /gz (other); shop: / and /nothing-here and
    // the proxied /a (js), /both (other, in main.access.log). /quiet: none.
    assert_eq!(read_every_line(&logs, "/quiet"), 8);
}

/// The rules nginx's source states and a reader could get wrong: `off` beside a file at one
/// level, an `access_log` written after a location, `if` and `limit_except` levels, format
/// names matched without case, a relative `include` of one file, and an http-level log that
/// every server overrides (opened, never written).
#[test]
fn inheritance_edges_as_nginx_applies_them() {
    let p = Prefix::new("edges");
    let (a, b) = (
        free_port(Ipv4Addr::LOCALHOST.into()),
        free_port(Ipv4Addr::LOCALHOST.into()),
    );
    let d = p.0.display();
    p.write(
        "nginx.conf",
        &format!(
            "pid {d}/nginx.pid;
             error_log logs/error.log info;
             events {{ worker_connections 64; }}
             http {{
                 client_body_temp_path temp/body; proxy_temp_path temp/proxy;
                 fastcgi_temp_path temp/fastcgi; uwsgi_temp_path temp/uwsgi; scgi_temp_path temp/scgi;
                 log_format Main 'Main $status $uri';
                 log_format main 'main $status $uri';
                 log_format t 't $status $uri';
                 access_log logs/http-only.log;
                 include edge.conf;
             }}
"
        ),
    );
    p.write(
        "edge.conf",
        &format!(
            "server {{
                 listen 127.0.0.1:{a};
                 location / {{ return 200 a; }}
                 location /if {{ if ($arg_x) {{ access_log logs/if.log t; return 200 if; }} return 200 else; }}
                 location /le {{ limit_except POST {{ access_log logs/le.log t; }} }}
                 access_log logs/after.log main;
             }}
             server {{
                 listen 127.0.0.1:{b};
                 access_log logs/never.log;
                 access_log off;
                 location / {{ return 200 b; }}
             }}
"
        ),
    );
    let logs = parse_dump(&p.dump())
        .and_then(|d| d.logs(&p.defaults()))
        .unwrap_or_else(|e| panic!("{e}"));
    let l = p.logs();
    let said: Vec<(String, String)> = logs
        .files
        .iter()
        .map(|f| match &f.writer().expect("one writer").writes {
            Writes::Access { format, .. } => (f.path.clone(), format.name.clone()),
            Writes::Error => (f.path.clone(), "error".to_string()),
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("after.log", "Main"),
        ("error.log", "error"),
        ("if.log", "t"),
        ("le.log", "t"),
    ]
    .iter()
    .map(|(f, n)| (format!("{l}/{f}"), n.to_string()))
    .collect();
    assert_eq!(said, want);

    p.serve(&[
        (a, "/", "a"),
        (a, "/if?x=1", "a"),
        (a, "/if", "a"),
        (a, "/le", "a"),
        (b, "/", "b"),
    ]);
    assert_eq!(access_files(&p.written()), access_files_of(&logs));
    // after.log: / and /if without x; if.log: /if?x=1; le.log: /le (GET is not POST).
    assert_eq!(read_every_line(&logs, "\0"), 4);
}

/// Access logs (not error logs) among paths.
fn access_files(paths: &BTreeSet<String>) -> BTreeSet<String> {
    paths
        .iter()
        .filter(|p| !p.ends_with("error.log"))
        .cloned()
        .collect()
}

fn access_files_of(logs: &Logs) -> BTreeSet<String> {
    access_files(&logs.files.iter().map(|f| f.path.clone()).collect())
}

/// Reads every line of every file the module named: each must read in one of the file's named
/// formats (error lines by their prefix), each named access format must have written at least
/// one, and no line may contain `absent`. Returns the number of access lines.
fn read_every_line(logs: &Logs, absent: &str) -> usize {
    let error_line =
        Regex::new(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\w+\] \d+#\d+: ").expect("error line");
    let mut access_lines = 0;
    for file in &logs.files {
        let mut seen = vec![0usize; file.writers.len()];
        let gzip = matches!(file.writers[0].writes, Writes::Access { gzip: true, .. });
        // Each writer as a line pattern: its format, or the error log's prefix.
        let patterns: Vec<Regex> = file
            .writers
            .iter()
            .map(|w| match &w.writes {
                Writes::Access { format, .. } => line_regex(format),
                Writes::Error => error_line.clone(),
            })
            .collect();
        for line in lines(Path::new(&file.path), gzip) {
            assert!(!line.contains(absent), "{}: {line}", file.path);
            let hit = patterns.iter().position(|re| re.is_match(&line));
            let i = hit.unwrap_or_else(|| panic!("{}: no named format reads {line:?}", file.path));
            seen[i] += 1;
            access_lines += usize::from(file.writers[i].writes != Writes::Error);
        }
        if file.writers.iter().all(|w| w.writes != Writes::Error) {
            assert!(
                seen.iter().all(|n| *n > 0),
                "{}: every named format wrote there: {seen:?}",
                file.path
            );
        }
    }
    access_lines
}

/// When nginx cannot open a log (or, unprivileged, its pid file), `nginx -T` prints nothing on
/// standard output: it tests the configuration, opening every log file and the pid file as
/// `nginx -t` does, before it dumps it. The caller must report its standard error.
#[test]
fn nginx_t_opens_the_logs_before_it_dumps() {
    let p = Prefix::new("perm");
    let d = p.0.display();
    p.write(
        "nginx.conf",
        &format!(
            "pid {d}/nginx.pid;\nerror_log logs/error.log;\nevents {{}}\n\
             http {{ access_log {d}/locked/access.log; }}\n"
        ),
    );
    std::fs::create_dir_all(p.0.join("locked")).expect("mkdir");
    // A file where the directory should be: no one can open a log under it, root included.
    std::fs::remove_dir(p.0.join("locked")).expect("rmdir");
    std::fs::write(p.0.join("locked"), "").expect("a file in the way");
    let out = p.nginx().arg("-T").output().expect("run nginx -T");
    assert!(!out.status.success());
    assert_eq!(out.stdout, b"", "no dump");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("open() \"{d}/locked/access.log\" failed")),
        "{err}"
    );
    assert!(err.contains("test failed"), "{err}");
    // The files nginx could open, it created (test mode creates the logs it names).
    assert!(p.0.join("logs/error.log").exists());
}

/// `log_format` arguments written the ways nginx's syntax allows: quotes of both kinds,
/// backslash escapes (`\t` and `\n` become characters, `\x` stays), `#` inside words and
/// comments between strings, braces and `;` inside quotes, UTF-8. A format without variables
/// writes its text as it is, so each log file must hold exactly the text the module read.
const ACCEPTED: [&str; 10] = [
    r#"'a\'b' "c\"d" e\ f"#,
    "'x#y' z#w",
    r#"'tab\there' "nl\\n""#,
    "'}' '{' ';'",
    "'a' # a comment between strings\n      'b'",
    r"'\\' '\x' \q",
    "'é ü' \"ß\"",
    "a'b c\"d",
    r#"'he said "hi"' "it's""#,
    "'line\\none'",
];

/// Arguments nginx refuses (`nginx -t` fails): the module's tokeniser must refuse them too.
const REFUSED: [&str; 4] = ["'a'b", "\"a\"'b'", "'open", "x\"y\" 'z'{"];

#[test]
fn log_format_strings_read_as_nginx_reads_them() {
    let p = Prefix::new("strings");
    let port = free_port(Ipv4Addr::LOCALHOST.into());
    let d = p.0.display();
    let mut http = String::new();
    let mut locations = String::new();
    for (i, args) in ACCEPTED.iter().enumerate() {
        http.push_str(&format!("    log_format f{i} {args};\n"));
        locations.push_str(&format!(
            "        location = /{i} {{ access_log logs/f{i}.log f{i}; return 204; }}\n"
        ));
    }
    p.write(
        "nginx.conf",
        &format!(
            "pid {d}/nginx.pid;\nerror_log logs/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n    access_log off;\n{http}    server {{\n        listen 127.0.0.1:{port};\n\
             {locations}    }}\n}}\n"
        ),
    );
    let logs = parse_dump(&p.dump())
        .and_then(|d| d.logs(&p.defaults()))
        .unwrap_or_else(|e| panic!("{e}"));
    let requests: Vec<(u16, String, &str)> = (0..ACCEPTED.len())
        .map(|i| (port, format!("/{i}"), "strings"))
        .collect();
    let requests: Vec<(u16, &str, &str)> = requests
        .iter()
        .map(|(p, u, h)| (*p, u.as_str(), *h))
        .collect();
    p.serve(&requests);
    for (i, args) in ACCEPTED.iter().enumerate() {
        let path = format!("{}/f{i}.log", p.logs());
        let Writes::Access { format, .. } = &logs.file(&path).expect("named").writers[0].writes
        else {
            panic!("{path}: not an access log");
        };
        let written = std::fs::read(&path).expect("nginx wrote it");
        assert_eq!(
            String::from_utf8_lossy(&written),
            format!("{}\n", format.text),
            "log_format {args}"
        );
    }

    for args in REFUSED {
        let conf = format!("events {{}}\nhttp {{ log_format r {args}; }}\n");
        p.write("nginx.conf", &conf);
        let t = p.nginx().arg("-t").output().expect("run nginx -t");
        assert!(!t.status.success(), "nginx accepts log_format {args}");
        let dump = format!(
            "# configuration file {}/nginx.conf:\n{conf}\n",
            p.0.display()
        );
        assert!(
            parse_dump(&dump).is_err(),
            "the module accepts log_format {args}"
        );
    }
}

// --- the configuration read from its files, against nginx -T ---------------------------------

/// A configuration laid out as Debian lays it out: modules-enabled/ and sites-enabled/ globs
/// (sites as symlinks into sites-available/, one not enabled, a dot file beside them), conf.d/,
/// the real mime.types included relatively, a snippet included relatively from two sites (a
/// relative include starts in the main file's directory, not the including file's), and a
/// glob that matches nothing. `sites` more site files are added.
fn debian_like_conf(p: &Prefix, sites: usize) {
    let d = p.0.display();
    for sub in [
        "modules-enabled",
        "conf.d",
        "sites-available",
        "snippets",
        "none.d",
    ] {
        std::fs::create_dir_all(p.0.join(sub)).expect("mkdir");
    }
    p.write(
        "nginx.conf",
        &format!(
            "worker_processes 1;\npid {d}/nginx.pid;\ninclude {d}/modules-enabled/*.conf;\n\
             error_log logs/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n    include mime.types;\n    default_type application/octet-stream;\n\
             \x20   client_body_temp_path temp/body; proxy_temp_path temp/proxy;\n\
             \x20   fastcgi_temp_path temp/fastcgi; uwsgi_temp_path temp/uwsgi; scgi_temp_path temp/scgi;\n\
             \x20   log_format timing '$remote_addr [$time_local] \"$request\" $status $request_time';\n\
             \x20   access_log logs/access.log;\n    include conf.d/*.conf;\n\
             \x20   include sites-enabled/*;\n    include none.d/*.conf;\n}}\n"
        ),
    );
    let mime = std::fs::read_to_string("/etc/nginx/mime.types")
        .unwrap_or_else(|_| "types {\n    text/html html;\n}\n".to_string());
    p.write("mime.types", &mime);
    p.write("modules-enabled/50-none.conf", "# no dynamic module here\n");
    p.write("conf.d/gzip.conf", "gzip on;\ngzip_types text/plain;\n");
    p.write(
        "snippets/health.conf",
        "location = /health { access_log off; return 204; }\n",
    );
    let site = |name: &str, body: &str, enabled: bool| {
        p.write(&format!("sites-available/{name}"), body);
        if enabled {
            std::os::unix::fs::symlink(
                format!("../sites-available/{name}"),
                p.0.join(format!("sites-enabled/{name}")),
            )
            .expect("ln -s");
        }
    };
    site(
        "shop",
        "server {\n    listen 127.0.0.1:1;\n    server_name shop.example.com;\n\
         \x20   access_log logs/shop.example.com.access.log timing;\n\
         \x20   include snippets/health.conf;\n    location / { return 200; }\n}\n",
        true,
    );
    site(
        "api",
        "server {\n    listen 127.0.0.1:2;\n    access_log \"logs/api-access.log\";\n\
         \x20   include snippets/health.conf;\n}\n",
        true,
    );
    site("old", "this is not nginx syntax (not enabled)", false);
    for i in 0..sites {
        site(
            &format!("site{i:02}.example.com"),
            &format!(
                "server {{\n    listen 127.0.0.1:{};\n    server_name site{i:02}.example.com;\n\
                 \x20   access_log logs/site{i:02}.access.log timing;\n\
                 \x20   error_log logs/site{i:02}.error.log;\n\
                 \x20   location / {{ return 200; }}\n    location /static/ {{ access_log off; }}\n}}\n",
                1000 + i
            ),
            true,
        );
    }
    p.write("sites-enabled/.shop.swp", "not nginx syntax");
}

fn reader(p: &Prefix, conf: &str) -> discover::Reader {
    discover::Reader::new(
        &nginx_binary().display().to_string(),
        discover::Overrides {
            conf: Some(conf.to_string()),
            prefix: Some(p.0.display().to_string()),
        },
    )
    .expect("nginx -V")
}

/// What the follower reads from the files is byte for byte what `nginx -T` prints, with `-c`
/// absolute and relative to the prefix, and it names the same logs.
#[test]
fn the_files_read_directly_are_what_nginx_t_prints() {
    let p = Prefix::new("direct");
    debian_like_conf(&p, 3);
    let main = format!("{}/nginx.conf", p.0.display());
    let oracle = p.dump();
    assert!(oracle.contains("snippets/health.conf:"), "{oracle}");
    let (text, sources) = discover::read_files(&main).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text, oracle, "the dump made from the files");
    assert_eq!(
        sources.files().count(),
        oracle.matches("\n# configuration file /").count() + 1,
        "every file nginx read, once"
    );
    assert!(!text.contains(".shop.swp") && !text.contains("not enabled"));

    for conf in [main.as_str(), "nginx.conf"] {
        let r = reader(&p, conf);
        let config = r.read().unwrap_or_else(|e| panic!("{conf}: {e}"));
        assert_eq!(config.how, discover::How::Files, "{conf}");
        let by_nginx = parse_dump(&oracle)
            .and_then(|d| d.logs(&r.defaults))
            .expect("the oracle reads");
        assert_eq!(config.logs, by_nginx, "-c {conf}");
        assert_eq!(
            config
                .logs
                .files
                .iter()
                .filter(|f| f.path.ends_with("access.log"))
                .count(),
            5,
            "{:?}",
            config.logs.files
        );
    }
}

/// 50 site files (Debian layout, one access and one error log each): reading them directly,
/// parsing and resolving every log, against `nginx -T` (which also opens every log).
#[test]
fn fifty_site_files_read_in_milliseconds() {
    let p = Prefix::new("fifty");
    debian_like_conf(&p, 50);
    let main = format!("{}/nginx.conf", p.0.display());
    let r = reader(&p, &main);
    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut direct = Vec::new();
    let mut logs = None;
    for _ in 0..21 {
        let t = std::time::Instant::now();
        let config = r.read().expect("read");
        direct.push(t.elapsed());
        logs = Some(config.logs);
    }
    let mut nginx_t = Vec::new();
    let mut oracle = String::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        oracle = p.dump();
        nginx_t.push(t.elapsed());
    }
    let logs = logs.expect("read");
    assert_eq!(
        Some(logs),
        parse_dump(&oracle).and_then(|d| d.logs(&r.defaults)).ok()
    );
    let sources = discover::read_files(&main).expect("read").1;
    let sources_files = sources.files().count();
    // What the follower does every pass: a stat per file, a listing per glob.
    let mut look = Vec::new();
    for _ in 0..101 {
        let t = std::time::Instant::now();
        assert_eq!(sources.changed(), None);
        look.push(t.elapsed());
    }
    let (direct, nginx_t, look) = (median(direct), median(nginx_t), median(look));
    println!(
        "{sources_files} configuration files (50 sites): read directly, parsed and resolved in {direct:?} (median of 21); nginx -T {nginx_t:?} (median of 5); a look for changes {look:?} (median of 101)"
    );
    assert!(
        direct < std::time::Duration::from_secs(1),
        "reading 50 sites took {direct:?}"
    );
}

/// As an unprivileged user, `nginx -T` cannot run (it opens the logs and the pid file for
/// writing) and the files still read, to the same dump as root's `nginx -T`. The test runs
/// itself again as `nobody` for the read.
#[test]
fn unprivileged_the_files_read_where_nginx_t_cannot() {
    use std::os::unix::process::CommandExt;
    const CHILD: &str = "NCF_READ_AS_NOBODY";
    if let Some(out) = std::env::var_os(CHILD) {
        let main = std::env::var("NCF_MAIN").expect("NCF_MAIN");
        let text = discover::read_files(&main).unwrap_or_else(|e| panic!("as nobody: {e}"));
        std::fs::write(out, text.0).expect("write the dump");
        return;
    }
    let nobody = 65534;
    // Only root can run a child as another user.
    if euid() != 0 {
        // Unprivileged already: the read below is the unprivileged one.
        let p = Prefix::new("unpriv");
        debian_like_conf(&p, 2);
        let main = format!("{}/nginx.conf", p.0.display());
        discover::read_files(&main).expect("read as this user");
        return;
    }
    let p = Prefix::new("unpriv");
    debian_like_conf(&p, 2);
    let main = format!("{}/nginx.conf", p.0.display());
    let oracle = p.dump(); // as root
    // nginx, unprivileged, on the same files: refused.
    let t = p
        .nginx()
        .arg("-T")
        .uid(nobody)
        .gid(nobody)
        .output()
        .expect("nginx -T as nobody");
    assert!(!t.status.success(), "nginx -T ran as nobody");
    assert!(t.stdout.is_empty());
    let err = String::from_utf8_lossy(&t.stderr);
    assert!(err.contains("Permission denied"), "{err}");
    // The follower's read, unprivileged.
    let out = std::env::temp_dir().join(format!("ncf-nobody-dump-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    std::fs::write(&out, "").expect("create");
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let child = Command::new(std::env::current_exe().expect("this test"))
        .args([
            "unprivileged_the_files_read_where_nginx_t_cannot",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD, &out)
        .env("NCF_MAIN", &main)
        .uid(nobody)
        .gid(nobody)
        .output()
        .expect("run as nobody");
    assert!(
        child.status.success(),
        "{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    let read = std::fs::read_to_string(&out).expect("the dump");
    let _ = std::fs::remove_file(&out);
    assert_eq!(read, oracle);
}

/// The effective user id (from /proc: no libc call needed).
fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

// --- a format changed and nginx reloaded while the follower runs ------------------------------

/// The format before and after the operator's edit (`$request_time` added).
const BEFORE: &str = r#"$remote_addr [$time_local] "$request" $status"#;
const AFTER: &str = r#"$remote_addr [$time_local] "$request" $status $request_time"#;

/// A process killed (and reaped) when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `what` every 50 ms until it holds, for at most `secs` seconds.
fn wait_until(secs: u64, what: &str, mut ok: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s\n{}",
            context()
        );
        std::thread::sleep(std::time::Duration::from_millis(50)); // poll interval
    }
}

/// Each object the follower uploaded (format objects aside): its key, its lines and the
/// format-object keys it names, in its candidates' order.
fn segments(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, String, Vec<String>)> {
    use nginx_cloudwatch_forwarder::parse::object_format::{
        META_LOG_FORMAT, META_LOG_FORMATS, decode_formats, decode_meta, is_format_key,
    };
    common::block_on(async {
        let list = s3
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .expect("list");
        let mut out = Vec::new();
        for o in list.contents() {
            let key = o.key().unwrap_or_default().to_string();
            if is_format_key(&key) {
                continue;
            }
            let got = s3
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .expect("get");
            let meta = got.metadata().cloned().unwrap_or_default();
            let named = match (meta.get(META_LOG_FORMATS), meta.get(META_LOG_FORMAT)) {
                (Some(v), _) => decode_formats(v).expect("ncf-log-formats decodes"),
                (None, Some(v)) => vec![decode_meta(v).expect("ncf-log-format decodes")],
                (None, None) => Vec::new(),
            };
            let body = got.body.collect().await.expect("body").into_bytes();
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .read_to_string(&mut text)
                .expect("gzip");
            out.push((key, text, named));
        }
        out
    })
}

/// Issue 28: an operator adds `$request_time` to the `log_format` of a site and reloads nginx
/// while the follower runs. The follower notices the edit, reads the configuration again and
/// names both formats (the new one first) on what it ships from then on, each format object
/// uploaded once; after the log is rotated (USR1) it names the new one alone. A site added
/// with its own log (and nginx reloaded) is followed from then on. The forwarder (`replay`)
/// reads every line, before and after, with no parse error.
#[test]
fn a_format_changed_and_reloaded_lines_before_and_after_both_parse() {
    use nginx_cloudwatch_forwarder::ship::{format_key, nginx_conf::Format};
    let p = Prefix::new("reload");
    let port = free_port(Ipv4Addr::LOCALHOST.into());
    let d = p.0.display().to_string();
    std::fs::create_dir_all(p.0.join("sites-enabled")).expect("mkdir");
    p.write(
        "nginx.conf",
        &format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr info;\n\
             events {{ worker_connections 64; }}\nhttp {{\n\
             \x20   client_body_temp_path temp/body; proxy_temp_path temp/proxy;\n\
             \x20   fastcgi_temp_path temp/fastcgi; uwsgi_temp_path temp/uwsgi; scgi_temp_path temp/scgi;\n\
             \x20   include formats.conf;\n    include sites-enabled/*;\n}}\n"
        ),
    );
    let formats = |f: &str| format!("log_format site '{f}';\n");
    p.write("formats.conf", &formats(BEFORE));
    p.write(
        "sites-enabled/shop",
        &format!(
            "server {{\n    listen 127.0.0.1:{port};\n    access_log logs/shop.access.log site;\n\
             \x20   location / {{ return 200 \"ok\\n\"; }}\n}}\n"
        ),
    );
    let log = p.0.join("logs/shop.access.log");
    // nginx with its master process: `nginx -s reload` and `-s reopen` need it.
    let stderr = std::fs::File::create(p.0.join("nginx.stderr")).expect("create");
    let _nginx = Killed(
        p.nginx()
            .args(["-g", "daemon off; master_process on;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start nginx"),
    );
    wait_until(
        60,
        "nginx listens",
        || TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok(),
        || std::fs::read_to_string(p.0.join("nginx.stderr")).unwrap_or_default(),
    );
    // The follower can tell which configuration a running nginx was started with.
    let built_in = discover::Reader::new(
        &nginx_binary().display().to_string(),
        discover::Overrides::default(),
    )
    .expect("nginx -V")
    .defaults;
    let main = format!("{d}/nginx.conf");
    wait_until(
        60,
        "the master process found with its configuration",
        || {
            discover::running_masters(&built_in)
                .iter()
                .any(|m| m.main == main)
        },
        || format!("{:?}", discover::running_masters(&built_in)),
    );
    let signal = |s: &str| {
        let out = p.nginx().args(["-s", s]).output().expect("nginx -s");
        assert!(
            out.status.success(),
            "nginx -s {s}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let send_to = |port: u16, tag: &str, n: usize| {
        for i in 0..n {
            get(port, &format!("/{tag}/{i}"), "shop");
        }
    };
    let send = |tag: &str, n: usize| send_to(port, tag, n);

    let moto = common::moto::Moto::start();
    let imds = common::imds::ImdsServer::start(common::imds::Imds::Serve);
    let bucket = common::block_on(common::notify::NotifyingBucket::create(
        &moto,
        "reload-formats",
    ));
    let (s3, _) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    let follower_log = p.0.join("follower.stderr");
    let _follower = Killed(
        // No FILE: every log the configuration names (the access log: errors go to stderr).
        common::ship_command_files(&moto, &imds, &bucket.bucket, &p.0.join("state"), &[])
            .env("NGINX_BIN", nginx_binary())
            .env("NGINX_CONF", p.0.join("nginx.conf"))
            .env("NGINX_PREFIX", &p.0)
            .args(["--interval", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&follower_log).expect("create"))
            .spawn()
            .expect("start the follower"),
    );
    let said = || std::fs::read_to_string(&follower_log).unwrap_or_default();
    let shipped = |tag: &str| {
        segments(&s3, &bucket.bucket)
            .iter()
            .map(|(_, text, _)| text.matches(&format!(" /{tag}/")).count())
            .sum::<usize>()
    };

    // Before: one format.
    send("before", 5);
    wait_until(
        30,
        "the lines before shipped",
        || shipped("before") == 5,
        said,
    );
    assert!(said().contains("read from 3 file(s)"), "{}", said());
    assert!(!said().contains("but nginx runs with"), "{}", said());

    // The operator edits the format: the follower notices it, then nginx reloads.
    p.write("formats.conf", &formats(AFTER));
    wait_until(
        60,
        "the edit noticed",
        || said().contains("nginx now writes it in log_format site"),
        said,
    );
    signal("reload");
    // Requests until nginx's new workers write the new format.
    let timed = regex::Regex::new(r"\d+\.\d{3}$").expect("regex");
    let mut after = 0;
    wait_until(
        60,
        "nginx writes the new format",
        || {
            send(&format!("after{after}"), 1);
            after += 1;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().last().is_some_and(|l| timed.is_match(l))
        },
        said,
    );
    send("after", 5);
    wait_until(
        30,
        "the lines after shipped",
        || shipped("after") == 5,
        said,
    );

    // The log rotated (rename + USR1): a new file, written under the new configuration only.
    std::fs::rename(&log, p.0.join("logs/shop.access.log.1")).expect("rotate");
    signal("reopen");
    // `nginx -s reopen` returns once the signal is sent; until the workers reopen, lines still
    // go to the renamed file. So a request per poll, until one lands in the new file and the
    // follower ships it with the new format alone.
    wait_until(
        30,
        "the older format dropped",
        || {
            send("rotated", 1);
            said().contains("the older formats are no longer named")
        },
        said,
    );
    send("late", 5);
    wait_until(
        30,
        "the lines after the rotation shipped",
        || shipped("late") == 5,
        said,
    );

    // A new site with its own log, and nginx reloaded: followed from then on.
    let blog = free_port(Ipv4Addr::LOCALHOST.into());
    p.write(
        "sites-enabled/blog",
        &format!(
            "server {{\n    listen 127.0.0.1:{blog};\n    access_log logs/blog.access.log site;\n\
             \x20   location / {{ return 200 \"blog\\n\"; }}\n}}\n"
        ),
    );
    wait_until(
        60,
        "the new log followed",
        || said().contains("blog.access.log: following it from now on"),
        said,
    );
    signal("reload");
    wait_until(
        60,
        "nginx listens for the blog",
        || TcpStream::connect((Ipv4Addr::LOCALHOST, blog)).is_ok(),
        said,
    );
    send_to(blog, "blog", 5);
    wait_until(
        30,
        "the blog's lines shipped",
        || shipped("blog") == 5,
        said,
    );

    let key = |f: &str| {
        format_key(
            "nginx/",
            common::imds::INSTANCE_ID,
            &Format {
                name: "site".into(),
                escape: nginx_cloudwatch_forwarder::parse::format::Escape::Default,
                text: f.into(),
                at: None,
            }
            .to_config(),
        )
    };
    let (old, new) = (key(BEFORE), key(AFTER));
    let segs = segments(&s3, &bucket.bucket);
    let naming = |tag: &str| -> Vec<&Vec<String>> {
        segs.iter()
            .filter(|(_, text, _)| text.contains(&format!(" /{tag}/")))
            .map(|(_, _, named)| named)
            .collect()
    };
    let context = || format!("{segs:#?}\n{}", said());
    assert!(
        naming("before").iter().all(|n| **n == [old.clone()]),
        "{}",
        context()
    );
    let both = [new.clone(), old.clone()];
    assert!(
        naming("after").iter().all(|n| **n == both),
        "segments after the change name both, the new first: {}",
        context()
    );
    for tag in ["late", "blog"] {
        assert!(
            naming(tag).iter().all(|n| **n == [new.clone()]),
            "{tag}: the new format alone: {}",
            context()
        );
    }
    // Both format objects are there, each holding its format.
    for (k, f) in [(&old, BEFORE), (&new, AFTER)] {
        let body = common::block_on(async {
            s3.get_object()
                .bucket(&bucket.bucket)
                .key(k)
                .send()
                .await
                .unwrap_or_else(|e| panic!("the format object {k}: {e:?}"))
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes()
        });
        assert_eq!(String::from_utf8_lossy(&body), format!("'{f}'"));
    }

    // The forwarder reads every line of every object, before and after, in its own format.
    let event = common::block_on(bucket.lambda_event());
    let (code, summary) = common::moto::replay(&event, &moto.env());
    assert_eq!(code, Some(0), "replay: {summary:#}");
    let lines: usize = segs.iter().map(|(_, t, _)| t.lines().count()).sum();
    assert_eq!(summary["parse_errors"], 0, "{summary:#}");
    assert_eq!(summary["objects_failed"], 0, "{summary:#}");
    assert_eq!(summary["events"], lines as u64, "{summary:#}");
    println!(
        "{} objects, {lines} lines: parse_errors {}, format_fallbacks {}",
        segs.len(),
        summary["parse_errors"],
        summary["format_fallbacks"]
    );
    // Exactly the old-format lines in objects that name both fell back to the old format (how
    // many there are depends on when nginx's reload took effect: the probes before it).
    let old_in_both = segs
        .iter()
        .filter(|(_, _, named)| **named == both)
        .flat_map(|(_, text, _)| text.lines())
        .filter(|l| !timed.is_match(l))
        .count() as u64;
    assert_eq!(
        summary["format_fallbacks"].as_u64().unwrap_or(0),
        old_in_both,
        "the lines before the reload in objects that name both fell back to the old format: {summary:#}"
    );
}
