//! The composition root: the configuration (with the secret it names read first), and the
//! production handler, S3 and CloudWatch Logs behind the core's ports.

use std::sync::Arc;

use ncf_aws::ConfiguredCheckpoints;
use ncf_aws::SdkConfig;
use ncf_aws::cloudwatch::CloudWatchSink;
use ncf_aws::leases::S3Leases;
use ncf_aws::s3::S3Source;
use ncf_aws::secrets::{SecretError, read_hash_key};
use ncf_core::config::{Config, ConfigError};
use ncf_core::handler::Handler;

/// The handler as the Lambda and `replay` run it.
pub fn production_handler(
    config: Config,
    s3: aws_sdk_s3::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
) -> Handler<S3Source, CloudWatchSink, ConfiguredCheckpoints> {
    let source = S3Source::new(s3);
    let checkpoints = ConfiguredCheckpoints::new(config.checkpoints, source.clone());
    let sink = CloudWatchSink::new(logs, config.sink.retention_days)
        .with_group_class(config.sink.log_group_class)
        .with_ambiguous_wait(config.sink.ambiguous_put_wait);
    let leases = config.leases.clone();
    let handler = Handler::new(source.clone(), sink, config).with_checkpoints(checkpoints);
    match leases {
        Some(l) => handler.with_leases(Arc::new(S3Leases::new(source.client(), l.prefix)), l.term),
        None => handler,
    }
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// The configuration from `get` (the environment, or a deployed function's): when
/// `REDACT_HASH_KEY_SECRET` names a secret, its value is read first, once, and is the key of
/// hashed fields. The Lambda at cold start, `parse`, `replay` and `backfill` all come here.
/// `sdk`: the configuration already loaded, if any (else one is loaded for the secret alone).
pub async fn configuration(
    get: impl Fn(&str) -> Option<String>,
    sdk: Option<&SdkConfig>,
) -> Result<Config, StartError> {
    let Some(secret) = Config::hash_key_secret(&get)? else {
        return Ok(Config::from_lookup(get)?);
    };
    let value = read_hash_key(&secret, sdk).await?;
    Ok(Config::from_lookup_and_secret(get, Some(&value))?)
}
