//! The host side: scripts/ship-nginx-logs.sh run for real, offline. The instance metadata
//! service is a loopback stand-in (IMDSv2 token PUT, then instance-id GET), the bucket is moto,
//! and the upload is done by the AWS CLI from .venv (scripts/requirements-test.txt).

mod common;

use common::notify::aws_cli;
use common::{block_on, gunzip};

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use common::imds::{INSTANCE_ID, Imds, ImdsServer, NameTag};
use common::moto::Moto;
use nginx_cloudwatch_forwarder::ship::host::meta_value;

const BUCKET: &str = "nginx-logs-shipper";

// --- scratch directories, files, running the script --------------------------------------------

/// A fresh directory (`logs`, `tmp`, `home` and the AWS CLI's config in it), removed on drop.
struct Scratch(common::Scratch);

impl Scratch {
    fn new(tag: &str) -> Self {
        let s = common::Scratch::new(&format!("shipper-{tag}"), &["logs", "tmp", "home"]);
        s.aws_cli_config();
        Scratch(s)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.path(rel)
    }

    /// A log file with a given modification time (`touch -t`, POSIX, in UTC).
    fn log(&self, rel: &str, body: &[u8], utc_stamp: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("create dir");
        std::fs::write(&p, body).expect("write log");
        let st = Command::new("touch")
            .env("TZ", "UTC0")
            .args(["-t", utc_stamp])
            .arg(&p)
            .status()
            .expect("run touch");
        assert!(st.success(), "touch -t {utc_stamp} {}", p.display());
        p
    }

    /// A stand-in for the AWS CLI: records each call (its last argument, the s3:// URL) in
    /// `aws-calls`, fails for URLs matching `FAKE_AWS_FAIL` (a shell pattern) and, with
    /// `FAKE_AWS_FAIL_FIRST=1`, the first call for each URL; otherwise runs `REAL_AWS` if set,
    /// else fails.
    fn fake_aws(&self) -> PathBuf {
        let p = self.path("fake-aws");
        let calls = self.path("aws-calls");
        let marks = self.path("aws-marks");
        std::fs::create_dir_all(&marks).expect("create marks dir");
        let text = format!(
            r#"#!/bin/sh
for url; do :; done
printf '%s\n' "$url" >> '{calls}'
case $url in
${{FAKE_AWS_FAIL:-no-url-matches-this}}) echo "fake-aws: simulated outage for $url" >&2; exit 1 ;;
esac
if [ "${{FAKE_AWS_FAIL_FIRST:-}}" = 1 ]; then
    mark='{marks}'/$(printf '%s' "$url" | cksum | cut -d' ' -f1)
    if [ ! -e "$mark" ]; then
        : > "$mark"
        echo "fake-aws: simulated transient failure for $url" >&2
        exit 1
    fi
fi
[ -n "${{REAL_AWS:-}}" ] || {{ echo "fake-aws: no REAL_AWS" >&2; exit 1; }}
exec "$REAL_AWS" "$@"
"#,
            calls = calls.display(),
            marks = marks.display()
        );
        std::fs::write(&p, text).expect("write fake aws");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    /// An executable `nginx` stand-in running `body` (a sh script); its path.
    fn fake_nginx(&self, body: &str) -> String {
        let p = self.path("fake-nginx");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write fake nginx");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p.display().to_string()
    }

    /// The URLs the fake CLI was called with, in order.
    fn aws_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("aws-calls"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The scripts's private temp dirs are gone.
    fn assert_tmp_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.path("tmp"))
            .expect("read tmp")
            .map(|e| e.expect("dir entry").path())
            .collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
    }
}

struct Run {
    status: ExitStatus,
    stderr: String,
}

/// Runs the script with a clean environment: PATH, a scratch HOME/TMPDIR/AWS_CONFIG_FILE, a
/// local zone far from UTC (UTC+14, so a local date would differ), the IMDS stand-in, moto's
/// environment when given, then `vars`.
fn ship(
    s: &Scratch,
    imds: &ImdsServer,
    moto: Option<&Moto>,
    vars: &[(&str, &str)],
    files: &[&Path],
) -> Run {
    let mut cmd = common::shipper_script(&s.0, &imds.endpoint, BUCKET);
    cmd.env("TZ", "XYZ-14")
        // File names decide unless a test gives the binary that reads nginx's configuration
        // (one installed on this machine must not change what the others assert).
        .env("NCF_BIN", "none");
    if let Some(m) = moto {
        cmd.envs(m.env());
    } else {
        // Nothing may reach real AWS by accident.
        cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true");
    }
    cmd.envs(vars.iter().copied()).args(files);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {}: {e}",
            common::shipper_script_path().display()
        )
    });
    Run {
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// --- moto -------------------------------------------------------------------------------------

struct Bucket {
    moto: Moto,
    s3: aws_sdk_s3::Client,
}

impl Bucket {
    fn start() -> Self {
        let b = Self::on(Moto::start());
        block_on(b.s3.create_bucket().bucket(BUCKET).send()).expect("create bucket");
        b
    }

    /// A client for `moto`'s buckets (none created).
    fn on(moto: Moto) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(&moto.sdk_config())
            .force_path_style(true)
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(conf);
        Bucket { moto, s3 }
    }

    fn keys(&self) -> Vec<String> {
        block_on(common::moto::bucket_keys(&self.s3, BUCKET))
    }

    /// Body, Content-Type and Content-Encoding of an object.
    fn get(&self, key: &str) -> (Vec<u8>, Option<String>, Option<String>) {
        block_on(async {
            let o = self
                .s3
                .get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
            let ct = o.content_type().map(str::to_string);
            let ce = o.content_encoding().map(str::to_string);
            let body = o.body.collect().await.expect("read body").into_bytes();
            (body.to_vec(), ct, ce)
        })
    }
}

