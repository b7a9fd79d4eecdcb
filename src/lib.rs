//! nginx-cloudwatch-forwarder: nginx logs uploaded to S3 → CloudWatch Logs, one stream per instance.
//!
//! Data flows one way: trigger payload → object refs → bytes → lines → events → batches →
//! CloudWatch. The pure core (`event`, `object`, `route`, `parse`, `batch`, `summary`, `backfill`) has no I/O and no
//! AWS types; `aws/` holds the adapters behind the narrow traits in `ports`.

// Input never panics the function: no unwrap/expect/panic outside tests (invariants use
// `unreachable!` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod aws;
pub mod backfill;
pub mod batch;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod event;
pub mod forward;
pub mod handler;
pub mod lines;
pub mod object;
pub mod parse;
pub mod ports;
pub mod route;
pub mod ship;
pub mod spare;
pub mod summary;
