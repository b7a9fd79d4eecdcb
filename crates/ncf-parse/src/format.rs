//! nginx `log_format` string → a compiled field plan, and the matcher that applies it.
//!
//! nginx writes each variable's value between the literal text of the format. So a line is
//! split by finding, after each variable, the literal that follows it. With nginx's default
//! escaping a `"` inside a value is written `\x22`, so a quoted field ends at the first `"` that
//! follows; with `escape=json` it is written `\"`, which the matcher skips.
//! <https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format>

use super::json::Key;
use crate::redact::FieldClass;

/// nginx's predefined `combined` format.
pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
/// The `main` format from nginx's default nginx.conf: combined + `"$http_x_forwarded_for"`.
pub const MAIN: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#;

/// Variables whose single values are numbers (lists such as `0.002, 0.004` stay strings).
const NUMERIC_VARS: &[&str] = &[
    "status",
    "body_bytes_sent",
    "bytes_sent",
    "request_length",
    "request_time",
    "msec",
    "connection",
    "connection_requests",
    "pid",
    "remote_port",
    "server_port",
    "content_length",
    "upstream_status",
    "upstream_response_time",
    "upstream_connect_time",
    "upstream_header_time",
    "upstream_response_length",
    "upstream_bytes_sent",
    "upstream_bytes_received",
    "upstream_queue_time",
    "gzip_ratio",
    "request_id_len",
];

/// Variables besides `$upstream_*` whose values are `, `-separated lists.
const LIST_VARS: &[&str] = &["http_x_forwarded_for", "proxy_add_x_forwarded_for"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Default,
    Json,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeVar {
    Local,
    Iso8601,
    Msec,
}

/// How many values [`LogFormat::split`] may move to a later literal to find a split whose
/// numbers are numbers, before it keeps the first split.
const MAX_SPLIT_TRIES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    pub numeric: bool,
    /// Lists (`$upstream_*`, X-Forwarded-For): `, ` and ` : ` separate items, not fields.
    pub list: bool,
    pub time: Option<TimeVar>,
    /// The name as a JSON key, quoted once here.
    pub key: Key,
    /// `$request`, whose value is also written split into its parts (first occurrence only).
    pub request: bool,
    /// False for the second and later occurrence of a name in the format: a message has one key
    /// per name, holding the first occurrence's value (nginx writes the same value each time).
    pub write: bool,
    /// What the value holds, for redaction ([`FieldClass::of_var`]).
    pub class: FieldClass,
}

impl Var {
    /// The format's variable `$name`; `write` for the first occurrence of the name.
    fn new(name: &str, write: bool) -> Self {
        let time = match name {
            "time_local" => Some(TimeVar::Local),
            "time_iso8601" => Some(TimeVar::Iso8601),
            "msec" => Some(TimeVar::Msec),
            _ => None,
        };
        let numeric = NUMERIC_VARS.contains(&name)
            || (name.starts_with("upstream_") && name.ends_with("_time"));
        Var {
            name: name.to_string(),
            numeric,
            list: name.starts_with("upstream_") || LIST_VARS.contains(&name),
            time,
            key: Key::new(name),
            request: write && name == "request",
            write,
            class: FieldClass::of_var(name, numeric || time.is_some()),
        }
    }

    /// Whether a value of this variable may hold the text `lit` (so that the first occurrence
    /// of `lit` can end it too early): not when `lit` holds a `"` (nginx escapes it in values,
    /// but with `escape=none`), nor when `lit` starts with a byte the values do not have
    /// (numbers, lists of them, whose `, ` and ` : ` the split skips, and times).
    fn may_hold(&self, lit: &str, escape: Escape) -> bool {
        if escape != Escape::None && lit.contains('"') {
            return false;
        }
        let Some(&c) = lit.as_bytes().first() else {
            return false;
        };
        match (self.time, self.numeric, self.list) {
            (Some(TimeVar::Local), _, _) => c.is_ascii_alphanumeric() || b"/:+- ".contains(&c),
            (Some(TimeVar::Iso8601), _, _) => c.is_ascii_alphanumeric() || b":+-".contains(&c),
            (_, true, false) => c.is_ascii_digit() || b".-".contains(&c),
            (_, true, true) => c.is_ascii_digit() || b".-,:".contains(&c),
            (_, false, _) => true,
        }
    }