impl Bucket {
    /// The user metadata (`x-amz-meta-*`) of an object, sorted.
    fn metadata(&self, key: &str) -> Vec<(String, String)> {
        block_on(common::moto::object_metadata(&self.s3, BUCKET, key))
    }
}

fn meta(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

/// What `hostname -f` says here (the script's fallback), else `hostname`.
fn host_fqdn() -> String {
    for args in [&["-f"][..], &[][..]] {
        if let Ok(out) = Command::new("hostname").args(args).output() {
            let name = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !name.is_empty() {
                return name;
            }
        }
    }
    panic!("neither hostname -f nor hostname names this host");
}

fn access_text() -> Vec<u8> {
    let t = common::FIXTURE_NOW_MS - 7_200_000;
    (0..3)
        .map(|i| common::combined_line("203.0.113.7", t + i * 1000, &format!("/p/{i}"), 200) + "\n")
        .collect::<String>()
        .into_bytes()
}

const ERROR_TEXT: &[u8] = b"2026/11/23 23:58:01 [error] 1204#1204: *31 open() \"/x\" failed (2: No such file or directory), client: 203.0.113.7\n";

// --- tests -------------------------------------------------------------------------------------

#[test]
fn ships_plain_and_gzipped_logs_under_instance_type_and_utc_day() {
    let bucket = Bucket::start();
    let imds = ImdsServer::start(Imds::Serve);
    let s = Scratch::new("ship");
    let access = access_text();
    let error_gz = common::gzip(ERROR_TEXT);
    // 10:00 UTC is already the 25th at UTC+14 (the script's local zone): the UTC day is used.
    let a = s.log("logs/access.log-20261124T1000", &access, "202611241000.00");
    let e = s.log(
        "logs/error.log-20261124T1000.gz",
        &error_gz,
        "202611232359.00",
    );

    let run = ship(&s, &imds, Some(&bucket.moto), &[], &[&a, &e]);

    assert!(run.status.success(), "exit {}: {}", run.status, run.stderr);
    let access_key = format!("nginx/{INSTANCE_ID}/access/2026/11/24/access.log-20261124T1000.gz");
    let error_key = format!("nginx/{INSTANCE_ID}/error/2026/11/23/error.log-20261124T1000.gz");
    assert_eq!(bucket.keys(), [access_key.clone(), error_key.clone()]);

    let (body, ct, ce) = bucket.get(&access_key);
    assert_eq!(gunzip(&body), access, "access log round-trips through gzip");
    assert_eq!(ct.as_deref(), Some("application/gzip"));
    assert_eq!(ce, None, "raw gzip bytes, no Content-Encoding");
    let (body, ct, ce) = bucket.get(&error_key);
    assert_eq!(
        body, error_gz,
        "an already-gzipped file is uploaded as it is"
    );
    assert_eq!(gunzip(&body), ERROR_TEXT);
    assert_eq!(ct.as_deref(), Some("application/gzip"));
    assert_eq!(ce, None);

    assert!(!a.exists() && !e.exists(), "uploaded files are deleted");
    for (file, key) in [(&a, &access_key), (&e, &error_key)] {
        let line = format!(
            "ship-nginx-logs: uploaded {} to s3://{BUCKET}/{key} (deleted)",
            file.display()
        );
        assert!(
            run.stderr.lines().any(|l| l == line),
            "no line {line:?} in:\n{}",
            run.stderr
        );
    }
    imds.assert_token_flow();
    s.assert_tmp_clean();
}

#[test]
fn a_file_that_does_not_upload_is_kept_and_named() {
    let bucket = Bucket::start();
    let imds = ImdsServer::start(Imds::Serve);
    let s = Scratch::new("nobucket");
    let access = access_text();
    let a = s.log("logs/access.log-20261124T1000", &access, "202611241000.00");
    let e = s.log(
        "logs/error.log-20261124T1000.gz",
        &common::gzip(ERROR_TEXT),
        "202611241000.00",
    );
    let fake = s.fake_aws();
    let real = aws_cli();
    let real = real.to_str().expect("UTF-8 path");

    let run = ship(
        &s,
        &imds,
        Some(&bucket.moto),
        &[
            ("NGINX_LOG_BUCKET", "no-such-bucket"),
            ("AWS_CLI", fake.to_str().expect("UTF-8 path")),
            ("REAL_AWS", real),
            ("UPLOAD_ATTEMPTS", "2"),
            ("RETRY_DELAY_SECONDS", "0"),
        ],
        &[&a, &e],
    );

    assert_eq!(run.status.code(), Some(1), "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains("NoSuchBucket"),
        "the CLI's error is shown:\n{}",
        run.stderr
    );
    for (file, ty, name) in [
        (&a, "access", "access.log-20261124T1000.gz"),
        (&e, "error", "error.log-20261124T1000.gz"),
    ] {
        assert!(file.exists(), "{} was deleted", file.display());
        let line = format!(
            "ship-nginx-logs: error: kept {}: upload to s3://no-such-bucket/nginx/{INSTANCE_ID}/{ty}/2026/11/24/{name} failed after 2 attempt(s)",
            file.display()
        );
        assert!(
            run.stderr.lines().any(|l| l == line),
            "no line {line:?} in:\n{}",
            run.stderr
        );
    }
    assert_eq!(
        std::fs::read(&a).expect("read kept file"),
        access,
        "untouched"
    );
    // Two attempts per file, and the second file was tried after the first failed.
    let calls = s.aws_calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(
        calls[..2].iter().all(|u| u.contains("/access/")),
        "{calls:?}"
    );
    assert!(
        calls[2..].iter().all(|u| u.contains("/error/")),
        "{calls:?}"
    );
    assert!(bucket.keys().is_empty());
    s.assert_tmp_clean();
}

#[test]
fn a_transient_failure_is_retried_and_one_bad_file_does_not_stop_the_others() {
    let bucket = Bucket::start();
    let imds = ImdsServer::start(Imds::Serve);
    let s = Scratch::new("retry");
    let e = s.log(
        "logs/error.log-20261124T1000",
        ERROR_TEXT,
        "202611241000.00",
    );
    let a = s.log(
        "logs/access.log-20261124T1000.gz",
        &common::gzip(&access_text()),
        "202611241000.00",
    );
    let fake = s.fake_aws();
    let real = aws_cli();

    let run = ship(
        &s,
        &imds,
        Some(&bucket.moto),
        &[
            ("AWS_CLI", fake.to_str().expect("UTF-8 path")),
            ("REAL_AWS", real.to_str().expect("UTF-8 path")),
            ("FAKE_AWS_FAIL_FIRST", "1"),
            ("FAKE_AWS_FAIL", "*/error/*"),
            ("UPLOAD_ATTEMPTS", "3"),
            ("RETRY_DELAY_SECONDS", "0"),
        ],
        &[&e, &a],
    );

    assert_eq!(run.status.code(), Some(1), "stderr:\n{}", run.stderr);
    assert!(e.exists(), "the file that never uploaded is kept");
    assert!(
        run.stderr
            .contains(&format!("error: kept {}:", e.display())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "upload of {} failed (attempt 1 of 3); retrying in 0s",
            a.display()
        )),
        "{}",
        run.stderr
    );
    assert!(!a.exists(), "uploaded on the second attempt, then deleted");
    assert_eq!(
        bucket.keys(),
        [format!(
            "nginx/{INSTANCE_ID}/access/2026/11/24/access.log-20261124T1000.gz"
        )]
    );
    let calls = s.aws_calls();
    assert_eq!(
        calls.iter().filter(|u| u.contains("/error/")).count(),
        3,
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|u| u.contains("/access/")).count(),
        2,
        "{calls:?}"
    );
    assert!(
        run.stderr
            .ends_with("ship-nginx-logs: error: 1 file(s) not shipped and kept (see above)\n"),
        "{}",
        run.stderr
    );
    s.assert_tmp_clean();
}

