//! What lines are parsed with: the deployment's [`ParseSettings`] (built once), one object's
//! [`ObjectParse`] (built per object), and [`Parsing`], the two borrowed together per line.

use std::sync::Arc;

use crate::extra::Extra;
use crate::filter::Rules;
use crate::format::LogFormat;
use crate::names::{FieldNames, OutputFormat};
use crate::redact::Redaction;
use crate::request_line::RequestLineRules;
use crate::time::LocalZone;

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
    pub rules: Arc<Rules>,
    /// `ANONYMIZE_IP` and `REDACT_*`, compiled once: applied to each value as it is written,
    /// after `FILTER_RULES` decided on the values as logged.
    pub redaction: Arc<Redaction>,
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
            rules: Arc::default(),
            redaction: Arc::default(),
        }
    }
}

/// What the lines of one object are parsed with beyond the deployment's [`ParseSettings`]:
/// built per object, from its key and metadata.
#[derive(Debug, Clone, Default)]
pub struct ObjectParse {
    /// Fields about the object's source that every JSON message of it gets (`EXTRA_FIELDS`,
    /// rendered for the object).
    pub extra: Extra,
    /// The object's sample seed ([`crate::filter::object_seed`]).
    pub sample_seed: u64,
    /// How the nginx that wrote the object read request lines, from its `nginx-version`
    /// metadata; `None` when not known: each line is then read by what it proves
    /// ([`crate::request_line::split_unknown`]).
    pub request_line: Option<RequestLineRules>,
    /// The `log_format` the object names ([`crate::object_format`]), used instead of the
    /// deployment's.
    pub access_format: Option<LogFormat>,
}

impl ObjectParse {
    /// No object part: no extra fields, sample seed 0, request lines read by what they prove,
    /// the deployment's format.
    pub const NONE: Self = Self {
        extra: Extra::NONE,
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
