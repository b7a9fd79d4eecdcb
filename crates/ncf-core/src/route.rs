//! S3 key → instance ID + log type → CloudWatch log group and stream names.
//!
//! `KEY_PATTERN` is a regex with the named groups `instance_id` and `log_type`; the group and
//! stream names come from templates whose `{placeholders}` name groups of that regex.

use regex::Regex;

/// Accepts `…/<instance-id>/<access|error>/…` and `…/<role-id>:<instance-id>/<access|error>/…`
/// (the layout an instance writes under the host policy, `${aws:userid}`: an IAM role ID is
/// `AROA` + upper-case letters and digits); EC2 instance IDs are `i-` + 8 or 17 hex digits.
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids>
pub const DEFAULT_KEY_PATTERN: &str = r"(?:^|/)(?:(?P<role_id>AROA[0-9A-Z]{1,124}):)?(?P<instance_id>i-(?:[0-9a-f]{17}|[0-9a-f]{8}))/(?P<log_type>access|error)/";
pub const DEFAULT_LOG_GROUP_TEMPLATE: &str = "nginx-{log_type}";
pub const DEFAULT_LOG_STREAM_TEMPLATE: &str = "{instance_id}";

/// Log group names: 1–512 characters of `[.\-_/#A-Za-z0-9]`.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html>
pub const MAX_LOG_GROUP_NAME_LEN: usize = 512;
/// Log stream names: 1–512 characters, no `:` and no `*`.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogStream.html>
pub const MAX_LOG_STREAM_NAME_LEN: usize = 512;

/// Which parser a log type uses (defined by the parser, which needs it).
pub use ncf_parse::LogKind;

/// Where one object's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub instance_id: String,
    pub kind: LogKind,
    pub log_group: String,
    pub log_stream: String,
    /// Every named group of `KEY_PATTERN` that matched, with its text (`EXTRA_FIELDS`'
    /// `{group}` placeholders).
    pub groups: Vec<(String, String)>,
}

impl Route {
    /// The text of `KEY_PATTERN`'s group `name`, if it matched.
    pub fn group(&self, name: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RouteError {
    #[error("key {key:?} does not match KEY_PATTERN {pattern:?}")]
    NoMatch { key: String, pattern: String },
    #[error(
        "key {key:?} names two instances, {first:?} and {second:?}: an instance may write only under its own"
    )]
    TwoInstances {
        key: String,
        first: String,
        second: String,
    },
    #[error("key {key:?}: log_type {log_type:?} is neither \"access\" nor \"error\"")]
    UnknownLogType { key: String, log_type: String },
    #[error("key {key:?}: {what} name {name:?} is not valid: {why}")]
    BadName {
        key: String,
        what: &'static str,
        name: String,
        why: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("not a valid regex: {0}")]
    BadRegex(String),
    #[error(
        "the regex has no named group `{0}` (it needs `(?P<instance_id>…)` and `(?P<log_type>…)`)"
    )]
    MissingGroup(&'static str),
    #[error("placeholder {{{0}}} is not a named group of KEY_PATTERN")]
    UnknownPlaceholder(String),
    #[error("unbalanced braces in template {0:?}")]
    Unbalanced(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Group(String),
}

/// A name template such as `nginx-{log_type}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = src;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    pieces.push(Piece::Literal(rest.to_string()));
                    break;
                }
                Some(i) if rest.as_bytes()[i] == b'}' => {
                    return Err(TemplateError::Unbalanced(src.to_string()));
                }
                Some(i) => {
                    if i > 0 {
                        pieces.push(Piece::Literal(rest[..i].to_string()));
                    }
                    let after = &rest[i + 1..];
                    let end = after
                        .find('}')
                        .ok_or_else(|| TemplateError::Unbalanced(src.to_string()))?;
                    let name = &after[..end];
                    if name.is_empty() || name.contains('{') {
                        return Err(TemplateError::Unbalanced(src.to_string()));
                    }
                    pieces.push(Piece::Group(name.to_string()));
                    rest = &after[end + 1..];
                }
            }
        }
        Ok(Self { pieces })
    }

    fn check_groups(&self, re: &Regex) -> Result<(), TemplateError> {
        for p in &self.pieces {
            if let Piece::Group(name) = p
                && !re.capture_names().flatten().any(|n| n == name)
            {
                return Err(TemplateError::UnknownPlaceholder(name.clone()));
            }
        }
        Ok(())
    }

    fn render(&self, caps: &regex::Captures<'_>) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Literal(s) => out.push_str(s),
                Piece::Group(name) => out.push_str(caps.name(name).map_or("", |m| m.as_str())),
            }
        }
        out
    }
}

