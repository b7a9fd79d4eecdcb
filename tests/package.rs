//! The follower's packages (scripts/package, Cargo.toml's `[package.metadata.deb]` and
//! `[package.metadata.generate-rpm]`), built from this test's binary (the debug build cargo test
//! made; hosts get the release build) and installed here with dpkg: the files, owners, modes and
//! the user; nothing started without a bucket; the installed follower run as the unit runs it
//! (its user and groups, its EnvironmentFile, its ExecStart) against moto and an IMDS stand-in,
//! through a rotation by Debian's own /etc/logrotate.d/nginx of logs owned like Debian's
//! (www-data:adm 0640), every line once in CloudWatch; an upgrade keeps the positions; removal
//! keeps the settings, purge removes the state and the user. The .rpm is installed here too
//! (`rpm -i --nodeps`: Debian's rpm runs its scriptlets): no user, root-owned state, the
//! follower run as its drop-in runs it (root bounded to CAP_DAC_READ_SEARCH) on logs owned like
//! RHEL's (root:root 0711 directory, nginx:root 0640 files, www-data standing for nginx) through
//! RHEL's stock logrotate configuration.
//!
//! Needs root, dpkg, rpm (for `rpm -qlp`), logrotate and Debian's nginx package (its
//! /etc/logrotate.d/nginx): scripts/test installs them. It changes /usr/bin, /etc and
//! /var/log/nginx (moved aside and put back), so its tests take turns (a lock), and each removes
//! the package when it ends, passed or not.

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
/// The .rpm's drop-in (on Debian /lib is /usr/lib, so it sits beside the unit).
const DROP_IN: &str = "/usr/lib/systemd/system/nginx-log-follower.service.d/10-read-logs.conf";
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

/// Who owns /var/log/nginx and its logs: (directory owner, directory mode, log owner).
type Layout = (&'static str, u32, &'static str);
/// Debian's nginx package: root:adm 0755, the logs www-data:adm 0640.
const DEBIAN: Layout = ("root:adm", 0o755, "www-data:adm");
/// RHEL's, Fedora's and Amazon Linux's: root:root 0711, the logs nginx:root 0640 (www-data
/// stands for nginx, which Debian does not have).
const RHEL: Layout = ("root:root", 0o711, "www-data:root");