#[test]
fn without_an_instance_id_nothing_is_uploaded_or_deleted() {
    for (mode, message, requests) in [
        (Imds::DenyToken, "IMDSv2 did not issue a session token", 1),
        (
            Imds::EmptyToken,
            "IMDSv2 returned an empty session token",
            1,
        ),
        (Imds::RejectGet, "IMDSv2 did not return the instance ID", 2),
        (
            Imds::NotAnId,
            "IMDS returned \"<html>captive portal</html>\", which is not an EC2 instance ID",
            2,
        ),
    ] {
        let imds = ImdsServer::start(mode);
        let s = Scratch::new("imds");
        let a = s.log("logs/access.log-20261124T1000", b"x\n", "202611241000.00");
        let fake = s.fake_aws();

        let run = ship(
            &s,
            &imds,
            None,
            &[("AWS_CLI", fake.to_str().expect("UTF-8 path"))],
            &[&a],
        );

        assert_eq!(run.status.code(), Some(2), "{mode:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(message)
                && run.stderr.contains("nothing uploaded, nothing deleted"),
            "{mode:?}: expected {message:?} in:\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&imds.endpoint) || mode == Imds::NotAnId,
            "{mode:?}: the endpoint is named:\n{}",
            run.stderr
        );
        assert!(a.exists(), "{mode:?}: file deleted");
        assert!(s.aws_calls().is_empty(), "{mode:?}: CLI called");
        assert_eq!(imds.requests().len(), requests, "{mode:?}");
        s.assert_tmp_clean();
    }
}

#[test]
fn names_with_spaces_a_custom_prefix_and_keeping_uploaded_files() {
    let bucket = Bucket::start();
    let imds = ImdsServer::start(Imds::Serve);
    let s = Scratch::new("spaces");
    let access = access_text();
    let a = s.log(
        "logs/site one/access.log-2026 11 24T1000",
        &access,
        "202611241000.00",
    );
    let e = s.log(
        "logs/site one/error log-20261124T1000.gz",
        &common::gzip(ERROR_TEXT),
        "202611241000.00",
    );

    // Named .gz but not gzip: compressed like any plain file, without a second ".gz".
    let fake_gz = s.log(
        "logs/error.log-20261124T1100.gz",
        ERROR_TEXT,
        "202611241100.00",
    );

    let run = ship(
        &s,
        &imds,
        Some(&bucket.moto),
        &[
            ("NGINX_LOG_PREFIX", "/prod/web/"),
            ("DELETE_AFTER_UPLOAD", "false"),
        ],
        &[&a, &e, &fake_gz],
    );

    assert!(run.status.success(), "exit {}: {}", run.status, run.stderr);
    let access_key =
        format!("prod/web/{INSTANCE_ID}/access/2026/11/24/access.log-2026 11 24T1000.gz");
    let error_key = format!("prod/web/{INSTANCE_ID}/error/2026/11/24/error log-20261124T1000.gz");
    let fake_gz_key = format!("prod/web/{INSTANCE_ID}/error/2026/11/24/error.log-20261124T1100.gz");
    assert_eq!(
        bucket.keys(),
        [access_key.clone(), error_key, fake_gz_key.clone()]
    );
    assert_eq!(gunzip(&bucket.get(&access_key).0), access);
    assert_eq!(gunzip(&bucket.get(&fake_gz_key).0), ERROR_TEXT);
    assert!(
        a.exists() && e.exists() && fake_gz.exists(),
        "DELETE_AFTER_UPLOAD=false keeps them"
    );
    assert_eq!(
        std::fs::read(&fake_gz).expect("read"),
        ERROR_TEXT,
        "untouched"
    );
    assert!(
        run.stderr.contains(&format!(
            "uploaded {} to s3://{BUCKET}/{access_key} (kept: DELETE_AFTER_UPLOAD=false)",
            a.display()
        )),
        "{}",
        run.stderr
    );
    s.assert_tmp_clean();
}

