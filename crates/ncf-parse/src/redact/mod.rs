//! Redaction while parsing: what must not leave the host's account is taken out of each value
//! as it is written, before anything is sent (`ANONYMIZE_IP`, `REDACT_QUERY_PARAMS`,
//! `REDACT_FIELDS`, `REDACT_PATTERNS`).
//!
//! A value is redacted by what its variable holds ([`FieldClass`]: an address, a list of them,
//! a URI, a URL, a request line, free text), not by the key it is written under, so both field
//! namings get the same treatment. `REDACT_FIELDS` alone names output keys. `FILTER_RULES`
//! decide first, on the values as nginx logged them; a filtered line is never redacted (it is
//! never sent). Each event carries a bit per rule that changed it ([`crate::LogEvent::redacted`]),
//! counted once per event by the caller.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, KeyInit, Mac};
use regex::Regex;
use sha2::Sha256;

/// What a masked value becomes (a query parameter's value, a pattern's match).
pub const REDACTED: &str = "REDACTED";

/// The prefix of a keyed hash (`REDACT_FIELDS=key:hash`): `hmac:` and 32 hex digits.
pub const HASH_PREFIX: &str = "hmac:";

/// At most this many rules: an event's hits are one bit per rule ([`crate::LogEvent::redacted`]).
pub const MAX_RULES: usize = 32;

/// The shortest `REDACT_HASH_KEY` taken (bytes), the size of the hash (SHA-256).
pub const MIN_HASH_KEY_BYTES: usize = 32;

/// A setting that cannot be used; the message names the item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    #[error("{0}")]
    Ip(String),
    #[error("{0}")]
    Query(String),
    #[error("{0}")]
    Field(String),
    #[error("{0}")]
    Pattern(String),
    #[error("{0}")]
    Key(String),
    #[error("at most {MAX_RULES} redaction rules (query, ip, each pattern, each field); {0} given")]
    TooMany(usize),
}

/// `ANONYMIZE_IP`: the address bits kept (the rest are zeroed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpMask {
    pub v4: u8,
    pub v6: u8,
}

impl IpMask {
    /// IPv4 to /24, IPv6 to /48.
    pub const DEFAULT: Self = Self { v4: 24, v6: 48 };

    /// `off` (or empty) | `on` | `V4` | `V4,V6` (`24,48`).
    pub fn parse(v: &str) -> Result<Option<Self>, RedactError> {
        let v = v.trim();
        match v.to_ascii_lowercase().as_str() {
            "" | "off" | "false" | "no" => return Ok(None),
            "on" | "true" | "yes" => return Ok(Some(Self::DEFAULT)),
            _ => {}
        }
        let (v4, v6) = match v.split_once(',') {
            Some((a, b)) => (a.trim(), Some(b.trim())),
            None => (v, None),
        };
        let prefix = |s: &str, max: u8, family: &str| {
            s.strip_prefix('/')
                .unwrap_or(s)
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| {
                    RedactError::Ip(format!(
                        "{s:?} is not a prefix length for {family} (0-{max}); \
                         give off, on, V4 or V4,V6 (on = 24,48)"
                    ))
                })
        };
        Ok(Some(Self {
            v4: prefix(v4, 32, "IPv4")?,
            v6: match v6 {
                Some(s) => prefix(s, 128, "IPv6")?,
                None => Self::DEFAULT.v6,
            },
        }))
    }
}

/// What `REDACT_FIELDS` does to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldAction {
    /// Left out of JSON messages; `-` in raw ones.
    Drop,
    /// Replaced by `hmac:` and the first 128 bits of HMAC-SHA256 of the value, in hex.
    Hash,
}

