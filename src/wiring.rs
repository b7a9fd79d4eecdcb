//! The composition root: the production handler, S3 and CloudWatch Logs behind the core's ports.

use std::sync::Arc;

use ncf_aws::ConfiguredCheckpoints;
use ncf_aws::cloudwatch::CloudWatchSink;
use ncf_aws::leases::S3Leases;
use ncf_aws::s3::S3Source;
use ncf_core::config::Config;
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
