//! The forwarder's core: what to do with an S3 upload, with no AWS types.
//!
//! Data flows one way: trigger payload ([`event`]) → object refs ([`object`]) → where they go
//! ([`route`]) → bytes → lines ([`lines`]) → events (the `ncf-parse` crate, driven block by
//! block by [`forward`]) → PutLogEvents batches ([`batch`]) → the sink. Progress per object is a
//! [`checkpoint`]; what happened is a [`summary`]. The edges are the traits in [`ports`], which
//! the `ncf-aws` crate implements and tests implement with fakes. [`handler`] runs one
//! invocation; [`config`] reads the environment once into typed parts; [`backfill`] plans
//! re-deliveries from listings.
//!
//! This crate has no AWS SDK, no Lambda runtime and no HTTP client; the compiler keeps it so
//! (see the workspace's Cargo.toml).

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
