//! The stack's host policy (template.yaml's `HostUploadPolicy`, read from the template) enforced
//! by moto in IAM mode on both shippers with `NGINX_LOG_KEY_LAYOUT=userid`: a host uploads its
//! logs and format objects under `<prefix><role-id>:<instance-id>/` with PutObject alone (the
//! requests counted where moto receives them), and can do nothing else.
//!
//! The host is a session of an EC2-trusted role assumed with the instance ID as its name, which
//! moto cannot tell from EC2's own instance-profile session. What is AWS's and NOT tested here
//! (moto cannot): the substitution of `${aws:userid}` (moto substitutes no policy variable, so the
//! policy is rendered for the session by the test), the `TlsOnly` Deny (moto applies a
//! conditioned Deny to every request, so it is dropped after checking it is there), and the
//! `ec2:SourceInstanceARN` condition (moto takes every condition as met).

mod common;

use std::path::{Path, PathBuf};

use common::iam::{self, Session};
use common::imds::{INSTANCE_ID, Imds, ImdsServer};
use common::moto::{Moto, Received, bucket_keys, counted_on, kinds, object_metadata};
use common::nginx::TIMING_FORMAT;
use common::{Scratch, block_on, gunzip};

const BUCKET: &str = "nginx-logs-hosts";
/// The template's default `KeyPrefix`.
const KEY_PREFIX: &str = "nginx/";
const ROLE: &str = "nginx-host";
const OTHER_INSTANCE: &str = "i-0fedcba987654321f";

/// The host policy as moto can enforce it for `user_id`: the template's document rendered
/// (see [`iam::render`]), its `TlsOnly` Deny checked and dropped; every Allow is `s3:PutObject`
/// alone.
fn host_policy_for(user_id: &str) -> serde_json::Value {
    let resource = iam::template_policy("HostUploadPolicy");
    assert_eq!(resource["Type"], "AWS::IAM::ManagedPolicy");
    let doc = iam::render(&resource["PolicyDocument"], BUCKET, KEY_PREFIX, user_id);
    let statements = doc["Statement"].as_array().expect("statements");
    let (tls, allowed): (Vec<_>, Vec<_>) = statements
        .iter()
        .cloned()
        .partition(|s| s["Sid"] == "TlsOnly");
    assert_eq!(tls.len(), 1, "{doc}");
    assert_eq!(
        (
            &tls[0]["Effect"],
            &tls[0]["Condition"]["Bool"]["aws:SecureTransport"]
        ),
        (&serde_json::json!("Deny"), &serde_json::json!("false")),
        "{doc}"
    );
    for s in &allowed {
        assert_eq!(
            (&s["Effect"], &s["Action"]),
            (
                &serde_json::json!("Allow"),
                &serde_json::json!("s3:PutObject")
            ),
            "{s}"
        );
        assert_eq!(
            s["Condition"],
            serde_json::json!({"Null": {"ec2:SourceInstanceARN": "false"}}),
            "{s}"
        );
    }
    assert_eq!(
        allowed[0]["Resource"],
        serde_json::json!([
            format!("arn:aws:s3:::{BUCKET}/{KEY_PREFIX}{user_id}/*"),
            format!("arn:aws:s3:::{BUCKET}/{KEY_PREFIX}/{user_id}/*"),
        ])
    );
    serde_json::json!({"Version": doc["Version"], "Statement": allowed})
}

/// moto enforcing IAM with one bucket, the host role with the host policy rendered for the
/// session `host` (named [`INSTANCE_ID`]), an admin user to look at the bucket, and a scratch
/// directory.
struct Stack {
    moto: Moto,
    host: Session,
    /// A session of the same role under another name (an operator's, say).
    other: Session,
    admin: aws_sdk_s3::Client,
    /// moto's request log up to the end of the setup.
    setup: usize,
    dir: Scratch,
}

