//! **ncf-aws**: the AWS edges, the SDK behind `ncf-core`'s [`ports`](ncf_core::ports). It
//! depends on `ncf-parse`, `ncf-core` and the AWS SDK crates; nothing here decides what to
//! forward, only how to talk to AWS.
//!
//! - [`s3`]: [`S3Source`](s3::S3Source), S3 as an object source (a streaming, ranged GET), the
//!   checkpoint store (an object tag) and the lister (ListObjectsV2).
//! - [`cloudwatch`]: [`CloudWatchSink`](cloudwatch::CloudWatchSink), CloudWatch Logs as the
//!   sink: the request body we serialise ourselves, retries, and the read-back of a put
//!   without an answer.
//! - [`leases`]: [`S3Leases`](leases::S3Leases), one delivery at a time by conditional writes.
//! - [`sqs`]: [`SqsQueue`](sqs::SqsQueue), for `backfill --enqueue` and `replay --queue`.
//! - [`lambda`]: a deployed function's settings (GetFunctionConfiguration), for `--function`.
//! - [`secrets`]: the hash key of `REDACT_HASH_KEY_SECRET` (GetSecretValue), at cold start.
//! - This file: the one SDK configuration ([`shared_config`], [`clients`], [`s3_client_for`]) with
//!   our retries and timeouts, and [`ConfiguredCheckpoints`].

// Input never panics the function: no unwrap/expect/panic outside tests (invariants use
// `unreachable!` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cloudwatch;
pub mod lambda;
pub mod leases;
pub mod s3;
mod sdk_error;
pub mod secrets;
pub mod sqs;

use std::time::Duration;

pub use aws_config::SdkConfig;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

/// Attempts per AWS call (first try included) in the SDK's standard retry mode, which retries
/// throttling, 5xx, timeouts and dropped connections with jittered exponential backoff (base
/// 1 s, capped at 20 s: at most about 2 minutes for one call, well inside a 5-minute timeout).
/// Sustained 20 % throttling then loses a call with probability 0.27^8 ≈ 3e-5.
/// <https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html>
pub const MAX_ATTEMPTS: u32 = 8;
/// One attempt of one call may take this long before it is abandoned and retried.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// Endpoint overrides the SDK reads from the environment; when one is set for S3 we use
/// path-style addressing, which emulators need.
const S3_ENDPOINT_VARS: [&str; 2] = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"];

/// Whose retry policy a client follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// Ours ([`retry_config`]) always: the Lambda and the commands that write as it does.
    Ours,
    /// The SDK's `AWS_MAX_ATTEMPTS` when it is set, else ours: the follower (`ship`), where a
    /// host may want to give up sooner.
    EnvironmentFirst,
}

/// The SDK configuration from the standard AWS environment (credentials, region,
/// `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`), with our retries and timeouts.
pub async fn shared_config() -> aws_config::SdkConfig {
    shared_config_with(Retries::Ours).await
}

/// [`shared_config`], its retries as `retries` says. The one place an SDK configuration is
/// loaded: the Lambda, the commands and the follower all come here.
pub async fn shared_config_with(retries: Retries) -> aws_config::SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(timeout_config());
    let ours = retries == Retries::Ours || !set("AWS_MAX_ATTEMPTS");
    let loader = if ours {
        loader.retry_config(retry_config())
    } else {
        loader
    };
    loader.load().await
}

/// Whether the environment sets `var` (to something).
fn set(var: &str) -> bool {
    std::env::var(var).is_ok_and(|s| !s.is_empty())
}

/// Whether the environment points S3 at another endpoint (an emulator): then path-style.
fn s3_path_style() -> bool {
    S3_ENDPOINT_VARS.iter().any(|v| set(v))
}

/// Both clients, built once per cold start from the standard AWS environment (credentials,
/// region, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`).
pub async fn clients() -> (aws_sdk_s3::Client, aws_sdk_cloudwatchlogs::Client) {
    clients_with(&shared_config().await)
}

/// [`clients`] from a configuration already loaded (the Lambda's, shared with the secret read
/// at cold start).
pub fn clients_with(
    shared: &aws_config::SdkConfig,
) -> (aws_sdk_s3::Client, aws_sdk_cloudwatchlogs::Client) {
    clients_from(shared, s3_path_style())
}

/// The S3 client alone (the follower's) from [`shared_config_with`]'s configuration, which
/// the follower's STS call shares: path-style when the environment points S3 elsewhere.
pub fn s3_client_for(shared: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    s3_client_from(shared, s3_path_style())
}

fn s3_client_from(shared: &aws_config::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Both clients from an already loaded shared configuration (tests point it at an emulator).
pub fn clients_from(
    shared: &aws_config::SdkConfig,
    path_style: bool,
) -> (aws_sdk_s3::Client, aws_sdk_cloudwatchlogs::Client) {
    (
        s3_client_from(shared, path_style),
        aws_sdk_cloudwatchlogs::Client::new(shared),
    )
}

/// The checkpoint store `CHECKPOINT_STORE` selects.
pub enum ConfiguredCheckpoints {
    S3Tags(s3::S3Source),
    Off,
}

impl ncf_core::ports::CheckpointStore for ConfiguredCheckpoints {
    async fn load(
        &self,
        obj: &ncf_core::event::ObjectRef,
    ) -> Result<ncf_core::ports::Stored, ncf_core::ports::CheckpointError> {
        match self {
            Self::S3Tags(s) => s.load(obj).await,
            Self::Off => Ok(ncf_core::ports::Stored::default()),
        }
    }

    async fn save(
        &self,
        obj: &ncf_core::event::ObjectRef,
        other_tags: &[(String, String)],
        progress: &ncf_core::checkpoint::ProgressRecord,
    ) -> Result<(), ncf_core::ports::CheckpointError> {
        match self {
            Self::S3Tags(s) => s.save(obj, other_tags, progress).await,
            Self::Off => Ok(()),
        }
    }
}

impl ConfiguredCheckpoints {
    /// The store `kind` names, keeping its tags through `source`.
    pub fn new(kind: ncf_core::config::CheckpointStoreKind, source: s3::S3Source) -> Self {
        match kind {
            ncf_core::config::CheckpointStoreKind::S3Tags => Self::S3Tags(source),
            ncf_core::config::CheckpointStoreKind::Off => Self::Off,
        }
    }
}
