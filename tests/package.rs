//! The follower's packages (scripts/package, Cargo.toml's `[package.metadata.deb]` and
//! `[package.metadata.generate-rpm]`), built from this test's binary (the debug build cargo test
//! made; hosts get the release build) and installed here with dpkg: the files, owners, modes and
//! the user; nothing started without a bucket; the installed follower run as the unit runs it
//! (its user and groups, its EnvironmentFile, its ExecStart) against moto and an IMDS stand-in,
//! through a rotation by Debian's own /etc/logrotate.d/nginx of logs owned like Debian's
//! (www-data:adm 0640), every line once in CloudWatch; an upgrade keeps the positions; removal
//! keeps the settings, purge removes the state and the user.
//!
//! Needs root, dpkg, rpm (for `rpm -qlp`), logrotate and Debian's nginx package (its
//! /etc/logrotate.d/nginx): scripts/test installs them. It changes /usr/bin, /etc and
//! /var/log/nginx (moved aside and put back), so it is one test function, and it purges the
//! package when it ends, passed or not.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::block_on;
use common::imds::{INSTANCE_ID, Imds, ImdsServer};
use common::moto::Moto;

const PACKAGE: &str = "nginx-cloudwatch-forwarder";
const UNIT: &str = "/lib/systemd/system/nginx-log-follower.service";
const DEFAULTS: &str = "/etc/default/nginx-cloudwatch";
const STATE: &str = "/var/lib/nginx-cloudwatch-forwarder/ship";
const USER: &str = "nginx-cloudwatch";
const LOGS: &str = "/var/log/nginx";
const BUCKET: &str = "fleet-logs";

/// What `rpm -qlp` lists, exactly.
const RPM_FILES: &[&str] = &[
    "/usr/bin/nginx-cloudwatch-forwarder",
    "/usr/lib/systemd/system/nginx-log-follower.service",
    "/usr/lib/systemd/system/nginx-log-follower.service.d/10-read-logs.conf",
    "/usr/share/doc/nginx-cloudwatch-forwarder/hosts.md",
    "/usr/share/nginx-cloudwatch-forwarder/logrotate/nginx-cloudwatch-follower",
    "/usr/share/nginx-cloudwatch-forwarder/nginx-cloudwatch.default",
];

