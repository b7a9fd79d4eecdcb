//! Backfill and replay with the stack's settings, against moto.
//!
//! - `--function`: the settings come from the deployed function (GetFunctionConfiguration on a
//!   function created in moto, whose Lambda keeps a function's configuration without Docker; it
//!   cannot run it, and this needs only what the handler writes, which `replay` with the
//!   function's environment is). From a shell with no forwarder variable, both write messages
//!   identical to the function's for the same object; a shell variable that differs is refused
//!   and named; without `--function` the run says it uses the shell's settings.
//! - The bucket's expiration (the stack's UploadExpirationDays, a lifecycle rule): `backfill
//!   --since` warns when it asks for days the rule has deleted.

mod common;

use common::moto::{read_stream, replay, run};
use common::notify::create_function;
use common::{gzip, numbered_log, s3_event_with_etag};

const BUCKET: &str = "nginx-logs-settings";
const INSTANCE: &str = "i-0123456789abcdef0";
const FUNCTION: &str = "web-forwarder";
const GROUP: &str = "/nginx/prod/access";
const LINES: usize = 30;
/// The account moto answers for (its default).
const MOTO_ACCOUNT: &str = "123456789012";

/// The deployed function's forwarder settings: those the template sets whatever the parameters
/// (the stack's bucket and account, the default uploader check: a run with the function's
/// settings acts on the same bucket), and others, none of them the default, each one changing
/// the messages (names, extra field, filter) or where they go (group, retention).
fn function_env() -> Vec<(&'static str, String)> {
    vec![
        ("SOURCE_BUCKET", BUCKET.into()),
        ("SOURCE_ACCOUNT", MOTO_ACCOUNT.into()),
        ("UPLOADER_CHECK", "instance".into()),
        ("FIELD_NAMES", "fluentd".into()),
        ("OUTPUT_FORMAT", "json".into()),
        (
            "EXTRA_FIELDS",
            "instance={instance_id},env={meta:env}".into(),
        ),
        ("LOG_GROUP_TEMPLATE", "/nginx/prod/{log_type}".into()),
        (
            "FILTER_RULES",
            r#"[{"name": "health", "when": {"path": {"matches": "^/healthz$"}}}]"#.into(),
        ),
        ("RETENTION_DAYS", "7".into()),
        // As SAM passes a parameter left empty.
        ("KEY_PATTERN", String::new()),
    ]
}

/// Forgets a delivery: the group and the object's progress record, so that the next run
/// forwards the object again into a group it creates.
async fn forget(s3: &aws_sdk_s3::Client, logs: &aws_sdk_cloudwatchlogs::Client, key: &str) {
    logs.delete_log_group()
        .log_group_name(GROUP)
        .send()
        .await
        .expect("delete the group");
    s3.delete_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .expect("delete the progress record");
}

async fn groups(logs: &aws_sdk_cloudwatchlogs::Client) -> Vec<(String, Option<i32>)> {
    logs.describe_log_groups()
        .send()
        .await
        .expect("describe groups")
        .log_groups
        .unwrap_or_default()
        .into_iter()
        .map(|g| (g.log_group_name.unwrap_or_default(), g.retention_in_days))
        .collect()
}

