//! What the parser hands out: one [`LogEvent`] per line (or joined error-log record), and the
//! message of a line that did not parse ([`unparsed_message`]).

use std::borrow::Cow;

use crate::filter::Filtered;
use crate::json::{Message, ObjectWriter};
use crate::names::OutputFormat;
use crate::redact::FieldClass;
use crate::settings::Parsing;

/// One CloudWatch event, before batching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp: i64,
    /// Written escaped, as it goes between the quotes of a request body or an output line.
    pub message: Message,
    /// 1-based number of the (first) line in the object this event came from.
    pub line: u64,
    /// Byte offset of that line in the decoded object (where a resumed read starts).
    pub offset: u64,
    /// True when the line did not parse and is forwarded raw.
    pub parse_failed: bool,
    /// Taken by a `FILTER_RULES` rule: counted, never sent (its message is empty).
    pub filtered: Option<Filtered>,
    /// The redaction rules that changed the message, a bit each
    /// ([`crate::redact::Redaction::names`]); 0 when none did.
    pub redacted: u32,
}

/// `{"raw": line, "parse_error": reason}` — the message of a line we could not parse, the
/// line redacted as free text ([`FieldClass::Free`]); with the redaction rules that changed it.
pub fn unparsed_message(settings: Parsing<'_>, line: &str, reason: &str) -> (Message, u32) {
    let mut hits = 0;
    let red = &settings.shared.redaction;
    let line = if red.is_empty() {
        Cow::Borrowed(line)
    } else {
        red.by_class(FieldClass::Free, line, &mut hits)
    };
    let message = match settings.shared.output {
        OutputFormat::Raw => Message::new(&line),
        OutputFormat::Json => {
            let mut w = ObjectWriter::message(line.len() + reason.len() + 32);
            w.str_field("raw", &line);
            w.str_field("parse_error", reason);
            settings.object.extra.write_to(&mut w);
            w.finish_message()
        }
    };
    (message, hits)
}
