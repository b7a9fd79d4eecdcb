//! Fifty site logs on one host (issue 28): Debian names access logs by site
//! (`/var/log/nginx/shop.example.com.access.log`) and nginx's configuration says which kind each
//! is. The follower used to make one object per file per interval: 50 objects a minute at the
//! default interval, each an S3 PUT, the forwarder's lease PUT, a GET, GetObjectTagging,
//! PutObjectTagging and a Lambda invocation. The files of one kind now ship together: per pass,
//! one object per kind.
//!
//! Real nginx's `nginx -T` names 50 access logs and an error log; this test writes them
//! steadily for several intervals while `ship` (no FILE: every log the configuration names)
//! ships them to moto. Every line arrives exactly once (read back from the objects), and what
//! costs money is counted where it is received, from moto's request log: objects and requests
//! per interval. The forwarder (`replay`) then delivers each line once.
//!
//! `NCF_SHIP_BIN=PATH` runs another build's binary instead (to measure the bill before
//! bundles): exactly-once is still asserted, the bound on objects is not (it is this build's).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::block_on;
use common::imds::{Imds, ImdsServer};
use common::moto::Moto;

const BUCKET: &str = "fifty-sites";
const SITES: usize = 50;
/// `--interval`, seconds: short, so that the test spans several intervals in seconds.
const INTERVAL: u64 = 2;
/// How long the writer writes.
const WRITING: Duration = Duration::from_secs(10);
/// Lines a second over all files (5 per site and second), an error line per 20.
const RATE: u64 = 250;

fn site_log(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("log/site{i:02}.example.com.access.log"))
}

/// nginx.conf with one server per site, each writing its own access log, and an error log.
fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    let mut conf = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/log/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n"
    );
    for i in 0..SITES {
        conf.push_str(&format!(
            "  server {{ listen 127.0.0.1:1; server_name site{i:02}.example.com; access_log {}; }}\n",
            site_log(dir, i).display()
        ));
    }
    conf.push_str("}\n");
    conf
}

/// Appends line `n` (`GET /r/<n>`, an access line to site `n % SITES`, every 20th an error
/// line) at `start + n / RATE`, for `WRITING`; how many lines were written.
fn write_steadily(dir: PathBuf) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut files: Vec<std::fs::File> = (0..SITES)
            .map(|i| site_log(&dir, i))
            .chain([dir.join("log/error.log")])
            .map(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .expect("open a log")
            })
            .collect();
        let start = Instant::now();
        let total = RATE * WRITING.as_secs();
        let mut n = 0;
        while n < total {
            let due = ((start.elapsed().as_secs_f64() * RATE as f64) as u64 + 1).min(total);
            for i in n..due {
                let (file, line) = if i % 20 == 19 {
                    (
                        SITES,
                        format!(
                            "2026/12/05 10:00:00 [error] 7#7: *{i} open() \"/srv/x\" failed (2: No such file or directory), client: 198.51.100.7, server: site.example.com, request: \"GET /r/{i} HTTP/1.1\""
                        ),
                    )
                } else {
                    let site = i as usize % SITES;
                    (
                        site,
                        common::combined_line(
                            "198.51.100.7",
                            common::now_ms(),
                            &format!("/r/{i}"),
                            200,
                        ),
                    )
                };
                files[file]
                    .write_all(format!("{line}\n").as_bytes())
                    .expect("append");
            }
            n = due;
            std::thread::sleep(Duration::from_millis(10)); // pacing, not synchronisation
        }
        n
    })
}

/// What the test saw of the bucket: each log object's lines and metadata.
#[derive(Default)]
struct Seen {
    /// Key → (kind directory, metadata).
    objects: BTreeMap<String, (String, BTreeMap<String, String>)>,
    formats: BTreeSet<String>,
    /// Line number → the keys it arrived in.
    lines: BTreeMap<u64, Vec<String>>,
}

impl Seen {
    fn poll(&mut self, s3: &aws_sdk_s3::Client) {
        let listed = block_on(s3.list_objects_v2().bucket(BUCKET).send()).expect("list");
        for obj in listed.contents() {
            let key = obj.key().unwrap_or_default().to_string();
            if key.contains("/formats/") {
                self.formats.insert(key);
                continue;
            }
            if self.objects.contains_key(&key) {
                continue;
            }
            let (body, meta) = block_on(async {
                let out = s3
                    .get_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .send()
                    .await
                    .expect("get");
                let meta: BTreeMap<String, String> = out
                    .metadata()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                (out.body.collect().await.expect("body").into_bytes(), meta)
            });
            for n in common::request_numbers(&body) {
                self.lines.entry(n).or_default().push(key.clone());
            }
            let kind = if key.contains("/access/") {
                "access"
            } else {
                "error"
            };
            self.objects.insert(key, (kind.to_string(), meta));
        }
    }
}

