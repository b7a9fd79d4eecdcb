//! The configuration as the environment gives it: defaults, valid values, each bad value named.

use super::*;
use ncf_parse::{FieldNames, LogFormat, OutputFormat};
use std::collections::HashMap;
use std::time::Duration;

fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults() {
    let c = load(&[]).unwrap();
    assert_eq!(c.sink.retention_days, None);
    assert_eq!(c.parse.output, OutputFormat::Json);
    assert_eq!(
        c.delivery.max_concurrent_objects,
        DEFAULT_MAX_CONCURRENT_OBJECTS
    );
    let r = c
        .route
        .route("nginx/i-0123456789abcdef0/access/x.gz")
        .unwrap();
    assert_eq!(
        (r.log_group.as_str(), r.log_stream.as_str()),
        ("nginx-access", "i-0123456789abcdef0")
    );
    // Empty values (as SAM passes unset parameters) count as unset.
    assert!(load(&[("KEY_PATTERN", ""), ("RETENTION_DAYS", " ")]).is_ok());
    assert_eq!(c.objects.access_format_source, FormatSource::Object);
    let source = |v: &str| {
        load(&[("ACCESS_LOG_FORMAT_SOURCE", v)])
            .unwrap()
            .objects
            .access_format_source
    };
    assert_eq!(source("object"), FormatSource::Object);
    assert_eq!(source(" config "), FormatSource::Config);
}

#[test]
fn valid_values() {
    let c = load(&[
        ("RETENTION_DAYS", "30"),
        ("OUTPUT_FORMAT", "RAW"),
        ("ERROR_LOG_TIMEZONE", "Europe/Berlin"),
        ("ACCESS_LOG_FORMAT", "main"),
        ("MAX_CONCURRENT_OBJECTS", "8"),
        ("FIELD_NAMES", " Fluentd"),
    ])
    .unwrap();
    assert_eq!(c.sink.retention_days, Some(30));
    assert_eq!(
        (c.parse.output, c.parse.compact),
        (OutputFormat::Raw, false)
    );
    let class = |v: &str| {
        load(&[("LOG_GROUP_CLASS", v)])
            .unwrap()
            .sink
            .log_group_class
    };
    assert_eq!(class(" infrequent_access"), LogGroupClass::InfrequentAccess);
    assert_eq!(class("STANDARD"), LogGroupClass::Standard);
    let compact = load(&[("OUTPUT_FORMAT", " JSON-Compact")]).unwrap();
    assert_eq!(
        (compact.parse.output, compact.parse.compact),
        (OutputFormat::Json, true)
    );
    assert_eq!(c.parse.names, FieldNames::Fluentd);
    // The access format's keys follow (`$status` is td-agent's `code`).
    assert_eq!(
        c.parse.access_format,
        LogFormat::parse_config("main")
            .unwrap()
            .with_names(FieldNames::Fluentd)
    );
    assert_ne!(
        c.parse.access_format,
        LogFormat::parse_config("main").unwrap()
    );
    assert_eq!(c.delivery.max_concurrent_objects, 8);
}

#[test]
fn leases_and_the_wait_for_unanswered_puts() {
    let lease = |vars: &[(&str, &str)]| load(vars).unwrap().leases;
    let default = LeaseSettings {
        prefix: DEFAULT_LEASE_PREFIX.into(),
        term: Duration::from_secs(DEFAULT_LEASE_SECONDS),
    };
    assert_eq!(lease(&[]), Some(default.clone()));
    assert_eq!(lease(&[("LEASES", "s3")]), Some(default));
    assert_eq!(
        lease(&[("LEASE_PREFIX", "l/"), ("LEASE_SECONDS", "5")]),
        Some(LeaseSettings {
            prefix: "l/".into(),
            term: Duration::from_secs(5)
        })
    );
    assert_eq!(lease(&[("LEASES", "none")]), None);
    // Without progress records a lease would only delay a second full delivery.
    assert_eq!(lease(&[("CHECKPOINT_STORE", "none")]), None);
    let wait = |vars: &[(&str, &str)]| load(vars).unwrap().sink.ambiguous_put_wait;
    assert_eq!(wait(&[]), AMBIGUOUS_PUT_WAIT);
    assert_eq!(
        wait(&[("AMBIGUOUS_PUT_WAIT_MS", "250")]),
        Duration::from_millis(250)
    );
}

/// `from_lookup` reads exactly the variables of [`FORWARDER_VARS`]: a new setting cannot be
/// missed by the template check or by `--function`.
#[test]
fn forwarder_vars_are_what_from_lookup_reads() {
    let read = std::sync::Mutex::new(std::collections::BTreeSet::new());
    Config::from_lookup(|k| {
        read.lock().expect("not poisoned").insert(k.to_string());
        None
    })
    .expect("defaults are valid");
    let listed: std::collections::BTreeSet<String> =
        FORWARDER_VARS.iter().map(|v| v.to_string()).collect();
    assert_eq!(read.into_inner().expect("not poisoned"), listed);
}

