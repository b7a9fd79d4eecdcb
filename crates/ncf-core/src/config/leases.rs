//! Where progress is kept and whether objects are leased while they are forwarded.

use std::time::Duration;

use super::read::{Case, SettingError, Vars, choice, duration, text};

/// Where leases go by default: outside the default `KeyPrefix` (`nginx/`), so that writing one
/// does not announce a log object.
pub const DEFAULT_LEASE_PREFIX: &str = "nginx-cloudwatch-forwarder/leases/";

/// A lease lasts this long from each renewal (renewed every third of it): a crashed holder
/// blocks its object at most this long after its last renewal.
pub const DEFAULT_LEASE_SECONDS: u64 = 60;

/// `CHECKPOINT_STORE`: `s3-tags` (default) keeps progress in a tag on each object; `none`
/// keeps none (every delivery of an object sends it whole: at-least-once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointStoreKind {
    S3Tags,
    Off,
}

/// `LEASES=s3` (default, with `CHECKPOINT_STORE=s3-tags`): a lease object under
/// `LEASE_PREFIX` in the log object's bucket while it is forwarded, lasting `LEASE_SECONDS` from
/// each renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    pub prefix: String,
    pub term: Duration,
}

impl CheckpointStoreKind {
    pub fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, SettingError> {
        Ok(choice(
            vars.get("CHECKPOINT_STORE"),
            &[("s3-tags", Self::S3Tags), ("none", Self::Off)],
            Case::Exact,
        )?
        .unwrap_or(Self::S3Tags))
    }
}

impl LeaseSettings {
    /// `None`: no leases (`LEASES=none`, or no progress records: a lease would only delay a
    /// second full delivery).
    pub fn read<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
        checkpoints: CheckpointStoreKind,
    ) -> Result<Option<Self>, SettingError> {
        let term = duration(
            vars.get("LEASE_SECONDS"),
            1..=900,
            "a whole number",
            Duration::from_secs,
        )?
        .unwrap_or(Duration::from_secs(DEFAULT_LEASE_SECONDS));
        let prefix =
            text(vars.get("LEASE_PREFIX")).unwrap_or_else(|| DEFAULT_LEASE_PREFIX.to_string());
        let on = choice(
            vars.get("LEASES"),
            &[("s3", true), ("none", false)],
            Case::Exact,
        )?
        .unwrap_or(true);
        Ok((on && checkpoints == CheckpointStoreKind::S3Tags).then_some(Self { prefix, term }))
    }
}
