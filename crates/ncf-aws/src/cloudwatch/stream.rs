//! The stream a call is about, and the errors that name it (shared by the sink and the
//! read-back).

use ncf_core::ports::SinkError;

/// The stream a call is about, and the errors that name it.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamId<'a> {
    pub(super) group: &'a str,
    pub(super) stream: &'a str,
}

impl StreamId<'_> {
    /// The call failed (no answer, or not one about the batch).
    pub(super) fn failed(self, detail: String) -> SinkError {
        SinkError::Failed {
            group: self.group.into(),
            stream: self.stream.into(),
            detail,
        }
    }

    /// CloudWatch answered and refused the batch.
    pub(super) fn rejected(self, detail: String) -> SinkError {
        SinkError::Rejected {
            group: self.group.into(),
            stream: self.stream.into(),
            detail,
        }
    }
}