/// `REDACT_FIELDS`: `key`, `key:drop` or `key:hash`, comma-separated; keys as messages name them.
pub fn parse_fields(v: &str) -> Result<Vec<(String, FieldAction)>, RedactError> {
    let mut out: Vec<(String, FieldAction)> = Vec::new();
    for (i, item) in v.split(',').map(str::trim).enumerate() {
        if item.is_empty() {
            continue;
        }
        let (key, action) = match item.rsplit_once(':') {
            Some((k, "drop")) => (k.trim(), FieldAction::Drop),
            Some((k, "hash")) => (k.trim(), FieldAction::Hash),
            Some((_, a)) => {
                return Err(RedactError::Field(format!(
                    "item {}: {a:?} is not an action (drop, hash)",
                    i + 1
                )));
            }
            None => (item, FieldAction::Drop),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(RedactError::Field(format!(
                "item {}: {key:?} is not a field name (letters, digits, _)",
                i + 1
            )));
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(RedactError::Field(format!("{key} is listed twice")));
        }
        out.push((key.to_string(), action));
    }
    Ok(out)
}

/// `REDACT_QUERY_PARAMS`: names, comma-separated, compared case-insensitively (lower-cased here).
pub fn parse_query_params(v: &str) -> Result<Vec<String>, RedactError> {
    let mut out = Vec::new();
    for (i, item) in v.split(',').map(str::trim).enumerate() {
        if item.is_empty() {
            continue;
        }
        if item.bytes().any(|b| b"=&;?# ".contains(&b)) {
            return Err(RedactError::Query(format!(
                "item {}: {item:?} is not a parameter name",
                i + 1
            )));
        }
        let name = item.to_ascii_lowercase();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// A `REDACT_PATTERNS` rule: a built-in or a named regex.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// E-mail addresses, `@` or percent-encoded `%40`.
    Email,
    /// 13 to 19 digits (single spaces or dashes between) that pass the Luhn check.
    Card,
    /// `{"name": …, "matches": regex}`: every match replaced.
    Named { name: String, regex: Regex },
}

impl Pattern {
    /// The rule's name in the counts: `pattern:email`, `pattern:card`, `pattern:NAME`.
    pub fn rule_name(&self) -> String {
        match self {
            Self::Email => "pattern:email".into(),
            Self::Card => "pattern:card".into(),
            Self::Named { name, .. } => format!("pattern:{name}"),
        }
    }
}

/// The built-in patterns, by name.
pub const BUILTIN_PATTERNS: [&str; 2] = ["email", "card"];

/// `REDACT_PATTERNS`: `email,card`, or a JSON array of built-in names and
/// `{"name": "jwt", "matches": "eyJ[\\w-]+\\.[\\w-]+\\.[\\w-]+"}` objects.
pub fn parse_patterns(v: &str) -> Result<Vec<Pattern>, RedactError> {
    let v = v.trim();
    let builtin = |name: &str| match name {
        "email" => Ok(Pattern::Email),
        "card" => Ok(Pattern::Card),
        _ => Err(RedactError::Pattern(format!(
            "{name:?} is not a built-in pattern ({}); name a regex as \
             [{{\"name\": …, \"matches\": …}}]",
            BUILTIN_PATTERNS.join(", ")
        ))),
    };
    let mut out: Vec<Pattern> = Vec::new();
    if v.starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(v)
            .map_err(|e| RedactError::Pattern(format!("not a JSON array: {e}")))?;
        for item in items {
            out.push(match item {
                serde_json::Value::String(s) => builtin(s.trim())?,
                serde_json::Value::Object(o) => named_pattern(&o)?,
                other => {
                    return Err(RedactError::Pattern(format!(
                        "{other} is neither a built-in name nor {{\"name\", \"matches\"}}"
                    )));
                }
            });
        }
    } else {
        for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            out.push(builtin(name)?);
        }
    }
    let mut names: Vec<String> = out.iter().map(Pattern::rule_name).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(RedactError::Pattern(format!("{} is listed twice", w[0])));
    }
    Ok(out)
}