/// Compiled routing rules; built once at cold start.
#[derive(Debug, Clone)]
pub struct Router {
    pattern: Regex,
    group: Template,
    stream: Template,
}

impl Router {
    pub fn new(
        pattern: &str,
        group: &str,
        stream: &str,
    ) -> Result<Self, (&'static str, TemplateError)> {
        let re = Regex::new(pattern)
            .map_err(|e| ("KEY_PATTERN", TemplateError::BadRegex(e.to_string())))?;
        for needed in ["instance_id", "log_type"] {
            if !re.capture_names().flatten().any(|n| n == needed) {
                return Err(("KEY_PATTERN", TemplateError::MissingGroup(needed)));
            }
        }
        let group = Template::parse(group).map_err(|e| ("LOG_GROUP_TEMPLATE", e))?;
        group
            .check_groups(&re)
            .map_err(|e| ("LOG_GROUP_TEMPLATE", e))?;
        let stream = Template::parse(stream).map_err(|e| ("LOG_STREAM_TEMPLATE", e))?;
        stream
            .check_groups(&re)
            .map_err(|e| ("LOG_STREAM_TEMPLATE", e))?;
        Ok(Self {
            pattern: re,
            group,
            stream,
        })
    }

    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The names of `KEY_PATTERN`'s named groups.
    pub fn group_names(&self) -> Vec<&str> {
        self.pattern.capture_names().flatten().collect()
    }

    /// Where the events of the object `key` go. A key with two path segments that are instance
    /// IDs (`nginx/ROLE:i-A/i-B/access/…`) routes nowhere, whatever the pattern says: a host
    /// allowed to write under its own prefix could otherwise write into another's stream.
    pub fn route(&self, key: &str) -> Result<Route, RouteError> {
        let mut instances = key.split('/').filter(|s| is_instance_segment(s));
        if let (Some(first), Some(second)) = (instances.next(), instances.next()) {
            return Err(RouteError::TwoInstances {
                key: key.to_string(),
                first: first.to_string(),
                second: second.to_string(),
            });
        }
        let caps = self
            .pattern
            .captures(key)
            .ok_or_else(|| RouteError::NoMatch {
                key: key.to_string(),
                pattern: self.pattern.as_str().to_string(),
            })?;
        let group_of = |n: &str| caps.name(n).map_or("", |m| m.as_str()).to_string();
        let log_type = group_of("log_type");
        let kind = LogKind::from_name(&log_type).ok_or_else(|| RouteError::UnknownLogType {
            key: key.to_string(),
            log_type,
        })?;
        let log_group = self.group.render(&caps);
        let log_stream = self.stream.render(&caps);
        let bad = |what, name: &str, why: String| RouteError::BadName {
            key: key.to_string(),
            what,
            name: name.to_string(),
            why,
        };
        if let Err(why) = check_group_name(&log_group) {
            return Err(bad("log group", &log_group, why));
        }
        if let Err(why) = check_stream_name(&log_stream) {
            return Err(bad("log stream", &log_stream, why));
        }
        let groups = self
            .pattern
            .capture_names()
            .flatten()
            .filter_map(|n| {
                caps.name(n)
                    .map(|m| (n.to_string(), m.as_str().to_string()))
            })
            .collect();
        Ok(Route {
            instance_id: group_of("instance_id"),
            kind,
            log_group,
            log_stream,
            groups,
        })
    }
}

/// A key segment naming an instance: `i-` + 8 or 17 lower-case hex digits, alone or after an
/// IAM role ID and `:` (`AROA…:i-…`, the host policy's `${aws:userid}`).
pub fn is_instance_segment(segment: &str) -> bool {
    let id = match segment.split_once(':') {
        Some((role, id)) if is_role_id(role) => id,
        Some(_) => return false,
        None => segment,
    };
    is_instance_id(id)
}

/// `i-` + 8 or 17 lower-case hex digits.
/// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html>
pub fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// An IAM role's unique ID: `AROA` + 1 to [`MAX_ROLE_ID_TAIL`] upper-case letters and digits
/// (as the default `KEY_PATTERN` reads it).
pub fn is_role_id(id: &str) -> bool {
    is_unique_id(id, "AROA")
}

