//! Which variables are the forwarder's settings, and the settings of a local run that must
//! write as the deployed function does.

use std::collections::HashMap;

/// Every variable [`Config::from_lookup`](super::Config::from_lookup) reads: the forwarder's settings, all of them. The
/// template sets each from a parameter or says why it is fixed (tests/parameters.rs), and
/// `backfill`/`replay --function` take exactly these from the deployed function.
pub const FORWARDER_VARS: [&str; 30] = [
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
    "ANONYMIZE_IP",
    "REDACT_QUERY_PARAMS",
    "REDACT_FIELDS",
    "REDACT_PATTERNS",
    "REDACT_HASH_KEY",
    "REDACT_HASH_KEY_SECRET",
    "EXTRA_FIELDS",
    "ENTITY",
    "LOG_GROUP_CLASS",
    "LEASE_SECONDS",
    "LEASE_PREFIX",
    "LEASES",
    "AMBIGUOUS_PUT_WAIT_MS",
    "UPLOADER_CHECK",
    "SOURCE_BUCKET",
    "SOURCE_ACCOUNT",
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
    /// The variables to build the [`Config`](super::Config) from.
    pub vars: HashMap<String, String>,
    /// The shell's own [`LOCAL_TUNING_VARS`] that differ from the function's, as `NAME=value`.
    pub tuned: Vec<String>,
}

/// The settings of a local run that must write as the deployed function does: the function's
/// forwarder variables ([`FORWARDER_VARS`]), and of this shell's only the [`LOCAL_TUNING_VARS`].
/// A shell variable that is set and differs from the function's is refused: every one is
/// named, none is guessed at.
pub fn function_settings(
    function: &HashMap<String, String>,
    shell: impl Fn(&str) -> Option<String>,
) -> Result<FunctionSettings, Vec<SettingDiff>> {
    let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let mut settings = HashMap::new();
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
