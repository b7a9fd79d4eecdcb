//! `ship --check` against moto, the IMDS stand-in and a real nginx's configuration: a ready
//! host under the stack's host policy (moto enforcing IAM, see tests/host_policy.rs), a host
//! denied by it, IMDS down, and a log file this user cannot read. Every run is counted where
//! moto receives it: at most one PutObject (this host's format object) and nothing else of S3's,
//! and nothing changes on the host (no state directory).

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Scratch;
use common::iam::{self, Session};
use common::imds::{INSTANCE_ID, Imds, ImdsServer};
use common::moto::{Moto, counted_on, kinds};
use common::nginx::TIMING_FORMAT;

const BUCKET: &str = "nginx-logs-check";
/// The template's default `KeyPrefix`.
const KEY_PREFIX: &str = "nginx/";
const ROLE: &str = "nginx-host";

/// Real nginx's logs in the scratch directory ([`common::nginx::logged_site`]).
fn site(scratch: &Scratch) -> common::nginx::LoggedSite {
    let targets = ["/", "/missing"];
    common::nginx::logged_site(
        &scratch.path("logs"),
        &scratch.path("nginx"),
        "check.test",
        &targets,
    )
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// What a run is given besides the site: credentials, variables, and the user to run as.
#[derive(Default, Clone, Copy)]
struct As<'a> {
    session: Option<&'a Session>,
    vars: &'a [(&'a str, &'a str)],
    uid: Option<u32>,
    /// FILE arguments (none: every log the configuration names).
    files: &'a [&'a Path],
}

/// `ship --check` on every log the site's configuration names.
fn check(
    moto: &Moto,
    imds: &ImdsServer,
    site: &common::nginx::LoggedSite,
    state: &Path,
    who: As<'_>,
) -> Run {
    let mut cmd = common::ship_command_files(moto, imds, BUCKET, state, who.files);
    cmd.env_remove("NGINX_LOG_KEY_LAYOUT")
        .env("NGINX_BIN", &site.wrapper)
        .env("NGINX_CONF", &site.conf)
        .env("NGINX_PREFIX", &site.prefix)
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("HOME", state.parent().expect("a parent"))
        .envs(who.session.map(Session::env).unwrap_or_default())
        .envs(who.vars.iter().copied())
        .arg("--check");
    if let Some(uid) = who.uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("run ship --check");
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("--- ship --check:\n{}{}", run.stdout, run.stderr);
    assert!(!state.exists(), "the check made {}", state.display());
    run
}

/// The report's line of `check` (the one whose text holds `holding`).
fn line<'a>(run: &'a Run, check: &str, holding: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.get(6..).is_some_and(|r| r.starts_with(check)) && l.contains(holding))
        .unwrap_or_else(|| panic!("no {check} line with {holding:?}:\n{}", run.stdout))
}

/// Every check's status word.
fn statuses(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("ready") && !l.starts_with("NOT"))
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect()
}

