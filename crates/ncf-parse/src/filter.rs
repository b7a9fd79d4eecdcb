//! `FILTER_RULES`: lines not worth their ingestion, dropped (or sampled) before sending, each
//! counted by the rule that took it. Rules are evaluated on the parsed fields, in order; the
//! first rule whose conditions all hold decides. A line that did not parse is never taken by a
//! rule. Sampling is decided by a hash of the object and the line number, so that a retry or a
//! resume of the object decides the same for every line (exactly-once holds).
//!
//! ```json
//! [{"name": "health", "when": {"request_uri": {"matches": "^/(healthz|ping)$"}}},
//!  {"name": "static", "when": {"request_uri": {"matches": "\\.(js|css|png)$"}, "status": {"between": [200, 399]}}, "keep": 0.1},
//!  {"name": "chatter", "log": "error", "when": {"level": {"in": ["debug", "info", "notice"]}}}]
//! ```

use regex::Regex;
use serde::Deserialize;

use crate::names::LogKind;

/// What a rule did to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filtered {
    /// Index of the rule in `FILTER_RULES`.
    pub rule: u16,
    /// Left out by the rule's sample (`keep` < 1), not dropped outright.
    pub sampled: bool,
}

/// The compiled `FILTER_RULES`.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    kind: LogKind,
    when: Vec<(String, Condition)>,
    /// Lines kept per 2^32 (`keep` × 2^32): 0 drops all.
    keep: u64,
}

#[derive(Debug, Clone)]
enum Condition {
    Matches(Regex),
    Contains(String),
    Equals(String),
    In(Vec<String>),
    Between(f64, f64),
}

impl Condition {
    fn holds(&self, value: &str) -> bool {
        match self {
            Self::Matches(re) => re.is_match(value),
            Self::Contains(s) => value.contains(s.as_str()),
            Self::Equals(s) => value == s,
            Self::In(list) => list.iter().any(|s| s == value),
            Self::Between(lo, hi) => value.parse::<f64>().is_ok_and(|v| (*lo..=*hi).contains(&v)),
        }
    }
}

/// A rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    #[serde(default)]
    log: Option<String>,
    when: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    keep: Option<f64>,
}

/// One condition as written: exactly one of these.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionSpec {
    matches: Option<String>,
    contains: Option<String>,
    equals: Option<serde_json::Value>,
    #[serde(rename = "in")]
    any_of: Option<Vec<serde_json::Value>>,
    between: Option<(f64, f64)>,
}

/// A JSON scalar as the text a field would hold (`200` and `"200"` are the same).
fn scalar_text(v: &serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("{other} is not a string or a number")),
    }
}

impl Rule {
    /// One rule as written, compiled; `fields(kind)` lists the field names its log's messages
    /// have.
    fn compile(spec: RuleSpec, fields: &dyn Fn(LogKind) -> Vec<String>) -> Result<Self, String> {
        let kind = match spec.log.as_deref() {
            None | Some("access") => LogKind::Access,
            Some("error") => LogKind::Error,
            Some(other) => return Err(format!("log {other:?}: expected access or error")),
        };
        let keep = match spec.keep {
            None => 0,
            Some(k) if (0.0..1.0).contains(&k) => (k * f64::from(u32::MAX)) as u64,
            Some(k) => {
                return Err(format!(
                    "keep {k}: a fraction from 0 (drop all, as without keep) to below 1"
                ));
            }
        };
        if spec.when.is_empty() {
            return Err(
                "\"when\" names no field (a rule for every line would drop them all)".into(),
            );
        }
        let known = fields(kind);
        let mut when = Vec::new();
        for (field, cond) in spec.when {
            if !known.contains(&field) {
                return Err(format!(
                    "{field:?} is not a field of the {} log's messages (they have: {})",
                    if kind == LogKind::Access {
                        "access"
                    } else {
                        "error"
                    },
                    known.join(", ")
                ));
            }
            let condition = ConditionSpec::compile(cond).map_err(|e| format!("{field}: {e}"))?;
            when.push((field, condition));
        }
        Ok(Rule {
            name: spec.name,
            kind,
            when,
            keep,
        })
    }
}

