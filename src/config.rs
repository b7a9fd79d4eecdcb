//! Typed configuration from the environment, read and validated once at cold start.
//! Every error names the variable and the bad value. An empty variable counts as unset.

use std::time::Duration;

use crate::aws::cloudwatch::AMBIGUOUS_PUT_WAIT;
use crate::aws::leases::DEFAULT_LEASE_PREFIX;
use crate::parse::extra::{Extra, ExtraFields};
use crate::parse::{
    FieldNames, LocalZone, LogFormat, OutputFormat, ParseSettings, filter::Rules, filter_fields,
    message_keys, parse_output,
};
use crate::route::{
    DEFAULT_KEY_PATTERN, DEFAULT_LOG_GROUP_TEMPLATE, DEFAULT_LOG_STREAM_TEMPLATE, Router,
};

/// Retention values CloudWatch Logs accepts.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html>
pub const RETENTION_DAYS_ALLOWED: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
pub const DEFAULT_MAX_CONCURRENT_OBJECTS: usize = 4;
/// PutLogEvents calls in flight per invocation. Each holds one batch (≤ 1 MiB) plus the SDK's
/// copy, so 8 keep memory near 20 MB while several streams (or one) are written in parallel,
/// far below the account's PutLogEvents quota (5,000 TPS per region since 2023).
pub const DEFAULT_MAX_CONCURRENT_PUTS: usize = 8;

/// Every variable [`Config::from_lookup`] reads: the forwarder's settings, all of them. The
/// template sets each from a parameter or says why it is fixed (tests/parameters.rs), and
/// `backfill`/`replay --function` take exactly these from the deployed function.
pub const FORWARDER_VARS: [&str; 21] = [
    "KEY_PATTERN",
    "LOG_GROUP_TEMPLATE",
    "LOG_STREAM_TEMPLATE",
    "OUTPUT_FORMAT",
    "ACCESS_LOG_FORMAT",
    "ACCESS_LOG_FORMAT_SOURCE",
    "FIELD_NAMES",
    "ERROR_LOG_TIMEZONE",
    "RETENTION_DAYS",
    "MAX_CONCURRENT_OBJECTS",
    "MAX_CONCURRENT_PUTS",
    "CHECKPOINT_STORE",
    "SKIP_BINARY",
    "FILTER_RULES",
    "EXTRA_FIELDS",
    "ENTITY",
    "LOG_GROUP_CLASS",
    "LEASE_SECONDS",
    "LEASE_PREFIX",
    "LEASES",
    "AMBIGUOUS_PUT_WAIT_MS",
];

/// Settings a run elsewhere may choose for itself with `--function`: how much it does at once
/// and how long it waits. They change neither what is written nor where.
pub const LOCAL_TUNING_VARS: [&str; 3] = [
    "MAX_CONCURRENT_OBJECTS",
    "MAX_CONCURRENT_PUTS",
    "AMBIGUOUS_PUT_WAIT_MS",
];

/// A forwarder setting this shell has and the deployed function has not (or not so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingDiff {
    pub var: &'static str,
    pub shell: String,
    /// `None`: the function leaves it unset (the default).
    pub function: Option<String>,
}

impl std::fmt::Display for SettingDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.function {
            Some(v) => write!(
                f,
                "{}={:?} here, {:?} in the function",
                self.var, self.shell, v
            ),
            None => write!(
                f,
                "{}={:?} here, unset (the default) in the function",
                self.var, self.shell
            ),
        }
    }
}

/// What a local run writing as the deployed function does takes: see [`function_settings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSettings {
    /// The variables to build the [`Config`] from.
    pub vars: std::collections::HashMap<String, String>,
    /// The shell's own [`LOCAL_TUNING_VARS`] that differ from the function's, as `NAME=value`.
    pub tuned: Vec<String>,
}

