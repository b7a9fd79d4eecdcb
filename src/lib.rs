//! **nginx-cloudwatch-forwarder**: nginx logs uploaded to S3 → CloudWatch Logs, one stream
//! per instance. This package is the binary and the top of the workspace: it may depend on
//! every crate below it (`ncf-parse` → `ncf-core` → `ncf-aws` → `ncf-ship`), and none of them
//! on it.
//!
//! - `main.rs` only wires: [`logging`], then [`lambda::run`] when Lambda started the process,
//!   else [`cli::run`].
//! - [`lambda`]: the Lambda runtime loop, and the invocation's answer ([`lambda::response`]).
//! - [`wiring`]: the production handler, S3 and CloudWatch Logs behind the core's ports
//!   ([`wiring::production_handler`]).
//! - [`cli`]: the command line (`replay`, `parse`, `ship`, `backfill`, `nginx-logs`,
//!   `completions`), which runs the same code as the Lambda.
//! - [`logging`]: where log lines go, in Lambda and locally (beside a progress line).
//!
//! The layers are re-exported here under the names the tests and benches use:
//! [`parse`] (`ncf-parse`); the core (`ncf-core`): [`event`], [`object`], [`route`], [`lines`],
//! [`forward`], [`batch`], [`checkpoint`], [`summary`], [`ports`], [`handler`], [`config`],
//! [`backfill`], [`spare`]; [`aws`] (`ncf-aws`); [`ship`] (`ncf-ship`).

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
    spare, summary, trust,
};
pub use ncf_parse as parse;
pub use ncf_ship as ship;