/// The host policy as moto can enforce it for `user_id` (see tests/host_policy.rs, which
/// checks the document): rendered, its `TlsOnly` Deny dropped (moto applies a conditioned Deny
/// to every request).
fn host_policy_for(user_id: &str) -> serde_json::Value {
    let resource = iam::template_policy("HostUploadPolicy");
    let doc = iam::render(&resource["PolicyDocument"], BUCKET, KEY_PREFIX, user_id);
    let allowed: Vec<serde_json::Value> = doc["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|s| s["Sid"] != "TlsOnly")
        .cloned()
        .collect();
    serde_json::json!({"Version": doc["Version"], "Statement": allowed})
}

/// The rollout of docs/hosts.md as the check sees it: the host policy on the role, the default
/// layout refused (exit 1, the fix named, nothing stored), then `userid` ready (one PutObject,
/// 200), and ready again (the same PutObject answered 412: still writable, nothing written).
#[test]
fn the_host_policy_decides_whether_the_bucket_is_writable() {
    let scratch = Scratch::new("ship-check-policy", &["logs"]);
    let site = site(&scratch);
    let imds = ImdsServer::start(Imds::Serve);
    let moto = Moto::start_iam();
    iam::cli(&moto, &["s3api", "create-bucket", "--bucket", BUCKET]);
    let role = iam::create_host_role(&moto, ROLE);
    let host = iam::assume(&moto, &role, INSTANCE_ID);
    iam::attach_policy(&moto, ROLE, "host-upload", &host_policy_for(&host.user_id));
    moto.enforce_iam();
    let mut seen = moto.received().len();
    let state = scratch.path("state");
    let owner = host.user_id.clone();
    let format_key = nginx_cloudwatch_forwarder::parse::object_format::format_object_key(
        KEY_PREFIX,
        &owner,
        TIMING_FORMAT,
    );

    // The default layout: the check puts under <prefix><instance-id>/, which the policy refuses.
    let as_host = As {
        session: Some(&host),
        ..As::default()
    };
    let run = check(&moto, &imds, &site, &state, as_host);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let bucket = line(&run, "bucket", "not writable");
    assert!(
        bucket.contains(&format!("s3://{BUCKET}/{KEY_PREFIX}{INSTANCE_ID}/formats/"))
            && bucket.contains("403 AccessDenied"),
        "{bucket}"
    );
    assert!(
        run.stdout.contains("set NGINX_LOG_KEY_LAYOUT=userid")
            && run.stdout.contains("HostUploadPolicyArn")
            && run.stdout.contains(&format!("--role-name {ROLE}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("NOT READY: 1 check(s) failed: bucket (exit 1)"),
        "{}",
        run.stdout
    );
    let received = moto.received_since(&mut seen);
    assert_eq!(
        counted_on(BUCKET, &received),
        kinds(&[("sts", 1), ("PutObject", 1)]),
        "{received:?}"
    );
    assert_eq!(received.iter().map(|r| r.status).max(), Some(403));

    // userid: ready, every line ok, one PutObject stored (this host's format object).
    let userid = [("NGINX_LOG_KEY_LAYOUT", "userid")];
    let as_host = As {
        session: Some(&host),
        vars: &userid,
        ..As::default()
    };
    let run = check(&moto, &imds, &site, &state, as_host);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert_eq!(statuses(&run), ["ok"; 9], "{}", run.stdout);
    assert!(
        line(&run, "bucket", "writable").contains(&format!(
            "PutObject s3://{BUCKET}/{format_key} (If-None-Match: *) stored it (200)"
        )),
        "{}",
        run.stdout
    );
    let layout = line(&run, "key layout", "userid");
    assert!(
        layout.contains(&format!("keys under s3://{BUCKET}/{KEY_PREFIX}{owner}/")),
        "{layout}"
    );
    let who = line(&run, "credentials", "account");
    assert!(
        who.contains(&format!("role {ROLE}")) && who.contains(&owner),
        "{who}"
    );
    let logs = scratch.path("logs");
    let access = line(&run, "log file", "access.log");
    assert!(
        access.contains(&format!("{}/access.log: readable", logs.display()))
            && access.contains("log_format timing ("),
        "{access}"
    );
    assert!(line(&run, "log file", "error.log").contains("readable; error log"));
    assert!(line(&run, "IMDSv2", INSTANCE_ID).starts_with("ok"));
    assert!(line(&run, "clock", "AWS's").starts_with("ok"));
    assert!(run.stdout.ends_with("ready: every check passed (exit 0)\n"));
    let received = moto.received_since(&mut seen);
    assert_eq!(
        counted_on(BUCKET, &received),
        kinds(&[("sts", 1), ("PutObject", 1)]),
        "{received:?}"
    );
    assert!(received.iter().all(|r| r.status == 200), "{received:?}");
    let put = received
        .iter()
        .find(|r| r.method == "PUT")
        .expect("the put");
    // The key as sent: `:` percent-encoded.
    assert_eq!(
        put.path.replace("%3A", ":"),
        format!("/{BUCKET}/{format_key}")
    );

    // Again: the same put, answered 412 (there already), and still ready.
    let run = check(&moto, &imds, &site, &state, as_host);
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert!(
        line(&run, "bucket", "writable").contains("answered 412, already there"),
        "{}",
        run.stdout
    );
    let received = moto.received_since(&mut seen);
    assert_eq!(
        counted_on(BUCKET, &received),
        kinds(&[("sts", 1), ("PutObject", 1)]),
        "{received:?}"
    );
    assert_eq!(
        received
            .iter()
            .find(|r| r.method == "PUT")
            .map(|r| r.status),
        Some(412)
    );
}

/// moto (no IAM) with the bucket, logging what it receives.
fn plain_moto() -> Moto {
    let moto = Moto::start_logged();
    let (s3, _) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    common::block_on(s3.create_bucket().bucket(BUCKET).send()).expect("create the bucket");
    moto
}

/// Without IMDS the host cannot name its keys: the IMDSv2 line fails with what to do, the
/// bucket is not tried (no S3 request at all), the rest is still checked.
#[test]
fn imds_down_fails_and_puts_nothing() {
    let scratch = Scratch::new("ship-check-imds", &["logs"]);
    let site = site(&scratch);
    let imds = ImdsServer::start(Imds::DenyToken);
    let moto = plain_moto();
    let mut seen = moto.received().len();
    let run = check(&moto, &imds, &site, &scratch.path("state"), As::default());
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let imds_line = line(&run, "IMDSv2", "instance ID");
    assert!(imds_line.starts_with("FAIL"), "{imds_line}");
    assert!(
        run.stdout.contains("--http-tokens required"),
        "{}",
        run.stdout
    );
    assert!(line(&run, "bucket", "not checked").starts_with("warn"));
    assert!(line(&run, "log file", "access.log").starts_with("ok"));
    assert!(line(&run, "credentials", "account").starts_with("ok"));
    assert!(
        run.stdout
            .contains("NOT READY: 1 check(s) failed: IMDSv2 (exit 1)"),
        "{}",
        run.stdout
    );
    let received = moto.received_since(&mut seen);
    assert_eq!(
        counted_on(BUCKET, &received),
        kinds(&[("sts", 1)]),
        "{received:?}"
    );
}

/// A log file the follower's user cannot open (mode 000, the check run as `nobody`): that
/// file's line fails naming its group, the others pass.
#[test]
fn an_unreadable_log_file_fails_with_its_group() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("ship-check-unreadable", &["logs"]);
    let site = site(&scratch);
    let imds = ImdsServer::start(Imds::Serve);
    let moto = plain_moto();
    let access = scratch.path("logs/access.log");
    std::fs::set_permissions(&access, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    // nobody must reach the scratch directory (created 0755 under /tmp) and the binary.
    let nobody = 65534;
    let run = check(
        &moto,
        &imds,
        &site,
        &scratch.path("state"),
        As {
            uid: Some(nobody),
            ..As::default()
        },
    );
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let l = line(&run, "log file", "access.log");
    assert!(
        l.starts_with("FAIL") && l.contains(&format!("cannot be read by this user (uid {nobody})")),
        "{l}"
    );
    assert!(
        run.stdout
            .contains("owned by group root: give it a group the follower's user is in"),
        "{}",
        run.stdout
    );
    assert!(line(&run, "log file", "error.log").starts_with("ok"));
    assert!(line(&run, "bucket", "writable").starts_with("ok"));
    assert!(
        run.stdout
            .contains("NOT READY: 1 check(s) failed: log file (exit 1)"),
        "{}",
        run.stdout
    );
}

/// An S3 stand-in whose clock is `offset_s` seconds from the host's: every request answered
/// 200 with that `Date` (and an ETag), as S3 answers a PutObject. Its endpoint.
fn s3_with_clock(offset_s: i64) -> String {
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut conn = conn;
            while common::http::read_request(&mut reader).is_some() {
                let date = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(offset_s))
                    .strftime("%a, %d %b %Y %H:%M:%S GMT");
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nDate: {date}\r\nETag: \"0\"\r\nContent-Length: 0\r\n\r\n"
                );
            }
        }
    });
    endpoint
}