impl Stack {
    fn new(tag: &str) -> Self {
        let dir = Scratch::new(
            &format!("host-policy-{tag}"),
            &["logs", "tmp", "home", "state"],
        );
        dir.aws_cli_config();
        let moto = Moto::start_iam();
        iam::cli(&moto, &["s3api", "create-bucket", "--bucket", BUCKET]);
        let role = iam::create_host_role(&moto, ROLE);
        let host = iam::assume(&moto, &role, INSTANCE_ID);
        assert_eq!(host.user_id, format!("{}:{INSTANCE_ID}", host.role_id()));
        let other = iam::assume(&moto, &role, "operator");
        iam::attach_policy(&moto, ROLE, "host-upload", &host_policy_for(&host.user_id));
        let admin = admin_client(&moto);
        moto.enforce_iam();
        let setup = moto.received().len();
        Stack {
            moto,
            host,
            other,
            admin,
            setup,
            dir,
        }
    }

    /// What moto received since the setup (or the last call), moto's own API left out.
    fn received_since(&mut self) -> Vec<Received> {
        self.moto.received_since(&mut self.setup)
    }

    /// Keys in the bucket (read as the admin, then left out of the counts).
    fn keys(&mut self) -> Vec<String> {
        let keys = block_on(bucket_keys(&self.admin, BUCKET));
        self.received_since();
        keys
    }

    fn metadata(&mut self, key: &str) -> Vec<(String, String)> {
        let meta = block_on(object_metadata(&self.admin, BUCKET, key));
        self.received_since();
        meta
    }

    fn body(&mut self, key: &str) -> Vec<u8> {
        let body = block_on(async {
            let out = self.admin.get_object().bucket(BUCKET).key(key).send().await;
            let out = out.unwrap_or_else(|e| panic!("get {key}: {e:?}"));
            out.body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .to_vec()
        });
        self.received_since();
        body
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path(rel)
    }
}

/// An IAM user allowed everything, and an S3 client with its key (created before IAM is
/// enforced).
fn admin_client(moto: &Moto) -> aws_sdk_s3::Client {
    iam::cli(moto, &["iam", "create-user", "--user-name", "admin"]);
    let all = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    });
    iam::cli(
        moto,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "admin",
            "--policy-name",
            "all",
            "--policy-document",
            &all.to_string(),
        ],
    );
    let key = iam::cli(moto, &["iam", "create-access-key", "--user-name", "admin"]);
    s3_client(
        moto,
        key["AccessKey"]["AccessKeyId"].as_str().expect("key id"),
        key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .expect("secret"),
        None,
    )
}

fn s3_client(moto: &Moto, key: &str, secret: &str, token: Option<&str>) -> aws_sdk_s3::Client {
    let creds = aws_sdk_s3::config::Credentials::new(
        key,
        secret,
        token.map(str::to_string),
        None,
        "host-policy-test",
    );
    let conf = aws_sdk_s3::config::Builder::from(&moto.sdk_config())
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Real nginx's logs in the stack's logs directory ([`common::nginx::logged_site`]).
fn site(stack: &Stack) -> common::nginx::LoggedSite {
    let targets = ["/", "/missing", "/other"];
    common::nginx::logged_site(
        &stack.path("logs"),
        &stack.path("nginx"),
        "hosts.test",
        &targets,
    )
}

fn forwarder_bin() -> &'static str {
    env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder")
}

fn format_key(owner: &str) -> String {
    nginx_cloudwatch_forwarder::parse::object_format::format_object_key(
        KEY_PREFIX,
        owner,
        TIMING_FORMAT,
    )
}

// --- scripts/ship-nginx-logs.sh --------------------------------------------------------------

struct Run {
    code: Option<i32>,
    stderr: String,
}

/// A run with credentials that are not this instance's profile session (`stack.other`): it
/// ended with `code`, naming the session's UserId, after STS's call alone.
fn refused_as_other(stack: &mut Stack, run: &Run, code: Option<i32>) {
    assert_eq!(run.code, code, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "not running with this instance's profile credentials: UserId is \"{}\"",
            stack.other.user_id
        )),
        "{}",
        run.stderr
    );
    assert_eq!(
        counted_on(BUCKET, &stack.received_since()),
        kinds(&[("sts", 1)])
    );
}