#[test]
fn live_and_foreign_files_are_skipped_without_asking_imds() {
    let imds = ImdsServer::start(Imds::Serve);
    let s = Scratch::new("skip");
    let live = s.log("logs/access.log", b"live\n", "202611241000.00");
    let other = s.log("logs/other.log-20261124.gz", b"x\n", "202611241000.00");
    let bare = s.log("logs/site-1", b"x\n", "202611241000.00");
    let dir = s.path("logs/access.log-dir");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let unmatched = s.path("logs/*.log-*.gz.none");
    let missing = s.path("logs/error.log-gone");
    let fake = s.fake_aws();

    let run = ship(
        &s,
        &imds,
        None,
        &[("AWS_CLI", fake.to_str().expect("UTF-8 path"))],
        &[&live, &other, &bare, &dir, &unmatched, &missing],
    );

    assert!(run.status.success(), "exit {}: {}", run.status, run.stderr);
    for p in [&other, &bare] {
        let line = format!(
            "ship-nginx-logs: warning: kept {}: neither its name (access*, error*) nor nginx's configuration says whether it is an access or an error log (nginx's configuration was not read: NCF_BIN=none)",
            p.display()
        );
        assert!(
            run.stderr.lines().any(|l| l == line),
            "no line {line:?} in:\n{}",
            run.stderr
        );
    }
    for (p, why) in [
        (&live, "a live log, not a rotated one"),
        (&dir, "not a regular file"),
        (&unmatched, "no file matches"),
        (&missing, "no such file"),
    ] {
        let line = format!("ship-nginx-logs: skipped {}: {why}", p.display());
        assert!(
            run.stderr.lines().any(|l| l == line),
            "no line {line:?} in:\n{}",
            run.stderr
        );
    }
    assert!(live.exists() && other.exists() && bare.exists() && dir.exists());
    assert!(
        imds.requests().is_empty(),
        "IMDS asked with nothing to ship"
    );
    assert!(s.aws_calls().is_empty());
    s.assert_tmp_clean();
}

#[test]
fn configuration_errors_name_the_variable() {
    let imds = ImdsServer::start(Imds::Serve);
    let s = Scratch::new("config");
    let a = s.log("logs/access.log-20261124T1000", b"x\n", "202611241000.00");
    for (vars, message) in [
        (
            &[("NGINX_LOG_BUCKET", "")][..],
            "NGINX_LOG_BUCKET is not set",
        ),
        (
            &[("NGINX_LOG_BUCKET", "s3://b/p")][..],
            "NGINX_LOG_BUCKET=\"s3://b/p\": must be a bucket name",
        ),
        (
            &[("UPLOAD_ATTEMPTS", "0")][..],
            "UPLOAD_ATTEMPTS=\"0\": must be a whole number from 1",
        ),
        (
            &[("RETRY_DELAY_SECONDS", "2s")][..],
            "RETRY_DELAY_SECONDS=\"2s\": must be a whole number of seconds",
        ),
        (
            &[("DELETE_AFTER_UPLOAD", "yes")][..],
            "DELETE_AFTER_UPLOAD=\"yes\": must be true or false",
        ),
        (
            &[("AWS_CLI", "/nonexistent/aws")][..],
            "AWS CLI \"/nonexistent/aws\" not found",
        ),
        (
            &[("NCF_BIN", "/nonexistent/nginx-cloudwatch-forwarder")][..],
            "NCF_BIN=\"/nonexistent/nginx-cloudwatch-forwarder\": not found",
        ),
    ] {
        let run = ship(&s, &imds, None, vars, &[&a]);
        assert_eq!(run.status.code(), Some(2), "{vars:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(message),
            "{vars:?}: expected {message:?} in:\n{}",
            run.stderr
        );
    }
    let run = ship(&s, &imds, None, &[], &[]);
    assert_eq!(run.status.code(), Some(2));
    assert!(run.stderr.starts_with("usage: "), "{}", run.stderr);
    assert!(a.exists());
    assert!(imds.requests().is_empty());
    s.assert_tmp_clean();
}

