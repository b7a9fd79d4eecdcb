//! Typed configuration from the environment, read and validated once at cold start, by the
//! readers of [`read`] (which the follower's settings use too). Every error names the variable
//! and the bad value. An empty variable counts as unset.
//!
//! One part per concern, so that each stage is given only its own: [`Config::route`] (where an
//! object's events go), [`Config::parse`] and [`Config::objects`] (how its lines become
//! messages), [`Config::delivery`] (how much at once, the entity), [`Config::sink`] (the log
//! groups created, the wait for unanswered puts), [`Config::checkpoints`] and
//! [`Config::leases`]. The edges read the last three; the handler splits the rest once
//! ([`crate::forward::Stages`]) and keeps [`Config::trust`] (which messages it acts on).

pub mod delivery;
pub mod function;
pub mod leases;
pub mod parse;
pub mod read;
pub mod uploads;

pub use delivery::{
    AMBIGUOUS_PUT_WAIT, DEFAULT_MAX_CONCURRENT_OBJECTS, DEFAULT_MAX_CONCURRENT_PUTS,
    DeliverySettings, EntityKind, LogGroupClass, RETENTION_DAYS_ALLOWED, SinkSettings,
};
pub use function::{
    FORWARDER_VARS, FunctionSettings, LOCAL_TUNING_VARS, SettingDiff, function_settings, set_vars,
};
pub use leases::{CheckpointStoreKind, DEFAULT_LEASE_PREFIX, DEFAULT_LEASE_SECONDS, LeaseSettings};
pub use parse::{FormatSource, HASH_KEY_SECRET_VAR, HashKeySecret, ObjectSettings};
pub use read::SettingError;

use crate::route::{
    DEFAULT_KEY_PATTERN, DEFAULT_LOG_GROUP_TEMPLATE, DEFAULT_LOG_STREAM_TEMPLATE, Router,
};
use crate::trust::TrustSettings;
use ncf_parse::ParseSettings;
use read::{Given, Vars, text};

#[derive(Debug, Clone)]
pub struct Config {
    /// `KEY_PATTERN`, `LOG_GROUP_TEMPLATE`, `LOG_STREAM_TEMPLATE`.
    pub route: Router,
    /// The deployment's parse settings, shared by every object (each adds its own part,
    /// [`ncf_parse::ObjectParse`]).
    pub parse: ParseSettings,
    /// How each object is read and what its messages carry beyond [`Config::parse`].
    pub objects: ObjectSettings,
    /// Objects and puts at once, and the entity each put names.
    pub delivery: DeliverySettings,
    /// The CloudWatch Logs sink's settings.
    pub sink: SinkSettings,
    /// Where per-object progress is kept.
    pub checkpoints: CheckpointStoreKind,
    /// Leases on objects while they are forwarded (`None`: no exclusion).
    pub leases: Option<LeaseSettings>,
    /// Whose uploads are forwarded and which messages are acted on.
    pub trust: TrustSettings,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("configuration error: {var}={value:?}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub reason: String,
}

impl From<SettingError> for ConfigError {
    fn from(e: SettingError) -> Self {
        Self {
            var: e.name,
            value: e.value,
            reason: e.reason,
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds the configuration from any variable lookup (the environment, or a test's map).
    /// With `REDACT_HASH_KEY_SECRET` set this is refused: see [`Config::from_lookup_and_secret`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup_and_secret(get, None)
    }

    /// The secret the edge must read first, when `REDACT_HASH_KEY_SECRET` names one (refused
    /// with `REDACT_HASH_KEY` set too).
    pub fn hash_key_secret(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, ConfigError> {
        Ok(parse::hash_key_secret(&Vars::lambda(get))?)
    }

    /// [`Config::from_lookup`] with the value of the secret [`Config::hash_key_secret`] named,
    /// read by the edge once at cold start: the key of hashed fields.
    pub fn from_lookup_and_secret(
        get: impl Fn(&str) -> Option<String>,
        secret: Option<&HashKeySecret>,
    ) -> Result<Self, ConfigError> {
        let vars = Vars::lambda(get);
        let route = read_route(&vars)?;
        let parse = parse::read_parse(&vars, secret)?;
        let objects = ObjectSettings::read(&vars, &route, &parse)?;
        let delivery = DeliverySettings::read(&vars)?;
        let sink = SinkSettings::read(&vars)?;
        let checkpoints = CheckpointStoreKind::read(&vars)?;
        let leases = LeaseSettings::read(&vars, checkpoints)?;
        let trust = uploads::read_trust(&vars)?;
        Ok(Self {
            route,
            parse,
            objects,
            delivery,
            sink,
            checkpoints,
            leases,
            trust,
        })
    }
}

/// `KEY_PATTERN`, `LOG_GROUP_TEMPLATE` and `LOG_STREAM_TEMPLATE`, checked together (the
/// templates name the pattern's groups).
fn read_route<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Router, SettingError> {
    let given = |name: &'static str, default: &str| Given {
        name,
        value: text(vars.get(name)).unwrap_or_else(|| default.to_string()),
    };
    let parts = [
        given("KEY_PATTERN", DEFAULT_KEY_PATTERN),
        given("LOG_GROUP_TEMPLATE", DEFAULT_LOG_GROUP_TEMPLATE),
        given("LOG_STREAM_TEMPLATE", DEFAULT_LOG_STREAM_TEMPLATE),
    ];
    let [pattern, group, stream] = &parts;
    Router::new(&pattern.value, &group.value, &stream.value).map_err(|(name, e)| {
        let value = parts.iter().find(|p| p.name == name).unwrap_or(stream);
        SettingError::new(value.name, &value.value, e.to_string())
    })
}

#[cfg(test)]
mod tests;