#[tokio::test]
async fn backfill_and_replay_with_the_functions_settings_write_what_the_function_writes() {
    let (moto, s3, logs) = common::moto::with_bucket(BUCKET).await;
    let day = jiff::Timestamp::now().strftime("%Y/%m/%d").to_string();
    let key = format!("nginx/{INSTANCE}/access/{day}/access.log-1.gz");
    let mut log = numbered_log(LINES, "settings");
    log.push_str(&common::combined_line(
        "10.0.0.2",
        common::now_ms() - 1000,
        "/healthz",
        200,
    ));
    log.push('\n');
    let body = gzip(log.as_bytes());
    let etag = s3
        .put_object()
        .bucket(BUCKET)
        .key(&key)
        .metadata("env", "prod")
        .body(body.into())
        .send()
        .await
        .expect("upload")
        .e_tag
        .expect("an ETag");
    create_function(&moto, FUNCTION, &function_env());

    // What the function writes: the handler with the function's environment.
    let mut env = moto.env();
    env.extend(function_env());
    let (code, summary) = replay(&s3_event_with_etag(BUCKET, &key, &etag), &env);
    assert_eq!(code, Some(0), "{summary}");
    let theirs = read_stream(&logs, GROUP, INSTANCE).await;
    assert_eq!(theirs.len(), LINES, "the health check is filtered out");
    let first: serde_json::Value = serde_json::from_str(&theirs[0].1).expect("JSON");
    assert_eq!(
        (
            &first["code"],
            &first["path"],
            &first["instance"],
            &first["env"]
        ),
        (
            &serde_json::json!(200),
            &serde_json::json!("/settings/0"),
            &serde_json::json!(INSTANCE),
            &serde_json::json!("prod")
        ),
        "{first}"
    );
    assert_eq!(groups(&logs).await, [(GROUP.to_string(), Some(7))]);

    // A shell with no forwarder variable, only credentials and endpoints.
    let bare = moto.env();
    let target = format!("s3://{BUCKET}/nginx/");

    // Without --function: the shell's settings (the defaults), and it says so.
    let (code, out, err) = run(&["backfill", &target, "--dry-run"], &bare);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("settings: this shell's environment (no forwarder variable set: the defaults); pass --function NAME"),
        "{err}"
    );
    assert!(
        out.contains(&format!("\tnginx-access/{INSTANCE}\t")),
        "{out}"
    );
    let (code, out, err) = run(
        &["backfill", &target, "--dry-run", "--function", FUNCTION],
        &bare,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("settings: function \"{FUNCTION}\"'s (")),
        "{err}"
    );
    assert!(
        out.contains(&format!("\t{GROUP}/{INSTANCE}\tdelivered")),
        "{out}"
    );

    forget(&s3, &logs, &key).await;

    // A shell variable that differs is refused, named, and nothing is written.
    let mut differing = bare.clone();
    differing.push(("FIELD_NAMES", "nginx".into()));
    differing.push(("MAX_CONCURRENT_OBJECTS", "2".into()));
    let (code, _, err) = run(&["backfill", &target, "--function", FUNCTION], &differing);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains(r#"FIELD_NAMES="nginx" here, "fluentd" in the function"#),
        "{err}"
    );
    assert!(
        !err.contains("MAX_CONCURRENT_OBJECTS=\"2\""),
        "tuning is not a difference: {err}"
    );
    assert!(groups(&logs).await.is_empty());

    // An unknown function is named.
    let (code, _, err) = run(&["backfill", &target, "--function", "nope"], &bare);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(r#"function "nope" not found"#), "{err}");

    // backfill --function: the same messages, timestamps, group, stream and retention.
    let (code, out, err) = run(&["backfill", &target, "--function", FUNCTION], &bare);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(read_stream(&logs, GROUP, INSTANCE).await, theirs);
    assert_eq!(groups(&logs).await, [(GROUP.to_string(), Some(7))]);

    // replay --function on the same event: the same again.
    forget(&s3, &logs, &key).await;
    let event = common::moto::replay_command(&s3_event_with_etag(BUCKET, &key, &etag), &bare);
    let (mut cmd, path) = event;
    let out = cmd
        .args(["--function", FUNCTION])
        .output()
        .expect("run the binary");
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_stream(&logs, GROUP, INSTANCE).await, theirs);
}

#[tokio::test]
async fn backfill_warns_when_since_asks_for_days_the_bucket_deleted() {
    let (moto, s3, _) = common::moto::with_bucket(BUCKET).await;
    // The stack's rule, as template.yaml writes it (UploadExpirationDays=7).
    let rule = aws_sdk_s3::types::LifecycleRule::builder()
        .id("ExpireForwardedLogs")
        .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
        .filter(
            aws_sdk_s3::types::LifecycleRuleFilter::builder()
                .prefix("nginx/")
                .build(),
        )
        .expiration(
            aws_sdk_s3::types::LifecycleExpiration::builder()
                .days(7)
                .build(),
        )
        .build()
        .expect("a rule");
    let target = format!("s3://{BUCKET}/nginx/");
    let day = |days_ago: i64| {
        jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_hours(24 * days_ago))
            .expect("a time")
            .strftime("%Y-%m-%d")
            .to_string()
    };
    let warned = |since: &str| {
        let (code, _, err) = run(
            &["backfill", &target, "--since", since, "--dry-run"],
            &moto.env(),
        );
        assert_eq!(code, Some(0), "{err}");
        err.contains("asks for days the bucket no longer has")
    };
    // No lifecycle configuration: nothing to warn of.
    assert!(!warned(&day(30)));
    s3.put_bucket_lifecycle_configuration()
        .bucket(BUCKET)
        .lifecycle_configuration(
            aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
                .rules(rule)
                .build()
                .expect("a configuration"),
        )
        .send()
        .await
        .expect("put the lifecycle rule");
    let (_, _, err) = run(
        &["backfill", &target, "--since", &day(8), "--dry-run"],
        &moto.env(),
    );
    assert!(
        err.contains(&format!(
            "warning: --since {} asks for days the bucket no longer has: its lifecycle rule \"ExpireForwardedLogs\" deletes uploads under nginx/ 7 days after they are written, so uploads of days before {} are gone",
            day(8),
            day(7)
        )),
        "{err}"
    );
    assert!(!warned(&day(7)));
    assert!(!warned(&day(0)));
}