/// The clock line from the `Date` of the S3 answer: a host 3 h ahead fails (CloudWatch Logs
/// rejects events more than 2 h in the future), 90 s ahead warns and is still ready.
#[test]
fn a_skewed_clock_is_measured_on_the_s3_answer() {
    let scratch = Scratch::new("ship-check-clock", &["logs"]);
    let site = site(&scratch);
    let imds = ImdsServer::start(Imds::Serve);
    let moto = plain_moto();
    for (offset, code, status, holds) in [
        (
            -3 * 3600,
            1,
            "FAIL",
            &[
                "3 h ahead of AWS's (the Date of S3's answer): CloudWatch Logs rejects events more than 2 h in the future",
            ][..],
        ),
        (
            -90,
            0,
            "warn",
            // The two clocks are read in whole seconds, a moment apart.
            &[
                "90 s ahead of AWS's (the Date of S3's answer)",
                "91 s ahead of AWS's",
            ][..],
        ),
    ] {
        let s3 = s3_with_clock(offset);
        let vars = [("AWS_ENDPOINT_URL_S3", s3.as_str())];
        let who = As {
            vars: &vars,
            ..As::default()
        };
        let run = check(&moto, &imds, &site, &scratch.path("state"), who);
        assert_eq!(run.code, Some(code), "{}{}", run.stdout, run.stderr);
        let l = line(&run, "clock", "AWS's");
        assert!(
            l.starts_with(status) && holds.iter().any(|h| l.contains(h)),
            "{l}"
        );
        assert!(line(&run, "bucket", "writable").starts_with("ok"));
    }
}

