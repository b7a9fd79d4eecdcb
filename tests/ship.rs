//! `nginx-cloudwatch-forwarder ship`, the host-side follower, run as a process against moto and
//! a loopback IMDSv2 stand-in: segments of whole lines, idempotent re-runs, rotation by rename
//! and by copytruncate, S3 unreachable, follow mode stopped by SIGTERM, the segments read back
//! through the forwarder, and real nginx rotated by the test and by real logrotate running
//! scripts/logrotate/nginx-cloudwatch-follower.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::block_on;
use common::imds::{INSTANCE_ID, Imds, ImdsServer, NameTag};
use common::moto::Moto;
use common::{Scratch, ship_command};

const BUCKET: &str = "nginx-logs-follower";

// --- a host: log directory, state directory, running the command ----------------------------

struct Host {
    dir: Scratch,
    moto: Moto,
    imds: ImdsServer,
    s3: aws_sdk_s3::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    /// Every line appended, per log file name, in order (what must arrive exactly once).
    written: Vec<String>,
    next_line: usize,
}

impl Host {
    fn new(tag: &str) -> Self {
        let dir = Scratch::new(&format!("ship-{tag}"), &["log"]);
        let moto = Moto::start();
        let (s3, logs) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
        block_on(s3.create_bucket().bucket(BUCKET).send()).expect("create bucket");
        Host {
            dir,
            moto,
            imds: ImdsServer::start(Imds::Serve),
            s3,
            logs,
            written: Vec::new(),
            next_line: 0,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path("log/access.log")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path("state")
    }

    /// Appends `n` access lines (the last one without its newline when `partial`).
    fn append(&mut self, n: usize, partial: bool) {
        let mut text = String::new();
        for i in 0..n {
            let line = common::combined_line(
                "10.1.2.3",
                common::now_ms(),
                &format!("/page/{}", self.next_line),
                200,
            );
            self.next_line += 1;
            text.push_str(&line);
            if !(partial && i + 1 == n) {
                text.push('\n');
            }
            self.written.push(line);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("open the log");
        f.write_all(text.as_bytes()).expect("append");
    }

    /// Ends a partial last line.
    fn newline(&self) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.log())
            .expect("open the log");
        f.write_all(b"\n").expect("append");
    }

    fn command(&self, extra: &[(&str, String)]) -> Command {
        let mut cmd = ship_command(
            &self.moto,
            &self.imds,
            BUCKET,
            &self.state_dir(),
            &self.log(),
        );
        cmd.envs(extra.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    }

    /// `ship --once`; its output.
    fn ship(&self, extra: &[(&str, String)]) -> Output {
        let out = self
            .command(extra)
            .arg("--once")
            .output()
            .expect("run the binary");
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn ship_ok(&self) -> String {
        let out = self.ship(&[]);
        assert!(out.status.success(), "ship --once failed: {:?}", out.status);
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The position files (`*.pos`; the directory also holds the lock file).
    fn state(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.state_dir()) {
            for e in entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "pos"))
            {
                out.push((
                    e.path(),
                    std::fs::read_to_string(e.path()).expect("read state"),
                ));
            }
        }
        out.sort();
        out
    }

    /// Keys with their ETags, sorted.
    fn objects(&self) -> Vec<(String, String)> {
        let out = block_on(self.s3.list_objects_v2().bucket(BUCKET).send()).expect("list");
        let mut objects: Vec<(String, String)> = out
            .contents()
            .iter()
            .map(|o| {
                (
                    o.key().unwrap_or_default().to_string(),
                    o.e_tag().unwrap_or_default().to_string(),
                )
            })
            .collect();
        objects.sort();
        objects
    }

    /// Every segment gunzipped, in the order of the follower's history (generation, then
    /// start offset), as (key, text).
    fn segments(&self) -> Vec<(String, String)> {
        let mut segs: Vec<((u64, u64), String, String)> = self
            .objects()
            .into_iter()
            .map(|(key, _)| {
                let body = block_on(async {
                    let o = self
                        .s3
                        .get_object()
                        .bucket(BUCKET)
                        .key(&key)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
                    assert_eq!(o.content_type(), Some("application/gzip"), "{key}");
                    o.body.collect().await.expect("read body").into_bytes()
                });
                let mut text = String::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_string(&mut text)
                    .expect("gzip");
                (order_of(&key), key, text)
            })
            .collect();
        segs.sort();
        segs.into_iter().map(|(_, k, t)| (k, t)).collect()
    }

    /// The user metadata (`x-amz-meta-*`) of every object, by key, sorted.
    fn metadata(&self) -> Vec<(String, Vec<(String, String)>)> {
        self.objects()
            .into_iter()
            .map(|(key, _)| {
                let meta = block_on(common::moto::object_metadata(&self.s3, BUCKET, &key));
                (key, meta)
            })
            .collect()
    }

    /// An executable `nginx` stand-in in the host's directory running `body` (a sh script).
    fn fake_nginx(&self, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let p = self.dir.path("fake-nginx");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write fake nginx");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p.display().to_string()
    }

    /// The lines of all segments, in order.
    fn shipped_lines(&self) -> Vec<String> {
        let text: String = self.segments().into_iter().map(|(_, t)| t).collect();
        text.lines().map(str::to_string).collect()
    }
}

/// (generation, start) from `…/<name>-<dev>.<ino>.g<gen>-<start>-<end>.gz`.
fn order_of(key: &str) -> (u64, u64) {
    let tail = key.rsplit('/').next().unwrap_or_default();
    let tail = tail.strip_suffix(".gz").expect("ends in .gz");
    let mut parts = tail.rsplitn(3, '-');
    let _end = parts.next();
    let start = parts.next().and_then(|s| s.parse().ok()).expect("start");
    let generation = parts
        .next()
        .and_then(|s| s.rsplit(".g").next())
        .and_then(|g| g.parse().ok())
        .expect("generation");
    (generation, start)
}