/// The settings of a local run that must write as the deployed function does: the function's
/// forwarder variables ([`FORWARDER_VARS`]), and of this shell's only the [`LOCAL_TUNING_VARS`].
/// A shell variable that is set and differs from the function's is refused: every one is
/// named, none is guessed at.
pub fn function_settings(
    function: &std::collections::HashMap<String, String>,
    shell: impl Fn(&str) -> Option<String>,
) -> Result<FunctionSettings, Vec<SettingDiff>> {
    let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let mut settings = std::collections::HashMap::new();
    let (mut tuned, mut differ) = (Vec::new(), Vec::new());
    for var in FORWARDER_VARS {
        let theirs = set(function.get(var).cloned());
        let ours = set(shell(var));
        if let Some(v) = &theirs {
            settings.insert(var.to_string(), v.clone());
        }
        match ours {
            Some(ours) if Some(&ours) != theirs.as_ref() => {
                if LOCAL_TUNING_VARS.contains(&var) {
                    tuned.push(format!("{var}={ours}"));
                    settings.insert(var.to_string(), ours);
                } else {
                    differ.push(SettingDiff {
                        var,
                        shell: ours,
                        function: theirs,
                    });
                }
            }
            _ => {}
        }
    }
    if differ.is_empty() {
        Ok(FunctionSettings {
            vars: settings,
            tuned,
        })
    } else {
        Err(differ)
    }
}

/// The forwarder variables this lookup sets (`NAME=value`), for saying which settings a run uses.
pub fn set_vars(get: impl Fn(&str) -> Option<String>) -> Vec<String> {
    FORWARDER_VARS
        .iter()
        .filter_map(|var| {
            get(var)
                .filter(|v| !v.trim().is_empty())
                .map(|v| format!("{var}={v}"))
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Config {
    pub router: Router,
    pub parse: ParseSettings,
    /// Set on log groups the forwarder creates.
    pub retention_days: Option<i32>,
    /// Objects of one invocation forwarded at the same time.
    pub max_concurrent_objects: usize,
    /// PutLogEvents calls in flight at the same time, over all objects of an invocation.
    pub max_concurrent_puts: usize,
    /// Where per-object progress is kept.
    pub checkpoint_store: CheckpointStoreKind,
    /// Skip objects that do not look like text instead of forwarding them lossily decoded.
    pub skip_binary: bool,
    /// Fields about each object's source added to its JSON messages, rendered per object.
    pub extra_fields: ExtraFields,
    /// What each put names as the entity its events come from.
    pub entity: EntityKind,
    /// Leases on objects while they are forwarded (`None`: no exclusion).
    pub leases: Option<LeaseSettings>,
    /// How long a put whose answer was lost is looked for before what is missing is sent again.
    pub ambiguous_put_wait: Duration,
    /// The class of the log groups the forwarder creates.
    pub log_group_class: LogGroupClass,
    /// Whether an access object's own `log_format` (its `ncf-log-format` metadata) is used.
    pub access_format_source: FormatSource,
}

/// `ACCESS_LOG_FORMAT_SOURCE`: `object` (default) parses an access object with the `log_format`
/// its `ncf-log-format` metadata names (see [`crate::parse::object_format`]), and one that names
/// none with `ACCESS_LOG_FORMAT`; `config` always uses `ACCESS_LOG_FORMAT` (the metadata is
/// ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatSource {
    #[default]
    Object,
    Config,
}

/// `LOG_GROUP_CLASS`: `STANDARD` (default) or `INFREQUENT_ACCESS` (half the ingestion price,
/// fewer features) for the groups the forwarder creates; a group's class cannot change later.
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CloudWatch_Logs_Log_Classes.html>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogGroupClass {
    #[default]
    Standard,
    InfrequentAccess,
}

/// `LEASES=s3` (default, with `CHECKPOINT_STORE=s3-tags`): a lease object under
/// `LEASE_PREFIX` in the log object's bucket while it is forwarded, lasting `LEASE_SECONDS` from
/// each renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    pub prefix: String,
    pub term: Duration,
}

/// A lease lasts this long from each renewal (renewed every third of it): a crashed holder
/// blocks its object at most this long after its last renewal.
pub const DEFAULT_LEASE_SECONDS: u64 = 60;

/// `ENTITY`: `ec2-instance` (default) sends each put with the EC2 instance of its stream as the
/// entity, so that CloudWatch relates the logs to the instance's metrics; `none` sends none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Ec2Instance,
    None,
}