/// With no format object to put (only the error log asked for), the bucket is not checked and
/// nothing is put: not one S3 request. A bad setting exits 64, as `ship`, before any request.
#[test]
fn no_format_object_means_nothing_is_put() {
    let scratch = Scratch::new("ship-check-noformat", &["logs"]);
    let site = site(&scratch);
    let imds = ImdsServer::start(Imds::Serve);
    let moto = plain_moto();
    let mut seen = moto.received().len();
    let error_log = scratch.path("logs/error.log");
    let who = As {
        files: &[error_log.as_path()],
        ..As::default()
    };
    let run = check(&moto, &imds, &site, &scratch.path("state"), who);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let bucket = line(&run, "bucket", "not checked");
    assert!(
        bucket.starts_with("warn")
            && bucket.contains("no access log is followed")
            && bucket.contains("nothing was put"),
        "{bucket}"
    );
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.get(6..).is_some_and(|r| r.starts_with("log file")))
            .count(),
        1,
        "{}",
        run.stdout
    );
    assert!(line(&run, "clock", "STS's answer").starts_with("ok"));
    let received = moto.received_since(&mut seen);
    assert_eq!(
        counted_on(BUCKET, &received),
        kinds(&[("sts", 1)]),
        "{received:?}"
    );

    let bad = [("NGINX_LOG_KEY_LAYOUT", "role")];
    let who = As {
        vars: &bad,
        ..As::default()
    };
    let run = check(&moto, &imds, &site, &scratch.path("state"), who);
    assert_eq!(run.code, Some(64), "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains(r#"NGINX_LOG_KEY_LAYOUT="role": must be instance or userid"#),
        "{}",
        run.stderr
    );
    assert_eq!(moto.received_since(&mut seen), Vec::new());
}

/// A stand-in that accepts each connection and closes it at once, counting them: an endpoint
/// that does not answer. Its endpoint and the count.
fn hang_up() -> (String, std::sync::Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (endpoint, count)
}

/// STS that does not answer, under the userid layout: the credentials line fails naming STS's
/// reachability after 3 attempts (not the follower's 8: a person waits), the layout and the
/// bucket are not checked, and S3 gets nothing.
#[test]
fn sts_unreachable_fails_after_three_attempts() {
    let scratch = Scratch::new("ship-check-sts", &["logs"]);
    let site = site(&scratch);
    let imds = ImdsServer::start(Imds::Serve);
    let moto = plain_moto();
    let mut seen = moto.received().len();
    let (sts, attempts) = hang_up();
    let vars = [
        ("NGINX_LOG_KEY_LAYOUT", "userid"),
        ("AWS_ENDPOINT_URL_STS", sts.as_str()),
        // Unset: the check's own default.
        ("AWS_MAX_ATTEMPTS", ""),
    ];
    let who = As {
        vars: &vars,
        ..As::default()
    };
    let run = check(&moto, &imds, &site, &scratch.path("state"), who);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    assert!(line(&run, "credentials", "STS GetCallerIdentity failed").starts_with("FAIL"));
    assert!(
        run.stdout.contains("the host must reach STS"),
        "{}",
        run.stdout
    );
    assert!(line(&run, "key layout", "STS did not answer").starts_with("warn"));
    assert!(line(&run, "bucket", "not checked").starts_with("warn"));
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(moto.received_since(&mut seen), Vec::new());
}
