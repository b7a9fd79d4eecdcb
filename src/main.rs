//! Cold start only: tracing, configuration, SDK clients, then either the Lambda runtime loop
//! (when `AWS_LAMBDA_RUNTIME_API` is set) or a local command (`replay`, `parse`, `ship`,
//! `backfill`).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use nginx_cloudwatch_forwarder::cli;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda_runtime::tracing::init_default_subscriber();
        match cli::run_lambda().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    } else {
        cli::init_local_tracing();
        cli::run(std::env::args().skip(1).collect()).await
    }
}