impl ConditionSpec {
    /// A field's condition as written (`{"matches": "^/ping$"}`), compiled.
    fn compile(cond: serde_json::Value) -> Result<Condition, String> {
        let spec: Self = serde_json::from_value(cond)
            .map_err(|e| format!("{e} (expected one of matches, contains, equals, in, between)"))?;
        Ok(match spec {
            ConditionSpec {
                matches: Some(re),
                contains: None,
                equals: None,
                any_of: None,
                between: None,
            } => Condition::Matches(Regex::new(&re).map_err(|e| format!("bad regex: {e}"))?),
            ConditionSpec {
                matches: None,
                contains: Some(s),
                equals: None,
                any_of: None,
                between: None,
            } => Condition::Contains(s),
            ConditionSpec {
                matches: None,
                contains: None,
                equals: Some(v),
                any_of: None,
                between: None,
            } => Condition::Equals(scalar_text(&v).map_err(|e| format!("equals {e}"))?),
            ConditionSpec {
                matches: None,
                contains: None,
                equals: None,
                any_of: Some(list),
                between: None,
            } => {
                let list = list.iter().map(scalar_text).collect::<Result<_, _>>();
                Condition::In(list.map_err(|e| format!("in: {e}"))?)
            }
            ConditionSpec {
                matches: None,
                contains: None,
                equals: None,
                any_of: None,
                between: Some((lo, hi)),
            } => {
                if lo > hi {
                    return Err(format!("between [{lo}, {hi}] is empty"));
                }
                Condition::Between(lo, hi)
            }
            _ => return Err("exactly one of matches, contains, equals, in, between".into()),
        })
    }
}

impl Rules {
    /// Compiles `FILTER_RULES` (a JSON array). `fields(kind)` lists the field names a rule for
    /// that log may name. Each error names the rule.
    pub fn parse(text: &str, fields: impl Fn(LogKind) -> Vec<String>) -> Result<Self, String> {
        let specs: Vec<RuleSpec> = serde_json::from_str(text).map_err(|e| {
            format!("not a JSON array of rules ({{\"name\", \"when\", \"keep\"?, \"log\"?}}): {e}")
        })?;
        if specs.len() > usize::from(u16::MAX) {
            return Err("too many rules".into());
        }
        let mut rules: Vec<Rule> = Vec::new();
        for spec in specs {
            let name = spec.name.clone();
            if name.trim().is_empty() || rules.iter().any(|r| r.name == name) {
                return Err(format!("rule {name:?}: every rule needs a name of its own"));
            }
            rules.push(Rule::compile(spec, &fields).map_err(|e| format!("rule {name:?}: {e}"))?);
        }
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when some rule applies to `kind`.
    #[inline]
    pub fn any_for(&self, kind: LogKind) -> bool {
        self.rules.iter().any(|r| r.kind == kind)
    }

    /// The rules' names, by index.
    pub fn names(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.name.clone()).collect()
    }

    /// What the rules do to a line of `kind` whose fields `value` gives (`None`: the line does
    /// not have it, e.g. nginx's `-`). `seed` and `line` make the sample's decision.
    pub fn decide<'v>(
        &self,
        kind: LogKind,
        value: impl Fn(&str) -> Option<&'v str>,
        seed: u64,
        line: u64,
    ) -> Option<Filtered> {
        let (i, rule) = self.rules.iter().enumerate().find(|(_, r)| {
            r.kind == kind
                && r.when
                    .iter()
                    .all(|(field, c)| value(field).is_some_and(|v| c.holds(v)))
        })?;
        let rule_index = u16::try_from(i).unwrap_or(u16::MAX);
        if rule.keep == 0 {
            return Some(Filtered {
                rule: rule_index,
                sampled: false,
            });
        }
        let kept = sample_point(seed, line) < rule.keep;
        (!kept).then_some(Filtered {
            rule: rule_index,
            sampled: true,
        })
    }
}

/// FNV-1a: a hash that stays the same across builds and versions (the sample must not change
/// between a delivery and its resume).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// A line's place in [0, 2^32): FNV-1a of the object's seed and the line number.
fn sample_point(seed: u64, line: u64) -> u64 {
    let h = fnv1a(seed, line.to_le_bytes());
    // Fold to 32 bits: the low bits of FNV mix poorly on their own.
    (h ^ (h >> 32)) & 0xffff_ffff
}