/// An IAM unique ID of the kind `prefix` names (`AROA` a role, `AIDA` a user): the prefix and 1
/// to [`MAX_ROLE_ID_TAIL`] upper-case letters and digits.
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-unique-ids>
pub fn is_unique_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| {
        (1..=MAX_ROLE_ID_TAIL).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    })
}

/// At most this many characters follow the four-letter prefix of an IAM unique ID (`AROA`,
/// `AIDA`): IAM's unique IDs are at most 128 characters (`RoleId`, `UserId`: "Maximum length
/// of 128").
/// <https://docs.aws.amazon.com/IAM/latest/APIReference/API_Role.html>
pub const MAX_ROLE_ID_TAIL: usize = 124;

fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_LOG_GROUP_NAME_LEN {
        return Err(format!("length must be 1–{MAX_LOG_GROUP_NAME_LEN}"));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/#".contains(*c)))
    {
        Some(c) => Err(format!(
            "character {c:?} is not allowed (only A-Z a-z 0-9 . _ - / #)"
        )),
        None => Ok(()),
    }
}

fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_LOG_STREAM_NAME_LEN {
        return Err(format!("length must be 1–{MAX_LOG_STREAM_NAME_LEN}"));
    }
    match name
        .chars()
        .find(|c| matches!(c, ':' | '*') || c.is_control())
    {
        Some(c) => Err(format!("character {c:?} is not allowed")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_router() -> Router {
        Router::new(
            DEFAULT_KEY_PATTERN,
            DEFAULT_LOG_GROUP_TEMPLATE,
            DEFAULT_LOG_STREAM_TEMPLATE,
        )
        .unwrap()
    }

    #[test]
    fn default_layout_routes() {
        let r = default_router();
        let cases = [
            (
                "nginx/i-0123456789abcdef0/access/2026/11/24/access.log-20261124T1000.gz",
                "i-0123456789abcdef0",
                LogKind::Access,
                "nginx-access",
            ),
            (
                "nginx/i-0123abcd/error/2026/11/24/error.log",
                "i-0123abcd",
                LogKind::Error,
                "nginx-error",
            ),
            (
                "i-0123456789abcdef0/access/x.log",
                "i-0123456789abcdef0",
                LogKind::Access,
                "nginx-access",
            ),
            (
                "prod/eu/nginx/i-0123456789abcdef0/error/a b.log",
                "i-0123456789abcdef0",
                LogKind::Error,
                "nginx-error",
            ),
            // The host policy's layout: `${aws:userid}` is `ROLEID:i-…`.
            (
                "nginx/AROA3XFRBF535EXAMPLE1:i-0123456789abcdef0/access/2026/12/05/access.log-20261205T1000.gz",
                "i-0123456789abcdef0",
                LogKind::Access,
                "nginx-access",
            ),
            (
                "nginx/AROAEXAMPLE:i-0123abcd/error/2026/12/05/error.log",
                "i-0123abcd",
                LogKind::Error,
                "nginx-error",
            ),
        ];
        for (key, id, kind, group) in cases {
            let got = r.route(key).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(
                (
                    got.instance_id.as_str(),
                    got.kind,
                    got.log_group.as_str(),
                    got.log_stream.as_str()
                ),
                (id, kind, group, id),
                "{key}"
            );
        }
    }

    #[test]
    fn unroutable_keys() {
        let r = default_router();
        for key in [
            "nginx/i-0123456789abcdef/access/x.log",   // 16 hex digits
            "nginx/i-0123456789ABCDEF0/access/x.log",  // upper case
            "nginx/i-0123456789abcdef0/debug/x.log",   // unknown type
            "nginx/i-0123456789abcdef0/access.log",    // no type directory
            "nginx/xi-0123456789abcdef0/access/x.log", // not a path segment
            "nginx/aroa3x:i-0123456789abcdef0/access/x.log", // a role ID is upper case
            "nginx/AIDA3X:i-0123456789abcdef0/access/x.log", // a user, not a role
            "nginx/AROA:i-0123456789abcdef0/access/x.log", // no ID after AROA
            "",
        ] {
            assert!(
                matches!(r.route(key), Err(RouteError::NoMatch { .. })),
                "{key}"
            );
        }
    }

    #[test]
    fn the_role_id_is_a_group_of_the_default_pattern() {
        let key = "nginx/AROA3XFRBF535EXAMPLE1:i-0123456789abcdef0/access/x.log";
        let got = default_router().route(key).unwrap();
        assert_eq!(got.group("role_id"), Some("AROA3XFRBF535EXAMPLE1"));
        let old = default_router()
            .route("nginx/i-0123456789abcdef0/access/x.log")
            .unwrap();
        assert_eq!(old.group("role_id"), None);
    }

    #[test]
    fn a_key_naming_two_instances_routes_nowhere() {
        let custom = Router::new(
            r"/(?P<instance_id>i-[0-9a-f]+)/(?P<log_type>access|error)/",
            "g",
            "{instance_id}",
        )
        .unwrap();
        let cases = [
            (
                "nginx/AROAEXAMPLE:i-0aaaaaaaaaaaaaaaa/i-0bbbbbbbbbbbbbbbb/access/x.gz",
                "AROAEXAMPLE:i-0aaaaaaaaaaaaaaaa",
                "i-0bbbbbbbbbbbbbbbb",
            ),
            (
                "nginx/i-0aaaaaaa/x/i-0bbbbbbb/error/x.gz",
                "i-0aaaaaaa",
                "i-0bbbbbbb",
            ),
            (
                "nginx/i-0aaaaaaaaaaaaaaaa/access/i-0bbbbbbbbbbbbbbbb/x.gz",
                "i-0aaaaaaaaaaaaaaaa",
                "i-0bbbbbbbbbbbbbbbb",
            ),
        ];
        for router in [default_router(), custom] {
            for (key, first, second) in cases {
                let want = RouteError::TwoInstances {
                    key: key.into(),
                    first: first.into(),
                    second: second.into(),
                };
                assert_eq!(router.route(key), Err(want), "{key}");
            }
            // A segment that only contains an instance ID is not one.
            let key = "nginx/i-0aaaaaaaaaaaaaaaa/access/i-0bbbbbbbbbbbbbbbb.log";
            assert!(router.route(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn custom_templates_and_groups() {
        let r = Router::new(
            r"^(?P<env>[a-z]+)/(?P<instance_id>i-[0-9a-f]+)/(?P<log_type>\w+)/",
            "/nginx/{env}/{log_type}",
            "{instance_id}-{env}",
        )
        .unwrap();
        let got = r.route("prod/i-0abc1234/access/x.gz").unwrap();
        assert_eq!(got.log_group, "/nginx/prod/access");
        assert_eq!(got.log_stream, "i-0abc1234-prod");
        assert!(matches!(
            r.route("prod/i-0abc1234/debug/x"),
            Err(RouteError::UnknownLogType { .. })
        ));
    }

    #[test]
    fn rendered_names_are_validated() {
        let r = Router::new(
            r"(?P<instance_id>[^/]+)/(?P<log_type>access)/",
            "nginx-{log_type}",
            "{instance_id}",
        )
        .unwrap();
        assert!(matches!(
            r.route("a:b/access/x"),
            Err(RouteError::BadName {
                what: "log stream",
                ..
            })
        ));
        let r = Router::new(
            r"(?P<instance_id>[^/]+)/(?P<log_type>access)/",
            "nginx {instance_id}",
            "{instance_id}",
        )
        .unwrap();
        assert!(matches!(
            r.route("i-1/access/x"),
            Err(RouteError::BadName {
                what: "log group",
                ..
            })
        ));
    }

    #[test]
    fn bad_configuration_names_the_variable() {
        let cases = [
            ("(", "x", "y", "KEY_PATTERN"),
            ("(?P<instance_id>x)", "x", "y", "KEY_PATTERN"),
            (
                DEFAULT_KEY_PATTERN,
                "nginx-{nope}",
                "y",
                "LOG_GROUP_TEMPLATE",
            ),
            (
                DEFAULT_KEY_PATTERN,
                "nginx-{log_type",
                "y",
                "LOG_GROUP_TEMPLATE",
            ),
            (
                DEFAULT_KEY_PATTERN,
                "nginx",
                "{instance_id}}",
                "LOG_STREAM_TEMPLATE",
            ),
        ];
        for (p, g, s, var) in cases {
            assert_eq!(Router::new(p, g, s).unwrap_err().0, var, "{p} {g} {s}");
        }
    }
}
