//! **ncf-core**: the forwarder's core, what to do with an S3 upload, with no AWS types. It
//! depends on `ncf-parse` only (and tokio, serde, compression); no AWS SDK, no Lambda runtime,
//! no HTTP client: the compiler keeps it so (see the workspace's Cargo.toml).
//!
//! Data flows one way: trigger payload ([`event`]) → object refs ([`object`]) → where they go
//! ([`route`]) → bytes → lines ([`lines`]) → events (`ncf-parse`, driven block by block by
//! [`forward`]) → PutLogEvents batches ([`batch`]) → the sink.
//!
//! - [`handler`]: one invocation ([`handler::Handler`]): event → objects → forward each,
//!   bounded → [`summary::Summary`].
//! - [`forward`]: one object, in stages (read, work, deliver, progress) with the lease beside
//!   them; the same block engine serves the Lambda and the `parse` command.
//! - [`ports`]: the edges as narrow traits ([`ports::ObjectSource`], [`ports::LogSink`],
//!   [`ports::CheckpointStore`], [`ports::LeaseStore`], [`ports::ObjectLister`],
//!   [`ports::MessageQueue`], [`ports::QueueReader`]), implemented by `ncf-aws` and by the
//!   tests' fakes.
//! - [`checkpoint`]: per-object progress ([`checkpoint::ProgressRecord`]), so that nothing is
//!   sent twice; [`summary`]: what happened, per object and per invocation.
//! - [`config`]: the environment read once into typed parts ([`config::Config`]).
//! - [`backfill`]: which listed objects a backfill takes; [`spare`]: big buffers kept for reuse.

// Input never panics the function: no unwrap/expect/panic outside tests (invariants use
// `unreachable!` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backfill;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod event;
pub mod forward;
pub mod handler;
pub mod lines;
pub mod object;
pub mod ports;
pub mod route;
pub mod spare;
pub mod summary;
pub mod trust;
