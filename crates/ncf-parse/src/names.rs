//! The words the rest of the parser is written in: which log ([`LogKind`]), what a message
//! looks like ([`OutputFormat`], `OUTPUT_FORMAT`) and which names its fields get
//! ([`FieldNames`], `FIELD_NAMES`). Depends on no other module.

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
/// twice, see [`crate::settings::ParseSettings::compact`]).
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
    /// does not have keep their nginx names ([`crate::format::FLUENTD_ACCESS_NAMES`]).
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