fn named_pattern(o: &serde_json::Map<String, serde_json::Value>) -> Result<Pattern, RedactError> {
    let text = |k: &str| o.get(k).and_then(|v| v.as_str());
    let (Some(name), Some(matches)) = (text("name"), text("matches")) else {
        return Err(RedactError::Pattern(
            "a named pattern is {\"name\": \"…\", \"matches\": \"regex\"}".into(),
        ));
    };
    if let Some(k) = o.keys().find(|k| *k != "name" && *k != "matches") {
        return Err(RedactError::Pattern(format!(
            "pattern {name}: unknown key {k:?}"
        )));
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
    {
        return Err(RedactError::Pattern(format!(
            "{name:?} is not a pattern name (letters, digits, _ and -)"
        )));
    }
    let regex =
        Regex::new(matches).map_err(|e| RedactError::Pattern(format!("pattern {name}: {e}")))?;
    Ok(Pattern::Named {
        name: name.to_string(),
        regex,
    })
}

/// The key of `REDACT_FIELDS=…:hash` (`REDACT_HASH_KEY`, or the secret the function reads
/// at cold start): never written anywhere, not even by `Debug`.
#[derive(Clone)]
pub struct HashKey(Vec<u8>);

impl HashKey {
    /// The key's text as its bytes; at least [`MIN_HASH_KEY_BYTES`] of them.
    pub fn new(text: &str) -> Result<Self, RedactError> {
        let bytes = text.trim().as_bytes();
        if bytes.len() < MIN_HASH_KEY_BYTES {
            return Err(RedactError::Key(format!(
                "the hash key has {} bytes; give at least {MIN_HASH_KEY_BYTES} \
                 (e.g. `openssl rand -hex 32`)",
                bytes.len()
            )));
        }
        Ok(Self(bytes.to_vec()))
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(..)")
    }
}

/// The redaction settings as read, before [`Redaction::new`] compiles them.
#[derive(Debug, Clone, Default)]
pub struct RedactSpec {
    /// `ANONYMIZE_IP`.
    pub ip: Option<IpMask>,
    /// `REDACT_QUERY_PARAMS`, lower-cased.
    pub query_params: Vec<String>,
    /// `REDACT_FIELDS`.
    pub fields: Vec<(String, FieldAction)>,
    /// `REDACT_PATTERNS`.
    pub patterns: Vec<Pattern>,
    /// `REDACT_HASH_KEY` (or the secret); needed when a field is hashed.
    pub hash_key: Option<HashKey>,
}

impl RedactSpec {
    /// Whether some `REDACT_FIELDS` entry hashes (so a key is needed).
    pub fn hashes(&self) -> bool {
        self.fields.iter().any(|(_, a)| *a == FieldAction::Hash)
    }
}

/// What a value holds, which decides the rules that apply to it (set per variable when a
/// format compiles, per field of the error log's context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldClass {
    /// Numbers, times, IDs and our own addresses: only `REDACT_FIELDS` applies.
    Fixed,
    /// A client address (`$remote_addr`, `X-Real-IP`, the error log's `client`).
    Addr,
    /// A list of them (`$http_x_forwarded_for`): each item masked, one that is not an
    /// address written `-`.
    AddrList,
    /// RFC 7239 `Forwarded`: each `for=` masked.
    Forwarded,
    /// The query alone (`$args`, `$query_string`).
    Args,
    /// A URI, a URL or a request line: the query after `?` masked, then the patterns.
    Uri,
    /// A header or other text: the patterns.
    Text,
    /// Text with no fields known (a line that did not parse, an error message, text after the
    /// format): every IP literal, `?…` queries and the patterns.
    Free,
}

/// Variables that hold one client address.
const ADDR_VARS: &[&str] = &[
    "remote_addr",
    "realip_remote_addr",
    "proxy_protocol_addr",
    "binary_remote_addr",
    "http_x_real_ip",
    "http_true_client_ip",
    "http_cf_connecting_ip",
    "http_x_client_ip",
    "http_fastly_client_ip",
    "http_x_cluster_client_ip",
];

/// Variables that hold a query alone.
const ARGS_VARS: &[&str] = &["args", "query_string"];

