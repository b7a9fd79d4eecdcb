//! `REDACT_HASH_KEY_SECRET`: the key of hashed fields read from Secrets Manager (moto; the
//! secret created with the AWS CLI, as a user would), once when the function or a command
//! starts. A hashed field comes out as HMAC-SHA256 with the secret's value as the key
//! (computed here by `openssl dgst -hmac`, not by our code), never the key itself; a secret
//! that cannot be read stops the function at init, naming it and the SDK's reason; the key
//! given two ways is refused.

mod common;

use std::process::Command;

use common::iam::cli;
use common::moto::{
    Moto, forwarder_command, printed_events, read_stream, replay, upload, with_bucket,
};
use common::{combined_line, now_ms};
use serde_json::Value;

/// The key, as `openssl rand -hex 32` would give it (64 bytes of text).
const KEY: &str = "5f0c7c2a9e4b41d3a8f6e2b7c9d0a1e35f0c7c2a9e4b41d3a8f6e2b7c9d0a1e3";
const AGENT: &str = "integration-test/1.0";
const BUCKET: &str = "nginx-logs-secret";
const INSTANCE: &str = "i-0123456789abcdef0";

/// `hmac:` and the first 128 bits of HMAC-SHA256(`key`, `value`) in hex, by openssl.
fn openssl_hmac(key: &str, value: &str) -> String {
    let out = common::run_with_stdin(
        Command::new("openssl").args(["dgst", "-sha256", "-hmac", key]),
        value,
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("text");
    // `SHA2-256(stdin)= <hex>` (or `(stdin)= <hex>` in older versions).
    let hex = text.rsplit("= ").next().expect("a digest").trim();
    assert_eq!(hex.len(), 64, "{text}");
    format!("hmac:{}", &hex[..32])
}

/// The `n` events of the instance's access stream, each with its user agent hashed with
/// [`KEY`] (as openssl computes it) and without the key itself; as JSON.
async fn hashed_events(logs: &aws_sdk_cloudwatchlogs::Client, n: usize) -> Vec<Value> {
    let stored = read_stream(logs, "nginx-access", INSTANCE).await;
    assert_eq!(stored.len(), n);
    let hash = openssl_hmac(KEY, AGENT);
    stored
        .iter()
        .map(|(_, m)| {
            let v: Value = serde_json::from_str(m).expect("JSON");
            assert_eq!(v["http_user_agent"], hash.as_str(), "{m}");
            assert!(!m.contains(KEY), "{m}");
            v
        })
        .collect()
}

/// The secret `name` with `value` on moto, created with the AWS CLI; its ARN.
fn create_secret(moto: &Moto, name: &str, value: &str) -> String {
    let answer = cli(
        moto,
        &[
            "secretsmanager",
            "create-secret",
            "--name",
            name,
            "--secret-string",
            value,
        ],
    );
    answer["ARN"]
        .as_str()
        .expect("the secret's ARN")
        .to_string()
}

/// `parse --kind access` of `log` with `env`: exit code, stdout, stderr.
fn parse(log: &str, env: &[(&str, String)]) -> (Option<i32>, String, String) {
    let out = common::run_with_stdin(
        &mut forwarder_command(&["parse", "--kind", "access"], env),
        log,
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each printed event's message, as JSON.
fn messages(stdout: &str) -> Vec<Value> {
    printed_events(stdout.as_bytes())
        .iter()
        .map(|(_, m)| serde_json::from_str(m).expect("JSON"))
        .collect()
}

fn log(n: usize, agent: &str) -> String {
    (0..n)
        .map(|i| {
            combined_line(
                "10.0.0.1",
                now_ms() - 600_000 + i as i64,
                &format!("/{i}"),
                200,
            )
            .replace(AGENT, agent)
                + "\n"
        })
        .collect()
}

#[tokio::test]
async fn parse_hashes_with_the_secrets_value_as_the_key() {
    let moto = Moto::start_logged();
    let arn = create_secret(&moto, "ncf/hash-key", KEY);
    let text = log(3, AGENT) + &log(2, "curl/8.5.0");
    let settings = |key: (&'static str, String)| {
        let mut env = moto.env();
        env.push(("REDACT_FIELDS", "http_user_agent:hash".into()));
        env.push(key);
        env
    };

    let (code, out, err) = parse(&text, &settings(("REDACT_HASH_KEY_SECRET", arn.clone())));
    assert_eq!(code, Some(0), "{err}");
    let agents: Vec<String> = messages(&out)
        .iter()
        .map(|m| m["http_user_agent"].as_str().expect("hashed").to_string())
        .collect();
    let (ours, curl) = (openssl_hmac(KEY, AGENT), openssl_hmac(KEY, "curl/8.5.0"));
    assert_eq!(
        agents,
        [&ours, &ours, &ours, &curl, &curl].map(String::clone)
    );
    assert!(!out.contains(KEY) && !err.contains(KEY) && !out.contains(AGENT));
    // As if REDACT_HASH_KEY held it: the same output, byte for byte.
    let (code, same, _) = parse(&text, &settings(("REDACT_HASH_KEY", KEY.into())));
    assert_eq!((code, same), (Some(0), out.clone()));
    // By name too; one GetSecretValue per run, whatever the number of lines.
    let (code, by_name, err) = parse(
        &text,
        &settings(("REDACT_HASH_KEY_SECRET", "ncf/hash-key".into())),
    );
    assert_eq!((code, by_name), (Some(0), out), "{err}");
    let gets = moto
        .received()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(gets, 3, "create-secret and one read per run");
}

#[tokio::test]
async fn the_key_given_two_ways_or_a_secret_that_cannot_be_read_stops_the_start() {
    let moto = Moto::start();
    let arn = create_secret(&moto, "ncf/short", "too-short");
    let text = log(1, AGENT);
    let run = |extra: &[(&'static str, &str)]| {
        let mut env = moto.env();
        env.push(("REDACT_FIELDS", "http_user_agent:hash".into()));
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        parse(&text, &env)
    };

    // Both: bad usage, naming both variables.
    let (code, out, err) = run(&[
        ("REDACT_HASH_KEY", KEY),
        ("REDACT_HASH_KEY_SECRET", "ncf/key"),
    ]);
    assert_eq!(code, Some(64), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("REDACT_HASH_KEY_SECRET") && err.contains("REDACT_HASH_KEY is set too"),
        "{err}"
    );
    // Not found: the secret named, the SDK's reason given; nothing printed.
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ncf/nope-AbCdEf";
    let (code, out, err) = run(&[("REDACT_HASH_KEY_SECRET", missing)]);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains(missing)
            && err.contains("not found")
            && err.contains("ResourceNotFoundException"),
        "{err}"
    );
    // A value too short for a key: refused naming the secret, not showing the value.
    let (code, _, err) = run(&[("REDACT_HASH_KEY_SECRET", &arn)]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains(&arn) && err.contains("9 bytes") && !err.contains("too-short"),
        "{err}"
    );
}

/// The function (Lambda mode) reads the secret before it asks for its first invocation: an
/// unreadable one ends the process at init with the secret and the SDK's reason, and no
/// invocation is taken.
#[tokio::test]
async fn the_function_fails_at_init_when_the_secret_cannot_be_read() {
    let moto = Moto::start();
    // A runtime API that counts the requests for work (none must come).
    let api = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = api.local_addr().expect("its address").to_string();
    api.set_nonblocking(true).expect("non-blocking");
    let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ncf/gone-AbCdEf";
    let mut env = moto.env();
    env.push(("REDACT_FIELDS", "remote_user:hash".into()));
    env.push(("REDACT_HASH_KEY_SECRET", secret.into()));
    let out = forwarder_command(&[], &env)
        .env("AWS_LAMBDA_RUNTIME_API", &addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "forwarder")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .output()
        .expect("run the binary");
    assert_eq!(out.status.code(), Some(1));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("REDACT_HASH_KEY_SECRET")
            && said.contains(secret)
            && said.contains("ResourceNotFoundException"),
        "{said}"
    );
    assert!(
        api.accept().is_err(),
        "the function asked the runtime API for work"
    );
}

/// `replay` (the Lambda's code path against moto): what CloudWatch stores has the hash made
/// with the secret's value, and the summary counts the field's rule.
#[tokio::test(flavor = "multi_thread")]
async fn replay_stores_the_hash_made_with_the_secret() {
    let (moto, s3, logs) = with_bucket(BUCKET).await;
    let arn = create_secret(&moto, "ncf/hash-key", KEY);
    let key = format!("nginx/{INSTANCE}/access/2026/12/06/access.log");
    let etag = upload(&s3, BUCKET, &key, log(20, AGENT).into_bytes()).await;
    let mut env = moto.env();
    env.push(("REDACT_FIELDS", "http_user_agent:hash".into()));
    env.push(("ANONYMIZE_IP", "on".into()));
    env.push(("REDACT_HASH_KEY_SECRET", arn));
    let (code, summary) = replay(&common::s3_event_with_etag(BUCKET, &key, &etag), &env);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        summary["redacted_by_rule"]["field:http_user_agent"], 20,
        "{summary}"
    );
    assert_eq!(summary["redacted_by_rule"]["ip"], 20, "{summary}");
    assert_eq!(summary["lines_redacted"], 20, "{summary}");
    for v in hashed_events(&logs, 20).await {
        assert_eq!(v["remote_addr"], "10.0.0.0", "{v}");
    }
}

/// `replay --function`: the deployed function names the secret; the replay reads it (with the
/// caller's credentials) and writes the hashes the function writes. A shell that gives the key
/// as REDACT_HASH_KEY instead is refused as differing from the function.
#[tokio::test(flavor = "multi_thread")]
async fn replay_with_the_functions_settings_reads_its_secret() {
    let (moto, s3, logs) = with_bucket(BUCKET).await;
    let arn = create_secret(&moto, "ncf/hash-key", KEY);
    common::notify::create_function(
        &moto,
        "forwarder",
        &[
            ("REDACT_FIELDS", "http_user_agent:hash".into()),
            ("REDACT_HASH_KEY_SECRET", arn),
        ],
    );
    let key = format!("nginx/{INSTANCE}/access/2026/12/06/access.log");
    let etag = upload(&s3, BUCKET, &key, log(5, AGENT).into_bytes()).await;
    let event = common::s3_event_with_etag(BUCKET, &key, &etag);
    let replay_as_function = |env: &[(&'static str, String)]| {
        let (mut cmd, path) = common::moto::replay_command(&event, env);
        let out = cmd
            .args(["--function", "forwarder"])
            .output()
            .expect("run the binary");
        let _ = std::fs::remove_file(&path);
        out
    };

    let mut differing = moto.env();
    differing.push(("REDACT_HASH_KEY", KEY.into()));
    let out = replay_as_function(&differing);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("REDACT_HASH_KEY="), "{err}");

    let out = replay_as_function(&moto.env());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    hashed_events(&logs, 5).await;
}

/// The statement template.yaml gives the function's role for the secret (read with cfn-lint's
/// loader, as CloudFormation reads the YAML): the `Fn::If` on `HasRedactHashKeySecret`, its
/// resource rendered as `arn`.
fn template_secret_statement(arn: &str) -> Value {
    let template = std::path::Path::new(common::MANIFEST_DIR).join("template.yaml");
    let ifs = common::moto::python_json(
        "import json, sys\n\
         from cfnlint.decode.cfn_yaml import load\n\
         r = load(sys.argv[1])['Resources']['ForwarderFunctionRole']\n\
         s = r['Properties']['Policies'][0]['PolicyDocument']['Statement']\n\
         print(json.dumps([x['Fn::If'] for x in s if 'Fn::If' in x]))",
        &[template.as_os_str()],
    );
    let ifs = ifs.as_array().expect("a list");
    let [_, statement, otherwise] = &ifs
        .iter()
        .find(|i| i[0] == "HasRedactHashKeySecret")
        .expect("a statement under HasRedactHashKeySecret")
        .as_array()
        .expect("[condition, then, else]")[..]
    else {
        panic!("Fn::If of three")
    };
    assert_eq!(otherwise, &serde_json::json!({"Ref": "AWS::NoValue"}));
    let mut statement = statement.clone();
    assert_eq!(
        statement["Resource"],
        serde_json::json!({"Ref": "RedactHashKeySecretArn"})
    );
    statement["Resource"] = arn.into();
    statement
}

/// What moto's IAM policy evaluator says of `policy` for each (action, resource): `PERMITTED`,
/// `DENIED` or `NEUTRAL`. (moto's server checks every non-S3 request against the resource
/// `*`, so a statement scoped to one secret is evaluated here, by the same evaluator, with the
/// resource named.)
fn evaluate(policy: &Value, requests: &[(&str, &str)]) -> Vec<String> {
    let policy = policy.to_string();
    let requests = serde_json::to_string(requests).expect("JSON");
    let answer = common::moto::python_json(
        "import json, sys\n\
         from moto.iam.access_control import IAMPolicy\n\
         p = IAMPolicy(sys.argv[1])\n\
         print(json.dumps([p.is_action_permitted(a, r).name for a, r in json.loads(sys.argv[2])]))",
        &[policy.as_ref(), requests.as_ref()],
    );
    serde_json::from_value(answer).expect("a list of names")
}

/// The template's statement lets the role read the one secret it names, nothing else (moto's
/// evaluator); and with IAM enforced (moto's server), a role without it is refused, and the
/// function's error names the secret and the permission.
#[tokio::test]
async fn the_templates_statement_reads_that_secret_alone_and_without_it_the_start_is_refused() {
    let moto = Moto::start_iam();
    let arn = create_secret(&moto, "ncf/hash-key", KEY);
    let other = create_secret(&moto, "ncf/other-key", KEY);
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [template_secret_statement(&arn)],
    });
    assert_eq!(
        evaluate(
            &policy,
            &[
                ("secretsmanager:GetSecretValue", &arn),
                ("secretsmanager:GetSecretValue", &other),
                ("secretsmanager:PutSecretValue", &arn),
                ("secretsmanager:ListSecrets", "*"),
                ("kms:Decrypt", "*"),
            ]
        ),
        ["PERMITTED", "NEUTRAL", "NEUTRAL", "NEUTRAL", "NEUTRAL"]
    );

    let role = common::iam::create_host_role(&moto, "forwarder-role");
    let session = common::iam::assume(&moto, &role, "forwarder");
    moto.enforce_iam();
    let mut env = moto.env();
    env.retain(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"));
    env.extend(session.env());
    env.push(("REDACT_FIELDS", "http_user_agent:hash".into()));
    env.push(("REDACT_HASH_KEY_SECRET", arn.clone()));
    let (code, out, err) = parse(&log(1, AGENT), &env);
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains(&arn)
            && err.contains("refused")
            && err.contains("secretsmanager:GetSecretValue"),
        "{err}"
    );
}