    /// Whether `value` can be this variable's: nginx writes a number with digits, `.` and `-`
    /// only (`-` for none), and a list of them (`$upstream_status`) with `, ` and ` : ` between.
    fn plausible(&self, b: &[u8]) -> bool {
        if !self.numeric {
            return true;
        }
        if !self.list {
            return b
                .iter()
                .all(|&c| c.is_ascii_digit() || c == b'.' || c == b'-');
        }
        b.iter().enumerate().all(|(i, &c)| match c {
            b'0'..=b'9' | b'.' | b'-' => true,
            b',' | b':' if self.list => true,
            b' ' if self.list => {
                b[..i].ends_with(b",") || b[..i].ends_with(b" :") || b[i + 1..].starts_with(b": ")
            }
            _ => false,
        })
    }
}

/// Which of the names derived from `$request` a message gets: only those the format does not
/// name itself, so that no key is written twice. Decided once, when the format is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Derived {
    pub request_method: bool,
    pub request_uri: bool,
    pub server_protocol: bool,
}

impl Derived {
    pub fn any(self) -> bool {
        self.request_method || self.request_uri || self.server_protocol
    }
}

/// nginx variables and the names td-agent's `nginx` parser gives the same values
/// ([`crate::names::FieldNames::Fluentd`]). `request_method` and `request_uri` apply both to the format's
/// own variables and to the parts split from `$request`.
pub const FLUENTD_ACCESS_NAMES: [(&str, &str); 9] = [
    ("remote_addr", "remote"),
    ("remote_user", "user"),
    ("request_method", "method"),
    ("request_uri", "path"),
    ("status", "code"),
    ("body_bytes_sent", "size"),
    ("http_referer", "referer"),
    ("http_user_agent", "agent"),
    ("http_x_forwarded_for", "forwarder"),
];

/// The key of the text found after the end of the format (unless the format names it itself).
pub const UNPARSED_TAIL: &str = "unparsed_tail";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Lit(Literal),
    Var(usize),
}

/// Literal text of a format, with its first 8 bytes kept as a word: a line is split by
/// comparing a few bytes at known places, and one masked load compares them faster than a
/// call to `memcmp` (2.7 % of the samples of a forwarding run in `perf`) or a byte loop (as
/// slow). `parse` on 3 M lines: 1.48 → 1.44 CPU-seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Literal {
    text: String,
    /// The first (up to) 8 bytes, little-endian.
    word: u64,
    /// Ones over the bytes of `word` that belong to the literal.
    mask: u64,
}

impl Literal {
    fn new(text: String) -> Self {
        let head = &text.as_bytes()[..text.len().min(8)];
        let mut bytes = [0u8; 8];
        bytes[..head.len()].copy_from_slice(head);
        let mask = match head.len() {
            8 => u64::MAX,
            n => (1u64 << (8 * n)) - 1,
        };
        Self {
            word: u64::from_le_bytes(bytes),
            mask,
            text,
        }
    }

    /// Whether `hay` starts with this literal.
    #[inline]
    fn starts(&self, hay: &[u8]) -> bool {
        match hay.first_chunk::<8>() {
            Some(chunk) if self.text.len() <= 8 => {
                u64::from_le_bytes(*chunk) & self.mask == self.word
            }
            _ => hay.starts_with(self.text.as_bytes()),
        }
    }

    /// First occurrence in `hay`: memchr for the first byte, then [`Literal::starts`]. For the
    /// 1–4 byte separators of log formats this beats building a substring searcher per call.
    fn find_in(&self, hay: &[u8]) -> Option<usize> {
        let first = *self.text.as_bytes().first()?;
        let mut from = 0;
        while let Some(i) = memchr::memchr(first, &hay[from..]) {
            let at = from + i;
            if self.starts(&hay[at..]) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }
}

/// A compiled `log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    source: String,
    escape: Escape,
    vars: Vec<Var>,
    items: Vec<Item>,
    /// Index into `vars` of the variable that gives the event time.
    time_var: Option<usize>,
    /// Index into `vars` of the (first) `$status`: it tells a request line nginx cut or never
    /// parsed (414, 505, …) from one it did.
    status_var: Option<usize>,
    /// Indexes into `vars` of the format's own `$request_method`, `$request_uri` and
    /// `$server_protocol` (first occurrences).
    part_vars: [Option<usize>; 3],
    /// The fields derived from `$request` that messages get (none without `$request`).
    derived: Derived,
    /// The key of text after the end of the format: [`UNPARSED_TAIL`], or `_unparsed_tail`
    /// (with more `_` as needed) when the format has a variable of that name.
    tail_key: Key,
    /// The keys of the parts derived from `$request`: method, URI, protocol.
    derived_keys: [Key; 3],
    /// Whether `$request` itself is written (with td-agent's names only its parts are).
    write_request: bool,
    /// Indexes into `vars` of the numbers [`LogFormat::split_spans`] checks: those after a
    /// value that may hold the literal ending it ([`LogFormat::numbers_to_check`]).
    numbers: Vec<usize>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormatError {
    #[error("the format is empty")]
    Empty,
    #[error("unterminated quoted string in the format")]
    Unterminated,
    #[error("unknown escape mode {0:?} (nginx knows default, json, none)")]
    BadEscape(String),
    #[error("`$` without a variable name at byte {0}")]
    BadVariable(usize),
    #[error(
        "variables ${0} and ${1} follow each other with nothing between them, so a line cannot be split between them"
    )]
    Adjacent(String, String),
    #[error("the format has no variables")]
    NoVariables,
}