/// `CHECKPOINT_STORE`: `s3-tags` (default) keeps progress in a tag on each object; `none`
/// keeps none (every delivery of an object sends it whole: at-least-once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointStoreKind {
    S3Tags,
    Off,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("configuration error: {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds the configuration from any variable lookup (the environment, or a test's map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let fail = |name: &'static str, value: &str, reason: String| ConfigError {
            var: name,
            value: value.to_string(),
            reason,
        };

        let pattern = var("KEY_PATTERN").unwrap_or_else(|| DEFAULT_KEY_PATTERN.to_string());
        let group =
            var("LOG_GROUP_TEMPLATE").unwrap_or_else(|| DEFAULT_LOG_GROUP_TEMPLATE.to_string());
        let stream =
            var("LOG_STREAM_TEMPLATE").unwrap_or_else(|| DEFAULT_LOG_STREAM_TEMPLATE.to_string());
        let router = Router::new(&pattern, &group, &stream).map_err(|(name, e)| {
            let value = match name {
                "KEY_PATTERN" => &pattern,
                "LOG_GROUP_TEMPLATE" => &group,
                _ => &stream,
            };
            fail(name, value, e.to_string())
        })?;

        let (output, compact) = match var("OUTPUT_FORMAT") {
            None => (OutputFormat::Json, false),
            Some(v) => parse_output(&v).map_err(|e| fail("OUTPUT_FORMAT", &v, e))?,
        };
        let access_format = match var("ACCESS_LOG_FORMAT") {
            None => LogFormat::combined(),
            Some(v) => LogFormat::parse_config(&v)
                .map_err(|e| fail("ACCESS_LOG_FORMAT", &v, e.to_string()))?,
        };
        let names = match var("FIELD_NAMES") {
            None => FieldNames::Nginx,
            Some(v) => FieldNames::parse(&v).map_err(|e| fail("FIELD_NAMES", &v, e))?,
        };
        let error_zone = match var("ERROR_LOG_TIMEZONE") {
            None => LocalZone::Fixed(0),
            Some(v) => LocalZone::parse(&v).map_err(|e| fail("ERROR_LOG_TIMEZONE", &v, e))?,
        };
        let retention_days = match var("RETENTION_DAYS") {
            None => None,
            Some(v) => match v.trim().parse::<i32>() {
                Ok(d) if RETENTION_DAYS_ALLOWED.contains(&d) => Some(d),
                _ => {
                    return Err(fail(
                        "RETENTION_DAYS",
                        &v,
                        format!("must be one of {RETENTION_DAYS_ALLOWED:?}"),
                    ));
                }
            },
        };
        let concurrency = |name: &'static str, default: usize| match var(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=64).contains(&n) => Ok(n),
                _ => Err(fail(name, &v, "must be a whole number from 1 to 64".into())),
            },
        };
        let max_concurrent_objects =
            concurrency("MAX_CONCURRENT_OBJECTS", DEFAULT_MAX_CONCURRENT_OBJECTS)?;
        let max_concurrent_puts = concurrency("MAX_CONCURRENT_PUTS", DEFAULT_MAX_CONCURRENT_PUTS)?;
        let checkpoint_store = match var("CHECKPOINT_STORE").as_deref().map(str::trim) {
            None | Some("s3-tags") => CheckpointStoreKind::S3Tags,
            Some("none") => CheckpointStoreKind::Off,
            Some(v) => {
                return Err(fail(
                    "CHECKPOINT_STORE",
                    v,
                    "must be s3-tags or none".into(),
                ));
            }
        };
        let skip_binary = match var("SKIP_BINARY")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("false" | "0" | "no") => false,
            Some("true" | "1" | "yes") => true,
            Some(_) => {
                let v = var("SKIP_BINARY").unwrap_or_default();
                return Err(fail("SKIP_BINARY", &v, "must be true or false".into()));
            }
        };
        let mut parse = ParseSettings {
            output,
            compact,
            access_format,
            error_zone,
            names: FieldNames::Nginx,
            extra: Extra::default(),
            rules: Default::default(),
            sample_seed: 0,
            request_line: None,
        }
        .with_names(names);
        if let Some(v) = var("FILTER_RULES") {
            let rules = Rules::parse(&v, |kind| filter_fields(&parse, kind))
                .map_err(|e| fail("FILTER_RULES", &v, e))?;
            parse.rules = std::sync::Arc::new(rules);
        }
        let extra_fields = match var("EXTRA_FIELDS") {
            None => ExtraFields::default(),
            Some(v) => {
                let taken = message_keys(&parse);
                let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
                ExtraFields::parse(&v, &router.group_names(), &taken)
                    .map_err(|e| fail("EXTRA_FIELDS", &v, e.to_string()))?
            }
        };
        let entity = match var("ENTITY").as_deref().map(str::trim) {
            None | Some("ec2-instance") => EntityKind::Ec2Instance,
            Some("none") => EntityKind::None,
            Some(v) => return Err(fail("ENTITY", v, "must be ec2-instance or none".into())),
        };
        let log_group_class = match var("LOG_GROUP_CLASS").map(|v| v.trim().to_ascii_uppercase()) {
            None => LogGroupClass::Standard,
            Some(v) if v == "STANDARD" => LogGroupClass::Standard,
            Some(v) if v == "INFREQUENT_ACCESS" => LogGroupClass::InfrequentAccess,
            Some(_) => {
                let v = var("LOG_GROUP_CLASS").unwrap_or_default();
                return Err(fail(
                    "LOG_GROUP_CLASS",
                    &v,
                    "must be STANDARD or INFREQUENT_ACCESS".into(),
                ));
            }
        };
        let number = |name: &'static str, range: std::ops::RangeInclusive<u64>| match var(name) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if range.contains(&n) => Ok(Some(n)),
                _ => Err(fail(
                    name,
                    &v,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )),
            },
        };
        let lease_term =
            Duration::from_secs(number("LEASE_SECONDS", 1..=900)?.unwrap_or(DEFAULT_LEASE_SECONDS));
        let lease_prefix = var("LEASE_PREFIX").unwrap_or_else(|| DEFAULT_LEASE_PREFIX.to_string());
        let leases = match var("LEASES").as_deref().map(str::trim) {
            None | Some("s3") => {
                (checkpoint_store == CheckpointStoreKind::S3Tags).then_some(LeaseSettings {
                    prefix: lease_prefix,
                    term: lease_term,
                })
            }
            Some("none") => None,
            Some(v) => return Err(fail("LEASES", v, "must be s3 or none".into())),
        };
        let access_format_source = match var("ACCESS_LOG_FORMAT_SOURCE").as_deref().map(str::trim) {
            None | Some("object") => FormatSource::Object,
            Some("config") => FormatSource::Config,
            Some(v) => {
                return Err(fail(
                    "ACCESS_LOG_FORMAT_SOURCE",
                    v,
                    "must be object or config".into(),
                ));
            }
        };
        let ambiguous_put_wait = number("AMBIGUOUS_PUT_WAIT_MS", 0..=600_000)?
            .map_or(AMBIGUOUS_PUT_WAIT, Duration::from_millis);
        Ok(Self {
            access_format_source,
            leases,
            ambiguous_put_wait,
            entity,
            log_group_class,
            extra_fields,
            skip_binary,
            checkpoint_store,
            max_concurrent_puts,
            router,
            parse,
            retention_days,
            max_concurrent_objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
        assert_eq!(c.retention_days, None);
        assert_eq!(c.parse.output, OutputFormat::Json);
        assert_eq!(c.max_concurrent_objects, DEFAULT_MAX_CONCURRENT_OBJECTS);
        let r = c
            .router
            .route("nginx/i-0123456789abcdef0/access/x.gz")
            .unwrap();
        assert_eq!(
            (r.log_group.as_str(), r.log_stream.as_str()),
            ("nginx-access", "i-0123456789abcdef0")
        );
        // Empty values (as SAM passes unset parameters) count as unset.
        assert!(load(&[("KEY_PATTERN", ""), ("RETENTION_DAYS", " ")]).is_ok());
        assert_eq!(c.access_format_source, FormatSource::Object);
        let source = |v: &str| {
            load(&[("ACCESS_LOG_FORMAT_SOURCE", v)])
                .unwrap()
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
        assert_eq!(c.retention_days, Some(30));
        assert_eq!(
            (c.parse.output, c.parse.compact),
            (OutputFormat::Raw, false)
        );
        let class = |v: &str| load(&[("LOG_GROUP_CLASS", v)]).unwrap().log_group_class;
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
        assert_eq!(c.max_concurrent_objects, 8);
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
        let wait = |vars: &[(&str, &str)]| load(vars).unwrap().ambiguous_put_wait;
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
}