#[test]
fn with_a_name_tag_every_object_carries_it_the_instance_id_and_the_nginx_version() {
    // A plain name; one with what JSON, the CLI's shorthand and HTTP headers treat specially;
    // one far over 256 bytes once encoded (cut between characters, as the follower cuts it).
    let odd = "web 01 \"q\" \\ a,b=c 100% ウェブ";
    let long = "é".repeat(60);
    for (name, want) in [
        ("web-01.prod", "web-01.prod".to_string()),
        (
            odd,
            "web%2001%20\"q\"%20\\%20a,b=c%20100%25%20%E3%82%A6%E3%82%A7%E3%83%96".to_string(),
        ),
        (long.as_str(), "%C3%A9".repeat(42)),
    ] {
        assert_eq!(meta_value(name), want, "the follower's rule");
        let bucket = Bucket::start();
        let imds = ImdsServer::start_with(Imds::Serve, NameTag::Is(name.to_string()));
        let s = Scratch::new("meta-tag");
        let nginx = s.fake_nginx("echo 'nginx version: nginx/9.8.7' >&2");
        let a = s.log(
            "logs/access.log-20261124T1000",
            &access_text(),
            "202611241000.00",
        );
        let e = s.log(
            "logs/error.log-20261124T1000",
            ERROR_TEXT,
            "202611241000.00",
        );

        let run = ship(
            &s,
            &imds,
            Some(&bucket.moto),
            &[("NGINX_BIN", &nginx)],
            &[&a, &e],
        );

        assert!(
            run.status.success(),
            "{name:?}: exit {}: {}",
            run.status,
            run.stderr
        );
        imds.assert_token_flow();
        let keys = bucket.keys();
        assert_eq!(
            keys,
            [
                format!("nginx/{INSTANCE_ID}/access/2026/11/24/access.log-20261124T1000.gz"),
                format!("nginx/{INSTANCE_ID}/error/2026/11/24/error.log-20261124T1000.gz"),
            ],
            "{name:?}"
        );
        for key in keys {
            assert_eq!(
                bucket.metadata(&key),
                meta(&[
                    ("instance-id", INSTANCE_ID),
                    ("hostname", &want),
                    ("nginx-version", "9.8.7"),
                ]),
                "{name:?}: {key}"
            );
        }
        assert!(!run.stderr.contains("warning"), "{}", run.stderr);
        s.assert_tmp_clean();
    }
}

#[test]
fn without_a_name_tag_the_hostname_is_hostname_f_and_an_unknown_nginx_version_is_left_out() {
    let fqdn = host_fqdn();
    for (tag, case) in [(NameTag::Absent, "404"), (NameTag::Refused, "403")] {
        let bucket = Bucket::start();
        let imds = ImdsServer::start_with(Imds::Serve, tag.clone());
        let s = Scratch::new("meta-fqdn");
        let nginx = s.fake_nginx("echo 'sh: nginx: broken' >&2; exit 127");
        let a = s.log(
            "logs/access.log-20261124T1000",
            &access_text(),
            "202611241000.00",
        );

        let run = ship(
            &s,
            &imds,
            Some(&bucket.moto),
            &[("NGINX_BIN", &nginx)],
            &[&a],
        );

        assert!(
            run.status.success(),
            "{case}: the name never fails an upload: {}",
            run.stderr
        );
        imds.assert_token_flow();
        let key = format!("nginx/{INSTANCE_ID}/access/2026/11/24/access.log-20261124T1000.gz");
        assert_eq!(bucket.keys(), std::slice::from_ref(&key), "{case}");
        assert_eq!(
            bucket.metadata(&key),
            meta(&[
                ("instance-id", INSTANCE_ID),
                ("hostname", &meta_value(&fqdn))
            ]),
            "{case}"
        );
        // Only a failure other than 404 is worth a warning.
        assert_eq!(
            run.stderr.contains("warning: cannot read the Name tag"),
            tag == NameTag::Refused,
            "{case}: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains(&format!("hostname {fqdn}, nginx version unknown")),
            "{case}: {}",
            run.stderr
        );
        s.assert_tmp_clean();
    }
}

#[test]
fn nginx_is_found_at_usr_sbin_when_it_is_not_on_path() {
    let real = Path::new("/usr/sbin/nginx");
    assert!(
        real.exists(),
        "no /usr/sbin/nginx: run scripts/test, which installs Debian's nginx-light when it is missing"
    );
    let out = Command::new(real).arg("-v").output().expect("run nginx -v");
    let text = String::from_utf8_lossy(&out.stderr);
    let version = text
        .trim()
        .strip_prefix("nginx version: nginx/")
        .unwrap_or_else(|| panic!("unexpected nginx -v output {text:?}"))
        .to_string();
    let bucket = Bucket::start();
    let imds = ImdsServer::start_with(Imds::Serve, NameTag::Is("web-01".into()));
    let s = Scratch::new("meta-nginx");
    let a = s.log(
        "logs/access.log-20261124T1000",
        &access_text(),
        "202611241000.00",
    );

    // No nginx on this PATH (curl, gzip and the rest are in /usr/bin and /bin).
    let run = ship(
        &s,
        &imds,
        Some(&bucket.moto),
        &[("PATH", "/usr/bin:/bin")],
        &[&a],
    );

    assert!(run.status.success(), "exit {}: {}", run.status, run.stderr);
    let key = format!("nginx/{INSTANCE_ID}/access/2026/11/24/access.log-20261124T1000.gz");
    assert_eq!(
        bucket.metadata(&key),
        meta(&[
            ("instance-id", INSTANCE_ID),
            ("hostname", "web-01"),
            ("nginx-version", &version),
        ])
    );
}

// --- site-named logs: nginx's configuration says what each is ---------------------------------

/// A format `combined` cannot read.
const TIMING_FORMAT: &str =
    r#"'$remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time'"#;
/// JSON lines.
const JSON_FORMAT: &str = r#"escape=json '{"remote_addr":"$remote_addr","time_iso8601":"$time_iso8601","request":"$request","status":$status,"body_bytes_sent":$body_bytes_sent}'"#;