/// The seed of an object's sample: FNV-1a of its bucket and key.
pub fn object_seed(bucket: &str, key: &str) -> u64 {
    fnv1a(FNV_OFFSET, bucket.bytes().chain([b'/']).chain(key.bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(kind: LogKind) -> Vec<String> {
        match kind {
            LogKind::Access => ["request_uri", "status", "http_user_agent", "remote_addr"],
            LogKind::Error => ["level", "message", "client", "server"],
        }
        .map(String::from)
        .to_vec()
    }

    fn rules(text: &str) -> Rules {
        Rules::parse(text, fields).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_first_rule_that_holds_decides() {
        let r = rules(
            r#"[{"name": "health", "when": {"request_uri": {"matches": "^/(healthz|ping)$"}}},
                {"name": "elb", "when": {"http_user_agent": {"contains": "ELB-HealthChecker"}}},
                {"name": "teapot", "when": {"status": {"equals": 418}}},
                {"name": "redirects", "when": {"status": {"between": [300, 399]}, "request_uri": {"in": ["/a", "/b"]}}},
                {"name": "debug", "log": "error", "when": {"level": {"in": ["debug", "info"]}}}]"#,
        );
        let access = |uri: &'static str, status: &'static str, ua: Option<&'static str>| {
            r.decide(
                LogKind::Access,
                move |f| match f {
                    "request_uri" => Some(uri),
                    "status" => Some(status),
                    "http_user_agent" => ua,
                    _ => None,
                },
                1,
                1,
            )
            .map(|f| f.rule)
        };
        assert_eq!(
            access("/healthz", "200", Some("ELB-HealthChecker/2.0")),
            Some(0)
        );
        assert_eq!(access("/x", "200", Some("ELB-HealthChecker/2.0")), Some(1));
        assert_eq!(access("/x", "418", None), Some(2));
        assert_eq!(access("/a", "301", None), Some(3));
        assert_eq!(access("/a", "200", None), None);
        assert_eq!(access("/c", "301", None), None);
        assert_eq!(access("/healthz/deep", "200", None), None);
        // Error rules do not see access lines, and the other way round.
        let error = |level: &'static str| {
            r.decide(
                LogKind::Error,
                move |f| (f == "level").then_some(level),
                1,
                1,
            )
            .map(|f| f.rule)
        };
        assert_eq!((error("info"), error("error")), (Some(4), None));
    }

    #[test]
    fn a_sample_keeps_about_its_fraction_and_decides_the_same_every_time() {
        let r = rules(
            r#"[{"name": "static", "when": {"request_uri": {"contains": ".js"}}, "keep": 0.1}]"#,
        );
        let decide = |seed, line| r.decide(LogKind::Access, |_| Some("/app.js"), seed, line);
        let seed = object_seed("logs", "nginx/i-0abc/access/2026/11/24/a.gz");
        let kept = (1..=100_000).filter(|&l| decide(seed, l).is_none()).count();
        assert!((9_500..=10_500).contains(&kept), "kept {kept} of 100000");
        for line in 1..=1000 {
            assert_eq!(decide(seed, line), decide(seed, line));
        }
        // Another object samples other lines.
        let other = object_seed("logs", "nginx/i-0abc/access/2026/11/24/b.gz");
        assert!((1..=1000).any(|l| decide(seed, l).is_none() != decide(other, l).is_none()));
        assert!(decide(seed, 7).is_none_or(|f| f.sampled));
    }

    #[test]
    fn bad_rules_stop_start_up_naming_the_rule() {
        for (text, says) in [
            ("{}", "not a JSON array"),
            (
                r#"[{"name": "x", "when": {"request_url": {"contains": "a"}}}]"#,
                r#"rule "x": "request_url" is not a field"#,
            ),
            (
                r#"[{"name": "x", "when": {"request_uri": {"matches": "(unclosed"}}}]"#,
                "bad regex",
            ),
            (
                r#"[{"name": "x", "when": {"request_uri": {"contains": "a", "equals": "b"}}}]"#,
                "exactly one of",
            ),
            (
                r#"[{"name": "x", "when": {"request_uri": {"like": "a"}}}]"#,
                "unknown field `like`",
            ),
            (
                r#"[{"name": "x", "when": {"status": {"between": [500, 400]}}}]"#,
                "is empty",
            ),
            (
                r#"[{"name": "x", "when": {"status": {"equals": 1}}, "keep": 1.5}]"#,
                "keep 1.5",
            ),
            (r#"[{"name": "x", "when": {}}]"#, "names no field"),
            (
                r#"[{"name": "x", "log": "debug", "when": {"level": {"equals": "x"}}}]"#,
                "expected access or error",
            ),
            (
                r#"[{"name": "x", "log": "error", "when": {"status": {"equals": 1}}}]"#,
                "not a field of the error log",
            ),
            (
                r#"[{"name": "x", "when": {"status": {"equals": 1}}}, {"name": "x", "when": {"status": {"equals": 2}}}]"#,
                "a name of its own",
            ),
        ] {
            let e = Rules::parse(text, fields).expect_err(text);
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
