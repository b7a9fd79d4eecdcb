//! What the parser hands out: one [`LogEvent`] per line (or joined error-log record), and the
//! message of a line that did not parse ([`unparsed_message`]).

use crate::extra::Extra;
use crate::filter::Filtered;
use crate::json::{Message, ObjectWriter};
use crate::names::OutputFormat;

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
}

/// `{"raw": line, "parse_error": reason}` — the message of a line we could not parse.
pub fn unparsed_message(output: OutputFormat, line: &str, reason: &str, extra: &Extra) -> Message {
    match output {
        OutputFormat::Raw => Message::new(line),
        OutputFormat::Json => {
            let mut w = ObjectWriter::message(line.len() + reason.len() + 32);
            w.str_field("raw", line);
            w.str_field("parse_error", reason);
            extra.write_to(&mut w);
            w.finish_message()
        }
    }
}