/// scripts/ship-nginx-logs.sh on `files` as the session `who`, in a clean environment
/// (see tests/shipper.rs), nginx's configuration read through the forwarder's `nginx-logs`.
fn script(
    stack: &Stack,
    who: &Session,
    imds: &ImdsServer,
    site: &common::nginx::LoggedSite,
    vars: &[(&str, &str)],
    files: &[&Path],
) -> Run {
    let out = common::shipper_script(&stack.dir, &imds.endpoint, BUCKET)
        .env("NCF_BIN", forwarder_bin())
        .env("NGINX_BIN", &site.wrapper)
        .env("NGINX_CONF", &site.conf)
        .env("NGINX_PREFIX", &site.prefix)
        .env("DELETE_AFTER_UPLOAD", "false")
        .env("RETRY_DELAY_SECONDS", "0")
        .envs(stack.moto.env())
        .envs(who.env())
        .envs(vars.iter().copied())
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("run the shipper script: {e}"));
    Run {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A rotated copy of the live log `live`, as logrotate leaves it (gzip'd or not).
fn rotated(stack: &Stack, live: &str, name: &str, gz: bool) -> PathBuf {
    let body = std::fs::read(stack.path(&format!("logs/{live}"))).expect("read the live log");
    let body = if gz { common::gzip(&body) } else { body };
    let p = stack.path(&format!("logs/{name}"));
    std::fs::write(&p, body).expect("write the rotated log");
    p
}

/// The AWS CLI's multipart threshold and part size (8 MiB).
const CLI_PART: u64 = 8 * 1024 * 1024;

#[test]
fn the_script_uploads_under_its_userid_with_put_object_alone() {
    let mut stack = Stack::new("script");
    let imds = ImdsServer::start(Imds::Serve);
    let site = site(&stack);
    let small = rotated(&stack, "access.log", "access.log.1", false);
    let gz = rotated(&stack, "error.log", "error.log.2.gz", true);
    // Bytes that gzip cannot shrink below the threshold: the CLI uploads it in parts. The live
    // log's lines first, so that it is an access log of the same format.
    let big = stack.path("logs/access.log-20261204");
    let mut body = std::fs::read(stack.path("logs/access.log")).expect("access.log");
    let mut noise = vec![0u8; (CLI_PART + CLI_PART / 8) as usize];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in noise.iter_mut() {
        // xorshift: incompressible, reproducible.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    body.extend_from_slice(&noise);
    std::fs::write(&big, &body).expect("write the big log");
    let files = [small.as_path(), gz.as_path(), big.as_path()];
    let host = stack.host.clone();

    // The default layout under the host policy: denied, every file kept, the setting named.
    let run = script(
        &stack,
        &host,
        &imds,
        &site,
        &[("UPLOAD_ATTEMPTS", "1")],
        &files,
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("set NGINX_LOG_KEY_LAYOUT=userid")
            && run.stderr.contains("HostUploadPolicyArn"),
        "{}",
        run.stderr
    );
    assert!(files.iter().all(|f| f.exists()));
    assert_eq!(stack.keys(), Vec::<String>::new());
    let denied = stack.received_since();
    assert!(denied.iter().all(|r| r.status == 403), "{denied:?}");

    // userid: one STS call, then PutObject alone: the format object once, a PUT per small file,
    // the big one in parts.
    let userid = [("NGINX_LOG_KEY_LAYOUT", "userid")];
    let run = script(&stack, &host, &imds, &site, &userid, &files);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let received = stack.received_since();
    let gz_size = std::fs::metadata(&big).expect("big").len();
    let parts = gz_size.div_ceil(CLI_PART);
    assert!(parts >= 2);
    assert_eq!(
        counted_on(BUCKET, &received),
        kinds(&[
            ("sts", 1),
            ("PutObject", 3),
            ("CreateMultipartUpload", 1),
            ("UploadPart", parts),
            ("CompleteMultipartUpload", 1),
        ]),
        "{received:?}"
    );
    assert!(received.iter().all(|r| r.status == 200), "{received:?}");
    let owner = &host.user_id;
    let day_of = |f: &Path| {
        let m = std::fs::metadata(f)
            .expect("stat")
            .modified()
            .expect("mtime");
        jiff::Timestamp::try_from(m)
            .expect("a time")
            .strftime("%Y/%m/%d")
            .to_string()
    };
    let mut want = vec![
        format!(
            "{KEY_PREFIX}{owner}/access/{}/access.log.1.gz",
            day_of(&small)
        ),
        format!("{KEY_PREFIX}{owner}/error/{}/error.log.2.gz", day_of(&gz)),
        format!(
            "{KEY_PREFIX}{owner}/access/{}/access.log-20261204.gz",
            day_of(&big)
        ),
        format_key(owner),
    ];
    want.sort();
    assert_eq!(stack.keys(), want);
    // The metadata names the bare instance ID, and the format object under the userid.
    let meta = stack.metadata(
        &want
            .iter()
            .find(|k| k.ends_with("access.log.1.gz"))
            .expect("small")
            .clone(),
    );
    assert!(
        meta.contains(&("instance-id".into(), INSTANCE_ID.into()))
            && meta.contains(&("ncf-log-format".into(), format_key(owner))),
        "{meta:?}"
    );

    // Credentials that are not this instance's profile session: nothing is sent but STS's.
    let other = stack.other.clone();
    let run = script(&stack, &other, &imds, &site, &userid, &files);
    refused_as_other(&mut stack, &run, Some(2));

    // STS unreachable: exit 2, nothing uploaded or deleted.
    let closed = [
        ("NGINX_LOG_KEY_LAYOUT", "userid"),
        ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9"),
        ("AWS_MAX_ATTEMPTS", "1"),
    ];
    let run = script(&stack, &host, &imds, &site, &closed, &files);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot learn this host's aws:userid from STS")
            && run.stderr.contains("nothing uploaded, nothing deleted"),
        "{}",
        run.stderr
    );
    assert_eq!(stack.received_since(), Vec::new());
}

// --- ship ------------------------------------------------------------------------------------

/// `ship --once ARGS…` on the site's two logs as the session `who`, its state in `state`,
/// with `vars` besides.
fn ship(
    stack: &Stack,
    (who, state, vars): (&Session, &str, &[(&str, &str)]),
    imds: &ImdsServer,
    site: &common::nginx::LoggedSite,
    args: &[&str],
) -> Run {
    let logs = stack.path("logs");
    let out = common::ship_command_files(
        &stack.moto,
        imds,
        BUCKET,
        &stack.path(state),
        &[&logs.join("access.log"), &logs.join("error.log")],
    )
    .envs(who.env())
    .env_remove("NGINX_LOG_KEY_LAYOUT")
    .env("NGINX_BIN", &site.wrapper)
    .env("NGINX_CONF", &site.conf)
    .env("NGINX_PREFIX", &site.prefix)
    .env("AWS_MAX_ATTEMPTS", "1")
    .envs(vars.iter().copied())
    .arg("--once")
    .args(args)
    .output()
    .expect("run ship");
    Run {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn ship_uploads_under_its_userid_with_put_object_alone() {
    let mut stack = Stack::new("ship");
    let imds = ImdsServer::start(Imds::Serve);
    let site = site(&stack);
    let host = stack.host.clone();
    let userid = ["--key-layout", "userid"];

    // userid: one STS call, a PUT per segment and the new format object, nothing else.
    let run = ship(&stack, (&host, "state", &[]), &imds, &site, &userid);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let received = stack.received_since();
    assert_eq!(
        counted_on(BUCKET, &received),
        kinds(&[("sts", 1), ("PutObject", 3)]),
        "{received:?}"
    );
    assert!(received.iter().all(|r| r.status == 200), "{received:?}");
    let owner = &host.user_id;
    let keys = stack.keys();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&format_key(owner)), "{keys:?}");
    for kind in ["access", "error"] {
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("{KEY_PREFIX}{owner}/{kind}/"))),
            "{kind}: {keys:?}"
        );
    }
    let access = keys
        .iter()
        .find(|k| k.contains("/access/"))
        .expect("the access segment")
        .clone();
    let meta = stack.metadata(&access);
    assert!(
        meta.contains(&("instance-id".into(), INSTANCE_ID.into()))
            && meta.contains(&("ncf-log-format".into(), format_key(owner))),
        "{meta:?}"
    );

    // A restart with a new line: STS again, the format object found there (412), the segment.
    let line = std::fs::read_to_string(stack.path("logs/access.log"))
        .expect("access.log")
        .lines()
        .next()
        .expect("a line")
        .to_string();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(stack.path("logs/access.log"))
        .expect("open access.log");
    std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).expect("append");
    let run = ship(&stack, (&host, "state", &[]), &imds, &site, &userid);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let received = stack.received_since();
    assert_eq!(
        counted_on(BUCKET, &received),
        kinds(&[("sts", 1), ("PutObject", 2)]),
        "{received:?}"
    );
    let statuses: Vec<(bool, u16)> = received
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| (r.path.contains("/formats/"), r.status))
        .collect();
    assert_eq!(statuses, vec![(true, 412), (false, 200)], "{received:?}");
    assert_eq!(stack.keys().len(), 4);

    // Not this instance's profile session: refused at start (64) after the STS call alone.
    let other = stack.other.clone();
    let run = ship(&stack, (&other, "state", &[]), &imds, &site, &userid);
    refused_as_other(&mut stack, &run, Some(64));

    // STS unreachable (its endpoint a closed port): exit 1, naming what the host must reach;
    // nothing sent.
    let closed = [("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")];
    let run = ship(&stack, (&host, "state", &closed), &imds, &site, &userid);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot learn this host's aws:userid from STS GetCallerIdentity")
            && run.stderr.contains("STS VPC endpoint"),
        "{}",
        run.stderr
    );
    assert_eq!(stack.received_since(), Vec::new());
}

