//! An object names the `log_format` that wrote it (`ncf-log-format` metadata → a format object
//! `…/formats/<sha256>` in the same bucket): its access lines are parsed with that format.
//! Handler tests with the fakes of tests/common, and one run through moto's own notifications
//! and `replay` on the logs of a real nginx, compared with what `parse --log-format` prints.

mod common;

use common::{FakeSink, FakeSource, combined_line, default_config, fixture_clock, gzip};
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::handler::Handler;
use nginx_cloudwatch_forwarder::parse::object_format::{
    MAX_FORMAT_OBJECT_BYTES, META_LOG_FORMAT, META_LOG_FORMATS, META_PARTS, sha256_hex,
};
use nginx_cloudwatch_forwarder::summary::{Outcome, Summary};
use serde_json::Value;

const BUCKET: &str = "nginx-logs-example";

/// A JSON `log_format` as `ship` uploads it (the syntax `ACCESS_LOG_FORMAT` takes).
const JSON_FORMAT: &str = r#"escape=json '{"remote_addr":"$remote_addr","time_iso8601":"$time_iso8601","request":"$request","status":$status,"body_bytes_sent":$body_bytes_sent,"request_time":$request_time,"http_user_agent":"$http_user_agent"}'"#;
/// A timing format: what `combined` cannot read.
const TIMING_FORMAT: &str =
    r#"'$remote_addr [$time_local] "$request" $status $request_time $upstream_response_time'"#;

fn format_key(prefix: &str, instance: &str, body: &[u8]) -> String {
    format!("{prefix}{instance}/formats/{}", sha256_hex(body))
}

fn access_key(instance: &str, name: &str) -> String {
    format!("nginx/{instance}/access/2026/11/24/{name}")
}

fn messages(h: &Handler<FakeSource, FakeSink>, instance: &str) -> Vec<Value> {
    h.sink
        .messages()
        .get(&("nginx-access".to_string(), instance.to_string()))
        .map(|ms| {
            ms.iter()
                .map(|m| serde_json::from_str(m).expect("JSON"))
                .collect()
        })
        .unwrap_or_default()
}

fn outcome<'a>(s: &'a Summary, key: &str) -> &'a Outcome {
    &s.objects
        .iter()
        .find(|o| o.key == key)
        .unwrap_or_else(|| panic!("no report for {key}: {s:#?}"))
        .outcome
}

fn opens_of(source: &FakeSource, key: &str) -> usize {
    source
        .opened_keys
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|k| *k == key)
        .count()
}

