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
pub mod extra;
pub mod filter;
pub mod format;
pub mod json;
pub mod object_format;
pub mod request_line;
pub mod time;

pub use format::{FormatError, LogFormat};
pub use json::Message;
pub use request_line::RequestLineRules;
pub use time::LocalZone;

/// Which parser a log type uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogKind {
    Access,
    Error,
}

impl LogKind {
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "access" => Some(Self::Access),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// What the message of each event looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// A JSON object whose keys are nginx variable names.
    #[default]
    Json,
    /// The log line exactly as nginx wrote it.
    Raw,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "raw" => Ok(Self::Raw),
            other => Err(format!("{other:?} is not one of: json, raw")),
        }
    }
}

/// `OUTPUT_FORMAT`: the format, and whether JSON is compact (`json-compact`: nothing written
/// twice, see [`ParseSettings::compact`]).
pub fn parse_output(s: &str) -> Result<(OutputFormat, bool), String> {
    if s.trim().eq_ignore_ascii_case("json-compact") {
        return Ok((OutputFormat::Json, true));
    }
    OutputFormat::parse(s)
        .map(|o| (o, false))
        .map_err(|_| format!("{:?} is not one of: json, json-compact, raw", s.trim()))
}

/// Which names the fields of JSON messages get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldNames {
    /// nginx's variable names (`remote_addr`, `status`, …) and the error log's own parts.
    #[default]
    Nginx,
    /// The names of td-agent's (fluentd's) `nginx` parser, for saved queries, metric filters and
    /// alarms written against it: access `remote`, `user`, `method`, `path`, `code`, `size`,
    /// `referer`, `agent`, `forwarder`, the time only as the event's timestamp; error
    /// `log_level` and a `message` that is the whole text after `pid#tid: `. Fields that parser
    /// does not have keep their nginx names ([`format::FLUENTD_ACCESS_NAMES`]).
    Fluentd,
}

impl FieldNames {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nginx" => Ok(Self::Nginx),
            "fluentd" => Ok(Self::Fluentd),
            other => Err(format!("{other:?} is not one of: nginx, fluentd")),
        }
    }
}

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
    pub filtered: Option<filter::Filtered>,
}

/// The deployment's parse settings: built once at cold start and shared by every object (never
/// copied per object). What one object adds is its [`ObjectParse`]; a line is parsed with both
/// ([`Parsing`]).
#[derive(Debug, Clone)]
pub struct ParseSettings {
    pub output: OutputFormat,
    /// `OUTPUT_FORMAT=json-compact`: access messages leave out what the event carries already
    /// or what their other fields rebuild exactly: `request` when `request_method`,
    /// `request_uri` and `server_protocol` joined by spaces are it, and the time variable the
    /// event's timestamp was read from (its UTC offset kept as `time_offset` when not zero).
    pub compact: bool,
    /// Compiled with the field names ([`LogFormat::with_names`]): access messages take their
    /// keys from it. An object may name its own ([`ObjectParse::access_format`]).
    pub access_format: LogFormat,
    pub error_zone: LocalZone,
    /// The error log's field names (the access format carries its own).
    pub names: FieldNames,
    /// `FILTER_RULES`, compiled once.
    pub rules: std::sync::Arc<filter::Rules>,
}

impl ParseSettings {
    /// The settings for `names`: the access format's keys renamed to match.
    pub fn with_names(mut self, names: FieldNames) -> Self {
        self.access_format = self.access_format.with_names(names);
        self.names = names;
        self
    }
}

impl Default for ParseSettings {
    fn default() -> Self {
        Self {
            output: OutputFormat::Json,
            compact: false,
            access_format: LogFormat::combined(),
            error_zone: LocalZone::Fixed(0),
            names: FieldNames::Nginx,
            rules: std::sync::Arc::default(),
        }
    }
}

/// What the lines of one object are parsed with beyond the deployment's [`ParseSettings`]:
/// built per object, from its key and metadata.
#[derive(Debug, Clone, Default)]
pub struct ObjectParse {
    /// Fields about the object's source that every JSON message of it gets (`EXTRA_FIELDS`,
    /// rendered for the object).
    pub extra: extra::Extra,
    /// The object's sample seed ([`filter::object_seed`]).
    pub sample_seed: u64,
    /// How the nginx that wrote the object read request lines, from its `nginx-version`
    /// metadata; `None` when not known: each line is then read by what it proves
    /// ([`request_line::split_unknown`]).
    pub request_line: Option<RequestLineRules>,
    /// The `log_format` the object names ([`object_format`]), used instead of the
    /// deployment's.
    pub access_format: Option<LogFormat>,
}

impl ObjectParse {
    /// No object part: no extra fields, sample seed 0, request lines read by what they prove,
    /// the deployment's format.
    pub const NONE: Self = Self {
        extra: extra::Extra::NONE,
        sample_seed: 0,
        request_line: None,
        access_format: None,
    };
}

/// [`ObjectParse::NONE`], for [`Parsing`]s made from the deployment's settings alone.
static NO_OBJECT: ObjectParse = ObjectParse::NONE;

/// What a line is parsed with: the deployment's settings, its object's part, and the access
/// format of the line. Borrowed and `Copy`: made per line at no cost.
#[derive(Debug, Clone, Copy)]
pub struct Parsing<'a> {
    pub shared: &'a ParseSettings,
    pub object: &'a ObjectParse,
    /// The object's format ([`ObjectParse::access_format`]), else the deployment's; or the
    /// candidate a line of an object with several formats is tried with
    /// ([`Parsing::with_format`]).
    pub access_format: &'a LogFormat,
}

impl<'a> Parsing<'a> {
    pub fn new(shared: &'a ParseSettings, object: &'a ObjectParse) -> Self {
        Self {
            shared,
            object,
            access_format: object
                .access_format
                .as_ref()
                .unwrap_or(&shared.access_format),
        }
    }

    /// The same, for a line in `access_format`.
    pub fn with_format(self, access_format: &'a LogFormat) -> Self {
        Self {
            access_format,
            ..self
        }
    }
}

/// The deployment's settings alone, with no object part ([`ObjectParse::NONE`]): the `parse`
/// command's, and tests'.
impl<'a> From<&'a ParseSettings> for Parsing<'a> {
    fn from(shared: &'a ParseSettings) -> Self {
        Self::new(shared, &NO_OBJECT)
    }
}

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
                if let Some(ev) = error::push_line(self, line, line_no, offset) {
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

/// `{"raw": line, "parse_error": reason}` — the message of a line we could not parse.
pub fn unparsed_message(
    output: OutputFormat,
    line: &str,
    reason: &str,
    extra: &extra::Extra,
) -> Message {
    match output {
        OutputFormat::Raw => Message::new(line),
        OutputFormat::Json => {
            let mut w = json::ObjectWriter::message(line.len() + reason.len() + 32);
            w.str_field("raw", line);
            w.str_field("parse_error", reason);
            extra.write_to(&mut w);
            w.finish_message()
        }
    }
}