/// The host policy attached before the host switched layout (the wrong order): the default
/// layout is refused and says the setting; once switched, the segments planned under the old
/// keys are refused once more and planned again under the userid: each log arrives whole, once.
#[test]
fn ship_switched_to_userid_after_a_refusal_plans_again_under_its_userid() {
    let mut stack = Stack::new("switch");
    let imds = ImdsServer::start(Imds::Serve);
    let site = site(&stack);
    let host = stack.host.clone();

    let run = ship(&stack, (&host, "state", &[]), &imds, &site, &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("AccessDenied")
            && run.stderr.contains("set NGINX_LOG_KEY_LAYOUT=userid")
            && run.stderr.contains("HostUploadPolicyArn"),
        "{}",
        run.stderr
    );
    let denied = stack.received_since();
    assert!(
        !denied.is_empty() && denied.iter().all(|r| r.status == 403),
        "{denied:?}"
    );
    assert_eq!(stack.keys(), Vec::<String>::new());

    let run = ship(
        &stack,
        (&host, "state", &[]),
        &imds,
        &site,
        &["--key-layout", "userid"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("planned under another key layout"),
        "{}",
        run.stderr
    );
    let received = stack.received_since();
    let puts: Vec<(String, u16)> = received
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| {
            let old = r
                .path
                .starts_with(&format!("/{BUCKET}/{KEY_PREFIX}{INSTANCE_ID}/"));
            let what = if r.path.contains("/formats/") {
                "format"
            } else if old {
                "old plan"
            } else {
                "segment"
            };
            (what.to_string(), r.status)
        })
        .collect();
    let count =
        |what: &str, status: u16| puts.iter().filter(|p| p.0 == what && p.1 == status).count();
    assert_eq!(
        (
            count("format", 200),
            count("old plan", 403),
            count("segment", 200),
            puts.len()
        ),
        (1, 2, 2, 5),
        "{received:?}"
    );
    assert_eq!(
        counted_on(BUCKET, &received),
        kinds(&[("sts", 1), ("PutObject", 5)]),
        "{received:?}"
    );
    let owner = &host.user_id;
    let keys = stack.keys();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("{KEY_PREFIX}{owner}/"))),
        "{keys:?}"
    );
    // Each log whole, once.
    for kind in ["access", "error"] {
        let key = keys
            .iter()
            .find(|k| k.contains(&format!("/{kind}/")))
            .unwrap_or_else(|| panic!("no {kind} segment: {keys:?}"));
        let live = std::fs::read(stack.path(&format!("logs/{kind}.log"))).expect("the log");
        assert_eq!(gunzip(&stack.body(key)), live, "{key}");
    }
}