fn today() -> String {
    jiff::Timestamp::now().strftime("%Y/%m/%d").to_string()
}

// --- tests ---------------------------------------------------------------------------------

#[test]
fn appended_whole_lines_ship_as_segments_and_a_rerun_changes_nothing() {
    let mut host = Host::new("segments");
    host.append(30, false);
    let log1 = host.ship_ok();
    assert!(log1.contains("30 lines"), "{log1}");
    // Run by hand, each line says when (issue 27): RFC 3339, UTC.
    for line in log1.lines() {
        let stamp = line.split(' ').next().unwrap_or_default();
        assert!(
            stamp.len() >= 20 && stamp.ends_with('Z') && jiff::Timestamp::from_str(stamp).is_ok(),
            "no timestamp on {line:?}"
        );
    }
    // The instance ID came through IMDSv2: token first, then the ID with it.
    host.imds.assert_token_flow();
    let after_first = host.state();
    assert_eq!(after_first.len(), 1, "one position file");
    // More lines, the last one partial: it waits.
    host.append(20, true);
    host.ship_ok();
    let partial = host.written.pop().expect("the partial line");
    assert_eq!(host.shipped_lines(), host.written);
    let objects = host.objects();
    assert_eq!(objects.len(), 2);
    for (key, _) in &objects {
        assert!(
            key.starts_with(&format!(
                "nginx/{INSTANCE_ID}/access/{}/access.log-",
                today()
            )),
            "{key}"
        );
    }
    // Nothing new: nothing shipped. Under systemd, whose journal stamps each line, no time.
    let journal = host.ship(&[("JOURNAL_STREAM", "8:12345".into())]);
    let quiet = String::from_utf8_lossy(&journal.stderr);
    assert!(quiet.contains("nothing to ship"), "{quiet}");
    // (A line may be a warning: another nginx on this box runs with another -c.)
    assert!(
        quiet.lines().all(|l| {
            let l = l.trim_start();
            l.starts_with("INFO") || l.starts_with("WARN")
        }),
        "{quiet}"
    );
    assert_eq!(host.objects(), objects);

    // A crash after the upload, before the position was saved: put the first position back.
    let after_second = host.state();
    for (path, text) in &after_first {
        std::fs::write(path, text).expect("restore the state");
    }
    let log = host.ship_ok();
    assert!(log.contains("already in"), "{log}");
    assert_eq!(
        host.objects(),
        objects,
        "same keys, same ETags, nothing new"
    );
    assert_eq!(host.state(), after_second, "the position caught up");

    // The partial line completes and ships.
    host.newline();
    host.written.push(partial);
    host.ship_ok();
    assert_eq!(host.shipped_lines(), host.written);
    assert_eq!(host.objects().len(), 3);
}

/// The metadata each segment must carry besides the host's: the source path and byte range.
fn own_meta(host: &Host, key: &str) -> Vec<(String, String)> {
    let (start, end) = {
        let tail = key.rsplit('/').next().unwrap_or_default();
        let tail = tail.strip_suffix(".gz").expect("ends in .gz");
        let mut parts = tail.rsplitn(3, '-');
        let end = parts.next().expect("end").to_string();
        (parts.next().expect("start").to_string(), end)
    };
    vec![
        ("ncf-bytes".into(), format!("{start}-{end}")),
        (
            "ncf-source".into(),
            host.log().display().to_string().replace(' ', "%20"),
        ),
    ]
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

#[test]
fn every_segment_carries_the_name_tag_the_instance_id_and_the_nginx_version() {
    let mut host = Host::new("meta-tag");
    // A Name tag with a space, a percent sign and non-ASCII: percent-encoded on the wire.
    host.imds = ImdsServer::start_with(Imds::Serve, NameTag::Is("web 01 100% café".into()));
    let nginx = host.fake_nginx("echo 'nginx version: nginx/9.8.7' >&2");
    host.append(10, false);
    let log1 =
        String::from_utf8_lossy(&host.ship(&[("NGINX_BIN", nginx.clone())]).stderr).into_owned();
    host.imds.assert_token_flow();
    assert!(
        log1.contains(&format!(
            "instance {INSTANCE_ID}, hostname \"web 01 100% café\" (the Name tag), nginx 9.8.7"
        )),
        "{log1}"
    );
    host.append(5, false);
    let out = host.ship(&[("NGINX_BIN", nginx)]);
    assert!(out.status.success());

    let meta = host.metadata();
    assert_eq!(meta.len(), 2, "two segments");
    for (key, got) in meta {
        let mut want = own_meta(&host, &key);
        want.extend([
            (
                "hostname".to_string(),
                "web%2001%20100%25%20caf%C3%A9".to_string(),
            ),
            ("instance-id".to_string(), INSTANCE_ID.to_string()),
            ("nginx-version".to_string(), "9.8.7".to_string()),
        ]);
        assert_eq!(got, sorted(want), "{key}");
    }
}

#[test]
fn without_a_name_tag_the_hostname_is_the_systems_and_an_unknown_nginx_version_is_left_out() {
    // What `hostname -f` says (the shell shipper's rule too), else the kernel's host name.
    let system = Command::new("hostname")
        .arg("-f")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .expect("the kernel's host name")
                .trim()
                .to_string()
        });
    assert!(!system.is_empty());
    for (tag, case) in [(NameTag::Absent, "404"), (NameTag::Refused, "403")] {
        let mut host = Host::new("meta-system");
        host.imds = ImdsServer::start_with(Imds::Serve, tag.clone());
        let nginx = host.fake_nginx("echo 'sh: nginx: broken' >&2; exit 127");
        host.append(3, false);
        let out = host.ship(&[("NGINX_BIN", nginx)]);
        assert!(
            out.status.success(),
            "{case}: the upload never fails for the name"
        );
        let log = String::from_utf8_lossy(&out.stderr);
        host.imds.assert_token_flow();
        assert!(
            log.contains(&format!(
                "hostname {system:?} (the system's host name), nginx version unknown"
            )),
            "{case}: {log}"
        );
        // Only a failure other than 404 is worth a warning.
        assert_eq!(
            log.contains("cannot read the Name tag"),
            tag == NameTag::Refused,
            "{case}: {log}"
        );
        let meta = host.metadata();
        assert_eq!(meta.len(), 1, "{case}");
        let (key, got) = &meta[0];
        let mut want = own_meta(&host, key);
        want.extend([
            ("hostname".to_string(), system.clone()),
            ("instance-id".to_string(), INSTANCE_ID.to_string()),
        ]);
        assert_eq!(*got, sorted(want), "{case}: {key}");
        assert_eq!(host.shipped_lines(), host.written, "{case}");
    }
}