#[test]
fn the_functions_settings_win_and_a_differing_shell_is_refused() {
    let function: HashMap<String, String> = [
        ("FIELD_NAMES", "fluentd"),
        ("OUTPUT_FORMAT", "json"),
        ("KEY_PATTERN", ""),
        ("MAX_CONCURRENT_OBJECTS", "4"),
        ("NOT_OURS", "x"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let shell = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    // A shell with nothing set, or set as the function has it (empty counts as unset).
    for vars in [
        &[][..],
        &[("FIELD_NAMES", "fluentd"), ("KEY_PATTERN", " ")][..],
    ] {
        let FunctionSettings { vars: got, tuned } =
            function_settings(&function, shell(vars)).expect("agrees");
        let mut got: Vec<_> = got.into_iter().collect();
        got.sort();
        let want = [
            ("FIELD_NAMES", "fluentd"),
            ("MAX_CONCURRENT_OBJECTS", "4"),
            ("OUTPUT_FORMAT", "json"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(got, want, "{vars:?}");
        assert!(tuned.is_empty());
    }
    // Tuning is this run's own, and said.
    let FunctionSettings {
        vars: settings,
        tuned,
    } = function_settings(&function, shell(&[("MAX_CONCURRENT_OBJECTS", "16")])).expect("ok");
    assert_eq!(settings["MAX_CONCURRENT_OBJECTS"], "16");
    assert_eq!(tuned, ["MAX_CONCURRENT_OBJECTS=16"]);
    // What changes the messages or their place is refused, each difference named.
    let differ = function_settings(
        &function,
        shell(&[
            ("FIELD_NAMES", "nginx"),
            ("EXTRA_FIELDS", "host={instance_id}"),
            ("OUTPUT_FORMAT", "json"),
        ]),
    )
    .expect_err("differs");
    assert_eq!(
        differ,
        [
            SettingDiff {
                var: "FIELD_NAMES",
                shell: "nginx".into(),
                function: Some("fluentd".into())
            },
            SettingDiff {
                var: "EXTRA_FIELDS",
                shell: "host={instance_id}".into(),
                function: None
            },
        ]
    );
    assert_eq!(
        differ[1].to_string(),
        r#"EXTRA_FIELDS="host={instance_id}" here, unset (the default) in the function"#
    );
}

#[test]
fn each_bad_value_names_its_variable() {
    let cases = [
        ("KEY_PATTERN", "(unclosed"),
        ("KEY_PATTERN", "(?P<instance_id>i-[0-9a-f]+)/"),
        ("LOG_GROUP_TEMPLATE", "nginx-{nope}"),
        ("LOG_STREAM_TEMPLATE", "{instance_id"),
        ("RETENTION_DAYS", "31"),
        ("RETENTION_DAYS", "thirty"),
        ("OUTPUT_FORMAT", "xml"),
        ("ACCESS_LOG_FORMAT", "'$remote_addr"),
        ("ERROR_LOG_TIMEZONE", "Mars/Olympus"),
        ("MAX_CONCURRENT_OBJECTS", "0"),
        ("MAX_CONCURRENT_PUTS", "65"),
        ("CHECKPOINT_STORE", "dynamodb"),
        ("SKIP_BINARY", "maybe"),
        ("FIELD_NAMES", "td-agent"),
        ("EXTRA_FIELDS", "status={instance_id}"),
        ("EXTRA_FIELDS", "host={nope}"),
        ("EXTRA_FIELDS", "hostname"),
        ("ENTITY", "ec2"),
        ("LEASES", "dynamodb"),
        ("LEASE_SECONDS", "0"),
        ("LEASE_SECONDS", "901"),
        ("AMBIGUOUS_PUT_WAIT_MS", "-1"),
        ("AMBIGUOUS_PUT_WAIT_MS", "600001"),
        ("LOG_GROUP_CLASS", "DELIVERY"),
        ("ACCESS_LOG_FORMAT_SOURCE", "metadata"),
        (
            "FILTER_RULES",
            r#"[{"name": "x", "when": {"request_url": {"contains": "a"}}}]"#,
        ),
        (
            "FILTER_RULES",
            r#"[{"name": "x", "when": {"status": {"matches": "("}}}]"#,
        ),
        ("FILTER_RULES", "health=drop"),
    ];
    for (var, value) in cases {
        let err = load(&[(var, value)]).unwrap_err();
        assert_eq!((err.var, err.value.as_str()), (var, value));
        let text = err.to_string();
        // (Quoted as a string literal, escapes and all.)
        let shown = text.contains(value) || text.contains(&format!("{value:?}"));
        assert!(text.contains(var) && shown, "{text}");
    }
}
