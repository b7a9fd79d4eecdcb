//! **ncf-parse**: nginx lines → events, a timestamp and the message string CloudWatch will store.
//! The lowest layer: it depends on no other crate of the workspace, and is pure (no I/O, no
//! tokio, no AWS). Its callers (`ncf-core`'s block engine, the `parse` command, the follower)
//! hand it lines and get back [`LogEvent`]s.
//!
//! Access lines are matched against a compiled `log_format` ([`mod@format`], [`LogFormat`]);
//! error-log lines against nginx's fixed error-log layout, with continuation lines joined
//! ([`error`]). A line that does not parse is never dropped: it becomes
//! `{"raw": …, "parse_error": …}` carrying the timestamp of the event before it (or the
//! object's LastModified).
//!
//! - [`LineParser`] and [`ParseSettings`]: one object's lines, parsed with its settings
//!   ([`LogKind`], [`OutputFormat`], [`FieldNames`]).
//! - [`access`], [`error`]: the two parsers; [`time`]: nginx's time formats ([`LocalZone`]).
//! - [`request_line`]: `$request` split as the nginx version that wrote it did
//!   ([`RequestLineRules`]).
//! - [`json`]: the JSON writer and [`Message`], each message written escaped once into its
//!   block's arena.
//! - [`redact`] (`ANONYMIZE_IP`, `REDACT_*`): what must not leave, taken out of each value as
//!   it is written.
//! - [`filter`] (`FILTER_RULES`), [`extra`] (`EXTRA_FIELDS`), [`object_format`] (the format an
//!   object names, `ncf-log-format`).

// Input never panics the function: no unwrap/expect/panic outside tests (invariants use
// `unreachable!` with the reason).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod access;
pub mod error;
pub mod event;
pub mod extra;
pub mod filter;
pub mod format;
pub mod json;
pub mod line;
pub mod names;
pub mod object_format;
pub mod redact;
pub mod request_line;
pub mod settings;
pub mod time;

pub use format::{FormatError, LogFormat};
pub use json::Message;
pub use request_line::RequestLineRules;
pub use time::LocalZone;

pub use event::{LogEvent, unparsed_message};
pub use line::{LineParser, filter_fields, message_keys};
pub use names::{FieldNames, LogKind, OutputFormat, parse_output};
pub use redact::Redaction;
pub use settings::{ObjectParse, ParseSettings, Parsing};