#[test]
fn rename_rotation_mid_run_ships_every_line_once() {
    let mut host = Host::new("rename");
    host.append(10, false);
    host.ship_ok();
    host.append(5, false);
    // logrotate's create: rename; nginx reopens (USR1) and writes the new file.
    let rotated = host.dir.path("log/access.log-20261130T0400");
    std::fs::rename(host.log(), &rotated).expect("rename");
    host.append(7, false);
    let log = host.ship_ok();
    assert!(log.contains("was rotated to"), "{log}");
    assert_eq!(host.shipped_lines(), host.written);
    // Compressed and removed by logrotate: not shipped again, nothing reported lost.
    std::fs::remove_file(&rotated).expect("remove the rotated file");
    host.append(3, false);
    let log = host.ship_ok();
    assert!(!log.contains("LOST"), "{log}");
    assert_eq!(host.shipped_lines(), host.written);

    // Rotated away before it was shipped: reported, the new file still ships. (The new file
    // is created before the old one is removed, so that it cannot reuse its inode number.)
    host.append(4, false);
    let gone = host.dir.path("log/access.log-gone");
    std::fs::rename(host.log(), &gone).expect("rotate");
    let lost: Vec<String> = host.written.drain(host.written.len() - 4..).collect();
    host.append(2, false);
    std::fs::remove_file(&gone).expect("remove unshipped");
    let log = host.ship_ok();
    assert!(log.contains("rotated away"), "{log}");
    let shipped = host.shipped_lines();
    assert_eq!(shipped, host.written);
    assert!(lost.iter().all(|l| !shipped.contains(l)));
}

#[test]
fn copytruncate_mid_run_ships_every_line_once() {
    let mut host = Host::new("copytruncate");
    host.append(10, false);
    host.ship_ok();
    host.append(6, false);
    host.ship_ok();
    // Lines the follower has not shipped yet when logrotate copies and truncates: they are
    // shipped from the copy (found by the file's first bytes).
    host.append(5, false);
    // logrotate's copytruncate: copy, then truncate in place; nginx goes on writing at 0.
    std::fs::copy(host.log(), host.dir.path("log/access.log.1")).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(host.log())
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    host.append(4, false);
    let log = host.ship_ok();
    assert!(log.contains("truncated in place"), "{log}");
    assert!(log.contains("from its copy"), "{log}");
    host.append(3, false);
    host.ship_ok();
    assert_eq!(host.shipped_lines(), host.written);
    // The restarted file's segments have their own generation in the key.
    let gens: Vec<u64> = host.objects().iter().map(|(k, _)| order_of(k).0).collect();
    assert!(gens.contains(&0) && gens.contains(&1), "{gens:?}");
}

#[test]
fn s3_unreachable_fails_keeps_the_position_and_the_next_run_ships_everything() {
    let mut host = Host::new("unreachable");
    host.append(8, false);
    host.ship_ok();
    let before = host.state();
    host.append(12, false);
    // A port nothing listens on; two attempts, so the test does not wait for the full policy.
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let out = host.ship(&[
        ("AWS_ENDPOINT_URL", format!("http://{closed}")),
        ("AWS_MAX_ATTEMPTS", "2".into()),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not shipped"), "{stderr}");
    // The offset did not move; the planned segment is recorded so that it is sent as planned.
    let offset_line = |state: &[(PathBuf, String)]| {
        state[0]
            .1
            .lines()
            .find(|l| l.starts_with("offset "))
            .map(str::to_string)
    };
    assert_eq!(offset_line(&host.state()), offset_line(&before));
    assert!(host.state()[0].1.contains("\npending "));
    host.ship_ok();
    assert_eq!(host.shipped_lines(), host.written);
    assert!(!host.state()[0].1.contains("pending"));
}

#[test]
fn follow_mode_ships_by_interval_and_by_size_and_stops_on_sigterm() {
    let mut host = Host::new("follow");
    host.append(5, false);
    let child = Running::new(
        host.command(&[])
            .args(["--interval", "1", "--max-segment", "100000"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the follower"),
    );
    let wait_for = |host: &Host, want: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if host.shipped_lines().len() >= want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{want} lines not shipped in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100)); // poll interval
        }
    };
    wait_for(&host, 5);
    host.append(10, false);
    wait_for(&host, 15);
    // Over a segment's worth at once: shipped in segments of at most 100000 bytes.
    host.append(1500, false);
    wait_for(&host, 1515);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let out = child.finish();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("stopping"), "{stderr}");
    assert_eq!(host.shipped_lines(), host.written);
    // Each segment was cut at most 100000 bytes (before gzip) and at a line end.
    for (key, text) in host.segments() {
        assert!(text.len() <= 100_000 && text.ends_with('\n'), "{key}");
    }
}