/// Variables whose text may hold a query after `?`.
const URI_VARS: &[&str] = &[
    "request",
    "request_uri",
    "uri",
    "document_uri",
    "http_referer",
    "sent_http_location",
    "upstream_http_location",
    "invalid_referer",
];

/// Variables that are never personal data or text a client chose: times, IDs, our own
/// addresses and names.
const FIXED_VARS: &[&str] = &[
    "time_local",
    "time_iso8601",
    "msec",
    "request_id",
    "server_addr",
    "server_port",
    "server_name",
    "hostname",
    "upstream_addr",
    "pid",
    "connection",
    "scheme",
    "request_method",
    "server_protocol",
    "ssl_protocol",
    "ssl_cipher",
];

impl FieldClass {
    /// The class of the access-log variable `$name`; `numeric` for the variables read as
    /// numbers.
    pub fn of_var(name: &str, numeric: bool) -> Self {
        if numeric || FIXED_VARS.contains(&name) {
            Self::Fixed
        } else if ADDR_VARS.contains(&name) {
            Self::Addr
        } else if matches!(name, "http_x_forwarded_for" | "proxy_add_x_forwarded_for") {
            Self::AddrList
        } else if name == "http_forwarded" {
            Self::Forwarded
        } else if ARGS_VARS.contains(&name) {
            Self::Args
        } else if URI_VARS.contains(&name) {
            Self::Uri
        } else {
            Self::Text
        }
    }

    /// The class of a field of nginx's error-log context ([`crate::error::SUFFIX_KEYS`]).
    pub fn of_error_field(key: &str) -> Self {
        match key {
            "client" => Self::Addr,
            "request" | "subrequest" | "upstream" | "referrer" => Self::Uri,
            "login" | "host" => Self::Text,
            _ => Self::Fixed,
        }
    }
}

/// The compiled redaction settings: built once, shared by every object
/// ([`crate::ParseSettings::redaction`]).
#[derive(Clone, Default)]
pub struct Redaction {
    ip: Option<(IpMask, u32)>,
    query: Option<(Vec<String>, u32)>,
    fields: Vec<(String, FieldAction, u32)>,
    patterns: Vec<(Pattern, u32)>,
    hash_key: Option<HashKey>,
    names: Vec<String>,
    /// Some rule reads text (a query, a pattern): the classes that only patterns or queries
    /// touch can be skipped when none does.
    text_rules: bool,
}

impl fmt::Debug for Redaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redaction")
            .field("rules", &self.names)
            .finish_non_exhaustive()
    }
}

impl Redaction {
    /// Compiles `spec`; a `:hash` field needs the key.
    pub fn new(spec: RedactSpec) -> Result<Self, RedactError> {
        if spec.hashes() && spec.hash_key.is_none() {
            return Err(RedactError::Key(
                "REDACT_FIELDS hashes a field (:hash) but neither REDACT_HASH_KEY nor \
                 REDACT_HASH_KEY_SECRET gives a key"
                    .into(),
            ));
        }
        let mut names = Vec::new();
        let mut bit = |name: String| {
            names.push(name);
            1u32.checked_shl(names.len() as u32 - 1).unwrap_or(0)
        };
        let ip = spec.ip.map(|m| (m, bit("ip".into())));
        let query = (!spec.query_params.is_empty())
            .then_some(spec.query_params)
            .map(|q| (q, bit("query".into())));
        let patterns: Vec<_> = spec
            .patterns
            .into_iter()
            .map(|p| {
                let b = bit(p.rule_name());
                (p, b)
            })
            .collect();
        let fields: Vec<_> = spec
            .fields
            .into_iter()
            .map(|(k, a)| {
                let b = bit(format!("field:{k}"));
                (k, a, b)
            })
            .collect();
        if names.len() > MAX_RULES {
            return Err(RedactError::TooMany(names.len()));
        }
        Ok(Self {
            text_rules: query.is_some() || !patterns.is_empty(),
            ip,
            query,
            fields,
            patterns,
            hash_key: spec.hash_key,
            names,
        })
    }