/// Why a line did not match the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub reason: String,
}

impl LogFormat {
    pub fn combined() -> Self {
        // The built-in format is known to compile.
        Self::compile(COMBINED).unwrap_or_else(|e| unreachable!("COMBINED: {e}"))
    }

    /// Accepts `combined`, `main`, or a `log_format` body as written in nginx.conf (one or more
    /// quoted strings, optionally after `escape=…`; unquoted text is taken as it is).
    pub fn parse_config(spec: &str) -> Result<Self, FormatError> {
        let spec = spec.trim();
        match spec {
            "" => Err(FormatError::Empty),
            "combined" => Self::compile(COMBINED),
            "main" => Self::compile(MAIN),
            _ => {
                let (escape, rest) = match spec.strip_prefix("escape=") {
                    Some(r) => {
                        let end = r.find(char::is_whitespace).unwrap_or(r.len());
                        let esc = match &r[..end] {
                            "default" => Escape::Default,
                            "json" => Escape::Json,
                            "none" => Escape::None,
                            other => return Err(FormatError::BadEscape(other.to_string())),
                        };
                        (esc, r[end..].trim_start())
                    }
                    None => (Escape::Default, spec),
                };
                let body = unquote_conf(rest)?;
                let mut f = Self::compile(&body)?;
                f.escape = escape;
                f.numbers = f.numbers_to_check();
                f.source = spec.to_string();
                Ok(f)
            }
        }
    }

    /// Compiles the format text itself (no nginx.conf quoting).
    pub fn compile(text: &str) -> Result<Self, FormatError> {
        if text.is_empty() {
            return Err(FormatError::Empty);
        }
        let (vars, items) = format_items(text)?;
        if vars.is_empty() {
            return Err(FormatError::NoVariables);
        }
        // The most precise time variable wins: $msec, then $time_iso8601, then $time_local.
        let time_var = [TimeVar::Msec, TimeVar::Iso8601, TimeVar::Local]
            .iter()
            .find_map(|t| vars.iter().position(|v| v.time == Some(*t)));
        let first = |name: &str| vars.iter().position(|v| v.name == name);
        let status_var = first("status");
        let part_vars = [
            first("request_method"),
            first("request_uri"),
            first("server_protocol"),
        ];
        let derived = match first("request") {
            Some(_) => Derived {
                request_method: part_vars[0].is_none(),
                request_uri: part_vars[1].is_none(),
                server_protocol: part_vars[2].is_none(),
            },
            None => Derived::default(),
        };
        let mut tail_name = UNPARSED_TAIL.to_string();
        while first(&tail_name).is_some() {
            tail_name.insert(0, '_');
        }
        let mut f = Self {
            source: text.to_string(),
            escape: Escape::Default,
            tail_key: Key::new(&tail_name),
            vars,
            items,
            time_var,
            status_var,
            part_vars,
            derived,
            numbers: Vec::new(),
            derived_keys: [
                Key::new("request_method"),
                Key::new("request_uri"),
                Key::new("server_protocol"),
            ],
            write_request: true,
        };
        f.numbers = f.numbers_to_check();
        Ok(f)
    }