#[test]
fn sigterm_during_an_upload_abandons_it_without_saving_and_the_next_run_sends_it() {
    let mut host = Host::new("sigterm");
    host.append(6, false);
    host.ship_ok();
    let before = host.state();
    host.append(9, false);
    // An S3 endpoint that accepts connections and never answers: the upload hangs.
    let black_hole = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = black_hole.local_addr().expect("address");
    black_hole.set_nonblocking(true).expect("non-blocking");
    let child = Running::new(
        host.command(&[("AWS_ENDPOINT_URL", format!("http://{addr}"))])
            .args(["--interval", "1"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the follower"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let _held = loop {
        match black_hole.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the follower never connected");
                std::thread::sleep(Duration::from_millis(20)); // poll interval
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    let stopped_at = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let out = child.finish();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(stderr.contains("upload in flight is abandoned"), "{stderr}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        stopped_at.elapsed()
    );
    // The offset is where it was; the planned segment is recorded and sent by the next run.
    let offset = |state: &[(PathBuf, String)]| {
        state[0]
            .1
            .lines()
            .find(|l| l.starts_with("offset "))
            .map(str::to_string)
    };
    assert_eq!(offset(&host.state()), offset(&before));
    host.ship_ok();
    assert_eq!(host.shipped_lines(), host.written);
}

#[test]
fn the_forwarder_delivers_every_shipped_line_once() {
    let mut host = Host::new("forward");
    host.append(40, false);
    host.ship_ok();
    host.append(25, true);
    host.ship_ok();
    let before_last = host.state();
    host.newline();
    host.ship_ok();
    let keys: Vec<String> = host.objects().into_iter().map(|(k, _)| k).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut env = host.moto.env();
    env.push(("OUTPUT_FORMAT", "raw".into()));
    let (code, summary) = common::moto::replay(&common::s3_event(BUCKET, &key_refs), &env);
    assert_eq!(code, Some(0), "{summary}");
    // A crash-like re-run of the follower (position put back) after the forwarder delivered:
    // the segment is found in S3 and left alone, so its progress tag survives (an overwrite
    // would drop it and have the forwarder deliver the segment again).
    for (path, text) in &before_last {
        std::fs::write(path, text).expect("put the position back");
    }
    let log = host.ship_ok();
    assert!(log.contains("already in"), "{log}");
    assert_eq!(host.objects().len(), keys.len());
    // Announced twice (S3 may do that): nothing arrives twice.
    let (code, summary) = common::moto::replay(&common::s3_event(BUCKET, &key_refs), &env);
    assert_eq!(code, Some(0), "{summary}");
    let events = block_on(common::moto::read_stream(
        &host.logs,
        "nginx-access",
        INSTANCE_ID,
    ));
    let mut got: Vec<String> = events.into_iter().map(|(_, m)| m).collect();
    let mut want = host.written.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// Files named by site, as Debian and most fleets name them: nginx's own configuration (real
/// nginx's `nginx -T`) says which kind each file is. With no FILE every log it names is followed;
/// a FILE that neither its name nor the configuration explains is refused on its own, and the
/// others still ship (issue 28: one such name stopped the whole run with nothing shipped).
#[test]
fn site_named_files_are_followed_as_nginx_configuration_says() {
    let host = Host::new("sites");
    let d = host.dir.dir().display().to_string();
    let conf = host.dir.path("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {d}/nginx.pid;\nerror_log {d}/log/shop.example.com.error.log;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n\
             server {{ listen 127.0.0.1:1; access_log {d}/log/shop.example.com.access.log; }}\n}}\n"
        ),
    )
    .expect("write nginx.conf");
    // What the follower runs as nginx: the real one, on this configuration.
    let nginx = host.fake_nginx(&format!(
        "exec {} -p {d}/ -c {} \"$@\"",
        common::nginx::nginx_binary().display(),
        conf.display()
    ));
    let access = host.dir.path("log/shop.example.com.access.log");
    let error = host.dir.path("log/shop.example.com.error.log");
    let line = common::combined_line("10.1.2.3", common::now_ms(), "/shop", 200);
    std::fs::write(&access, format!("{line}\n")).expect("access");
    let err_line = "2026/12/05 10:00:00 [error] 7#7: *1 open() \"/srv/x\" failed (2: No such file or directory), client: 10.1.2.3, server: shop, request: \"GET /x HTTP/1.1\"";
    std::fs::write(&error, format!("{err_line}\n")).expect("error");

    let run = |files: &[&Path]| {
        let out =
            common::ship_command_files(&host.moto, &host.imds, BUCKET, &host.state_dir(), files)
                .env("NGINX_BIN", &nginx)
                // Where the wrapper's nginx reads its configuration (the follower reads the files).
                .env("NGINX_CONF", &conf)
                .env("NGINX_PREFIX", &d)
                .arg("--once")
                .output()
                .expect("run ship");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), stderr)
    };
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("nginx's configuration names 2 log file(s)"),
        "{stderr}"
    );
    let (formats, keys): (Vec<String>, Vec<String>) = host
        .objects()
        .into_iter()
        .map(|(k, _)| k)
        .partition(|k| k.contains("/formats/"));
    let day = today();
    let kinds: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| {
            let kind = if k.contains("/access/") {
                "access"
            } else {
                "error"
            };
            let name = k.rsplit('/').next().unwrap_or_default();
            (kind, name.split_once(".log-").map_or(name, |(n, _)| n))
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("access", "shop.example.com.access"),
            ("error", "shop.example.com.error")
        ],
        "{keys:?}"
    );
    assert!(
        keys.iter().all(|k| k.contains(&format!("/{day}/"))),
        "{keys:?}"
    );

    // The access log's format (nginx's combined here), put once and named by its segment.
    assert_eq!(formats.len(), 1, "{formats:?}");
    let body = block_on(async {
        let out = host
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(&formats[0])
            .send()
            .await;
        out.expect("the format object")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes()
    });
    assert_eq!(
        String::from_utf8_lossy(&body),
        nginx_cloudwatch_forwarder::ship::nginx_conf::Format::combined().to_config()
    );
    let access_meta = host
        .metadata()
        .into_iter()
        .find(|(k, _)| k.contains("/access/"))
        .map(|(_, m)| m)
        .expect("the access segment");
    assert!(
        access_meta.contains(&("ncf-log-format".to_string(), formats[0].clone())),
        "{access_meta:?}"
    );

    // FILEs: the configuration's file ships; one that nothing explains is refused alone.
    std::fs::write(&access, format!("{line}\n{line}\n")).expect("access");
    let notes = host.dir.path("log/notes.txt");
    std::fs::write(&notes, "not a log\n").expect("notes");
    let (code, stderr) = run(&[&access, &notes]);
    assert_eq!(code, Some(1), "one FILE refused: {stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: not followed: neither its name",
            notes.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        host.objects().len(),
        4,
        "the access file's new line shipped (beside the format object)"
    );
}