#[test]
fn fifty_site_logs_make_one_object_per_kind_per_interval_and_every_line_arrives_once() {
    fifty_sites(None);
}

/// The follower is killed (SIGKILL, wherever it is: most often between passes, since a pass
/// takes milliseconds) while the files are written, and started again: every line still
/// arrives exactly once. Each crash point inside a pass (between the plans, the put and the
/// positions) is tested deterministically in crates/ncf-ship/src/tests.rs.
#[test]
fn killed_mid_run_and_started_again_every_line_arrives_once() {
    fifty_sites(Some(Duration::from_millis(4_300)));
}

/// Runs the follower on 50 site logs and an error log written steadily; `kill_at`: when to
/// kill it (SIGKILL) and start it again.
fn fifty_sites(kill_at: Option<Duration>) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ncf-bundles-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("log")).expect("scratch dir");
    std::fs::create_dir_all(dir.join("tmp")).expect("scratch dir");
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&dir)).expect("write nginx.conf");
    // What the follower runs as nginx: the real one, on this configuration (`-T`, `-V`).
    let nginx = dir.join("nginx");
    common::nginx::write_wrapper(&nginx, &dir, &conf);
    for i in 0..SITES {
        std::fs::write(site_log(&dir, i), "").expect("create a site log");
    }
    std::fs::write(dir.join("log/error.log"), "").expect("create the error log");

    let moto = Moto::start_logged();
    let (s3, _) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    block_on(s3.create_bucket().bucket(BUCKET).send()).expect("create bucket");
    let imds = ImdsServer::start(Imds::Serve);
    let other = std::env::var("NCF_SHIP_BIN").ok().filter(|b| !b.is_empty());
    let mut cmd = common::ship_command_files(&moto, &imds, BUCKET, &dir.join("state"), &[]);
    if let Some(bin) = &other {
        let mut o = Command::new(bin);
        o.args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => o.env(k, v),
                None => o.env_remove(k),
            };
        }
        cmd = o;
    }
    let follower_log = dir.join("follower.log");
    cmd.env("NGINX_BIN", &nginx)
        .env("NGINX_CONF", &conf)
        .env("NGINX_PREFIX", &dir)
        .args(["--interval", &INTERVAL.to_string()])
        .stdout(Stdio::null());
    let mut start = || {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&follower_log)
            .expect("follower log");
        cmd.stderr(log).spawn().expect("start the follower")
    };
    let mut follower = start();
    let started = Instant::now();
    let writer = write_steadily(dir.clone());
    let mut seen = Seen::default();
    let mut kill_at = kill_at;
    let starts = 1 + u64::from(kill_at.is_some());
    while !writer.is_finished() {
        seen.poll(&s3);
        if kill_at.is_some_and(|t| started.elapsed() >= t) {
            kill_at = None;
            follower.kill().expect("SIGKILL the follower");
            let _ = follower.wait();
            follower = start();
        }
        std::thread::sleep(Duration::from_millis(200)); // poll interval
    }
    let total = writer.join().expect("writer");
    // The last lines wait for the next interval at most (and one poll of the files).
    let deadline = Instant::now() + Duration::from_secs(INTERVAL * 2 + 10);
    while (seen.lines.len() as u64) < total && Instant::now() < deadline {
        seen.poll(&s3);
        std::thread::sleep(Duration::from_millis(200)); // poll interval
    }
    let ran = started.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &follower.id().to_string()])
        .status();
    let status = follower.wait().expect("wait for the follower");
    seen.poll(&s3);
    let stderr = std::fs::read_to_string(&follower_log).unwrap_or_default();
    let context = || format!("follower's log:\n{stderr}");
    assert!(
        status.success(),
        "follower exited {status:?}\n{}",
        context()
    );
    assert!(
        stderr.contains(&format!("names {} log file(s)", SITES + 1)),
        "{}",
        context()
    );

    // Every line exactly once.
    let missing: Vec<u64> = (0..total).filter(|n| !seen.lines.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{} of {total} lines missing: {missing:?}\n{}",
        missing.len(),
        context()
    );
    let twice: Vec<_> = seen.lines.iter().filter(|(_, k)| k.len() > 1).collect();
    assert!(twice.is_empty(), "lines shipped twice: {twice:?}");
    assert_eq!(seen.lines.len() as u64, total, "lines never written");

    // What costs money, as moto received it: the follower's requests are its PutObjects (one
    // per log object and per format object); the rest are this test's listings and reads.
    let objects = seen.objects.len() as u64;
    let kinds = moto.received_by_kind();
    let own: BTreeSet<&str> = ["CreateBucket", "ListObjectsV2", "GetObject"].into();
    let follower_kinds: BTreeMap<&&str, &u64> =
        kinds.iter().filter(|(k, _)| !own.contains(*k)).collect();
    let puts = kinds.get("PutObject").copied().unwrap_or(0);
    assert_eq!(
        follower_kinds,
        BTreeMap::from([(&"PutObject", &puts)]),
        "requests by kind: {kinds:?}"
    );
    // PutObjects of log objects (each once: no retries here) and of format objects (a 412 for
    // one already there counts: S3 bills it).
    let received = moto.received();
    let format_puts = received
        .iter()
        .filter(|r| r.s3_kind() == "PutObject" && r.path.contains("/formats/"))
        .count() as u64;
    // Each log object put once; after a kill, a bundle put again is answered 412 (it is there).
    if starts == 1 {
        assert_eq!(puts - format_puts, objects, "log objects put once each");
    } else {
        assert!(
            puts - format_puts >= objects,
            "{puts} puts, {objects} objects"
        );
    }
    let intervals = ran.as_secs_f64() / INTERVAL as f64;
    let per_kind = |k: &str| seen.objects.values().filter(|(kind, _)| kind == k).count();
    eprintln!(
        "{}{SITES} site logs and an error log, {RATE} lines/s for {} s, --interval {INTERVAL}: {total} lines each once in {objects} objects ({} access, {} error; {:.2} per interval over {intervals:.1} intervals); the follower's S3 requests {follower_kinds:?}: {objects} log objects ({:.2} per interval) and {format_puts} of {} format object(s)",
        if starts > 1 {
            "killed and started again: "
        } else {
            ""
        },
        WRITING.as_secs(),
        per_kind("access"),
        per_kind("error"),
        objects as f64 / intervals,
        objects as f64 / intervals,
        seen.formats.len(),
    );
    if other.is_some() {
        return;
    }
    assert_eq!(
        format_puts, starts,
        "the format object is put once per process"
    );
    // One object per kind per interval the follower ran, and the first look at start; a
    // pass that starts while a write is half done may leave a line's rest for one more.
    let bound = 2 * (intervals.ceil() as u64 + starts) + 2;
    assert!(
        objects <= bound,
        "{objects} objects in {intervals:.1} intervals of {INTERVAL} s (at most {bound}; about 50 an interval before bundles)\n{}",
        context()
    );
    // What a bundle's metadata says: the one format all access logs share (nginx's combined),
    // alone as before bundles, and how many files its lines come from.
    let format = seen.formats.iter().next().cloned().unwrap_or_default();
    let bundles: Vec<&BTreeMap<String, String>> = seen
        .objects
        .iter()
        .filter(|(k, (kind, _))| kind == "access" && k.contains("/bundle-"))
        .map(|(_, (_, m))| m)
        .collect();
    assert!(!bundles.is_empty(), "{:?}", seen.objects.keys());
    for meta in bundles {
        assert_eq!(meta.get("ncf-log-format"), Some(&format), "{meta:?}");
        let files: usize = meta
            .get("ncf-files")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!((2..=SITES).contains(&files), "{meta:?}");
        assert!(
            !meta.contains_key("ncf-source") && !meta.contains_key("ncf-parts"),
            "{meta:?}"
        );
    }
    // The forwarder delivers every line of the bundles once, each access line parsed with the
    // format the bundle names (no ACCESS_LOG_FORMAT given: the deployment's default would do
    // here too, so parse errors are what tells).
    let keys: Vec<&str> = seen.objects.keys().map(String::as_str).collect();
    let mut env = moto.env();
    env.push(("OUTPUT_FORMAT", "raw".into()));
    let (code, summary) = common::moto::replay(&common::s3_event(BUCKET, &keys), &env);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(summary["events"].as_u64(), Some(total), "{summary}");
    assert_eq!(
        summary["parse_errors"].as_u64().unwrap_or(0),
        0,
        "{summary}"
    );
    let (_, logs) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    let instance = keys[0].split('/').nth(1).unwrap_or_default().to_string();
    let mut delivered = 0;
    for group in ["nginx-access", "nginx-error"] {
        let events = block_on(common::moto::read_stream(&logs, group, &instance));
        for (_, message) in &events {
            assert!(message.contains("/r/"), "{group}: {message}");
        }
        delivered += events.len() as u64;
    }
    assert_eq!(delivered, total, "events in CloudWatch");
    let _ = std::fs::remove_dir_all(&dir);
}