    /// The format with the keys of `names`. With [`FieldNames::Fluentd`](crate::names::FieldNames):
    /// the variables of [`FLUENTD_ACCESS_NAMES`] and the method and URI split from `$request`
    /// get td-agent's names (unless the format has a variable of that name: then the nginx name
    /// stays, so no key is written twice); `$request` itself, the protocol split from it and the
    /// time variable the event's timestamp comes from are not written, as td-agent's records
    /// have none of them.
    pub fn with_names(mut self, names: crate::names::FieldNames) -> Self {
        if names == crate::names::FieldNames::Nginx {
            return self;
        }
        let taken = |name: &str| self.vars.iter().any(|v| v.name == name);
        let renamed = |nginx: &str| {
            FLUENTD_ACCESS_NAMES
                .iter()
                .find(|(n, f)| *n == nginx && !taken(f))
                .map(|(_, f)| Key::new(f))
        };
        let keys: Vec<Option<Key>> = self.vars.iter().map(|v| renamed(&v.name)).collect();
        let (method, uri) = (renamed("request_method"), renamed("request_uri"));
        for (var, key) in self.vars.iter_mut().zip(keys) {
            if let Some(key) = key {
                var.key = key;
            }
        }
        if let Some(key) = method {
            self.derived_keys[0] = key;
        }
        if let Some(key) = uri {
            self.derived_keys[1] = key;
        }
        self.derived.server_protocol = false;
        self.write_request = false;
        if let Some(i) = self.time_var {
            self.vars[i].write = false;
        }
        self
    }

    /// The keys of the parts derived from `$request` (method, URI, protocol).
    pub fn derived_keys(&self) -> &[Key; 3] {
        &self.derived_keys
    }