// --- real nginx, steady traffic, both rotations, a restart: exactly once, and how fast -----------

/// A follower process, killed (SIGKILL) and reaped if the test ends (or panics) before
/// [`Running::finish`].
struct Running(Option<std::process::Child>);

impl Running {
    fn new(child: std::process::Child) -> Self {
        Self(Some(child))
    }

    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, std::process::Child::id)
    }

    fn kill(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself; its output.
    fn finish(mut self) -> Output {
        self.0
            .take()
            .expect("not finished yet")
            .wait_with_output()
            .expect("wait")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The pid of a test nginx, from its pid file (written by nginx even with `master_process off`;
/// nginx may accept connections a moment before it has written it). Not found through /proc:
/// two tests of this binary may each run an nginx at the same time.
fn nginx_pid(nginx: &common::nginx::Nginx) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&nginx.read("nginx.pid")).into_owned();
        if let Ok(pid) = text.trim().parse::<u32>() {
            return pid.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "nginx wrote no pid file: {}",
            nginx.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(10)); // poll interval
    }
}

/// What a request's access line looks like: `$msec` is when nginx wrote it.
const LATENCY_FORMAT: &str = r#"$remote_addr [$msec] "$request" $status"#;

/// A real nginx writing the `lat` format under steady traffic, the follower shipping its access
/// log to moto, and moto's own notifications feeding the forwarder (`replay`): what the two
/// real-nginx tests share.
struct RealRig {
    /// One real-nginx rig at a time: each runs nginx, its traffic, the follower, moto and the
    /// forwarder, and two on a 2-core box measure each other rather than the forwarder.
    _alone: std::sync::MutexGuard<'static, ()>,
    moto: Moto,
    imds: ImdsServer,
    bucket_name: &'static str,
    bucket: common::notify::NotifyingBucket,
    logs: aws_sdk_cloudwatchlogs::Client,
    nginx: common::nginx::Nginx,
    port: u16,
    log: PathBuf,
    state: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl RealRig {
    fn start(bucket_name: &'static str) -> Self {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        // (A rig that panicked poisons the lock; the next one may still run.)
        let alone = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let moto = Moto::start_logged();
        let imds = ImdsServer::start(Imds::Serve);
        let bucket = block_on(common::notify::NotifyingBucket::create(&moto, bucket_name));
        let (_, logs) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
        // The stream exists from the start, so that it can be read before the first delivery.
        block_on(async {
            logs.create_log_group()
                .log_group_name("nginx-access")
                .send()
                .await
                .expect("create the group");
            logs.create_log_stream()
                .log_group_name("nginx-access")
                .log_stream_name(INSTANCE_ID)
                .send()
                .await
                .expect("create the stream");
        });
        let port = common::nginx::free_port(Ipv4Addr::LOCALHOST.into());
        let nginx = common::nginx::Nginx::start(&format!(
            "log_format lat '{LATENCY_FORMAT}';\n\
             server {{\n\
             listen 127.0.0.1:{port};\n\
             access_log logs/access.log lat;\n\
             location / {{ return 200 \"ok\\n\"; }} }}"
        ));
        let (log, state) = (nginx.path("logs/access.log"), nginx.path("ship-state"));
        let mut env = moto.env();
        env.push(("OUTPUT_FORMAT", "raw".into()));
        env.push(("ACCESS_LOG_FORMAT", LATENCY_FORMAT.into()));
        // moto stores a put before it answers (no read-after-write lag): a put without an answer
        // is found or not at the first look, so the wait AWS's lag needs is not spent here.
        env.push(("AMBIGUOUS_PUT_WAIT_MS", "1000".into()));
        Self {
            _alone: alone,
            moto,
            imds,
            bucket_name,
            bucket,
            logs,
            nginx,
            port,
            log,
            state,
            env,
        }
    }

    /// Requests one at a time, about 50 a second, numbered from 0 (`GET /r/<n>`). The gate
    /// holds the number of requests answered (nginx wrote each line before it closed the
    /// connection), and is held for the whole of each request, so that a test can act between
    /// two requests.
    fn traffic(&self) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(Mutex::new(0usize));
        let port = self.port;
        let thread = {
            let (stop, gate) = (stop.clone(), gate.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    {
                        let mut n = gate.lock().expect("not poisoned");
                        let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                            .map_err(|e| format!("request {}: connect to nginx: {e}", *n))?;
                        write!(conn, "GET /r/{} HTTP/1.0\r\nHost: test\r\n\r\n", *n)
                            .expect("request");
                        let mut answer = Vec::new();
                        conn.read_to_end(&mut answer).expect("answer");
                        assert!(
                            answer.starts_with(b"HTTP/1.1 200"),
                            "nginx answered {answer:?}"
                        );
                        *n += 1;
                    }
                    std::thread::sleep(Duration::from_millis(20)); // pacing, not synchronisation
                }
                Ok(())
            })
        };
        Traffic { stop, gate, thread }
    }

    /// The keys under `prefix` in the rig's bucket.
    async fn bucket_keys(&self, prefix: &str) -> Vec<String> {
        let (s3, _) = nginx_cloudwatch_forwarder::aws::clients_from(&self.moto.sdk_config(), true);
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = s3
                .list_objects_v2()
                .bucket(self.bucket_name)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .expect("list the bucket");
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => return keys,
            }
        }
    }

    /// The follower on the access log, its standard error to `stderr`.
    fn follower(&self, interval: &str, stderr: std::process::Stdio) -> Running {
        Running::new(
            ship_command(
                &self.moto,
                &self.imds,
                self.bucket_name,
                &self.state,
                &self.log,
            )
            .args(["--interval", interval])
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the follower"),
        )
    }
}