#[tokio::test]
async fn each_object_is_parsed_with_the_format_it_names_read_once_per_warm_process() {
    let (json_i, timing_i, plain_i) = (
        "i-0123456789abcdef0",
        "i-0123456789abcdef1",
        "i-0123456789abcdef2",
    );
    // The timing host's prefix has a space: the metadata carries it percent-encoded.
    let json_format = format_key("nginx/", json_i, JSON_FORMAT.as_bytes());
    let timing_format = format_key("nginx logs/", timing_i, TIMING_FORMAT.as_bytes());
    let timing_meta = timing_format.replace(' ', "%20");
    let json_log = concat!(
        r#"{"remote_addr":"198.51.100.7","time_iso8601":"2026-11-24T10:00:01+00:00","request":"GET /q?x=\"y\" HTTP/1.1","status":200,"body_bytes_sent":612,"request_time":0.012,"http_user_agent":"curl/8.5.0 \"beta\""}"#,
        "\n"
    );
    let timing_log = concat!(
        r#"203.0.113.9 [24/Nov/2026:10:00:02 +0000] "POST /api/orders HTTP/1.1" 502 0.250 0.249, 0.001"#,
        "\n"
    );
    let plain_log = format!(
        "{}\n",
        combined_line("192.0.2.1", 1_795_514_403_000, "/index.html", 200)
    );
    let (json_obj, timing_obj, plain_obj) = (
        access_key(json_i, "access.log-1.gz"),
        access_key(timing_i, "access.log-1.gz"),
        access_key(plain_i, "access.log-1.gz"),
    );
    let source = FakeSource::default()
        .with(BUCKET, &json_format, JSON_FORMAT.as_bytes().to_vec())
        .with(BUCKET, &timing_format, TIMING_FORMAT.as_bytes().to_vec())
        .with(BUCKET, &json_obj, gzip(json_log.as_bytes()))
        .with_meta(BUCKET, &json_obj, META_LOG_FORMAT, &json_format)
        .with(BUCKET, &timing_obj, gzip(timing_log.as_bytes()))
        .with_meta(BUCKET, &timing_obj, META_LOG_FORMAT, &timing_meta)
        .with(BUCKET, &plain_obj, gzip(plain_log.as_bytes()));
    let h = Handler::new(source, FakeSink::default(), default_config()).with_clock(fixture_clock());
    let event = common::s3_event(BUCKET, &[&json_obj, &timing_obj, &plain_obj]);
    let s = h.handle(&event).await.expect("S3 event");
    assert_eq!(
        (s.objects_delivered, s.objects_failed, s.totals.parse_errors),
        (3, 0, 0),
        "{s:#?}"
    );

    // Each report names the format object its lines were parsed with (the key decoded).
    let format_of = |key: &str| {
        s.objects
            .iter()
            .find(|o| o.key == key)
            .and_then(|o| o.log_format.clone())
    };
    assert_eq!(
        [&json_obj, &timing_obj, &plain_obj].map(|k| format_of(k)),
        [Some(json_format.clone()), Some(timing_format.clone()), None]
    );
    let json = messages(&h, json_i);
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["request_uri"], r#"/q?x="y""#);
    assert_eq!(json[0]["status"], 200);
    assert_eq!(json[0]["request_time"], 0.012);
    assert_eq!(json[0]["http_user_agent"], r#"curl/8.5.0 "beta""#);
    let timing = messages(&h, timing_i);
    assert_eq!(timing.len(), 1);
    assert_eq!(timing[0]["request_method"], "POST");
    assert_eq!(timing[0]["status"], 502);
    assert_eq!(timing[0]["request_time"], 0.25);
    assert_eq!(timing[0]["upstream_response_time"], "0.249, 0.001");
    // Without the metadata: ACCESS_LOG_FORMAT (combined), as always.
    let plain = messages(&h, plain_i);
    assert_eq!(plain[0]["http_user_agent"], "integration-test/1.0");

    // A second invocation of the warm handler reads the logs again, the formats not.
    let s = h.handle(&event).await.expect("S3 event");
    assert_eq!(s.objects_delivered, 3, "{s:#?}");
    assert_eq!(messages(&h, json_i)[1], json[0]);
    assert_eq!(
        [&json_format, &timing_format, &json_obj].map(|k| opens_of(&h.source, k)),
        [1, 1, 2]
    );
}

/// An object of lines in several formats (a bundle of files, or one file whose format nginx
/// reloaded): each run of lines is parsed with the first of its candidates that it matches.
#[tokio::test]
async fn an_object_of_several_formats_parses_each_line_with_the_first_candidate_it_matches() {
    let i = "i-0123456789abcdef3";
    // The timing format before and after a reload that added $request_length.
    let before = TIMING_FORMAT;
    let after = r#"'$remote_addr [$time_local] "$request" $status $request_time $upstream_response_time $request_length'"#;
    let (json_key, before_key, after_key) = (
        format_key("nginx/", i, JSON_FORMAT.as_bytes()),
        format_key("nginx/", i, before.as_bytes()),
        format_key("nginx/", i, after.as_bytes()),
    );
    let timing_lines = concat!(
        r#"203.0.113.9 [24/Nov/2026:10:00:02 +0000] "POST /api/orders HTTP/1.1" 502 0.250 0.249"#,
        "\n",
        r#"203.0.113.9 [24/Nov/2026:10:00:03 +0000] "GET /api/orders HTTP/1.1" 200 0.010 0.009 431"#,
        "\n",
    );
    let json_line = concat!(
        r#"{"remote_addr":"198.51.100.7","time_iso8601":"2026-11-24T10:00:04+00:00","request":"GET / HTTP/1.1","status":200,"body_bytes_sent":612,"request_time":0.012,"http_user_agent":"curl/8.5.0"}"#,
        "\n"
    );
    let plain_line = format!(
        "{}\n",
        combined_line("192.0.2.1", 1_795_514_405_000, "/index.html", 200)
    );
    let body = format!("{timing_lines}{json_line}{plain_line}");
    let parts = format!(
        "{}:1.0 {}:2 {}:-",
        timing_lines.len(),
        json_line.len(),
        plain_line.len()
    );
    let obj = access_key(i, "access.bundle-1.gz");
    let source = FakeSource::default()
        .with(BUCKET, &json_key, JSON_FORMAT.as_bytes().to_vec())
        .with(BUCKET, &before_key, before.as_bytes().to_vec())
        .with(BUCKET, &after_key, after.as_bytes().to_vec())
        .with(BUCKET, &obj, gzip(body.as_bytes()))
        .with_meta(
            BUCKET,
            &obj,
            META_LOG_FORMATS,
            &format!("{before_key} {after_key} {json_key}"),
        )
        .with_meta(BUCKET, &obj, META_PARTS, &parts);
    let h = Handler::new(source, FakeSink::default(), default_config()).with_clock(fixture_clock());
    let s = h
        .handle(&common::s3_event(BUCKET, &[&obj]))
        .await
        .expect("S3 event");
    assert_eq!(
        (s.objects_delivered, s.totals.parse_errors, s.totals.events),
        (1, 0, 4),
        "{s:#?}"
    );
    // The line before the reload matched its second candidate only. The one after matched
    // both: the old format's last variable, $upstream_response_time (a list, "0.249, 0.001"),
    // reads "0.009 431" too. The newest wins, and the line is counted.
    assert_eq!(
        (s.totals.format_fallbacks, s.totals.format_ambiguous),
        (1, 1)
    );
    assert_eq!(
        s.objects[0].log_format.as_deref(),
        Some(before_key.as_str())
    );
    assert_eq!(
        s.objects[0].log_formats,
        [before_key, after_key, json_key.clone()]
    );
    let m = messages(&h, i);
    assert_eq!(m.len(), 4);
    assert_eq!(m[0]["upstream_response_time"], 0.249);
    assert!(m[0].get("request_length").is_none(), "{}", m[0]);
    assert_eq!(m[1]["upstream_response_time"], 0.009);
    assert_eq!(m[1]["request_length"], 431);
    // The JSON line keeps its own types; the combined one is the deployment's format.
    assert_eq!(m[2]["status"], 200);
    assert_eq!(m[2]["request_time"], 0.012);
    assert_eq!(m[3]["request_uri"], "/index.html");
    assert_eq!(m[3]["http_user_agent"], "integration-test/1.0");

    // Parts that do not add up, or name a format the object does not, fail the object alone.
    let bad = access_key(i, "access.bundle-2.gz");
    let source = FakeSource::default()
        .with(BUCKET, &json_key, JSON_FORMAT.as_bytes().to_vec())
        .with(BUCKET, &bad, gzip(json_line.as_bytes()))
        .with_meta(BUCKET, &bad, META_LOG_FORMATS, &json_key)
        .with_meta(BUCKET, &bad, META_PARTS, "10:1");
    let h = Handler::new(source, FakeSink::default(), default_config()).with_clock(fixture_clock());
    let s = h
        .handle(&common::s3_event(BUCKET, &[&bad]))
        .await
        .expect("S3 event");
    match outcome(&s, &bad) {
        Outcome::Failed { error } => assert!(
            error.contains("ncf-parts") && error.contains("not one of its 1 formats"),
            "{error}"
        ),
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn a_format_that_cannot_be_used_fails_its_object_alone_naming_both_keys() {
    let i = "i-0123456789abcdef0";
    let good = access_key(i, "good.log");
    let line = format!(
        "{}\n",
        combined_line("192.0.2.1", 1_795_514_403_000, "/index.html", 200)
    );
    let mut source = FakeSource::default().with(BUCKET, &good, line.clone().into_bytes());
    let too_large = vec![b'x'; usize::try_from(MAX_FORMAT_OBJECT_BYTES).expect("small") + 1];
    let uncompilable = b"'$remote_addr [$time_local".to_vec();
    let wrong_body = format_key("nginx/", i, b"'$remote_addr $status'");
    // (log object name, metadata value, the format object stored under the key it names, what
    // the error says)
    let cases: [(&str, String, Option<Vec<u8>>, &str); 5] = [
        (
            "missing.log",
            format_key("nginx/", i, TIMING_FORMAT.as_bytes()),
            None,
            "does not exist",
        ),
        (
            "wrong-hash.log",
            wrong_body.clone(),
            Some(TIMING_FORMAT.as_bytes().to_vec()),
            "does not hold what its name says",
        ),
        (
            "uncompilable.log",
            format_key("nginx/", i, &uncompilable),
            Some(uncompilable.clone()),
            "does not compile",
        ),
        (
            "too-large.log",
            format_key("nginx/", i, &too_large),
            Some(too_large.clone()),
            "larger than 65536 bytes",
        ),
        (
            "not-a-format.log",
            good.clone(),
            None,
            "not a format object key",
        ),
    ];
    let mut keys = vec![good.clone()];
    for (name, meta, body, _) in &cases {
        let key = access_key(i, name);
        source = source
            .with(BUCKET, &key, line.clone().into_bytes())
            .with_meta(BUCKET, &key, META_LOG_FORMAT, meta);
        if let Some(body) = body {
            source = source.with(BUCKET, meta, body.clone());
        }
        keys.push(key);
    }
    let h = Handler::new(source, FakeSink::default(), default_config()).with_clock(fixture_clock());
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let s = h.handle(&common::s3_event(BUCKET, &keys)).await.unwrap();
    assert_eq!((s.objects_delivered, s.objects_failed), (1, 5), "{s:#?}");
    for (name, meta, _, says) in &cases {
        let key = access_key(i, name);
        let Outcome::Failed { error } = outcome(&s, &key) else {
            panic!("{name}: {:?}", outcome(&s, &key));
        };
        assert!(
            error.contains(&format!("s3://{BUCKET}/{key}")) && error.contains(meta.as_str()),
            "{name}: names both keys: {error}"
        );
        assert!(error.contains(says), "{name}: {error}");
    }
    // Nothing was sent with a wrong format: only the good object's line arrived.
    assert_eq!(messages(&h, i).len(), 1);
    // A failure is not kept: the next delivery reads the format object again.
    let missing = access_key(i, "missing.log");
    h.handle(&common::s3_event(BUCKET, &[&missing]))
        .await
        .unwrap();
    assert_eq!(opens_of(&h.source, &cases[0].1), 2);
}

#[tokio::test]
async fn access_log_format_source_config_ignores_the_metadata_and_error_logs_never_read_it() {
    let i = "i-0123456789abcdef0";
    let access = access_key(i, "access.log");
    let error = format!("nginx/{i}/error/2026/11/24/error.log");
    // It names a format object that does not exist: reading it would fail the object.
    let missing = format_key("nginx/", i, TIMING_FORMAT.as_bytes());
    let line = format!(
        "{}\n",
        combined_line("192.0.2.1", 1_795_514_403_000, "/index.html", 200)
    );
    let source = || {
        FakeSource::default()
            .with(BUCKET, &access, line.clone().into_bytes())
            .with_meta(BUCKET, &access, META_LOG_FORMAT, &missing)
            .with(
                BUCKET,
                &error,
                b"2026/11/24 10:00:03 [error] 1204#1204: *31 open() failed\n".to_vec(),
            )
            .with_meta(BUCKET, &error, META_LOG_FORMAT, &missing)
    };
    let pinned =
        Config::from_lookup(|k| (k == "ACCESS_LOG_FORMAT_SOURCE").then(|| "config".to_string()))
            .unwrap();
    let h = Handler::new(source(), FakeSink::default(), pinned).with_clock(fixture_clock());
    let s = h
        .handle(&common::s3_event(BUCKET, &[&access, &error]))
        .await
        .unwrap();
    assert_eq!(
        (s.objects_delivered, s.totals.parse_errors),
        (2, 0),
        "{s:#?}"
    );
    assert_eq!(messages(&h, i)[0]["request_uri"], "/index.html");
    assert_eq!(opens_of(&h.source, &missing), 0);

    // By default the access object fails (its format is missing); the error log is read as
    // always, without looking for a format.
    let h =
        Handler::new(source(), FakeSink::default(), default_config()).with_clock(fixture_clock());
    let s = h
        .handle(&common::s3_event(BUCKET, &[&access, &error]))
        .await
        .unwrap();
    assert!(
        matches!(outcome(&s, &access), Outcome::Failed { .. }),
        "{s:#?}"
    );
    assert!(
        matches!(outcome(&s, &error), Outcome::Delivered { .. }),
        "{s:#?}"
    );
    assert_eq!(opens_of(&h.source, &missing), 1);
}

#[tokio::test]
async fn a_format_objects_own_notification_is_skipped_unread() {
    let key = format_key("nginx/", "i-0123456789abcdef0", TIMING_FORMAT.as_bytes());
    let source = FakeSource::default().with(BUCKET, &key, TIMING_FORMAT.as_bytes().to_vec());
    let h = Handler::new(source, FakeSink::default(), default_config());
    let s = h.handle(&common::s3_event(BUCKET, &[&key])).await.unwrap();
    assert_eq!((s.objects_skipped, s.objects_failed), (1, 0), "{s:#?}");
    assert_eq!(
        outcome(&s, &key),
        &Outcome::Skipped {
            reason: "a log format uploaded by ship, not a log".into()
        }
    );
    assert_eq!(opens_of(&h.source, &key), 0);
}

/// `parse --kind access --log-format FMT FILE`: the (timestamp, message) of each event.
fn parse_printed(format: &str, file: &std::path::Path) -> Vec<(i64, String)> {
    let out = common::moto::forwarder_command(
        &["parse", "--kind", "access", "--log-format", format],
        &[],
    )
    .arg(file)
    .output()
    .expect("run parse");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::moto::printed_events(&out.stdout)
}

/// A real nginx writes the same requests in a JSON and a timing format; each log goes to S3
/// with the metadata naming its format object (uploaded too, as `ship` does), moto announces all
/// four objects, and `replay` with no ACCESS_LOG_FORMAT delivers each log exactly as `parse
/// --log-format FMT` prints it, and skips the two format objects.
#[tokio::test]
async fn replay_parses_real_nginx_logs_with_the_formats_their_objects_name() {
    let addr = std::net::SocketAddr::from((
        std::net::Ipv4Addr::LOCALHOST,
        common::nginx::free_port(std::net::Ipv4Addr::LOCALHOST.into()),
    ));
    let mut nginx = common::nginx::Nginx::start(&format!(
        "log_format j {JSON_FORMAT};\n\
         log_format timing {TIMING_FORMAT};\n\
         server {{\n\
           listen {addr};\n\
           access_log logs/json.log j;\n\
           access_log logs/timing.log timing;\n\
           location / {{ return 200 \"ok\\n\"; }}\n\
           location /missing {{ return 404; }}\n\
         }}"
    ));
    for (target, agent) in [
        ("/", "curl/8.5.0"),
        (
            "/q?x=%22y%22&z=\"raw\"",
            "agent with \"quotes\" and \\ backslash",
        ),
        ("/missing/caf%C3%A9", "Mozilla/5.0 (X11; Linux x86_64) ü"),
        // (No request nginx answers 400: it may log that one after closing the connection.)
        ("/a\\b?c=d%20e", "-"),
    ] {
        common::nginx::get(addr, "formats.test", target, agent);
    }
    nginx.stop();
    let logs = [
        ("i-0123456789abcdef0", JSON_FORMAT, "logs/json.log"),
        ("i-0123456789abcdef1", TIMING_FORMAT, "logs/timing.log"),
    ];

    let moto = common::moto::Moto::start();
    let bucket = common::notify::NotifyingBucket::create(&moto, "object-formats").await;
    let mut format_keys = Vec::new();
    for (instance, format, file) in logs {
        let key = format_key("nginx/", instance, format.as_bytes());
        bucket.put(&key, format.as_bytes().to_vec()).await;
        bucket
            .put_with_metadata(
                &access_key(instance, "access.log-20261124T1000.gz"),
                gzip(&nginx.read(file)),
                &[(META_LOG_FORMAT, &key)],
            )
            .await;
        format_keys.push(key);
    }
    let event = bucket.lambda_event().await;
    let (code, summary) = common::moto::replay(&event, &moto.env());
    assert_eq!(code, Some(0), "replay: {summary:#}");
    assert_eq!(
        (
            &summary["objects_delivered"],
            &summary["objects_skipped"],
            &summary["objects_failed"]
        ),
        (&Value::from(2), &Value::from(2), &Value::from(0)),
        "{summary:#}"
    );
    assert_eq!(summary["parse_errors"], 0, "{summary:#}");
    for key in &format_keys {
        let report = summary["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .find(|o| o["key"] == key.as_str())
            .unwrap_or_else(|| panic!("no report for {key}: {summary:#}"));
        assert!(
            report.to_string().contains("a log format uploaded by ship"),
            "{report}"
        );
    }

    for (instance, _, _) in logs {
        let key = access_key(instance, "access.log-20261124T1000.gz");
        let report = summary["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .find(|o| o["key"] == key.as_str())
            .unwrap_or_else(|| panic!("no report for {key}: {summary:#}"));
        assert!(
            format_keys
                .iter()
                .any(|f| report["log_format"] == f.as_str()),
            "{report}"
        );
    }

    let cw = aws_sdk_cloudwatchlogs::Client::new(&moto.sdk_config());
    for (instance, format, file) in logs {
        let mut want = parse_printed(format, &nginx.path(file));
        assert_eq!(want.len(), 4, "{want:?}");
        let mut got = common::moto::read_stream(&cw, "nginx-access", instance).await;
        // CloudWatch orders by time; lines of the same millisecond may come in any order.
        got.sort();
        want.sort();
        assert_eq!(got, want, "{instance}: {format}");
    }
}

/// The follower writes the metadata with `meta_value`; the forwarder's decoding gives the key
/// back, whatever bytes the prefix has.
#[test]
fn the_followers_encoding_of_a_format_key_decodes_to_the_key() {
    use nginx_cloudwatch_forwarder::parse::object_format::{decode_meta, format_object_key};
    use nginx_cloudwatch_forwarder::ship::host::meta_value;
    for prefix in [
        "",
        "nginx/",
        "logs with spaces/",
        "déjà vu/",
        "100%/a+b/",
        "tab\there/",
    ] {
        let key = format_object_key(prefix, "i-0123456789abcdef0", TIMING_FORMAT);
        let value = meta_value(&key);
        assert!(value.bytes().all(|b| (b'!'..=b'~').contains(&b)), "{value}");
        assert_eq!(decode_meta(&value), Ok(key), "{prefix:?}");
    }
}

/// Both sides of the contract: a real nginx writes a timing format, `ship --once` finds the
/// log and its `log_format` in nginx's configuration (`nginx -T`) and uploads the segment with
/// its format object to moto, moto announces both, and `replay` with no ACCESS_LOG_FORMAT
/// stores exactly what `parse --log-format` prints for the log, the format object skipped.
#[tokio::test]
async fn what_ship_uploads_is_parsed_with_the_format_nginx_is_configured_with() {
    let logs = std::env::temp_dir().join(format!("ncf-object-formats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).expect("log dir");
    let access = logs.join("timing.log");
    let addr = std::net::SocketAddr::from((
        std::net::Ipv4Addr::LOCALHOST,
        common::nginx::free_port(std::net::Ipv4Addr::LOCALHOST.into()),
    ));
    let mut nginx = common::nginx::Nginx::start(&format!(
        "log_format timing {TIMING_FORMAT};\n\
         server {{\n\
           listen {addr};\n\
           access_log {} timing;\n\
           location / {{ return 200 \"ok\\n\"; }}\n\
         }}",
        access.display()
    ));
    for (target, agent) in [
        ("/", "curl/8.5.0"),
        ("/q?x=%22y%22&z=\"raw\"", "agent with \"quotes\""),
        ("/caf%C3%A9", "Mozilla/5.0 ü"),
    ] {
        common::nginx::get(addr, "formats.test", target, agent);
    }
    nginx.stop();
    // What the follower runs as nginx: the real one, on that configuration.
    let wrapper = logs.join("nginx");
    common::nginx::write_wrapper(&wrapper, &nginx.dir, &nginx.path("nginx.conf"));

    let moto = common::moto::Moto::start();
    let imds = common::imds::ImdsServer::start(common::imds::Imds::Serve);
    let bucket = common::notify::NotifyingBucket::create(&moto, "ship-formats").await;
    let out = common::ship_command_files(
        &moto,
        &imds,
        &bucket.bucket,
        &logs.join("state"),
        &[&access],
    )
    .env("NGINX_BIN", &wrapper)
    // Where the wrapper's nginx reads its configuration (the follower reads the files).
    .env("NGINX_CONF", nginx.path("nginx.conf"))
    .env("NGINX_PREFIX", &nginx.dir)
    .arg("--once")
    .output()
    .expect("run ship");
    assert!(
        out.status.success(),
        "ship: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let event = bucket.lambda_event().await;
    let (code, summary) = common::moto::replay(&event, &moto.env());
    assert_eq!(code, Some(0), "replay: {summary:#}");
    assert_eq!(
        (
            &summary["objects_delivered"],
            &summary["objects_skipped"],
            &summary["objects_failed"],
            &summary["parse_errors"]
        ),
        (
            &Value::from(1),
            &Value::from(1),
            &Value::from(0),
            &Value::from(0)
        ),
        "{summary:#}"
    );
    let format_key = format_key(
        "nginx/",
        common::imds::INSTANCE_ID,
        TIMING_FORMAT.as_bytes(),
    );
    let objects = summary["objects"].as_array().expect("objects");
    assert!(
        objects.iter().any(|o| o["key"] == format_key.as_str()
            && o["reason"] == "a log format uploaded by ship, not a log"),
        "{summary:#}"
    );
    assert!(
        objects
            .iter()
            .any(|o| o["status"] == "delivered" && o["log_format"] == format_key.as_str()),
        "{summary:#}"
    );

    let cw = aws_sdk_cloudwatchlogs::Client::new(&moto.sdk_config());
    let mut want = parse_printed(TIMING_FORMAT, &access);
    assert_eq!(want.len(), 3, "{want:?}");
    let mut got = common::moto::read_stream(&cw, "nginx-access", common::imds::INSTANCE_ID).await;
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&logs);
}

/// A source whose every open waits for its turn first (as a network read would), so that the
/// objects of one invocation reach their format at the same time.
struct Yielding(FakeSource);

impl nginx_cloudwatch_forwarder::ports::ObjectSource for Yielding {
    async fn open(
        &self,
        obj: &nginx_cloudwatch_forwarder::event::ObjectRef,
        req: &nginx_cloudwatch_forwarder::ports::OpenRequest,
    ) -> Result<
        nginx_cloudwatch_forwarder::ports::OpenedObject,
        nginx_cloudwatch_forwarder::ports::SourceError,
    > {
        tokio::task::yield_now().await;
        self.0.open(obj, req).await
    }
}

#[tokio::test]
async fn objects_forwarded_at_once_that_name_one_format_read_it_once() {
    let i = "i-0123456789abcdef0";
    let format = format_key("nginx/", i, TIMING_FORMAT.as_bytes());
    let line = "203.0.113.9 [24/Nov/2026:10:00:02 +0000] \"GET / HTTP/1.1\" 200 0.001 -\n";
    let names = ["a.log", "b.log", "c.log", "d.log"];
    let mut source = FakeSource::default().with(BUCKET, &format, TIMING_FORMAT.as_bytes().to_vec());
    for name in names {
        let key = access_key(i, name);
        source = source
            .with(BUCKET, &key, line.as_bytes().to_vec())
            .with_meta(BUCKET, &key, META_LOG_FORMAT, &format);
    }
    let config = default_config();
    assert!(config.delivery.max_concurrent_objects >= names.len());
    let h = Handler::new(Yielding(source), FakeSink::default(), config).with_clock(fixture_clock());
    let keys: Vec<String> = names.iter().map(|n| access_key(i, n)).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let s = h.handle(&common::s3_event(BUCKET, &keys)).await.unwrap();
    assert_eq!(
        (s.objects_delivered, s.totals.parse_errors),
        (4, 0),
        "{s:#?}"
    );
    assert_eq!(opens_of(&h.source.0, &format), 1);
}
