//! Cold start only: logging, then either the Lambda runtime loop (when
//! `AWS_LAMBDA_RUNTIME_API` is set) or a local command (`replay`, `parse`, `ship`, `backfill`,
//! `nginx-logs`, `completions`). Nothing else happens here: see [`nginx_cloudwatch_forwarder`].

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use nginx_cloudwatch_forwarder::{cli, lambda, logging};

#[tokio::main]
async fn main() -> ExitCode {
    if lambda::in_lambda() {
        logging::init_lambda();
        match lambda::run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        }
    } else {
        logging::init_local();
        cli::run(std::env::args().skip(1).collect()).await
    }
}