struct Traffic {
    stop: Arc<AtomicBool>,
    gate: Arc<Mutex<usize>>,
    thread: std::thread::JoinHandle<Result<(), String>>,
}

impl Traffic {
    /// Stops the requests; the number sent.
    fn stop(self, nginx: &common::nginx::Nginx) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.thread.join().expect("traffic thread") {
            panic!(
                "{e}\nnginx error log:\n{}\nstderr: {}",
                String::from_utf8_lossy(&nginx.read("error.log")),
                nginx.stderr_text()
            );
        }
        *self.gate.lock().expect("not poisoned")
    }
}

/// What reached CloudWatch: request number → (times delivered, milliseconds from nginx writing
/// the line, its `$msec`, to CloudWatch storing it, its `ingestionTime`, at the first delivery).
#[derive(Default)]
struct Delivered {
    lines: std::collections::BTreeMap<usize, (usize, i64)>,
    seen_events: usize,
    /// Puts that got no answer and were checked (`ambiguous_puts`), over the forwarder's runs.
    ambiguous_puts: u64,
}

impl Delivered {
    /// Runs the forwarder on the notifications waiting, if any, and reads what it stored.
    fn poll(&mut self, rig: &RealRig) {
        let event = block_on(rig.bucket.lambda_event());
        if event["Records"].as_array().is_none_or(|r| r.is_empty()) {
            return;
        }
        let (code, summary) = common::moto::replay(&event, &rig.env);
        assert_eq!(code, Some(0), "{summary}");
        self.ambiguous_puts += summary["ambiguous_puts"].as_u64().unwrap_or(0);
        let events = block_on(common::moto::read_stream_events(
            &rig.logs,
            "nginx-access",
            INSTANCE_ID,
        ));
        for event in &events[self.seen_events..] {
            let message = event.message().unwrap_or_default();
            // When CloudWatch stored it (its own clock, as on AWS), not when this poll read it.
            let stored_at = event
                .ingestion_time()
                .unwrap_or_else(|| panic!("no ingestionTime on {message:?}"));
            let msec = message
                .split_once('[')
                .and_then(|(_, r)| r.split_once(']'))
                .and_then(|(t, _)| t.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no $msec in {message:?}"));
            let e = self
                .lines
                .entry(request_number(message))
                .or_insert((0, stored_at - (msec * 1000.0) as i64));
            e.0 += 1;
        }
        self.seen_events = events.len();
    }

    /// Polls until all `sent` lines arrived or `within` passed.
    fn wait_for(&mut self, rig: &RealRig, sent: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.lines.len() < sent && Instant::now() < deadline {
            self.poll(rig);
            std::thread::sleep(Duration::from_millis(500)); // poll interval
        }
    }

    /// Every request `0..sent` arrived exactly once (`context` is shown when not).
    fn assert_each_once(&self, sent: usize, context: &dyn Fn() -> String) {
        let missing: Vec<usize> = (0..sent).filter(|n| !self.lines.contains_key(n)).collect();
        let twice: Vec<usize> = self
            .lines
            .iter()
            .filter(|(_, (k, _))| *k > 1)
            .map(|(n, _)| *n)
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {sent} lines missing: {missing:?}\n{}",
            missing.len(),
            context()
        );
        assert!(
            twice.is_empty(),
            "lines delivered twice: {twice:?}\n{}",
            context()
        );
        assert_eq!(self.lines.len(), sent);
    }
}