    /// No rule: nothing to do (the common case, one branch per line).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The rules' names by bit (bit `i` of [`crate::LogEvent::redacted`] is `names()[i]`):
    /// `ip`, `query`, `pattern:NAME`, `field:KEY`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The fields `REDACT_FIELDS` names.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _, _)| k.as_str())
    }

    /// The value to write for the field `key` of class `class`: `None` to leave the field out
    /// (`REDACT_FIELDS` drop), borrowed when no rule changed it. The bits of the rules that
    /// changed it are set in `hits`.
    pub fn value<'v>(
        &self,
        key: &str,
        class: FieldClass,
        v: &'v str,
        hits: &mut u32,
    ) -> Option<Cow<'v, str>> {
        // An empty value (`escape=json`'s "no value") has nothing to hide.
        if self.is_empty() || v.is_empty() {
            return Some(Cow::Borrowed(v));
        }
        if let Some((_, action, bit)) = self.fields.iter().find(|(k, _, _)| k == key) {
            *hits |= bit;
            return match action {
                FieldAction::Drop => None,
                FieldAction::Hash => Some(Cow::Owned(self.hash(v))),
            };
        }
        // `$arg_token`: the value of a parameter the query rule names.
        if let (Some((names, bit)), Some(arg)) = (&self.query, key.strip_prefix("arg_"))
            && names.iter().any(|n| n.eq_ignore_ascii_case(arg))
        {
            *hits |= bit;
            return Some(Cow::Borrowed(REDACTED));
        }
        Some(self.by_class(class, v, hits))
    }

    /// [`Redaction::value`] by class alone (no `REDACT_FIELDS`): text with no fields known is
    /// [`FieldClass::Free`].
    pub fn by_class<'v>(&self, class: FieldClass, v: &'v str, hits: &mut u32) -> Cow<'v, str> {
        let mut out = Cow::Borrowed(v);
        match class {
            FieldClass::Fixed => return out,
            FieldClass::Addr | FieldClass::AddrList | FieldClass::Forwarded => {
                if let Some((mask, bit)) = self.ip {
                    let masked = match class {
                        FieldClass::Addr => mask_addr_field(v, mask),
                        FieldClass::AddrList => mask_addr_list(v, mask),
                        _ => mask_forwarded(v, mask),
                    };
                    if let Some(m) = masked {
                        *hits |= bit;
                        out = Cow::Owned(m);
                    }
                }
                return out;
            }
            FieldClass::Free => {
                if let Some((mask, bit)) = self.ip
                    && let Some(m) = mask_ip_literals(&out, mask)
                {
                    *hits |= bit;
                    out = Cow::Owned(m);
                }
            }
            FieldClass::Args | FieldClass::Uri | FieldClass::Text => {}
        }
        if !self.text_rules {
            return out;
        }
        if let Some((names, bit)) = &self.query
            && class != FieldClass::Text
            && let Some(m) = mask_query(&out, names, class)
        {
            *hits |= bit;
            out = Cow::Owned(m);
        }
        for (p, bit) in &self.patterns {
            if let Some(m) = p.mask(&out) {
                *hits |= bit;
                out = Cow::Owned(m);
            }
        }
        out
    }

    /// `hmac:` and the first 128 bits of HMAC-SHA256(key, value), in hex.
    fn hash(&self, v: &str) -> String {
        let Some(key) = &self.hash_key else {
            // `new` refuses a hashed field without a key.
            return REDACTED.to_string();
        };
        let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.0) else {
            return REDACTED.to_string();
        };
        mac.update(v.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(HASH_PREFIX.len() + 32);
        out.push_str(HASH_PREFIX);
        for b in &digest[..16] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Pattern {
    /// `text` with every match replaced by [`REDACTED`]; `None` when nothing matched.
    fn mask(&self, text: &str) -> Option<String> {
        match self {
            Self::Email => {
                let b = text.as_bytes();
                if memchr::memchr(b'@', b).is_none() && memchr::memmem::find(b, b"%40").is_none() {
                    return None;
                }
                replace_all(email_regex(), text)
            }
            Self::Card => mask_cards(text),
            Self::Named { regex, .. } => replace_all(regex, text),
        }
    }
}

fn replace_all(re: &Regex, text: &str) -> Option<String> {
    match re.replace_all(text, REDACTED) {
        Cow::Borrowed(_) => None,
        Cow::Owned(s) => Some(s),
    }
}

fn email_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        // The local part may be percent-encoded (`jane.doe%2Bx%40example.com`).
        match Regex::new(
            r"[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
        ) {
            Ok(re) => re,
            Err(e) => unreachable!("the e-mail pattern compiles: {e}"),
        }
    })
}

