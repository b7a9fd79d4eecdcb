//! The host side: scripts/ship-nginx-logs.sh run for real, offline. The instance metadata
//! service is a loopback stand-in (IMDSv2 token PUT, then instance-id GET), the bucket is moto,
//! and the upload is done by the AWS CLI from .venv (scripts/requirements-test.txt).

mod common;

use common::block_on;
use common::notify::aws_cli;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::imds::{INSTANCE_ID, Imds, ImdsServer, NameTag};
use common::moto::Moto;
use nginx_cloudwatch_forwarder::ship::host::meta_value;

const BUCKET: &str = "nginx-logs-shipper";

fn script() -> PathBuf {
    Path::new(common::MANIFEST_DIR).join("scripts/ship-nginx-logs.sh")
}

// --- scratch directories, files, running the script --------------------------------------------

/// A fresh directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "nginx-shipper-test-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["logs", "tmp", "home"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create scratch dir");
        }
        // Path-style addressing and a region for the CLI; nothing read from the real ~/.aws.
        std::fs::write(
            dir.join("aws-config"),
            "[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n",
        )
        .expect("write AWS config");
        Scratch(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
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

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
    let mut cmd = Command::new(script());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", s.path("home"))
        .env("TMPDIR", s.path("tmp"))
        .env("TZ", "XYZ-14")
        .env("LC_ALL", "C")
        .env("AWS_CONFIG_FILE", s.path("aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", s.path("no-credentials-file"))
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("IMDS_ENDPOINT", &imds.endpoint)
        .env("NGINX_LOG_BUCKET", BUCKET)
        .env("AWS_CLI", aws_cli());
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
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
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
        let moto = Moto::start();
        let conf = aws_sdk_s3::config::Builder::from(&moto.sdk_config())
            .force_path_style(true)
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(conf);
        block_on(s3.create_bucket().bucket(BUCKET).send()).expect("create bucket");
        Bucket { moto, s3 }
    }

    fn keys(&self) -> Vec<String> {
        let out = block_on(self.s3.list_objects_v2().bucket(BUCKET).send()).expect("list");
        let mut keys: Vec<String> = out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        keys.sort();
        keys
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
        let head = block_on(self.s3.head_object().bucket(BUCKET).key(key).send())
            .unwrap_or_else(|e| panic!("head {key}: {e:?}"));
        let mut meta: Vec<(String, String)> = head
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        meta.sort();
        meta
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

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
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
        &[&live, &other, &dir, &unmatched, &missing],
    );

    assert!(run.status.success(), "exit {}: {}", run.status, run.stderr);
    for (p, why) in [
        (&live, "a live log, not a rotated one"),
        (
            &other,
            "neither an access nor an error log (name does not start with access or error)",
        ),
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
    assert!(live.exists() && other.exists() && dir.exists());
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
