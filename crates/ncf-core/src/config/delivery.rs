//! How events are delivered: how much at once, what each put names as its source
//! ([`DeliverySettings`]), and the CloudWatch Logs sink's own settings ([`SinkSettings`]).

use std::time::Duration;

use super::read::{Case, SettingError, Vars, choice, duration, member, number};

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
/// `MAX_CONCURRENT_OBJECTS` and `MAX_CONCURRENT_PUTS` are each at most this.
const MAX_CONCURRENCY: u64 = 64;

/// How long a batch whose put got no answer is looked for in its stream before what is missing
/// is sent again (`AMBIGUOUS_PUT_WAIT_MS`): CloudWatch's reads lag its writes, typically by
/// seconds. The stream is read at 1/16, 3/16, 7/16, 15/16 and all of it, and the wait ends as
/// soon as every event is found. 15 s, so that a check begun just before the forwarder stops
/// starting batches ends within the 20 s it keeps in reserve of the Lambda timeout
/// ([`crate::forward::TIME_RESERVE`]).
pub const AMBIGUOUS_PUT_WAIT: Duration = Duration::from_secs(15);

/// The delivery stage's settings: how many objects and puts at once, and the entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Objects of one invocation forwarded at the same time.
    pub max_concurrent_objects: usize,
    /// PutLogEvents calls in flight at the same time, over all objects of an invocation.
    pub max_concurrent_puts: usize,
    /// What each put names as the entity its events come from.
    pub entity: EntityKind,
}

/// The CloudWatch Logs sink's settings: the groups it creates and how long it looks for a put
/// that got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSettings {
    /// Set on log groups the forwarder creates (events older than it are not sent).
    pub retention_days: Option<i32>,
    /// The class of the log groups the forwarder creates.
    pub log_group_class: LogGroupClass,
    /// How long a put whose answer was lost is looked for before what is missing is sent again.
    pub ambiguous_put_wait: Duration,
}

/// `ENTITY`: `ec2-instance` (default) sends each put with the EC2 instance of its stream as the
/// entity, so that CloudWatch relates the logs to the instance's metrics; `none` sends none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Ec2Instance,
    None,
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

impl DeliverySettings {
    pub fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, SettingError> {
        let concurrency = |name: &'static str, default: usize| {
            number(vars.get(name), 1..=MAX_CONCURRENCY, "a whole number")
                .map(|n| n.map_or(default, |n| n as usize))
        };
        Ok(Self {
            max_concurrent_objects: concurrency(
                "MAX_CONCURRENT_OBJECTS",
                DEFAULT_MAX_CONCURRENT_OBJECTS,
            )?,
            max_concurrent_puts: concurrency("MAX_CONCURRENT_PUTS", DEFAULT_MAX_CONCURRENT_PUTS)?,
            entity: choice(
                vars.get("ENTITY"),
                &[
                    ("ec2-instance", EntityKind::Ec2Instance),
                    ("none", EntityKind::None),
                ],
                Case::Exact,
            )?
            .unwrap_or(EntityKind::Ec2Instance),
        })
    }
}

impl SinkSettings {
    pub fn read<F: Fn(&str) -> Option<String>>(vars: &Vars<F>) -> Result<Self, SettingError> {
        Ok(Self {
            retention_days: member(vars.get("RETENTION_DAYS"), &RETENTION_DAYS_ALLOWED)?,
            log_group_class: choice(
                vars.get("LOG_GROUP_CLASS"),
                &[
                    ("STANDARD", LogGroupClass::Standard),
                    ("INFREQUENT_ACCESS", LogGroupClass::InfrequentAccess),
                ],
                Case::Any,
            )?
            .unwrap_or_default(),
            ambiguous_put_wait: duration(
                vars.get("AMBIGUOUS_PUT_WAIT_MS"),
                0..=600_000,
                "a whole number",
                Duration::from_millis,
            )?
            .unwrap_or(AMBIGUOUS_PUT_WAIT),
        })
    }
}