/// RHEL's stock /etc/logrotate.d/nginx (www-data for nginx).
const RHEL_LOGROTATE: &str = "/var/log/nginx/*.log {
    create 0640 www-data root
    daily
    rotate 10
    missingok
    notifempty
    compress
    delaycompress
    sharedscripts
    postrotate
        /bin/kill -USR1 `cat /run/nginx.pid 2>/dev/null` 2>/dev/null || true
    endscript
}
";

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The test's changes to the system, undone when it ends (passed or not): the follower stopped,
/// the package removed with its state and settings, /var/log/nginx put back.
struct System {
    work: PathBuf,
    logs_aside: PathBuf,
    follower: Option<Child>,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl System {
    fn take(layout: Layout) -> Self {
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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
        // A run that died before its cleanup left the package: remove it first.
        remove_everything();
        let logs_aside = PathBuf::from(format!("{LOGS}.ncf-package-test"));
        if !logs_aside.exists() && Path::new(LOGS).exists() {
            std::fs::rename(LOGS, &logs_aside).expect("move /var/log/nginx aside");
        }
        let _ = std::fs::remove_dir_all(LOGS);
        let (dir_owner, dir_mode, log_owner) = layout;
        std::fs::create_dir_all(LOGS).expect("mkdir /var/log/nginx");
        run(Command::new("chown").args([dir_owner, LOGS]));
        std::fs::set_permissions(LOGS, std::fs::Permissions::from_mode(dir_mode)).expect("chmod");
        for f in ["access.log", "error.log"] {
            let p = format!("{LOGS}/{f}");
            std::fs::write(&p, "").expect("create a log");
            run(Command::new("chown").args([log_owner, &p]));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        }
        System {
            work,
            logs_aside,
            follower: None,
            _turn: turn,
        }
    }
}

/// Both packages removed, with what rpm leaves (it has no purge).
fn remove_everything() {
    let _ = Command::new("dpkg").args(["-P", PACKAGE]).output();
    let _ = Command::new("rpm")
        .args(["-e", "--nodeps", PACKAGE])
        .output();
    let _ = std::fs::remove_dir_all("/var/lib/nginx-cloudwatch-forwarder");
    let _ = std::fs::remove_file(DEFAULTS);
}

impl Drop for System {
    fn drop(&mut self) {
        if let Some(mut child) = self.follower.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_everything();
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

/// The unit's settings as systemd reads them: the unit, then its drop-ins (the last value of
/// each key wins).
fn unit_settings() -> BTreeMap<String, String> {
    let mut settings = BTreeMap::new();
    for file in [UNIT, DROP_IN] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for (k, v) in text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
        {
            settings.insert(k.to_string(), v.to_string());
        }
    }
    settings
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

/// The installed follower as the unit runs it: its User, Group and SupplementaryGroups, its
/// CapabilityBoundingSet, no new privileges, UMask, an environment of only its EnvironmentFile,
/// its ExecStart.
fn as_the_unit() -> Command {
    let unit = unit_settings();
    let file = unit["EnvironmentFile"].trim_start_matches('-').to_string();
    let exec: Vec<String> = unit["ExecStart"]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", unit["User"]))
        .arg(format!("--regid={}", unit["Group"]));
    match unit.get("SupplementaryGroups").map(String::as_str) {
        None | Some("") => cmd.arg("--clear-groups"),
        Some(groups) => cmd.arg(format!("--groups={groups}")),
    };
    if let Some(caps) = unit.get("CapabilityBoundingSet") {
        let caps: Vec<String> = caps
            .split_whitespace()
            .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
            .collect();
        cmd.arg(format!("--bounding-set=-all,{}", caps.join(",")));
    }
    cmd.args(["--no-new-privs", "--inh-caps=-all", "--", "sh", "-c"])
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

/// moto with the bucket, the IMDS stand-in, and the settings file naming them (the unit's
/// EnvironmentFile), as a host's /etc/default/nginx-cloudwatch would name the real ones.
struct Rig {
    moto: Moto,
    _imds: ImdsServer,
    s3: aws_sdk_s3::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    settings: String,
    traffic: Traffic,
}

impl Rig {
    fn start() -> Self {
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
        Rig {
            moto,
            _imds: imds,
            s3,
            logs,
            settings,
            traffic: Traffic {
                written: Vec::new(),
            },
        }
    }

    /// Starts the follower as the unit runs it, writes lines, rotates with real logrotate
    /// running `logrotate_conf` (rename, create, delaycompress), a few lines to the old file
    /// after the rename (nginx has not reopened yet), the rest to the new one, then stops it
    /// with SIGTERM once every line is in S3.
    fn follow_through_rotation(&mut self, sys: &mut System, logrotate_conf: &Path) {
        let access = format!("{LOGS}/access.log");
        let owner = mode_owner(&access);
        sys.follower = Some(start_as_the_unit());
        append(&access, &self.traffic.lines(300));
        wait_shipped(&self.s3, &self.traffic.written);
        run(Command::new("logrotate")
            .args(["-f", "-s"])
            .arg(sys.work.join("logrotate.status"))
            .arg(logrotate_conf));
        assert_eq!(mode_owner(&access), owner, "logrotate's create");
        append(&format!("{access}.1"), &self.traffic.lines(20));
        append(&access, &self.traffic.lines(200));
        wait_shipped(&self.s3, &self.traffic.written);
        eprintln!("{}", stop(&mut sys.follower));
    }

    /// What it cost, counted where moto received it (one PutObject per object, the format
    /// object once per start: 200, then 412 "already there"), then every line through the
    /// forwarder into CloudWatch (moto), once.
    fn delivered_once(&self, starts: usize) {
        let objects = shipped(&self.s3);
        let received = self.moto.received();
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
        let mut formats = vec![412; starts];
        formats[0] = 200;
        assert_eq!(
            puts("/formats/"),
            formats,
            "the format object, once per start"
        );
        eprintln!(
            "objects: {}, requests on the bucket: {:?}",
            objects.len(),
            common::moto::by_kind(&received, &format!("/{BUCKET}/"))
        );
        let keys: Vec<&str> = objects.keys().map(String::as_str).collect();
        let mut env = self.moto.env();
        env.push(("OUTPUT_FORMAT", "raw".into()));
        let (code, summary) = common::moto::replay(&common::s3_event(BUCKET, &keys), &env);
        assert_eq!(code, Some(0), "{summary}");
        let events = block_on(common::moto::read_stream(
            &self.logs,
            "nginx-access",
            INSTANCE_ID,
        ));
        let mut got: Vec<String> = events.into_iter().map(|(_, m)| m).collect();
        let mut want = self.traffic.written.clone();
        got.sort();
        want.sort();
        assert_eq!(got.len(), want.len(), "events in CloudWatch");
        assert_eq!(got, want);
    }
}

fn start_as_the_unit() -> Child {
    as_the_unit()
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the follower")
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg(user)
        .output()
        .expect("id")
        .status
        .success()
}

#[test]
fn the_deb_installs_the_follower_ships_through_a_rotation_and_upgrades_keeping_positions() {
    let started = Instant::now();
    let mut sys = System::take(DEBIAN);
    let (deb, rpm) = build_packages(&sys.work.join("out"));
    check_package_contents(&deb, &rpm);
    for p in [&deb, &rpm] {
        eprintln!(
            "{}: {} bytes",
            p.display(),
            std::fs::metadata(p).expect("size").len()
        );
    }
    let deb = deb.to_str().expect("path");

    check_installed(&dpkg(&["-i", deb]));
    // Started without a bucket anyway (systemctl start): exit 64, which the unit does not
    // restart (RestartPreventExitStatus).
    let out = as_the_unit().output().expect("run the follower");
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("NGINX_LOG_BUCKET"), "{}", text(&out));
    assert_eq!(unit_settings()["RestartPreventExitStatus"], "64");

    // Debian's own rotation of its nginx logs.
    let mut rig = Rig::start();
    rig.follow_through_rotation(&mut sys, Path::new("/etc/logrotate.d/nginx"));

    // What it wrote is its user's and private (UMask=0077 in a 0700 directory).
    for entry in std::fs::read_dir(STATE).expect("state dir").flatten() {
        let path = entry.path().display().to_string();
        let (mode, owner) = mode_owner(&path);
        assert_eq!(owner, format!("{USER}:{USER}"), "{path}");
        assert_eq!(mode & 0o077, 0, "{path}: {mode:o}");
    }

    // Upgrade (the same package again): positions and settings kept, nothing resent.
    let before = positions();
    assert!(!before.is_empty());
    let upgraded = dpkg(&["-i", deb]);
    assert!(!upgraded.contains("not started"), "{upgraded}");
    assert_eq!(positions(), before, "the upgrade keeps the positions");
    assert_eq!(
        std::fs::read_to_string(DEFAULTS).expect("settings"),
        rig.settings
    );
    sys.follower = Some(start_as_the_unit());
    append(&format!("{LOGS}/access.log"), &rig.traffic.lines(100));
    wait_shipped(&rig.s3, &rig.traffic.written);
    stop(&mut sys.follower);
    let last = positions();
    rig.delivered_once(2);

    // Removal keeps the settings, the positions and the user; purge removes them.
    dpkg(&["-r", PACKAGE]);
    assert!(!Path::new("/usr/bin/nginx-cloudwatch-forwarder").exists());
    assert!(!Path::new(UNIT).exists());
    assert_eq!(
        std::fs::read_to_string(DEFAULTS).expect("settings kept"),
        rig.settings
    );
    assert_eq!(positions(), last, "removal keeps the positions");
    assert!(user_exists(USER));
    dpkg(&["-P", PACKAGE]);
    assert!(!Path::new(DEFAULTS).exists());
    assert!(!Path::new("/var/lib/nginx-cloudwatch-forwarder").exists());
    assert!(!user_exists(USER));

    // Settings written before the install (cloud-init's write_files) are kept, and dpkg does
    // not ask about them; they name a bucket, so the install does not say "not started".
    let early = "NGINX_LOG_BUCKET=written-before-install\n";
    std::fs::write(DEFAULTS, early).expect("write the settings first");
    let installed = dpkg(&["-i", deb]);
    assert!(!installed.contains("not started"), "{installed}");
    assert_eq!(std::fs::read_to_string(DEFAULTS).expect("settings"), early);
    dpkg(&["-P", PACKAGE]);
    assert!(!Path::new(DEFAULTS).exists());
    eprintln!("tests/package.rs, the .deb: {:?}", started.elapsed());
}

#[test]
fn the_rpm_runs_the_follower_as_root_bounded_to_reading_on_logs_owned_like_rhels() {
    let started = Instant::now();
    let mut sys = System::take(RHEL);
    let (_, rpm) = build_packages(&sys.work.join("out"));
    let installed = text(&run(Command::new("rpm").args(["-i", "--nodeps"]).arg(&rpm)));
    assert!(
        installed.contains("not started: set NGINX_LOG_BUCKET in /etc/default/nginx-cloudwatch"),
        "{installed}"
    );
    assert!(!user_exists(USER), "the .rpm creates no user");
    assert_eq!(mode_owner(STATE), (0o700, "root:root".into()));
    assert_eq!(mode_owner(DEFAULTS), (0o644, "root:root".into()));
    assert_eq!(mode_owner(DROP_IN), (0o644, "root:root".into()));
    let unit = unit_settings();
    assert_eq!(
        (unit["User"].as_str(), unit["Group"].as_str()),
        ("root", "root")
    );
    let verify = run(Command::new("systemd-analyze").args(["verify", UNIT]));
    assert_eq!(text(&verify), "", "systemd-analyze verify with the drop-in");

    let mut rig = Rig::start();
    let conf = sys.work.join("logrotate-rhel");
    std::fs::write(&conf, RHEL_LOGROTATE).expect("write RHEL's logrotate file");
    rig.follow_through_rotation(&mut sys, &conf);
    rig.delivered_once(1);

    // rpm -e: the files and the drop-in's directory go; the settings and positions stay.
    let kept = positions();
    run(Command::new("rpm").args(["-e", PACKAGE]));
    assert!(!Path::new("/usr/bin/nginx-cloudwatch-forwarder").exists());
    assert!(!Path::new(DROP_IN).parent().expect("dir").exists());
    assert_eq!(
        std::fs::read_to_string(DEFAULTS).expect("settings kept"),
        rig.settings
    );
    assert_eq!(positions(), kept);
    eprintln!("tests/package.rs, the .rpm: {:?}", started.elapsed());
}