/// nginx serves a steady stream of requests while the follower (`--interval 5`, as issue 15's
/// target) ships its access log to moto, whose own notifications feed the forwarder. Mid-run
/// the log is rotated by rename (+ USR1), the follower is killed (-9) and restarted, and the
/// log is rotated by copytruncate. Every line nginx wrote reaches CloudWatch exactly once, and
/// the time from nginx writing a line to the forwarder having stored it is measured.
#[test]
fn real_nginx_steady_traffic_every_line_once_within_seconds() {
    const INTERVAL: &str = "5";
    let rig = RealRig::start("nginx-follower-latency");
    let (nginx, log) = (&rig.nginx, &rig.log);
    let nginx_pid = nginx_pid(nginx);
    let traffic = rig.traffic();
    let mut follower = rig.follower(INTERVAL, std::process::Stdio::null());
    let mut delivered = Delivered::default();

    let start = Instant::now();
    let mut step = 0;
    let mut forced = 0;
    while start.elapsed() < Duration::from_secs(32) {
        let t = start.elapsed().as_secs();
        if step == 0 && t >= 8 {
            // logrotate's create: rename, then nginx reopens its logs on USR1.
            std::fs::rename(log, nginx.path("logs/access.log-1")).expect("rename");
            let ok = Command::new("kill")
                .args(["-USR1", &nginx_pid])
                .status()
                .expect("kill -USR1");
            assert!(ok.success());
            step = 1;
            forced += 1;
        } else if step == 1 && t >= 14 {
            // The follower dies without a chance to save anything, and is restarted.
            follower.kill(); // SIGKILL
            follower = rig.follower(INTERVAL, std::process::Stdio::null());
            step = 2;
        } else if step == 2 && t >= 20 {
            // logrotate's copytruncate, between two requests (a line nginx writes between the
            // copy and the truncation would be lost by any reader: logrotate documents it).
            let _between = traffic.gate.lock().expect("not poisoned");
            std::fs::copy(log, nginx.path("logs/access.log-2")).expect("copy");
            std::fs::OpenOptions::new()
                .write(true)
                .open(log)
                .and_then(|f| f.set_len(0))
                .expect("truncate");
            step = 3;
            forced += 1;
        }
        delivered.poll(&rig);
        std::thread::sleep(Duration::from_millis(500)); // poll interval
    }
    let sent = traffic.stop(nginx);
    // Let the last lines through: bounded by two intervals and the forwarder's runs.
    delivered.wait_for(&rig, sent, Duration::from_secs(30));
    drop(follower);
    let ran = start.elapsed();

    delivered.assert_each_once(sent, &String::new);
    // What it cost, counted by moto: the follower's uploads are the objects under nginx/ (the
    // forwarder's own PutObjects are leases, under their own prefix).
    let objects = block_on(rig.bucket_keys("nginx/")).len() as u64;
    // One per interval, one at each start, and up to two for each rotation (the rest of the
    // old file, and the new one's first lines when nginx writes it before the interval is up).
    let bound = (ran.as_secs_f64() / 5.0).ceil() as u64 + 2 + 2 * forced;
    eprintln!(
        "real nginx, --interval {INTERVAL}: {objects} objects in {:.0} s for {sent} lines (at most {bound}); S3 requests as moto received them: {:?}",
        ran.as_secs_f64(),
        rig.moto.received_by_kind()
    );
    assert!(objects <= bound, "{objects} objects, at most {bound}");
    let mut latencies: Vec<i64> = delivered.lines.values().map(|(_, l)| *l).collect();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    eprintln!(
        "real nginx, --interval {INTERVAL}: {sent} lines, each delivered once; latency nginx → CloudWatch p50 {} ms, p99 {} ms, max {} ms; puts without an answer {}",
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1],
        delivered.ambiguous_puts
    );
    assert!(pct(0.99) <= 10_000, "p99 latency {} ms", pct(0.99));
}

// --- real logrotate running the repository's snippet for the follower ------------------------

/// Debian's /usr/sbin/logrotate, else `logrotate` on `PATH`.
fn logrotate_binary() -> PathBuf {
    let debian = PathBuf::from("/usr/sbin/logrotate");
    if debian.is_file() {
        return debian;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join("logrotate");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "logrotate not found (/usr/sbin/logrotate, PATH): run scripts/test, which installs \
         Debian's logrotate when it is missing, or apt-get install logrotate"
    );
}

/// scripts/logrotate/nginx-cloudwatch-follower for a test nginx: its log directory instead of
/// /var/log/nginx, its pid file instead of /run/nginx.pid, the `create` line the snippet asks
/// for (mode only: the test's user owns the files), and rotations named to the second instead
/// of the minute, so that the test's two forced rotations (seconds apart) cannot collide. With
/// the snippet's `-%Y%m%dT%H%M`, a second rotation in the same minute fails ("destination …
/// already exists, skipping rotation", exit 1) after having compressed the newest rotation.
fn follower_logrotate_conf(logs: &Path, pid_file: &Path) -> String {
    let snippet = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/logrotate/nginx-cloudwatch-follower"),
    )
    .expect("read scripts/logrotate/nginx-cloudwatch-follower");
    let swap = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the snippet no longer has {from:?}");
        text.replace(from, to)
    };
    let conf = swap(
        snippet,
        "/var/log/nginx/*.log",
        &format!("{}/*.log", logs.display()),
    );
    let conf = swap(conf, "/run/nginx.pid", &pid_file.display().to_string());
    let conf = swap(
        conf,
        "    dateformat -%Y%m%dT%H%M\n",
        "    dateformat -%Y%m%dT%H%M%S\n",
    );
    swap(
        conf,
        "    # Add the distribution's `create` line (Debian: create 0640 www-data adm).\n",
        "    create 0640\n",
    )
}