    /// Whether `$request` is written as a field of its own, besides its parts.
    pub fn writes_request(&self) -> bool {
        self.write_request
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn escape(&self) -> Escape {
        self.escape
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    pub fn time_var(&self) -> Option<usize> {
        self.time_var
    }

    /// Index into [`LogFormat::vars`] of the first `$status`.
    pub fn status_var(&self) -> Option<usize> {
        self.status_var
    }

    /// Indexes into [`LogFormat::vars`] of the format's own `$request_method`, `$request_uri`
    /// and `$server_protocol`, in that order.
    pub fn request_part_vars(&self) -> [Option<usize>; 3] {
        self.part_vars
    }

    /// The fields derived from `$request` that this format's messages get.
    pub fn derived(&self) -> Derived {
        self.derived
    }

    /// The key under which text after the end of the format is kept.
    pub fn tail_key(&self) -> &Key {
        &self.tail_key
    }

    /// Splits `line` into one value per variable (`out[i]` belongs to `vars()[i]`) and returns
    /// the text after the end of the format: lines often carry more fields than the configured
    /// format (`combined` configured, `main` written). Each value ends at the first occurrence
    /// of the literal that follows it, which nginx's escaping makes unambiguous, unless that
    /// leaves a number that is not one (`$request_uri $msec` with spaces in the URI, as nginx
    /// before 1.21.1 logs it): then at the first later occurrences that make every number one.
    pub fn split<'l>(&self, line: &'l str, out: &mut Vec<&'l str>) -> Result<&'l str, Mismatch> {
        let mut spans = Vec::with_capacity(self.vars.len());
        let tail = self.split_spans(line, &mut spans)?;
        out.clear();
        out.extend(spans.iter().map(|&(a, b)| &line[a..b]));
        Ok(&line[tail..])
    }

    /// [`LogFormat::split`] into byte ranges of `line` (a reusable buffer, no allocation per
    /// line); returns where the text after the format starts.
    pub fn split_spans(
        &self,
        line: &str,
        out: &mut Vec<(usize, usize)>,
    ) -> Result<usize, Mismatch> {
        let greedy = self.split_greedy(line, out);
        // A number that is not one ([`Var::plausible`]) means a value before it was cut at a
        // literal it contains (nginx before 1.21.1 logs `$request_uri` with spaces).
        let broken_number = |out: &Vec<(usize, usize)>| {
            self.numbers.iter().any(|&i| {
                let (a, b) = out[i];
                !self.vars[i].plausible(&line.as_bytes()[a..b])
            })
        };
        match greedy {
            Ok(_) if !broken_number(out) => greedy,
            _ => {
                let mut other = Vec::with_capacity(self.vars.len());
                match self.split_backtracking(line, &mut other) {
                    Some(tail) => {
                        *out = other;
                        Ok(tail)
                    }
                    None => self.split_greedy(line, out),
                }
            }
        }
    }

    /// The numbers a greedy split may get wrong: those after a value that may hold the literal
    /// ending it ([`Var::may_hold`]), with no literal holding a `"` between (values hold no
    /// bare `"` under nginx's escaping, so the first `"` after any point of the line before it
    /// is the literal's, and the split is right again from there). For `combined` and `main`:
    /// none, and nothing is checked.
    fn numbers_to_check(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut unsure = false;
        for (idx, item) in self.items.iter().enumerate() {
            match item {
                Item::Lit(l) => {
                    if self.escape != Escape::None && l.text.contains('"') {
                        unsure = false;
                    }
                }
                Item::Var(v) => {
                    let var = &self.vars[*v];
                    if unsure && var.numeric {
                        out.push(*v);
                    }
                    if let Some(Item::Lit(l)) = self.items.get(idx + 1)
                        && var.may_hold(&l.text, self.escape)
                    {
                        unsure = true;
                    }
                }
            }
        }
        out
    }

    /// Each value up to the first occurrence of the literal after it.
    fn split_greedy(&self, line: &str, out: &mut Vec<(usize, usize)>) -> Result<usize, Mismatch> {
        out.clear();
        let mut pos = 0;
        for (idx, item) in self.items.iter().enumerate() {
            match item {
                Item::Lit(l) => {
                    if !l.starts(&line.as_bytes()[pos..]) {
                        return Err(Mismatch {
                            reason: format!("expected {:?} at column {}", l.text, pos + 1),
                        });
                    }
                    pos += l.text.len();
                }
                Item::Var(v) => {
                    let rest = &line[pos..];
                    let len = match self.items.get(idx + 1) {
                        None => rest.len(),
                        Some(Item::Lit(l)) => self
                            .find_end(&self.vars[*v], rest, l, 0)
                            .ok_or_else(|| Mismatch {
                                reason: format!(
                                    "no {:?} after ${} (column {})",
                                    l.text,
                                    self.vars[*v].name,
                                    pos + 1
                                ),
                            })?,
                        Some(Item::Var(_)) => unreachable!("compile rejects adjacent variables"),
                    };
                    out.push((pos, pos + len));
                    pos += len;
                }
            }
        }
        Ok(pos)
    }

    /// The split the greedy one missed when it left a number that is not one: values end at
    /// later occurrences of their literals, the latest value first, until every number is
    /// plausible and the whole format matches; `None` when no such split exists (within
    /// [`MAX_SPLIT_TRIES`] values moved).
    fn split_backtracking(&self, line: &str, out: &mut Vec<(usize, usize)>) -> Option<usize> {
        out.clear();
        // The item of each value in `out`.
        let mut items: Vec<usize> = Vec::with_capacity(self.vars.len());
        let (mut idx, mut pos) = (0, 0);
        let mut tries = 0;
        loop {
            let matched = loop {
                let Some(item) = self.items.get(idx) else {
                    break true;
                };
                match item {
                    Item::Lit(l) => {
                        if !l.starts(&line.as_bytes()[pos..]) {
                            break false;
                        }
                        pos += l.text.len();
                    }
                    Item::Var(v) => {
                        let var = &self.vars[*v];
                        let rest = &line[pos..];
                        let len = match self.items.get(idx + 1) {
                            Some(Item::Lit(l)) => self.find_end(var, rest, l, 0),
                            _ => Some(rest.len()),
                        };
                        let Some(len) = len.filter(|&n| var.plausible(&rest.as_bytes()[..n]))
                        else {
                            break false;
                        };
                        out.push((pos, pos + len));
                        items.push(idx);
                        pos += len;
                    }
                }
                idx += 1;
            };
            if matched {
                return Some(pos);
            }
            // The latest value that can end at a later occurrence of its literal takes it.
            loop {
                let ((start, end), item) = (out.pop()?, items.pop()?);
                tries += 1;
                if tries > MAX_SPLIT_TRIES {
                    return None;
                }
                let (Item::Var(v), Some(Item::Lit(l))) =
                    (&self.items[item], self.items.get(item + 1))
                else {
                    continue;
                };
                let var = &self.vars[*v];
                let rest = &line[start..];
                let Some(len) = self.find_end(var, rest, l, end - start + 1) else {
                    continue;
                };
                if var.plausible(&rest.as_bytes()[..len]) {
                    out.push((start, start + len));
                    items.push(item);
                    (idx, pos) = (item + 1, start + len);
                    break;
                }
            }
        }
    }

    /// Where the value at the start of `hay` ends: the first occurrence of `lit` at or after
    /// byte `from` that can end it.
    fn find_end(&self, var: &Var, hay: &str, lit: &Literal, from: usize) -> Option<usize> {
        let hb = hay.as_bytes();
        let json_quote = self.escape == Escape::Json && lit.text.starts_with('"');
        // List values: `a, b` between upstreams or forwarded-for hops, `a : b` between upstream
        // groups (after an internal redirect); their spaces are part of the value.
        let list = var.list && lit.text.starts_with(' ');
        let mut from = from;
        loop {
            if from > hb.len() {
                return None;
            }
            let at = from + lit.find_in(&hb[from..])?;
            let before = &hb[..at];
            let ends_here = if json_quote {
                // escape=json writes `"` as `\"`: skip quotes after an odd number of backslashes.
                before.iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 0
            } else if list {
                !(before.ends_with(b",") || before.ends_with(b" :") || hb[at..].starts_with(b" : "))
            } else {
                true
            };
            if ends_here {
                return Some(at);
            }
            from = at + 1;
        }
    }
}

/// A format's text as its items in order, literal text and variables (`$name`, `${name}`),
/// and the variables that [`Item::Var`] indexes.
fn format_items(text: &str) -> Result<(Vec<Var>, Vec<Item>), FormatError> {
    let b = text.as_bytes();
    let mut vars: Vec<Var> = Vec::new();
    let mut items = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let next = memchr::memchr(b'$', &b[i..]).map_or(b.len(), |j| i + j);
            lit.push_str(&text[i..next]);
            i = next;
            continue;
        }
        let (name, end) = variable_at(text, i)?;
        if !lit.is_empty() {
            items.push(Item::Lit(Literal::new(std::mem::take(&mut lit))));
        } else if let Some(Item::Var(prev)) = items.last() {
            return Err(FormatError::Adjacent(
                vars[*prev].name.clone(),
                name.to_string(),
            ));
        }
        let write = !vars.iter().any(|v| v.name == name);
        items.push(Item::Var(vars.len()));
        vars.push(Var::new(name, write));
        i = end;
    }
    if !lit.is_empty() {
        items.push(Item::Lit(Literal::new(lit)));
    }
    Ok((vars, items))
}