fn forwarder_bin() -> &'static str {
    env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder")
}

/// `<prefix><instance-id>/formats/<sha256>` of a format (the forwarder's own function).
fn format_key(format: &str) -> String {
    nginx_cloudwatch_forwarder::parse::object_format::format_object_key(
        "nginx/",
        INSTANCE_ID,
        format,
    )
}

/// `combined` as ACCESS_LOG_FORMAT takes it: what a log with no `log_format` named is
/// written in.
fn combined() -> String {
    nginx_cloudwatch_forwarder::ship::nginx_conf::Format::combined().to_config()
}

/// A real nginx that logs three sites to files named by site, in three formats, with two
/// error logs (`shop.example.com.*.log`, `api-access.log` and `api.err`, `site/access.log`),
/// stopped once it has written them; `wrapper` runs that nginx on that configuration (what the
/// script and the binary get as NGINX_BIN).
struct Sites {
    _nginx: common::nginx::Nginx,
    wrapper: String,
    /// Where the wrapper's nginx reads its configuration (NGINX_CONF, NGINX_PREFIX): the
    /// binary reads the files, not `nginx -T` through the wrapper.
    conf: String,
    prefix: String,
}

fn sites(s: &Scratch) -> Sites {
    let logs = s.path("logs");
    std::fs::create_dir_all(logs.join("site")).expect("mkdir site");
    let addr = std::net::SocketAddr::from((
        std::net::Ipv4Addr::LOCALHOST,
        common::nginx::free_port(std::net::Ipv4Addr::LOCALHOST.into()),
    ));
    let l = logs.display();
    let mut nginx = common::nginx::Nginx::start(&format!(
        "log_format timing {TIMING_FORMAT};\n\
         log_format j {JSON_FORMAT};\n\
         server {{\n\
           listen {addr};\n\
           root html;\n\
           location /shop/ {{ access_log {l}/shop.example.com.access.log timing;\n\
                              error_log {l}/shop.example.com.error.log; }}\n\
           location /api/ {{ access_log {l}/api-access.log j; error_log {l}/api.err; }}\n\
           location /site/ {{ access_log {l}/site/access.log; }}\n\
         }}"
    ));
    for site in ["shop", "api", "site"] {
        for target in ["/", "/missing", "/q?x=%22y%22&z=\"raw\""] {
            common::nginx::get(
                addr,
                "sites.test",
                &format!("/{site}{target}"),
                "curl/8.5.0",
            );
        }
    }
    nginx.stop();
    for live in [
        "shop.example.com.access.log",
        "shop.example.com.error.log",
        "api-access.log",
        "api.err",
        "site/access.log",
    ] {
        let n = lines_of(&std::fs::read(logs.join(live)).expect("nginx wrote it"));
        assert!(n >= 2, "{live}: {n} line(s)");
    }
    let wrapper = s.path("nginx");
    common::nginx::write_wrapper(&wrapper, &nginx.dir, &nginx.path("nginx.conf"));
    Sites {
        conf: nginx.path("nginx.conf").display().to_string(),
        prefix: nginx.dir.display().to_string(),
        _nginx: nginx,
        wrapper: wrapper.display().to_string(),
    }
}

fn lines_of(body: &[u8]) -> u64 {
    body.iter().filter(|b| **b == b'\n').count() as u64
}

/// A rotated copy of the live log `live` (under logs/), gzip'd or not, as logrotate leaves it.
fn rotated(s: &Scratch, live: &str, name: &str, gz: bool) -> PathBuf {
    let body = std::fs::read(s.path(&format!("logs/{live}"))).expect("read the live log");
    let body = if gz { common::gzip(&body) } else { body };
    s.log(&format!("logs/{name}"), &body, "202611241000.00")
}