/// Card-like numbers: 13 to 19 digits in groups, one separator between groups (a space, a
/// dash, a `+` or `%20` of a GET form), that pass the Luhn check, replaced by [`REDACTED`].
/// The number may be part of a longer run of groups (`4111 1111 1111 1111 737`): the first and
/// longest run of whole groups that is one is taken.
fn mask_cards(text: &str) -> Option<String> {
    let b = text.as_bytes();
    if b.iter().filter(|c| c.is_ascii_digit()).count() < 13 {
        return None;
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    let mut groups: Vec<(usize, usize)> = Vec::new();
    while i < b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_digit()) {
            i += 1;
            continue;
        }
        // The digit groups from here, each ending where a separator (or anything else) starts.
        groups.clear();
        let mut j = i;
        loop {
            let start = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            groups.push((start, j));
            let sep = card_separator(&b[j..]);
            if sep == 0 || !b.get(j + sep).is_some_and(u8::is_ascii_digit) {
                break;
            }
            j += sep;
        }
        let end_of_run = j;
        let mut g = 0;
        while g < groups.len() {
            match card_in(b, &groups[g..]) {
                Some(n) => {
                    let (start, end) = (groups[g].0, groups[g + n - 1].1);
                    let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                    o.push_str(&text[copied..start]);
                    o.push_str(REDACTED);
                    copied = end;
                    g += n;
                }
                None => g += 1,
            }
        }
        i = end_of_run.max(i + 1);
    }
    out.map(|mut o| {
        o.push_str(&text[copied..]);
        o
    })
}

/// The length of the separator `rest` starts with between two digit groups of a card number
/// (0: none).
fn card_separator(rest: &[u8]) -> usize {
    match rest {
        [b' ' | b'-' | b'+', ..] => 1,
        [b'%', b'2', b'0', ..] => 3,
        _ => 0,
    }
}

/// How many of `groups`, from the first, make the longest card number (13 to 19 digits, the
/// first not 0, that pass the Luhn check).
fn card_in(b: &[u8], groups: &[(usize, usize)]) -> Option<usize> {
    // No card number starts with 0 (and a run of zeros passes the Luhn check).
    if groups
        .first()
        .is_none_or(|&(start, _)| b.get(start) == Some(&b'0'))
    {
        return None;
    }
    let mut digits: Vec<u8> = Vec::with_capacity(19);
    let mut found = None;
    for (n, &(start, end)) in groups.iter().enumerate() {
        digits.extend(b[start..end].iter().map(|d| d - b'0'));
        if digits.len() > 19 {
            break;
        }
        if digits.len() >= 13 && luhn(&digits) {
            found = Some(n + 1);
        }
    }
    found
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `addr` with the host bits zeroed (an IPv4-mapped IPv6 address by the IPv4 prefix).
pub fn mask_ip(addr: IpAddr, mask: IpMask) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(mask_v4(a, mask.v4)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => IpAddr::V6(mask_v4(v4, mask.v4).to_ipv6_mapped()),
            None => {
                let bits = u128::from(a);
                let keep = u128::MAX.checked_shl(128 - u32::from(mask.v6)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & keep))
            }
        },
    }
}

