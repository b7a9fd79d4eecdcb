//! How lines become messages: the parse settings every object shares ([`ParseSettings`]:
//! output, formats, field names, zone, filter rules) and how each object is read and what its
//! messages carry beyond them ([`ObjectSettings`], from which each object's own part,
//! [`ncf_parse::ObjectParse`], is built).

use crate::route::Router;
use ncf_parse::LogKind;
use ncf_parse::error::SUFFIX_KEYS;
use ncf_parse::extra::ExtraFields;
use ncf_parse::redact::{self, HashKey, IpMask, RedactSpec, Redaction};
use ncf_parse::{
    FieldNames, LocalZone, LogFormat, OutputFormat, ParseSettings, filter::Rules, filter_fields,
    message_keys, parse_output,
};

use super::read::{Case, SettingError, Vars, boolean, choice, parsed};

/// `ACCESS_LOG_FORMAT_SOURCE`: `object` (default) parses an access object with the `log_format`
/// its `ncf-log-format` metadata names (see [`ncf_parse::object_format`]), and one that names
/// none with `ACCESS_LOG_FORMAT`; `config` always uses `ACCESS_LOG_FORMAT` (the metadata is
/// ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatSource {
    #[default]
    Object,
    Config,
}

/// How each object is read, which format parses it and what its messages carry beyond the
/// parse settings.
#[derive(Debug, Clone)]
pub struct ObjectSettings {
    /// Skip objects that do not look like text instead of forwarding them lossily decoded.
    pub skip_binary: bool,
    /// Fields about each object's source added to its JSON messages, rendered per object.
    pub extra_fields: ExtraFields,
    /// Whether an access object's own `log_format` (its `ncf-log-format` metadata) is used.
    pub access_format_source: FormatSource,
}

/// `REDACT_HASH_KEY_SECRET`: a Secrets Manager secret (ARN or name) whose value is the key of
/// hashed fields. The edge reads it once at cold start (the core knows no SDK) and passes it
/// as a [`HashKeySecret`] to [`Config::from_lookup_and_secret`](super::Config::from_lookup_and_secret).
pub const HASH_KEY_SECRET_VAR: &str = "REDACT_HASH_KEY_SECRET";

/// The value of the secret `REDACT_HASH_KEY_SECRET` names, as the edge read it: which secret,
/// and its text (never written anywhere, not even by `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct HashKeySecret {
    /// The secret as `REDACT_HASH_KEY_SECRET` gives it (an ARN or a name).
    pub secret: String,
    /// Its `SecretString`: the key.
    pub text: String,
}

impl std::fmt::Debug for HashKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashKeySecret")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// The secret the edge must read before the configuration is built (`REDACT_HASH_KEY_SECRET`),
/// or none. Refused when `REDACT_HASH_KEY` is set too: the key is given one way.
pub fn hash_key_secret<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<Option<String>, SettingError> {
    let Some(secret) = vars.get(HASH_KEY_SECRET_VAR) else {
        return Ok(None);
    };
    if vars.get("REDACT_HASH_KEY").is_some() {
        return Err(SettingError::new(
            secret.name,
            &secret.value,
            "REDACT_HASH_KEY is set too: give the hash key one way, the secret or REDACT_HASH_KEY",
        ));
    }
    Ok(Some(secret.value.trim().to_string()))
}

/// `OUTPUT_FORMAT`, `ACCESS_LOG_FORMAT`, `FIELD_NAMES`, `ERROR_LOG_TIMEZONE`, `FILTER_RULES` and
/// the redaction settings ([`read_redaction`]; `secret`: see there).
pub fn read_parse<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    secret: Option<&HashKeySecret>,
) -> Result<ParseSettings, SettingError> {
    let (output, compact) =
        parsed(vars.get("OUTPUT_FORMAT"), parse_output)?.unwrap_or((OutputFormat::Json, false));
    let access_format = parsed(vars.get("ACCESS_LOG_FORMAT"), LogFormat::parse_config)?
        .unwrap_or_else(LogFormat::combined);
    let names = parsed(vars.get("FIELD_NAMES"), FieldNames::parse)?.unwrap_or(FieldNames::Nginx);
    let error_zone =
        parsed(vars.get("ERROR_LOG_TIMEZONE"), LocalZone::parse)?.unwrap_or(LocalZone::Fixed(0));
    let mut parse = ParseSettings {
        output,
        compact,
        access_format,
        error_zone,
        names: FieldNames::Nginx,
        rules: Default::default(),
        redaction: Default::default(),
    }
    .with_names(names);
    // The rules name fields of the formats just read.
    if let Some(rules) = parsed(vars.get("FILTER_RULES"), |v| {
        Rules::parse(v, |kind| filter_fields(&parse, kind))
    })? {
        parse.rules = std::sync::Arc::new(rules);
    }
    let redaction = read_redaction(vars, secret)?;
    parse.redaction = std::sync::Arc::new(redaction);
    Ok(parse)
}