/// The request number of an access line (`"GET /r/<n> HTTP/1.0"`).
fn request_number(line: &str) -> usize {
    line.split_once("GET /r/")
        .and_then(|(_, r)| r.split_once(' '))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no request number in {line:?}"))
}

/// The names in a log directory, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list the log directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `-YYYYmmddTHHMMSS` (the test's dateformat) after `access.log`, with `ext` after it.
fn rotated_stamp<'a>(name: &'a str, ext: &str) -> Option<&'a str> {
    let stamp = name.strip_prefix("access.log-")?.strip_suffix(ext)?;
    let ok = stamp.len() == 15
        && stamp
            .char_indices()
            .all(|(i, c)| if i == 8 { c == 'T' } else { c.is_ascii_digit() });
    ok.then_some(stamp)
}

/// nginx serves a steady stream of requests while the follower (`--interval 1`) ships its
/// access log to moto, whose notifications feed the forwarder; twice mid-run, real logrotate
/// runs the repository's snippet for the follower (`logrotate -f`, rename, `create`, USR1 in
/// postrotate). Every line nginx wrote reaches CloudWatch exactly once, and the log directory
/// holds what the snippet promises: the newest rotation plain (`delaycompress`), the older one
/// gzipped, and together with the live log they hold every line once, in order.
#[test]
fn real_logrotate_running_the_follower_snippet_every_line_once_and_rotations_as_promised() {
    const INTERVAL: &str = "1";
    let logrotate = logrotate_binary();
    let rig = RealRig::start("nginx-follower-logrotate");
    let nginx = &rig.nginx;
    let log_dir = nginx.path("logs");
    nginx_pid(nginx); // the pid file is there before logrotate's postrotate reads it
    let conf = nginx.path("logrotate.conf");
    std::fs::write(
        &conf,
        follower_logrotate_conf(&log_dir, &nginx.path("nginx.pid")),
    )
    .expect("write logrotate.conf");
    let rotate = |n: usize| {
        let out = Command::new(&logrotate)
            .arg("-f")
            .arg("-s")
            .arg(nginx.path("logrotate.state"))
            .arg(&conf)
            .output()
            .expect("run logrotate");
        assert!(
            out.status.success(),
            "logrotate (rotation {n}) failed ({:?}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        names_in(&log_dir)
    };

    let traffic = rig.traffic();
    let follower_log = nginx.path("follower.log");
    let _follower = rig.follower(
        INTERVAL,
        std::fs::File::create(&follower_log)
            .expect("create follower.log")
            .into(),
    );
    let follower_text = || String::from_utf8_lossy(&nginx.read("follower.log")).into_owned();
    let mut delivered = Delivered::default();

    let start = Instant::now();
    let mut first_stamp = String::new();
    let mut step = 0;
    while start.elapsed() < Duration::from_secs(13) {
        let t = start.elapsed().as_secs();
        if step == 0 && t >= 4 {
            let names = rotate(1);
            // The live log (created by logrotate), and the rotation, plain.
            assert_eq!(names.len(), 2, "after the first rotation: {names:?}");
            assert_eq!(names[0], "access.log", "{names:?}");
            first_stamp = rotated_stamp(&names[1], "")
                .unwrap_or_else(|| panic!("after the first rotation: {names:?}"))
                .to_string();
            step = 1;
        } else if step == 1 && t >= 9 {
            let names = rotate(2);
            // The first rotation is compressed now; the second stays plain.
            let gz = format!("access.log-{first_stamp}.gz");
            assert!(names.contains(&gz), "after the second rotation: {names:?}");
            step = 2;
        }
        std::thread::sleep(Duration::from_millis(200)); // poll interval
    }
    assert_eq!(step, 2, "both rotations ran");
    let sent = traffic.stop(nginx);
    // Delivered once the traffic has stopped: while the follower uploads a segment a second,
    // the queue of notifications may never be empty for long enough to read it (the AWS CLI
    // takes about a second a call). Bounded by the follower's interval and the forwarder's runs.
    delivered.wait_for(&rig, sent, Duration::from_secs(60));
    delivered.assert_each_once(sent, &|| format!("follower: {}", follower_text()));
    assert!(
        !follower_text().contains("LOST"),
        "follower: {}",
        follower_text()
    );

    // On disk: the live log, the newest rotation plain, the older one gzipped, nothing else.
    let names = names_in(&log_dir);
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "access.log", "{names:?}");
    let older = rotated_stamp(&names[1], ".gz").unwrap_or_else(|| panic!("{names:?}"));
    let newer = rotated_stamp(&names[2], "").unwrap_or_else(|| panic!("{names:?}"));
    assert_eq!(older, first_stamp, "{names:?}");
    assert!(older < newer, "{names:?}");
    // Together they hold every line nginx wrote, once, in order.
    let mut text = String::new();
    flate2::read::GzDecoder::new(&std::fs::read(log_dir.join(&names[1])).expect("read .gz")[..])
        .read_to_string(&mut text)
        .expect("gunzip the older rotation");
    let older_lines = text.lines().count();
    for name in [&names[2], &names[0]] {
        text.push_str(&std::fs::read_to_string(log_dir.join(name)).expect("read a log"));
    }
    let on_disk: Vec<usize> = text.lines().map(request_number).collect();
    assert_eq!(on_disk, (0..sent).collect::<Vec<_>>());
    assert!(
        older_lines > 0 && older_lines < sent,
        "{older_lines} of {sent} lines in the older rotation"
    );
    eprintln!(
        "real logrotate, the follower's snippet, --interval {INTERVAL}: {sent} lines, each delivered once; on disk {names:?}"
    );
}