fn mask_v4(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(u32::from(a) & keep)
}

/// One address as text (a zone `%eth0` dropped), masked; `None` when it is not an address.
fn mask_ip_text(s: &str, mask: IpMask) -> Option<String> {
    let bare = s.split_once('%').map_or(s, |(a, _)| a);
    let addr: IpAddr = bare.parse().ok()?;
    Some(mask_ip(addr, mask).to_string())
}

/// An address field: the masked address; `unix:` and an empty value as they are; anything
/// else (a forged header) `-`. `None` when unchanged.
fn mask_addr_field(v: &str, mask: IpMask) -> Option<String> {
    let t = v.trim();
    if t.is_empty() || t == "-" || t == "unix:" {
        return None;
    }
    let masked = mask_ip_text(t, mask).unwrap_or_else(|| "-".to_string());
    (masked != v).then_some(masked)
}

/// One item of an address list or a `for=` value: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`; the port dropped. `None`: not an address.
fn mask_list_item(item: &str, mask: IpMask) -> Option<String> {
    if let Some(rest) = item.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return Some(format!("[{}]", mask_ip_text(inside, mask)?));
    }
    if let Some(m) = mask_ip_text(item, mask) {
        return Some(m);
    }
    // IPv4 with a port.
    let (a, port) = item.rsplit_once(':')?;
    if !port.bytes().all(|b| b.is_ascii_digit()) || a.contains(':') {
        return None;
    }
    let v4: Ipv4Addr = a.parse().ok()?;
    Some(mask_v4(v4, mask.v4).to_string())
}

/// `a, b, c`: each item masked; `unknown` and empty items kept, anything else `-`.
fn mask_addr_list(v: &str, mask: IpMask) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    for (i, item) in v.split(',').enumerate() {
        if i > 0 {
            out.push(',');
        }
        let t = item.trim();
        let lead = &item[..item.len() - item.trim_start().len()];
        out.push_str(lead);
        if t.is_empty() || t.eq_ignore_ascii_case("unknown") || t == "-" {
            out.push_str(t);
        } else {
            out.push_str(&mask_list_item(t, mask).unwrap_or_else(|| "-".to_string()));
        }
        out.push_str(&item[lead.len() + t.len()..]);
    }
    (out != v).then_some(out)
}

/// RFC 7239: `for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`: each `for=` address
/// masked (quotes kept, the port dropped); `unknown` and obfuscated `_names` kept, anything
/// else `-`.
fn mask_forwarded(v: &str, mask: IpMask) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while !rest.is_empty() {
        let cut = rest.find([',', ';']).map_or(rest.len(), |i| i + 1);
        let (pair, next) = rest.split_at(cut);
        rest = next;
        let sep_len = usize::from(pair.ends_with([',', ';']));
        let (body, sep) = pair.split_at(pair.len() - sep_len);
        let lead = &body[..body.len() - body.trim_start().len()];
        let t = body.trim();
        match t.split_once('=') {
            Some((k, val)) if k.trim().eq_ignore_ascii_case("for") => {
                // Quoted, or quoted as nginx's escape=default writes a `"`.
                let quote = ["\"", "\\x22"]
                    .into_iter()
                    .find(|q| val.len() >= 2 * q.len() && val.starts_with(q) && val.ends_with(q))
                    .unwrap_or("");
                let inner = &val[quote.len()..val.len() - quote.len()];
                let kept = inner.eq_ignore_ascii_case("unknown") || inner.starts_with('_');
                let masked = if kept {
                    inner.to_string()
                } else {
                    mask_list_item(inner, mask).unwrap_or_else(|| "-".to_string())
                };
                out.push_str(lead);
                out.push_str(k);
                out.push('=');
                out.push_str(quote);
                out.push_str(&masked);
                out.push_str(quote);
                out.push_str(&body[lead.len() + t.len()..]);
            }
            _ => out.push_str(body),
        }
        out.push_str(sep);
    }
    (out != v).then_some(out)
}