/// Site-named logs in three naming styles (dateext with gzip, a number, a number in a site's
/// directory) and an error log whose name says nothing (`api.err.1`) are shipped with the kind
/// nginx's configuration gives them and the format that wrote them; the format objects are put
/// once (a second run finds them: 412) and are the follower's; `replay` with no
/// ACCESS_LOG_FORMAT parses every line.
#[test]
fn site_named_logs_are_shipped_as_nginx_s_configuration_says_with_their_formats() {
    let s = Scratch::new("sites");
    let sites = sites(&s);
    let bucket = Bucket::on(Moto::start_logged());
    let notified = block_on(common::notify::NotifyingBucket::create(
        &bucket.moto,
        BUCKET,
    ));
    let imds = ImdsServer::start(Imds::Serve);
    let vars = [
        ("NCF_BIN", forwarder_bin()),
        ("NGINX_BIN", &sites.wrapper),
        ("NGINX_CONF", &sites.conf),
        ("NGINX_PREFIX", &sites.prefix),
    ];
    let first = [
        rotated(
            &s,
            "shop.example.com.access.log",
            "shop.example.com.access.log-20261124.gz",
            true,
        ),
        rotated(
            &s,
            "shop.example.com.error.log",
            "shop.example.com.error.log-20261124T1000",
            false,
        ),
        rotated(&s, "api-access.log", "api-access.log.1", false),
        rotated(&s, "api.err", "api.err.1", false),
        rotated(&s, "site/access.log", "site/access.log.2.gz", true),
    ];
    let live = s.path("logs/api.err");
    let mut files: Vec<&Path> = first.iter().map(PathBuf::as_path).collect();
    files.push(&live);

    // What the script reads: the binary's list, each format's text in its own file.
    let (code, out, err) = common::moto::run(
        &["nginx-logs", "--json"],
        &[
            ("NGINX_BIN", sites.wrapper.clone()),
            ("NGINX_CONF", sites.conf.clone()),
            ("NGINX_PREFIX", sites.prefix.clone()),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let listed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let shop = s.path("logs/shop.example.com.access.log");
    let shop = listed
        .iter()
        .find(|e| e["path"] == shop.to_str().expect("UTF-8"))
        .unwrap_or_else(|| panic!("no {}: {out}", shop.display()));
    assert_eq!(
        (&shop["kind"], &shop["log_format"]),
        (
            &serde_json::Value::from("access"),
            &serde_json::Value::from(TIMING_FORMAT)
        ),
        "{out}"
    );

    // A format object that does not upload keeps its log, unshipped, for the next rotation.
    let fake = s.fake_aws();
    let real = aws_cli();
    let mut failing = vars.to_vec();
    failing.extend([
        ("AWS_CLI", fake.to_str().expect("UTF-8 path")),
        ("REAL_AWS", real.to_str().expect("UTF-8 path")),
        ("FAKE_AWS_FAIL", "*/formats/*"),
        ("UPLOAD_ATTEMPTS", "2"),
        ("RETRY_DELAY_SECONDS", "0"),
    ]);
    let run = ship(&s, &imds, Some(&bucket.moto), &failing, &[&first[0]]);
    assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
    let line = format!(
        "ship-nginx-logs: error: kept {}: its format object s3://{BUCKET}/{} did not upload after 2 attempt(s)",
        first[0].display(),
        format_key(TIMING_FORMAT)
    );
    assert!(run.stderr.lines().any(|l| l == line), "{}", run.stderr);
    assert!(first[0].exists());
    assert_eq!(s.aws_calls().len(), 2, "{:?}", s.aws_calls());
    assert!(bucket.keys().is_empty());

    let run = ship(&s, &imds, Some(&bucket.moto), &vars, &files);

    assert!(run.status.success(), "exit {}: {}", run.status, run.stderr);
    let day = format!("nginx/{INSTANCE_ID}");
    let logs = |names: &[(&str, &str)]| -> Vec<String> {
        names
            .iter()
            .map(|(kind, name)| format!("{day}/{kind}/2026/11/24/{name}"))
            .collect()
    };
    let first_keys = logs(&[
        ("access", "shop.example.com.access.log-20261124.gz"),
        ("error", "shop.example.com.error.log-20261124T1000.gz"),
        ("access", "api-access.log.1.gz"),
        ("error", "api.err.1.gz"),
        ("access", "access.log.2.gz"),
    ]);
    let formats = [
        (TIMING_FORMAT.to_string(), &first_keys[0]),
        (JSON_FORMAT.to_string(), &first_keys[2]),
        (combined(), &first_keys[4]),
    ];
    let mut want: Vec<String> = first_keys.clone();
    want.extend(formats.iter().map(|(f, _)| format_key(f)));
    want.sort();
    assert_eq!(bucket.keys(), want, "{}", run.stderr);
    for (format, log) in &formats {
        let key = format_key(format);
        let (body, ct, _) = bucket.get(&key);
        assert_eq!(body, format.as_bytes(), "{key}: the format, byte for byte");
        assert_eq!(ct.as_deref(), Some("text/plain; charset=utf-8"));
        let meta = bucket.metadata(log);
        assert!(
            meta.contains(&("ncf-log-format".to_string(), meta_value(&key))),
            "{log}: {meta:?}"
        );
    }
    for error_log in [&first_keys[1], &first_keys[3]] {
        let meta = bucket.metadata(error_log);
        assert!(
            meta.iter().all(|(k, _)| k != "ncf-log-format"),
            "{error_log}: {meta:?}"
        );
    }
    assert!(first.iter().all(|f| !f.exists()), "uploaded, then deleted");
    assert!(live.exists());
    let line = format!(
        "ship-nginx-logs: skipped {}: a live log, not a rotated one (nginx writes to it)",
        live.display()
    );
    assert!(run.stderr.lines().any(|l| l == line), "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);

    // The next rotation: the formats are there already. One file is given through a linked
    // directory: its live log is found with the link resolved.
    let second = [
        rotated(&s, "api-access.log", "api-access.log.2", false),
        rotated(&s, "site/access.log", "site/access.log.3.gz", true),
    ];
    std::os::unix::fs::symlink(s.path("logs/site"), s.path("linked")).expect("symlink");
    let through_link = s.path("linked/access.log.3.gz");
    let files = [second[0].as_path(), through_link.as_path()];
    let run = ship(&s, &imds, Some(&bucket.moto), &vars, &files);
    assert!(run.status.success(), "exit {}: {}", run.status, run.stderr);
    for format in [JSON_FORMAT.to_string(), combined()] {
        let line = format!(
            "ship-nginx-logs: format object s3://{BUCKET}/{}: already there",
            format_key(&format)
        );
        assert!(run.stderr.lines().any(|l| l == line), "{}", run.stderr);
    }
    let second_keys = logs(&[
        ("access", "api-access.log.2.gz"),
        ("access", "access.log.3.gz"),
    ]);
    want.extend(second_keys.iter().cloned());
    want.sort();
    assert_eq!(bucket.keys(), want);
    assert!(
        bucket.metadata(&second_keys[1]).contains(&(
            "ncf-log-format".to_string(),
            meta_value(&format_key(&combined()))
        )),
        "{}",
        run.stderr
    );
    assert!(second.iter().all(|f| !f.exists()), "uploaded, then deleted");
    // Counted where they are received: one stored put per format, one refused (412) per format
    // a later run used.
    let format_puts: Vec<u16> = bucket
        .moto
        .received()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/formats/"))
        .map(|r| r.status)
        .collect();
    assert_eq!(format_puts, [200, 200, 200, 412, 412]);

    // The forwarder reads each log with the format its object names.
    let event = block_on(notified.lambda_event());
    let (code, summary) = common::moto::replay(&event, &bucket.moto.env());
    assert_eq!(code, Some(0), "replay: {summary:#}");
    assert_eq!(
        (
            &summary["objects_delivered"],
            &summary["objects_skipped"],
            &summary["objects_failed"],
            &summary["parse_errors"]
        ),
        (
            &serde_json::Value::from(7),
            &serde_json::Value::from(3),
            &serde_json::Value::from(0),
            &serde_json::Value::from(0)
        ),
        "{summary:#}"
    );
    let lines: u64 = [
        "shop.example.com.access.log",
        "shop.example.com.error.log",
        "api-access.log",
        "api.err",
        "site/access.log",
        "api-access.log",
        "site/access.log",
    ]
    .iter()
    .map(|l| lines_of(&std::fs::read(s.path(&format!("logs/{l}"))).expect("read")))
    .sum();
    assert_eq!(summary["events"], lines, "{summary:#}");
    let objects = summary["objects"].as_array().expect("objects");
    for (format, log) in &formats {
        assert!(
            objects
                .iter()
                .any(|o| o["key"] == log.as_str() && o["log_format"] == format_key(format)),
            "{log}: {summary:#}"
        );
    }
    s.assert_tmp_clean();
}

/// Without the binary, or when it cannot read nginx's configuration, names decide as before:
/// `access…` and `error…` are shipped (with no format named), and a site-named file is kept,
/// with a warning that says why.
#[test]
fn without_nginx_s_configuration_names_decide_and_unclassified_files_are_kept() {
    let installed = Path::new("/usr/local/bin/nginx-cloudwatch-forwarder");
    assert!(
        !installed.exists(),
        "{} is installed: this test needs a machine without it",
        installed.display()
    );
    let s = Scratch::new("names");
    let broken = s.fake_nginx(
        "echo 'nginx: [emerg] open() \"/etc/nginx/nginx.conf\" failed (13: Permission denied)' >&2; exit 1",
    );
    // A binary from before nginx-logs: clap's refusal, its first line said.
    let older = s.path("older-forwarder");
    std::fs::write(
        &older,
        "#!/bin/sh
printf \"error: unrecognized subcommand '%s'\\n\\nUsage: nginx-cloudwatch-forwarder <COMMAND>\\n\\nFor more information, try '--help'.\\n\" \"$1\" >&2\nexit 64\n",
    )
    .expect("write the older binary");
    std::fs::set_permissions(&older, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let older = older.display().to_string();
    for (vars, why) in [
        (
            // Not on this PATH, not in /usr/local/bin.
            vec![("NCF_BIN", ""), ("PATH", "/usr/bin:/bin")],
            "nginx's configuration was not read: nginx-cloudwatch-forwarder is not installed (not on PATH nor in /usr/local/bin; set NCF_BIN)".to_string(),
        ),
        (
            vec![("NCF_BIN", forwarder_bin()), ("NGINX_BIN", &broken)],
            // The files first (where nginx -V says: nowhere here, so nginx's own default),
            // then nginx -T.
            format!(
                "nginx's configuration was not read: {} nginx-logs: error: nginx's configuration could not be read: /usr/local/nginx/conf/nginx.conf: cannot read it: No such file or directory (os error 2); and {broken} -T: nginx: [emerg] open() \"/etc/nginx/nginx.conf\" failed (13: Permission denied)",
                forwarder_bin()
            ),
        ),
        (
            vec![("NCF_BIN", older.as_str())],
            format!(
                "nginx's configuration was not read: {older} nginx-logs: error: unrecognized subcommand 'nginx-logs'"
            ),
        ),
    ] {
        let bucket = Bucket::start();
        let imds = ImdsServer::start(Imds::Serve);
        let by_name = s.log(
            "logs/access.log-20261124T1000",
            &access_text(),
            "202611241000.00",
        );
        let kept = [
            s.log(
                "logs/shop.example.com.access.log-20261124.gz",
                &common::gzip(&access_text()),
                "202611241000.00",
            ),
            s.log("logs/api-access.log.1", &access_text(), "202611241000.00"),
        ];

        let run = ship(
            &s,
            &imds,
            Some(&bucket.moto),
            &vars,
            &[&by_name, &kept[0], &kept[1]],
        );

        assert!(run.status.success(), "{vars:?}: exit {}: {}", run.status, run.stderr);
        let key = format!("nginx/{INSTANCE_ID}/access/2026/11/24/access.log-20261124T1000.gz");
        assert_eq!(bucket.keys(), std::slice::from_ref(&key), "{vars:?}");
        assert!(
            bucket
                .metadata(&key)
                .iter()
                .all(|(k, _)| k != "ncf-log-format"),
            "{vars:?}"
        );
        assert!(!by_name.exists(), "{vars:?}");
        for f in &kept {
            assert!(f.exists(), "{vars:?}: {} deleted", f.display());
            let line = format!(
                "ship-nginx-logs: warning: kept {}: neither its name (access*, error*) nor nginx's configuration says whether it is an access or an error log ({why})",
                f.display()
            );
            assert!(
                run.stderr.lines().any(|l| l == line),
                "{vars:?}: no line {line:?} in:\n{}",
                run.stderr
            );
            std::fs::remove_file(f).expect("clean up");
        }
        s.assert_tmp_clean();
    }
}
