//! nginx-cloudwatch-forwarder: nginx logs uploaded to S3 → CloudWatch Logs, one stream per instance.
//!
//! This package is the binary: `main`, the Lambda runtime loop, the wiring of the production
//! handler ([`wiring`]) and the local commands ([`cli`]). The work is done by the layers below
//! it, each its own crate, re-exported here under the names the tests and benches use:
//!
//! - [`parse`] (`ncf-parse`): nginx lines → events; pure.
//! - the core (`ncf-core`): [`event`], [`object`], [`route`], [`lines`], [`forward`], [`batch`],
//!   [`checkpoint`], [`summary`], [`ports`], [`handler`], [`config`], [`backfill`]; no AWS types.
//! - [`aws`] (`ncf-aws`): the adapters behind [`ports`].
//! - [`ship`] (`ncf-ship`): the follower on the hosts.

// Input never panics the function: no unwrap/expect/panic outside tests (invariants use
// `unreachable!` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cli;
pub mod lambda;
pub mod logging;
pub mod wiring;

pub use ncf_aws as aws;
pub use ncf_core::{
    backfill, batch, checkpoint, config, event, forward, handler, lines, object, ports, route,
    spare, summary,
};
pub use ncf_parse as parse;
pub use ncf_ship as ship;
