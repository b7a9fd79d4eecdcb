//! CloudWatch Logs as a [`LogSink`](ncf_core::ports::LogSink), one concern a file (the way
//! Vector's `aws_cloudwatch_logs` sink is split):
//!
//! - `sink`: [`CloudWatchSink`], the put of one batch, the creation of a missing group and
//!   stream, and what follows a put without an answer.
//! - `body`: the PutLogEvents request body, which we serialise ourselves
//!   ([`put_log_events_body`]).
//! - `retry`: what a failed call means (create then put again, check, give up), and the SDK
//!   retry classifier that keeps the SDK from sending again a put whose outcome is unknown.
//! - `readback`: the check of a put without an answer (GetLogEvents over the batch's range).
//! - `stream`: the stream a call is about, and the errors that name it.
//!
//! PutLogEvents without sequence tokens (ignored since January 2023). A missing group or stream
//! is created on `ResourceNotFoundException` — `ResourceAlreadyExistsException` counts as
//! success, because another invocation may win the race — and the put is sent again. We never
//! call DescribeLogStreams: its quota (25 requests/s per account) cannot serve a hot path.
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>
//!
//! CloudWatch detects no duplicate puts, so a put whose outcome is unknown (the request went
//! out and no answer came back: a timeout, a reset or dropped connection) is not retried by the
//! SDK: the stream is read back over the batch's time range (GetLogEvents, only in that case:
//! its quota is low) and only what is missing is sent again. Throttling and 5xx answers say the
//! batch was not stored; the SDK retries those as before.

mod body;
mod readback;
mod retry;
mod sink;
mod stream;

pub use body::{put_log_events_body, put_log_events_body_in};
/// The configuration owns the default (`AMBIGUOUS_PUT_WAIT_MS`); the sink only uses it.
pub use ncf_core::config::AMBIGUOUS_PUT_WAIT;
pub use sink::CloudWatchSink;
