//! What ends one object's delivery early.

use super::stop::StopReason;
use crate::ports::SinkError;

#[derive(Debug, thiserror::Error)]
pub(super) enum ForwardError {
    #[error(
        "read failed after {offset} decompressed bytes (line {line}): {source}; the lines before it were delivered"
    )]
    Read {
        offset: u64,
        line: u64,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("a put task failed: {0}")]
    Task(String),
    /// No new batch may start (see [`StopReason`]).
    #[error(transparent)]
    Stopped(#[from] Stopped),
    #[error("content does not look like text: skipped (SKIP_BINARY=true)")]
    Binary,
}

/// A delivery that stopped starting batches. Names what is confirmed delivered (every line
/// before the next attempt's resume line), not how far reading got.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.text())]
pub(super) struct Stopped {
    pub reason: StopReason,
    /// Every line up to this one is delivered (or had nothing to send); `None`: no line yet.
    pub delivered_through: Option<u64>,
    /// The next line the reader would have handed over.
    pub reader_at: u64,
    /// Whether the progress record says so (false without a usable progress store).
    pub recorded: bool,
}

impl Stopped {
    fn text(&self) -> String {
        let delivered = match self.delivered_through {
            Some(line) => format!("every line up to {line} is delivered"),
            None => "no line delivered yet".to_string(),
        };
        let next = match (self.recorded, self.delivered_through) {
            (true, Some(line)) => format!(
                "progress is recorded and the next attempt resumes at line {}",
                line + 1
            ),
            (true, None) => {
                "progress is recorded and the next attempt resumes at line 1".to_string()
            }
            (false, _) => {
                "no progress record is kept (see checkpoint_error), so the next attempt starts over"
                    .to_string()
            }
        };
        let reader_at = self.reader_at;
        match self.reason {
            StopReason::Deadline => format!(
                "stopped to finish within the Lambda timeout: {delivered} (the reader was at line {reader_at}); {next}"
            ),
            StopReason::Interrupted => {
                format!("interrupted: {delivered} (the reader was at line {reader_at}); {next}")
            }
            StopReason::LeaseLost => format!(
                "the lease on this object was lost (it expired and another delivery took it over): stopped sending; {delivered}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(reason: StopReason, delivered_through: Option<u64>, recorded: bool) -> String {
        Stopped {
            reason,
            delivered_through,
            reader_at: 201,
            recorded,
        }
        .to_string()
    }

    #[test]
    fn out_of_time_names_the_last_delivered_line_not_the_read_position() {
        let text =
            |delivered_through, recorded| text(StopReason::Deadline, delivered_through, recorded);
        assert_eq!(
            text(None, true),
            "stopped to finish within the Lambda timeout: no line delivered yet (the reader was at \
             line 201); progress is recorded and the next attempt resumes at line 1"
        );
        assert_eq!(
            text(Some(120), true),
            "stopped to finish within the Lambda timeout: every line up to 120 is delivered (the \
             reader was at line 201); progress is recorded and the next attempt resumes at line 121"
        );
        let unrecorded = text(Some(120), false);
        assert!(
            unrecorded.contains("starts over") && !unrecorded.contains("resumes"),
            "{unrecorded}"
        );
    }

    #[test]
    fn each_reason_says_why_and_what_is_delivered() {
        assert_eq!(
            text(StopReason::Interrupted, Some(7), true),
            "interrupted: every line up to 7 is delivered (the reader was at line 201); progress \
             is recorded and the next attempt resumes at line 8"
        );
        assert_eq!(
            text(StopReason::LeaseLost, None, true),
            "the lease on this object was lost (it expired and another delivery took it over): \
             stopped sending; no line delivered yet"
        );
    }
}
