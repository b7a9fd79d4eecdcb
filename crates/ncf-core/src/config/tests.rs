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

/// Variables given, the one refused and what its error must say.
type Refusal<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

/// A key of the length `REDACT_HASH_KEY` needs.
const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Each refused redaction setting names its variable, its value and the item at fault.
#[test]
fn each_bad_redaction_setting_names_its_variable_and_the_item() {
    let cases: [Refusal; 14] = [
        (&[("ANONYMIZE_IP", "33")], "ANONYMIZE_IP", "\"33\""),
        (&[("ANONYMIZE_IP", "24,129")], "ANONYMIZE_IP", "\"129\""),
        (&[("ANONYMIZE_IP", "half")], "ANONYMIZE_IP", "\"half\""),
        (
            &[("REDACT_FIELDS", "http_cookie:shred")],
            "REDACT_FIELDS",
            "\"shred\"",
        ),
        (
            &[("REDACT_FIELDS", "http_cookie,http_cookie")],
            "REDACT_FIELDS",
            "http_cookie is listed twice",
        ),
        (
            &[("REDACT_FIELDS", "http_cookie:hash")],
            "REDACT_FIELDS",
            "REDACT_HASH_KEY",
        ),
        (
            &[("REDACT_PATTERNS", "email,ssn")],
            "REDACT_PATTERNS",
            "\"ssn\"",
        ),
        (
            &[("REDACT_PATTERNS", r#"[{"name": "jwt", "matches": "("}]"#)],
            "REDACT_PATTERNS",
            "pattern jwt",
        ),
        (
            &[("REDACT_HASH_KEY", "short")],
            "REDACT_HASH_KEY",
            "5 bytes",
        ),
        (
            &[
                ("REDACT_HASH_KEY", KEY),
                ("REDACT_HASH_KEY_SECRET", "ncf/key"),
            ],
            "REDACT_HASH_KEY_SECRET",
            "REDACT_HASH_KEY is set too",
        ),
        // Nothing read the secret (a caller that is not the function or a command): refused,
        // not run without the key.
        (
            &[("REDACT_HASH_KEY_SECRET", "ncf/key")],
            "REDACT_HASH_KEY_SECRET",
            "not read",
        ),
        (
            &[
                ("EXTRA_FIELDS", "hostname={instance_id}"),
                ("REDACT_FIELDS", "remote_user,hostname:hash"),
                ("REDACT_HASH_KEY", KEY),
            ],
            "REDACT_FIELDS",
            "field hostname is an EXTRA_FIELDS field: take it out of EXTRA_FIELDS instead",
        ),
        // A key the messages do not have (combined has no $http_cookie): a typo would redact
        // nothing. Refused when every object is parsed with ACCESS_LOG_FORMAT.
        (
            &[
                ("ACCESS_LOG_FORMAT_SOURCE", "config"),
                ("REDACT_FIELDS", "remote_user,http_cookie"),
            ],
            "REDACT_FIELDS",
            "http_cookie is not a field of ACCESS_LOG_FORMAT's messages nor the error log's \
             (FIELD_NAMES=nginx)",
        ),
        (
            &[
                ("ACCESS_LOG_FORMAT_SOURCE", "config"),
                ("FIELD_NAMES", "fluentd"),
                ("REDACT_FIELDS", "remote_user"),
            ],
            "REDACT_FIELDS",
            "remote_user is not a field of ACCESS_LOG_FORMAT's messages nor the error log's \
             (FIELD_NAMES=fluentd)",
        ),
    ];
    for (vars, var, item) in cases {
        let err = load(vars).expect_err(var);
        let given = vars.iter().find(|(n, _)| *n == var).expect("given").1;
        assert_eq!((err.var, err.value.as_str()), (var, given), "{err}");
        assert!(err.reason.contains(item), "{vars:?}: {err}");
    }
}

/// Too many rules, all of them patterns: the error names REDACT_PATTERNS with its value.
#[test]
fn too_many_patterns_name_redact_patterns() {
    let named: Vec<String> = (0..33)
        .map(|i| format!(r#"{{"name": "p{i}", "matches": "x{i}y"}}"#))
        .collect();
    let patterns = format!("[{}]", named.join(","));
    let err = load(&[("REDACT_PATTERNS", &patterns)]).expect_err("33 rules");
    assert_eq!(
        (err.var, err.value.as_str()),
        ("REDACT_PATTERNS", patterns.as_str())
    );
    assert!(err.reason.contains("at most 32 redaction rules"), "{err}");
}

/// With objects naming their own formats (the default), a field ACCESS_LOG_FORMAT lacks may be
/// theirs: taken (with a warning), and listed by `unknown_redacted_fields`.
#[test]
fn a_field_only_object_formats_may_have_is_taken() {
    let config = load(&[("REDACT_FIELDS", "remote_user,http_cookie")]).unwrap();
    assert_eq!(
        crate::config::parse::unknown_redacted_fields(&config.parse),
        ["http_cookie"]
    );
}

/// The secret's value is the key, as if `REDACT_HASH_KEY` held it; a key too short is refused
/// naming the secret, never showing its value.
#[test]
fn the_secrets_value_is_the_key_and_never_shown() {
    let vars = |k: &str| match k {
        "REDACT_HASH_KEY_SECRET" => Some(" arn:aws:secretsmanager:eu-west-1:1:secret:k ".into()),
        "REDACT_FIELDS" => Some("remote_user:hash".into()),
        _ => None,
    };
    assert_eq!(
        Config::hash_key_secret(vars).unwrap().as_deref(),
        Some("arn:aws:secretsmanager:eu-west-1:1:secret:k")
    );
    let secret = |text: &str| HashKeySecret {
        secret: "arn:aws:secretsmanager:eu-west-1:1:secret:k".into(),
        text: text.into(),
    };
    let with_secret = Config::from_lookup_and_secret(vars, Some(&secret(KEY))).unwrap();
    let with_var = load(&[
        ("REDACT_FIELDS", "remote_user:hash"),
        ("REDACT_HASH_KEY", KEY),
    ])
    .unwrap()
    .parse
    .redaction;
    let hashed = |r: &ncf_parse::redact::Redaction| {
        let mut hits = 0;
        r.value(
            "remote_user",
            ncf_parse::redact::FieldClass::Text,
            "sid=1",
            &mut hits,
        )
        .map(|v| v.into_owned())
    };
    let hash = hashed(&with_secret.parse.redaction).expect("hashed, not dropped");
    assert!(hash.starts_with(ncf_parse::redact::HASH_PREFIX), "{hash}");
    assert_eq!(Some(hash), hashed(&with_var));
    assert!(!format!("{with_secret:?}").contains(KEY));
    assert!(!format!("{:?}", secret(KEY)).contains(KEY));

    let err = Config::from_lookup_and_secret(vars, Some(&secret("tiny-secret"))).unwrap_err();
    assert_eq!(err.var, "REDACT_HASH_KEY_SECRET");
    assert_eq!(err.value, "arn:aws:secretsmanager:eu-west-1:1:secret:k");
    assert!(err.reason.contains("11 bytes"), "{err}");
    assert!(!err.to_string().contains("tiny-secret"), "{err}");
}