/// The files of the .deb (`dpkg-deb -c`, directories left out), exactly.
const DEB_FILES: &[&str] = &[
    "/lib/systemd/system/nginx-log-follower.service",
    "/usr/bin/nginx-cloudwatch-forwarder",
    "/usr/share/doc/nginx-cloudwatch-forwarder/copyright",
    "/usr/share/doc/nginx-cloudwatch-forwarder/hosts.md",
    "/usr/share/nginx-cloudwatch-forwarder/logrotate/nginx-cloudwatch-follower",
    "/usr/share/nginx-cloudwatch-forwarder/nginx-cloudwatch.default",
];

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn dpkg(args: &[&str]) -> String {
    text(&run(Command::new("dpkg")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")))
}

/// The test's changes to the system, undone when it ends (passed or not): the follower stopped,
/// the package purged, /var/log/nginx put back.
struct System {
    work: PathBuf,
    logs_aside: PathBuf,
    follower: Option<Child>,
}

impl System {
    fn take() -> Self {
        let root = Command::new("id").arg("-u").output().expect("id -u");
        assert_eq!(
            String::from_utf8_lossy(&root.stdout).trim(),
            "0",
            "tests/package.rs installs a package: run it as root (scripts/test does)"
        );
        for tool in ["dpkg", "rpm", "logrotate", "setpriv", "systemd-analyze"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool} >/dev/null")])
                    .status()
                    .is_ok_and(|s| s.success()),
                "{tool} is missing: scripts/test installs it (apt-get install -y rpm for rpm)"
            );
        }
        assert!(
            Path::new("/etc/logrotate.d/nginx").is_file(),
            "Debian's nginx package (its /etc/logrotate.d/nginx) is missing: scripts/test installs nginx-light"
        );
        let work = std::env::temp_dir().join(format!("ncf-package-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("work dir");
        // A run that died before its cleanup left the package: purge it first.
        let _ = Command::new("dpkg").args(["-P", PACKAGE]).output();
        let logs_aside = PathBuf::from(format!("{LOGS}.ncf-package-test"));
        if !logs_aside.exists() && Path::new(LOGS).exists() {
            std::fs::rename(LOGS, &logs_aside).expect("move /var/log/nginx aside");
        }
        // As Debian's nginx package leaves it: root:adm 0755, the logs www-data:adm 0640.
        std::fs::create_dir_all(LOGS).expect("mkdir /var/log/nginx");
        run(Command::new("chown").args(["root:adm", LOGS]));
        for f in ["access.log", "error.log"] {
            let p = format!("{LOGS}/{f}");
            std::fs::write(&p, "").expect("create a log");
            run(Command::new("chown").args(["www-data:adm", &p]));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        }
        System {
            work,
            logs_aside,
            follower: None,
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        if let Some(mut child) = self.follower.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("dpkg").args(["-P", PACKAGE]).output();
        if self.logs_aside.exists() {
            let _ = std::fs::remove_dir_all(LOGS);
            let _ = std::fs::rename(&self.logs_aside, LOGS);
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// Builds both packages with scripts/package from this test's binary: (.deb, .rpm).
fn build_packages(out: &Path) -> (PathBuf, PathBuf) {
    let started = Instant::now();
    run(
        Command::new(Path::new(common::MANIFEST_DIR).join("scripts/package"))
            .arg(env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder"))
            .arg(out)
            .env("PACKAGE_FAST", "1"),
    );
    eprintln!("packages built in {:?}", started.elapsed());
    let version = env!("CARGO_PKG_VERSION");
    let deb = out.join(format!("{PACKAGE}_{version}-1_amd64.deb"));
    let rpm = out.join(format!("{PACKAGE}-{version}-1.x86_64.rpm"));
    assert!(deb.is_file() && rpm.is_file(), "{deb:?} {rpm:?}");
    (deb, rpm)
}

fn lines_of(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn check_package_contents(deb: &Path, rpm: &Path) {
    let listed = lines_of(&run(Command::new("rpm").arg("-qlp").arg(rpm)));
    assert_eq!(listed, RPM_FILES, "rpm -qlp");
    let scripts = text(&run(Command::new("rpm")
        .args(["-qp", "--scripts"])
        .arg(rpm)));
    for s in ["postinstall", "preuninstall", "postuninstall"] {
        assert!(scripts.contains(&format!("{s} scriptlet")), "{scripts}");
    }
    let mut files: Vec<String> = lines_of(&run(Command::new("dpkg-deb").arg("-c").arg(deb)))
        .iter()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_string())
        .collect();
    files.sort();
    assert_eq!(files, DEB_FILES, "dpkg-deb -c");
    let info = text(&run(Command::new("dpkg-deb").arg("-f").arg(deb)));
    assert!(
        info.contains(&format!("Version: {}-1", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
}

fn mode_owner(path: &str) -> (u32, String) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let owner = text(&run(Command::new("stat").args(["-c", "%U:%G", path])));
    (m.mode() & 0o7777, owner.trim().to_string())
}

/// The processes running as `user` (from /proc: no systemd here to ask).
fn processes_of(user: &str) -> Vec<u32> {
    let uid = text(&run(Command::new("id").args(["-u", user])));
    let uid: u32 = uid.trim().parse().expect("uid");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == uid))
        .collect()
}

fn check_installed(dpkg_output: &str) {
    assert!(
        dpkg_output.contains("not started: set NGINX_LOG_BUCKET in /etc/default/nginx-cloudwatch"),
        "{dpkg_output}"
    );
    assert_eq!(
        mode_owner("/usr/bin/nginx-cloudwatch-forwarder"),
        (0o755, "root:root".into())
    );
    assert_eq!(mode_owner(UNIT), (0o644, "root:root".into()));
    assert_eq!(mode_owner(DEFAULTS), (0o644, "root:root".into()));
    assert_eq!(mode_owner(STATE), (0o700, format!("{USER}:{USER}")));
    let defaults = std::fs::read_to_string(DEFAULTS).expect("read the settings");
    assert!(
        defaults.lines().any(|l| l == "NGINX_LOG_BUCKET="),
        "{defaults}"
    );
    assert!(
        defaults.contains("#NGINX_LOG_KEY_LAYOUT=userid"),
        "{defaults}"
    );
    // No file in /etc/logrotate.d: Debian's own rotates the same logs (two is an error).
    assert!(!Path::new("/etc/logrotate.d/nginx-cloudwatch").exists());
    let id = text(&run(Command::new("id").arg(USER)));
    assert!(
        id.contains("(adm)") && id.contains(&format!("({USER})")),
        "{id}"
    );
    let passwd = text(&run(Command::new("getent").args(["passwd", USER])));
    assert!(
        passwd.trim().ends_with(":/nonexistent:/usr/sbin/nologin"),
        "{passwd}"
    );
    assert!(
        Path::new("/etc/systemd/system/multi-user.target.wants/nginx-log-follower.service")
            .exists(),
        "enabled"
    );
    assert_eq!(
        processes_of(USER),
        Vec::<u32>::new(),
        "nothing runs without a bucket"
    );
    let verify = run(Command::new("systemd-analyze").args(["verify", UNIT]));
    assert_eq!(text(&verify), "", "systemd-analyze verify {UNIT}");
}

/// The unit's settings as systemd reads them (the last value of each key wins).
fn unit_settings() -> BTreeMap<String, String> {
    let unit = std::fs::read_to_string(UNIT).expect("read the unit");
    unit.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// KEY=value lines of the EnvironmentFile, as systemd reads them (no quotes used here).
fn environment_file(path: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("read the EnvironmentFile");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The installed follower as the unit runs it: its User, Group and SupplementaryGroups, no
/// new privileges, UMask, an environment of only its EnvironmentFile, its ExecStart.
fn as_the_unit() -> Command {
    let unit = unit_settings();
    let file = unit["EnvironmentFile"].trim_start_matches('-').to_string();
    let exec: Vec<String> = unit["ExecStart"]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", unit["User"]))
        .arg(format!("--regid={}", unit["Group"]))
        .arg(format!("--groups={}", unit["SupplementaryGroups"]))
        .args(["--no-new-privs", "--inh-caps=-all", "--", "sh", "-c"])
        .arg(format!("umask {} && exec \"$0\" \"$@\"", unit["UMask"]))
        .args(&exec)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(environment_file(&file));
    cmd
}

fn append(path: &str, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    for l in lines {
        writeln!(f, "{l}").expect("append");
    }
}

struct Traffic {
    written: Vec<String>,
}

impl Traffic {
    fn lines(&mut self, n: usize) -> Vec<String> {
        let now = common::now_ms();
        let new: Vec<String> = (0..n)
            .map(|i| {
                let k = self.written.len() + i;
                common::combined_line("10.0.0.7", now + i as i64, &format!("/pkg/{k}"), 200)
            })
            .collect();
        self.written.extend(new.iter().cloned());
        new
    }
}

/// Every object's lines, by key.
fn shipped(s3: &aws_sdk_s3::Client) -> BTreeMap<String, Vec<String>> {
    block_on(async {
        let list = s3
            .list_objects_v2()
            .bucket(BUCKET)
            .send()
            .await
            .expect("list");
        let mut out = BTreeMap::new();
        for o in list.contents() {
            let key = o.key().unwrap_or_default().to_string();
            if !key.contains("/access/") {
                continue;
            }
            let body = s3.get_object().bucket(BUCKET).key(&key).send().await;
            let body = body.expect("get").body.collect().await.expect("body");
            let mut t = String::new();
            flate2::read::GzDecoder::new(&body.into_bytes()[..])
                .read_to_string(&mut t)
                .expect("gzip");
            out.insert(key, t.lines().map(str::to_string).collect());
        }
        out
    })
}

/// Waits until the bucket holds `want` lines (a deadline, not a sleep: the follower ships each
/// interval), then checks each was shipped once.
fn wait_shipped(s3: &aws_sdk_s3::Client, want: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut got: Vec<String> = shipped(s3).into_values().flatten().collect();
        if got.len() >= want.len() || Instant::now() > deadline {
            let mut want = want.to_vec();
            got.sort();
            want.sort();
            assert_eq!(got, want, "the lines in S3, each once");
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stop(child: &mut Option<Child>) -> String {
    let mut c = child.take().expect("running");
    run(Command::new("kill").args(["-TERM", &c.id().to_string()]));
    let status = c.wait().expect("wait");
    let mut err = String::new();
    if let Some(mut e) = c.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "SIGTERM: {status:?}\n{err}");
    err
}

fn positions() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(STATE)
        .expect("state dir")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_deb_installs_the_follower_ships_through_a_rotation_and_upgrades_keeping_positions() {
    let started = Instant::now();
    let mut sys = System::take();
    let (deb, rpm) = build_packages(&sys.work.join("out"));
    check_package_contents(&deb, &rpm);
    for p in [&deb, &rpm] {
        eprintln!(
            "{}: {} bytes",
            p.display(),
            std::fs::metadata(p).expect("size").len()
        );
    }

    let installed = dpkg(&["-i", deb.to_str().expect("path")]);
    check_installed(&installed);
    // Started without a bucket anyway (systemctl start): exit 64, which the unit does not
    // restart (RestartPreventExitStatus).
    let out = as_the_unit().output().expect("run the follower");
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("NGINX_LOG_BUCKET"), "{}", text(&out));
    assert_eq!(unit_settings()["RestartPreventExitStatus"], "64");

    let moto = Moto::start_logged();
    let imds = ImdsServer::start(Imds::Serve);
    let (s3, logs) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    block_on(s3.create_bucket().bucket(BUCKET).send()).expect("create bucket");
    let mut settings = std::fs::read_to_string(DEFAULTS).expect("settings");
    settings = settings.replace(
        "NGINX_LOG_BUCKET=\n",
        &format!("NGINX_LOG_BUCKET={BUCKET}\n"),
    );
    settings.push_str("SHIP_INTERVAL=1\n");
    settings.push_str(&format!("IMDS_ENDPOINT={}\n", imds.endpoint));
    for (k, v) in moto.env() {
        settings.push_str(&format!("{k}={v}\n"));
    }
    std::fs::write(DEFAULTS, &settings).expect("write the settings");

    // Follow, rotate with Debian's /etc/logrotate.d/nginx (rename, create 0640 www-data adm,
    // delaycompress), a few lines to the old file after the rename (nginx has not reopened
    // yet), the rest to the new file.
    let access = format!("{LOGS}/access.log");
    let mut traffic = Traffic {
        written: Vec::new(),
    };
    sys.follower = Some(
        as_the_unit()
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the follower"),
    );
    append(&access, &traffic.lines(300));
    wait_shipped(&s3, &traffic.written);
    let lr_state = sys.work.join("logrotate.status");
    run(Command::new("logrotate")
        .args(["-f", "-s"])
        .arg(&lr_state)
        .arg("/etc/logrotate.d/nginx"));
    assert_eq!(
        mode_owner(&access),
        (0o640, "www-data:adm".into()),
        "logrotate's create"
    );
    append(&format!("{access}.1"), &traffic.lines(20));
    append(&access, &traffic.lines(200));
    wait_shipped(&s3, &traffic.written);
    let log = stop(&mut sys.follower);
    eprintln!("{log}");

    // Upgrade (the same package again): positions and settings kept, nothing resent.
    let before = positions();
    assert!(!before.is_empty());
    let upgraded = dpkg(&["-i", deb.to_str().expect("path")]);
    assert!(!upgraded.contains("not started"), "{upgraded}");
    assert_eq!(positions(), before, "the upgrade keeps the positions");
    assert_eq!(
        std::fs::read_to_string(DEFAULTS).expect("settings"),
        settings
    );
    sys.follower = Some(
        as_the_unit()
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the follower"),
    );
    append(&access, &traffic.lines(100));
    wait_shipped(&s3, &traffic.written);
    stop(&mut sys.follower);
    let last = positions();

    // What it cost, counted where moto received it: one PutObject per object, and one put of
    // the format object per start (the second answered 412, already there).
    let objects = shipped(&s3);
    let received = moto.received();
    let puts = |part: &str| {
        received
            .iter()
            .filter(|r| r.s3_kind() == "PutObject" && r.path.contains(part))
            .map(|r| r.status)
            .collect::<Vec<u16>>()
    };
    assert_eq!(
        puts("/access/"),
        vec![200; objects.len()],
        "one put per object"
    );
    assert_eq!(
        puts("/formats/"),
        vec![200, 412],
        "the format object, once per start"
    );
    eprintln!(
        "objects: {}, requests on the bucket: {:?}",
        objects.len(),
        common::moto::by_kind(&received, &format!("/{BUCKET}/"))
    );

    // Through the forwarder into CloudWatch (moto): every line once.
    let keys: Vec<&str> = objects.keys().map(String::as_str).collect();
    let mut env = moto.env();
    env.push(("OUTPUT_FORMAT", "raw".into()));
    let (code, summary) = common::moto::replay(&common::s3_event(BUCKET, &keys), &env);
    assert_eq!(code, Some(0), "{summary}");
    let events = block_on(common::moto::read_stream(
        &logs,
        "nginx-access",
        INSTANCE_ID,
    ));
    let mut got: Vec<String> = events.into_iter().map(|(_, m)| m).collect();
    let mut want = traffic.written.clone();
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "events in CloudWatch");
    assert_eq!(got, want);

    // Removal keeps the settings, the positions and the user; purge removes them.
    dpkg(&["-r", PACKAGE]);
    assert!(!Path::new("/usr/bin/nginx-cloudwatch-forwarder").exists());
    assert!(!Path::new(UNIT).exists());
    assert_eq!(
        std::fs::read_to_string(DEFAULTS).expect("settings kept"),
        settings
    );
    assert_eq!(positions(), last, "removal keeps the positions");
    assert!(
        Command::new("id")
            .arg(USER)
            .output()
            .expect("id")
            .status
            .success()
    );
    dpkg(&["-P", PACKAGE]);
    assert!(!Path::new(DEFAULTS).exists());
    assert!(!Path::new("/var/lib/nginx-cloudwatch-forwarder").exists());
    assert!(
        !Command::new("id")
            .arg(USER)
            .output()
            .expect("id")
            .status
            .success()
    );

    // Settings written before the install (cloud-init's write_files) are kept, and dpkg does
    // not ask about them; they name a bucket, so the install does not say "not started".
    let early = "NGINX_LOG_BUCKET=written-before-install\n";
    std::fs::write(DEFAULTS, early).expect("write the settings first");
    let installed = dpkg(&["-i", deb.to_str().expect("path")]);
    assert!(!installed.contains("not started"), "{installed}");
    assert_eq!(std::fs::read_to_string(DEFAULTS).expect("settings"), early);
    dpkg(&["-P", PACKAGE]);
    assert!(!Path::new(DEFAULTS).exists());
    eprintln!("tests/package.rs: {:?}", started.elapsed());
}