/// `ANONYMIZE_IP`, `REDACT_QUERY_PARAMS`, `REDACT_FIELDS`, `REDACT_PATTERNS` and the key of
/// hashed fields: `REDACT_HASH_KEY`, or `secret`, the value of the secret
/// `REDACT_HASH_KEY_SECRET` names, which the edge read at cold start (with that variable set
/// and no `secret`, nothing read it: refused, the function must not run without its key).
/// All unset: no redaction.
pub fn read_redaction<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    secret: Option<&HashKeySecret>,
) -> Result<Redaction, SettingError> {
    let hash_key = match (hash_key_secret(vars)?, secret) {
        (None, _) => parsed(vars.get("REDACT_HASH_KEY"), HashKey::new)?,
        (Some(named), Some(s)) => Some(HashKey::new(&s.text).map_err(|e| {
            SettingError::new(
                HASH_KEY_SECRET_VAR,
                &named,
                format!("the secret's value: {e}"),
            )
        })?),
        (Some(named), None) => {
            return Err(SettingError::new(
                HASH_KEY_SECRET_VAR,
                &named,
                "the secret was not read: only the function, `parse`, `replay` and `backfill` \
                 read it; elsewhere give the key as REDACT_HASH_KEY",
            ));
        }
    };
    let spec = RedactSpec {
        ip: parsed(vars.get("ANONYMIZE_IP"), IpMask::parse)?.flatten(),
        query_params: parsed(vars.get("REDACT_QUERY_PARAMS"), redact::parse_query_params)?
            .unwrap_or_default(),
        fields: parsed(vars.get("REDACT_FIELDS"), redact::parse_fields)?.unwrap_or_default(),
        patterns: parsed(vars.get("REDACT_PATTERNS"), redact::parse_patterns)?.unwrap_or_default(),
        hash_key,
    };
    // What can fail here: a hashed field without a key, or too many rules (fields and
    // patterns are what there can be many of).
    let given = vars
        .get("REDACT_FIELDS")
        .or_else(|| vars.get("REDACT_PATTERNS"));
    Redaction::new(spec).map_err(|e| match given {
        Some(g) => SettingError::new(g.name, &g.value, e.to_string()),
        None => SettingError::new("REDACT_PATTERNS", "", e.to_string()),
    })
}

impl ObjectSettings {
    /// `SKIP_BINARY`, `EXTRA_FIELDS` (checked against the key pattern's groups and the keys the
    /// messages have already) and `ACCESS_LOG_FORMAT_SOURCE`.
    pub fn read<F: Fn(&str) -> Option<String>>(
        vars: &Vars<F>,
        route: &Router,
        parse: &ParseSettings,
    ) -> Result<Self, SettingError> {
        let skip_binary = boolean(vars.get("SKIP_BINARY"))?.unwrap_or(false);
        let extra_fields = parsed(vars.get("EXTRA_FIELDS"), |v| {
            let taken = message_keys(parse);
            let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
            ExtraFields::parse(v, &route.group_names(), &taken)
        })?
        .unwrap_or_default();
        redacted_extra_field(vars, parse, &extra_fields)?;
        let access_format_source = choice(
            vars.get("ACCESS_LOG_FORMAT_SOURCE"),
            &[
                ("object", FormatSource::Object),
                ("config", FormatSource::Config),
            ],
            Case::Exact,
        )?
        .unwrap_or_default();
        unknown_redacted_field(vars, parse, access_format_source)?;
        Ok(Self {
            skip_binary,
            extra_fields,
            access_format_source,
        })
    }
}

/// `REDACT_FIELDS` naming an `EXTRA_FIELDS` field is refused: those fields are the operator's
/// own (from the key and the object's metadata), never redacted; leave the field out instead.
fn redacted_extra_field<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    parse: &ParseSettings,
    extra: &ExtraFields,
) -> Result<(), SettingError> {
    let names = extra.names();
    match parse.redaction.field_names().find(|f| names.contains(f)) {
        None => Ok(()),
        Some(field) => {
            let given = vars
                .get("REDACT_FIELDS")
                .map(|g| g.value)
                .unwrap_or_default();
            Err(SettingError::new(
                "REDACT_FIELDS",
                &given,
                format!(
                    "field {field} is an EXTRA_FIELDS field: take it out of EXTRA_FIELDS instead"
                ),
            ))
        }
    }
}

/// The `REDACT_FIELDS` keys the messages of `parse` do not have: none of the access format's
/// (its variables, the parts of `$request`, the text after it) nor the error log's message and
/// context. A key no message has redacts nothing (a typo would go unnoticed).
pub fn unknown_redacted_fields(parse: &ParseSettings) -> Vec<String> {
    let mut keys = filter_fields(parse, LogKind::Access);
    keys.push(parse.access_format.tail_key().name().to_string());
    keys.extend(
        SUFFIX_KEYS
            .iter()
            .chain(&["message"])
            .map(|k| k.to_string()),
    );
    parse
        .redaction
        .field_names()
        .filter(|f| !keys.iter().any(|k| k == f))
        .map(str::to_string)
        .collect()
}

/// What [`unknown_redacted_fields`] finds, said: refused when every access object is parsed
/// with `ACCESS_LOG_FORMAT` (`ACCESS_LOG_FORMAT_SOURCE=config`, as `FILTER_RULES` are); with
/// objects naming their own formats (`object`, the default), a warning at start-up, since
/// those formats may have the field.
fn unknown_redacted_field<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
    parse: &ParseSettings,
    source: FormatSource,
) -> Result<(), SettingError> {
    let unknown = unknown_redacted_fields(parse);
    let (Some(g), Some(first)) = (vars.get("REDACT_FIELDS"), unknown.first()) else {
        return Ok(());
    };
    let names = match parse.names {
        FieldNames::Nginx => "nginx",
        FieldNames::Fluentd => "fluentd",
    };
    let why = format!(
        "{first} is not a field of ACCESS_LOG_FORMAT's messages nor the error log's \
         (FIELD_NAMES={names})"
    );
    match source {
        FormatSource::Config => Err(SettingError::new(g.name, &g.value, why)),
        FormatSource::Object => {
            tracing::warn!(
                fields = ?unknown,
                "REDACT_FIELDS: {why}: it applies only to objects whose own log_format has it \
                 (redacted_by_rule counts it)"
            );
            Ok(())
        }
    }
}