/// The name of the variable whose `$` is at byte `i` (`$name` or `${name}`), and the byte after
/// it.
fn variable_at(text: &str, i: usize) -> Result<(&str, usize), FormatError> {
    let b = text.as_bytes();
    let (name, end) = if b.get(i + 1) == Some(&b'{') {
        let close = memchr::memchr(b'}', &b[i + 2..]).ok_or(FormatError::BadVariable(i))?;
        (&text[i + 2..i + 2 + close], i + 3 + close)
    } else {
        let len = b[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count();
        (&text[i + 1..i + 1 + len], i + 1 + len)
    };
    if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
        return Err(FormatError::BadVariable(i));
    }
    Ok((name, end))
}

/// Removes nginx.conf quoting: `'a' "b"` → `ab`, with `\"`, `\'` and `\\` unescaped; a
/// trailing `;` is allowed. Text that does not start with a quote is returned as it is.
fn unquote_conf(s: &str) -> Result<String, FormatError> {
    let s = s.trim().trim_end_matches(';').trim_end();
    if !s.starts_with(['\'', '"']) {
        return Ok(s.to_string());
    }
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            q @ ('\'' | '"') => loop {
                match chars.next() {
                    None => return Err(FormatError::Unterminated),
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\'' | '\\')) => out.push(e),
                        Some('n') => out.push('\n'),
                        Some('t') => out.push('\t'),
                        Some(o) => {
                            out.push('\\');
                            out.push(o);
                        }
                        None => return Err(FormatError::Unterminated),
                    },
                    Some(ch) if ch == q => break,
                    Some(ch) => out.push(ch),
                }
            },
            w if w.is_whitespace() => {}
            _ => return Err(FormatError::Unterminated),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(f: &LogFormat) -> Vec<&str> {
        f.vars().iter().map(|v| v.name.as_str()).collect()
    }

    #[test]
    fn a_literal_is_found_as_starts_with_and_find_would() {
        // Literals of 1 to 11 bytes against hays shorter and longer than the 8-byte word,
        // matches at the start, in the middle, at the very end and cut off by the end.
        let hays = [
            "",
            "\"",
            " - ",
            "a\" \"b",
            "x] \"GET",
            "abc ==> def ==> ghi",
            "12345678",
            "1234567",
            "0123456789ab ==> ",
            "tail ==",
            "end ==>",
        ];
        let lits = [
            "\"",
            " - ",
            "\" \"",
            "] \"",
            " ==> ",
            "12345678",
            "123456789",
            "89ab ==> ",
        ];
        for lit in lits {
            let l = Literal::new(lit.to_string());
            for hay in hays {
                for at in 0..=hay.len() {
                    let rest = &hay.as_bytes()[at..];
                    assert_eq!(
                        l.starts(rest),
                        rest.starts_with(lit.as_bytes()),
                        "{lit:?} at {at} of {hay:?}"
                    );
                }
                assert_eq!(
                    l.find_in(hay.as_bytes()),
                    hay.find(lit),
                    "{lit:?} in {hay:?}"
                );
            }
        }
    }

    #[test]
    fn compiles_combined_and_main() {
        let c = LogFormat::parse_config("combined").unwrap();
        assert_eq!(
            names(&c),
            [
                "remote_addr",
                "remote_user",
                "time_local",
                "request",
                "status",
                "body_bytes_sent",
                "http_referer",
                "http_user_agent"
            ]
        );
        assert_eq!(c.time_var(), Some(2));
        let m = LogFormat::parse_config("main").unwrap();
        assert_eq!(names(&m).last(), Some(&"http_x_forwarded_for"));
    }

    #[test]
    fn nginx_conf_quoting() {
        let f = LogFormat::parse_config(
            r#"escape=json '$remote_addr - [$time_iso8601] "$request" ' '$status ${request_time}s';"#,
        )
        .unwrap();
        assert_eq!(f.escape(), Escape::Json);
        assert_eq!(
            names(&f),
            [
                "remote_addr",
                "time_iso8601",
                "request",
                "status",
                "request_time"
            ]
        );
        assert_eq!(f.time_var(), Some(1));
        assert!(f.vars()[4].numeric);
    }

    #[test]
    fn config_errors() {
        assert_eq!(LogFormat::parse_config(""), Err(FormatError::Empty));
        assert_eq!(
            LogFormat::parse_config("'$a"),
            Err(FormatError::Unterminated)
        );
        assert_eq!(
            LogFormat::parse_config("escape=xml '$a'"),
            Err(FormatError::BadEscape("xml".into()))
        );
        assert_eq!(
            LogFormat::parse_config("$a$b"),
            Err(FormatError::Adjacent("a".into(), "b".into()))
        );
        assert_eq!(
            LogFormat::parse_config("no vars"),
            Err(FormatError::NoVariables)
        );
        assert_eq!(
            LogFormat::parse_config("x $ y"),
            Err(FormatError::BadVariable(2))
        );
    }

    #[test]
    fn splits_lines() {
        let c = LogFormat::combined();
        let mut out = Vec::new();
        let line = r#"10.0.0.1 - - [24/Nov/2026:10:00:01 +0000] "GET /a?b=\x22c\x22 HTTP/1.1" 200 512 "-" "curl/8.5.0""#;
        c.split(line, &mut out).unwrap();
        assert_eq!(out[3], r#"GET /a?b=\x22c\x22 HTTP/1.1"#);
        assert_eq!(out[7], "curl/8.5.0");
        // More fields than the format: the rest is returned, not lost.
        let longer = format!("{line} \"-\" \"2.75\"");
        assert_eq!(c.split(&longer, &mut out), Ok(r#" "-" "2.75""#));
        assert_eq!(out[7], "curl/8.5.0");
        for bad in [
            "",
            "garbage",
            r#"10.0.0.1 - - [24/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 512 "-""#,
        ] {
            assert!(c.split(bad, &mut out).is_err(), "{bad}");
        }
    }

    #[test]
    fn upstream_lists_keep_their_spaces() {
        let f = LogFormat::parse_config("'$upstream_addr $upstream_status $request_time'").unwrap();
        let mut out = Vec::new();
        f.split(
            "10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80 502, 200 : 200 0.004",
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            [
                "10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80",
                "502, 200 : 200",
                "0.004"
            ]
        );
    }

    /// nginx before 1.21.1 logs `$request_uri` with the spaces a client sent; unquoted, the
    /// value ends at the split that leaves the numbers after it without spaces.
    #[test]
    fn spaces_in_a_value_leave_numbers_whole() {
        // (why, format, line, values; None: the first split is kept)
        let cases: [(&str, &str, &str, Option<&[&str]>); 6] = [
            (
                "a URI with a space before the last number",
                "'$request_uri $msec'",
                "/a b 1796480081.278",
                Some(&["/a b", "1796480081.278"]),
            ),
            (
                "two spaces, numbers and a quoted field after",
                r#"'$request_uri $status $body_bytes_sent "$http_referer"'"#,
                r#"/files/annual report 2026.pdf 200 508249 "-""#,
                Some(&["/files/annual report 2026.pdf", "200", "508249", "-"]),
            ),
            (
                "lists keep their spaces",
                "'$request_uri $upstream_status $request_time'",
                "/a b 502, 200 0.004",
                Some(&["/a b", "502, 200", "0.004"]),
            ),
            (
                "no space, no search",
                "'$request_uri $msec'",
                "/a 1796480081.278",
                Some(&["/a", "1796480081.278"]),
            ),
            (
                "no split leaves the number whole: the first one stays",
                "'$request_uri $status'",
                "/a 200 extra",
                Some(&["/a", "200 extra"]),
            ),
            (
                "not a match whichever way",
                "'$request_uri $status ['",
                "/a b 200",
                None,
            ),
        ];
        for (why, fmt, line, want) in cases {
            let f = LogFormat::parse_config(fmt).unwrap();
            let mut out = Vec::new();
            let got = f.split(line, &mut out).map(|_| out.clone());
            match want {
                Some(want) => assert_eq!(got.as_deref(), Ok(want), "{why}"),
                None => assert!(got.is_err(), "{why}: {got:?}"),
            }
        }
    }

    /// Numbers are checked only where a value before them may hold the literal that ends it.
    #[test]
    fn numbers_checked_only_after_an_unsure_value() {
        // (format, the numbers checked)
        let cases: [(&str, &[&str]); 6] = [
            ("combined", &[]),
            ("main", &[]),
            ("'$request_uri $msec'", &["msec"]),
            (
                r#"'"$request" $status $request_uri $request_time [$time_local] $body_bytes_sent'"#,
                &["request_time", "body_bytes_sent"],
            ),
            (
                r#"'$remote_user $status "$http_referer" $body_bytes_sent'"#,
                &["status"],
            ),
            (r#"escape=none '"$request" $status'"#, &["status"]),
        ];
        for (fmt, want) in cases {
            let f = LogFormat::parse_config(fmt).unwrap();
            let got: Vec<&str> = f.numbers.iter().map(|&i| f.vars[i].name.as_str()).collect();
            assert_eq!(got, want, "{fmt}");
        }
    }

    #[test]
    fn json_escape_skips_escaped_quotes() {
        let f = LogFormat::parse_config(r#"escape=json '"$request" $status'"#).unwrap();
        let mut out = Vec::new();
        f.split(r#""GET /\"x\" HTTP/1.1" 200"#, &mut out).unwrap();
        assert_eq!(out, [r#"GET /\"x\" HTTP/1.1"#, "200"]);
    }

    #[test]
    fn repeated_and_derived_names_are_decided_once() {
        // (why, format, names written, derived fields, status var, tail key)
        let d = |m, u, p| Derived {
            request_method: m,
            request_uri: u,
            server_protocol: p,
        };
        let cases = [
            (
                "combined: all three derived",
                "combined",
                vec![
                    "remote_addr",
                    "remote_user",
                    "time_local",
                    "request",
                    "status",
                    "body_bytes_sent",
                    "http_referer",
                    "http_user_agent",
                ],
                d(true, true, true),
                Some(4),
                "unparsed_tail",
            ),
            (
                "$request_uri named: not derived",
                r#"'$remote_addr "$request" "$request_uri" $status'"#,
                vec!["remote_addr", "request", "request_uri", "status"],
                d(true, false, true),
                Some(3),
                "unparsed_tail",
            ),
            (
                "all three named: none derived",
                "'$request $request_method $request_uri $server_protocol'",
                vec![
                    "request",
                    "request_method",
                    "request_uri",
                    "server_protocol",
                ],
                d(false, false, false),
                None,
                "unparsed_tail",
            ),
            (
                "no $request: none derived",
                "'$request_uri $status'",
                vec!["request_uri", "status"],
                d(false, false, false),
                Some(1),
                "unparsed_tail",
            ),
            (
                "repeats written once, status from the first",
                "'$remote_addr $status $remote_addr $status'",
                vec!["remote_addr", "status"],
                d(false, false, false),
                Some(1),
                "unparsed_tail",
            ),
            (
                "a variable named like the tail key",
                "'$unparsed_tail $_unparsed_tail'",
                vec!["unparsed_tail", "_unparsed_tail"],
                d(false, false, false),
                None,
                "__unparsed_tail",
            ),
        ];
        for (why, fmt, written, derived, status, tail) in cases {
            let f = LogFormat::parse_config(fmt).unwrap_or_else(|e| panic!("{why}: {e}"));
            let got: Vec<&str> = f
                .vars()
                .iter()
                .filter(|v| v.write)
                .map(|v| v.name.as_str())
                .collect();
            assert_eq!(got, written, "{why}");
            assert_eq!(
                f.vars().iter().filter(|v| v.request).count(),
                usize::from(written.contains(&"request")),
                "{why}"
            );
            assert_eq!(f.derived(), derived, "{why}");
            assert_eq!(f.status_var(), status, "{why}");
            assert_eq!(f.tail_key(), &Key::new(tail), "{why}");
        }
    }
}