/// Every IP literal in free text masked (a port after an IPv4 address kept: it is text).
fn mask_ip_literals(text: &str, mask: IpMask) -> Option<String> {
    let b = text.as_bytes();
    let is_ipc = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !is_ipc(b[i]) || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ipc(b[i]) {
            i += 1;
        }
        let run = &text[start..i];
        if i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            continue; // part of a word
        }
        let colons = run.bytes().filter(|&c| c == b':').count();
        let dots = run.bytes().filter(|&c| c == b'.').count();
        let found = if colons >= 2 {
            let r = run.trim_end_matches('.');
            r.parse::<Ipv6Addr>().ok().map(|a| (r.len(), IpAddr::V6(a)))
        } else if dots >= 3 {
            let r = run.split(':').next().unwrap_or(run).trim_end_matches('.');
            r.parse::<Ipv4Addr>().ok().map(|a| (r.len(), IpAddr::V4(a)))
        } else {
            None
        };
        if let Some((len, addr)) = found {
            let masked = mask_ip(addr, mask).to_string();
            if masked != text[start..start + len] {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
                o.push_str(&text[copied..start]);
                o.push_str(&masked);
                copied = start + len;
            }
        }
    }
    out.map(|mut o| {
        o.push_str(&text[copied..]);
        o
    })
}

/// The values of the query parameters named in `names` replaced by [`REDACTED`]: in the query
/// after each `?` and the path parameters after each `;` ([`FieldClass::Args`]: the text is
/// the query), parameters split on `&` and `;`, the query ending at a space or `#` (and at `"`
/// in free text). Names compare case-insensitively after percent-decoding, up to a `[`
/// (`token[]`).
fn mask_query(text: &str, names: &[String], class: FieldClass) -> Option<String> {
    let b = text.as_bytes();
    // A `"` ends a query in free text (`request: "GET /?a=1 HTTP/1.1"`), not in a value.
    let ends: &[u8] = if class == FieldClass::Free {
        b"&; \"#"
    } else {
        b"&; #"
    };
    let args = class == FieldClass::Args;
    // Parameters start after `?`, and in a path after `;` (`/p;jsessionid=…`), where a `/` or
    // the `?` ends them too.
    let (mut i, mut in_path) = if args {
        (0, false)
    } else {
        let p = memchr::memchr2(b'?', b';', b)?;
        (p + 1, b[p] == b';')
    };
    let mut out: Option<String> = None;
    let mut copied = 0;
    loop {
        let end = b[i..]
            .iter()
            .position(|&c| ends.contains(&c) || (in_path && (c == b'/' || c == b'?')))
            .map_or(b.len(), |p| i + p);
        let param = &text[i..end];
        if let Some(eq) = param.find('=')
            && eq + 1 < param.len()
            && name_matches(&param[..eq], names)
        {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i + eq + 1]);
            o.push_str(REDACTED);
            copied = end;
        }
        if end >= b.len() {
            break;
        }
        match b[end] {
            b'&' | b';' => i = end + 1,
            b'?' => (i, in_path) = (end + 1, false),
            // The query ended: the next one, if any, starts after the next `?` or `;`.
            _ => match memchr::memchr2(b'?', b';', &b[end..]) {
                Some(p) => (i, in_path) = (end + p + 1, b[end + p] == b';'),
                None => break,
            },
        }
    }
    out.map(|mut o| {
        o.push_str(&text[copied..]);
        o
    })
}

fn name_matches(name: &str, names: &[String]) -> bool {
    let name = name.split_once('[').map_or(name, |(n, _)| n);
    if !name.contains(['%', '+']) {
        return names.iter().any(|n| n.eq_ignore_ascii_case(name));
    }
    let spaced = name.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy();
    names.iter().any(|n| n.eq_ignore_ascii_case(&decoded))
}

#[cfg(test)]
mod lines;
#[cfg(test)]
mod tests;
