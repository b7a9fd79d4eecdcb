//! One object's lines → events ([`LineParser`]), and what the settings imply for the fields
//! of its messages ([`filter_fields`], [`message_keys`]).

use crate::access;
use crate::error::{self, LineAt};
use crate::event::LogEvent;
use crate::names::LogKind;
use crate::settings::{ParseSettings, Parsing};

/// The fields a `FILTER_RULES` rule may name for each log: the access format's keys (its
/// variables and the parts of `$request`), and the error log's level and message.
pub fn filter_fields(settings: &ParseSettings, kind: LogKind) -> Vec<String> {
    match kind {
        LogKind::Access => {
            let fmt = &settings.access_format;
            fmt.vars()
                .iter()
                .filter(|v| v.write)
                .map(|v| &v.key)
                .chain(fmt.derived_keys())
                .map(|k| k.name().to_string())
                .collect()
        }
        LogKind::Error => vec![
            error::level_key(settings.names).to_string(),
            "message".to_string(),
        ],
    }
}

/// Turns the lines of one object into events. Feed every line with [`LineParser::push`], then
/// call [`LineParser::finish`]; events come out in line order.
pub struct LineParser<'a> {
    settings: Parsing<'a>,
    kind: LogKind,
    /// Timestamp for lines that carry none of their own: the previous event's, at first the
    /// object's LastModified.
    last_ts: i64,
    pending: Option<error::Pending>,
    /// Field ranges of the current access line, reused from line to line.
    spans: Vec<(usize, usize)>,
}

impl<'a> LineParser<'a> {
    /// `settings`: a [`Parsing`], or the deployment's [`ParseSettings`] alone.
    pub fn new(settings: impl Into<Parsing<'a>>, kind: LogKind, fallback_ts: i64) -> Self {
        Self {
            settings: settings.into(),
            kind,
            last_ts: fallback_ts,
            pending: None,
            spans: Vec::new(),
        }
    }

    /// Parses one line (without its `\n`, not blank); pushes finished events onto `out`.
    pub fn push(&mut self, line: &str, line_no: u64, out: &mut Vec<LogEvent>) {
        self.push_at(line, line_no, 0, out);
    }

    /// [`LineParser::push`] for a line that starts at byte `offset` of the decoded object.
    pub fn push_at(&mut self, line: &str, line_no: u64, offset: u64, out: &mut Vec<LogEvent>) {
        match self.kind {
            LogKind::Access => {
                let mut ev = access::parse_line_with(
                    self.settings,
                    line,
                    line_no,
                    self.last_ts,
                    &mut self.spans,
                );
                ev.offset = offset;
                self.last_ts = ev.timestamp;
                out.push(ev);
            }
            LogKind::Error => {
                let at = LineAt {
                    number: line_no,
                    offset,
                };
                if let Some(ev) =
                    error::push_line(&mut self.pending, self.settings, self.last_ts, line, at)
                {
                    self.last_ts = ev.timestamp;
                    out.push(ev);
                }
            }
        }
    }

    /// The first line (and its offset) of an event still being assembled, if any: it has been
    /// read but not yet handed out.
    pub fn held(&self) -> Option<(u64, u64)> {
        self.pending
            .as_ref()
            .map(|p| (p.first_line(), p.first_offset()))
    }

    /// Takes the event still being assembled (error-log continuations), unfinished: the lines of
    /// the next block may continue it.
    pub fn take_open(&mut self) -> Option<error::Pending> {
        self.pending.take()
    }

    /// Flushes an event still being assembled (error-log continuations).
    pub fn finish(&mut self, out: &mut Vec<LogEvent>) {
        if let Some(p) = self.pending.take() {
            out.push(p.into_event(self.settings));
        }
    }
}

/// Every key a JSON message of these settings may have (access and error logs, lines that did
/// not parse, the parts of a split message): names `EXTRA_FIELDS` may not take.
pub fn message_keys(settings: &ParseSettings) -> Vec<String> {
    let fmt = &settings.access_format;
    let access = fmt
        .vars()
        .iter()
        .map(|v| &v.key)
        .chain(fmt.derived_keys())
        .chain([fmt.tail_key()])
        .map(|k| k.name().to_string());
    let fixed = error::KEYS
        .iter()
        .chain(&error::SUFFIX_KEYS)
        .chain(&["raw", "parse_error", "part", "parts", "chunk"])
        .map(|k| k.to_string());
    access.chain(fixed).collect()
}