// --- what a host cannot do -------------------------------------------------------------------

#[test]
fn a_host_cannot_write_for_another_instance_nor_read_list_tag_or_delete() {
    let mut stack = Stack::new("denied");
    let host = stack.host.clone();
    let s3 = s3_client(&stack.moto, &host.key, &host.secret, Some(&host.token));
    let own = format!("{KEY_PREFIX}{}/access/2026/12/05/own.gz", host.user_id);
    let put = |key: &str| {
        block_on(
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(common::gzip(b"x\n").into())
                .send(),
        )
        .map(|_| ())
        .map_err(|e| {
            use aws_sdk_s3::error::ProvideErrorMetadata;
            e.code().unwrap_or("no code").to_string()
        })
    };
    assert_eq!(put(&own), Ok(()));
    let other_new = format!(
        "{KEY_PREFIX}{}:{OTHER_INSTANCE}/access/2026/12/05/x.gz",
        host.role_id()
    );
    let other_old = format!("{KEY_PREFIX}{OTHER_INSTANCE}/access/2026/12/05/x.gz");
    let own_old = format!("{KEY_PREFIX}{INSTANCE_ID}/access/2026/12/05/x.gz");
    for key in [
        &other_new,
        &other_old,
        &own_old,
        &"nginx-cloudwatch-forwarder/leases/x".to_string(),
    ] {
        assert_eq!(put(key), Err("AccessDenied".to_string()), "{key}");
    }
    // Nested under its own prefix, another instance's segment: IAM allows it (the forwarder
    // must not route it to that instance's stream).
    let nested = format!(
        "{KEY_PREFIX}{}/{OTHER_INSTANCE}/access/2026/12/05/x.gz",
        host.user_id
    );
    assert_eq!(put(&nested), Ok(()));
    stack.received_since();

    let statuses = block_on(async {
        let get = s3.get_object().bucket(BUCKET).key(&own).send().await;
        let head = s3.head_object().bucket(BUCKET).key(&own).send().await;
        let list = s3.list_objects_v2().bucket(BUCKET).send().await;
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(
                aws_sdk_s3::types::Tag::builder()
                    .key("ncf-progress")
                    .value("forged")
                    .build()
                    .expect("a tag"),
            )
            .build()
            .expect("tagging");
        let tag = s3
            .put_object_tagging()
            .bucket(BUCKET)
            .key(&own)
            .tagging(tagging)
            .send()
            .await;
        let get_tags = s3
            .get_object_tagging()
            .bucket(BUCKET)
            .key(&own)
            .send()
            .await;
        let delete = s3.delete_object().bucket(BUCKET).key(&own).send().await;
        fn status<T, E>(
            r: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
        ) -> Option<u16> {
            r.err()
                .and_then(|e| e.raw_response().map(|r| r.status().as_u16()))
        }
        [
            ("GetObject", status(get)),
            ("HeadObject", status(head)),
            ("ListObjectsV2", status(list)),
            ("PutObjectTagging", status(tag)),
            ("GetObjectTagging", status(get_tags)),
            ("DeleteObject", status(delete)),
        ]
    });
    for (what, status) in statuses {
        assert_eq!(status, Some(403), "{what}");
    }
    let received = stack.received_since();
    assert_eq!(received.len(), 6, "{received:?}");
    assert!(received.iter().all(|r| r.status == 403), "{received:?}");
    // The own object is still there, untagged.
    assert!(stack.keys().contains(&own));
}
