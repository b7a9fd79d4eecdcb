//! CloudWatch Contributor Insights rules for JSON logs (`CloudWatchLogRule` version 1,
//! `LogFormat: JSON`), evaluated on messages the way AWS's rule syntax page documents them:
//! `Keys` (1 to 4 JSON paths; each distinct combination of their values is a contributor),
//! optional `ValueOf` with `AggregateOn: Sum`, and up to 4 `Filters`, all of which must hold:
//! `In`, `NotIn`, `StartsWith` (a list of up to 10 strings, any of which may match),
//! `GreaterThan`, `LessThan`, `EqualTo`, `NotEqualTo` (one number), `IsPresent` (a boolean).
//! Matching is case-sensitive. Paths are read with [`super::filter_pattern::select`].
//! moto has no Contributor Insights, so the template's rules are checked with this, itself
//! checked against AWS's documented example.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/ContributorInsights-RuleSyntax.html>
//!
//! Where the page says nothing, this evaluator chooses, and says so: an event lacking a key or
//! the `ValueOf` number is not counted; the string operators match string fields only and the
//! number operators number fields only (a missing or other-typed field matches no operator but
//! `IsPresent: false`); a key's value is the string itself, or the JSON text of anything else.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::filter_pattern::select;

/// `RuleDefinition`: 1 to 8192 characters, `[\x00-\x7F]+`.
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutInsightRule.html>
pub const MAX_DEFINITION_CHARS: usize = 8192;
/// `Keys`: "as many as four members"; `Filters`: "as many as four" (the rule syntax page).
pub const MAX_KEYS: usize = 4;
pub const MAX_FILTERS: usize = 4;
/// `In`, `NotIn`, `StartsWith`: "as many as 10 string values" (the rule syntax page).
pub const MAX_STRING_VALUES: usize = 10;

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub log_group_names: Vec<String>,
    pub keys: Vec<String>,
    /// `Some` exactly when `AggregateOn` is `Sum`.
    pub value_of: Option<String>,
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub path: String,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    In(Vec<String>),
    NotIn(Vec<String>),
    StartsWith(Vec<String>),
    GreaterThan(f64),
    LessThan(f64),
    EqualTo(f64),
    NotEqualTo(f64),
    IsPresent(bool),
}

/// Parses a rule definition, refusing what the syntax page does not allow.
pub fn parse(definition: &str) -> Result<Rule, String> {
    if definition.is_empty() || definition.chars().count() > MAX_DEFINITION_CHARS {
        return Err(format!(
            "a definition has 1 to {MAX_DEFINITION_CHARS} characters"
        ));
    }
    if !definition.is_ascii() {
        return Err("a definition is ASCII".into());
    }
    let v: Value = serde_json::from_str(definition).map_err(|e| format!("not JSON: {e}"))?;
    let top = v.as_object().ok_or("not a JSON object")?;
    only(
        top,
        &[
            "Schema",
            "LogGroupNames",
            "LogFormat",
            "Contribution",
            "AggregateOn",
        ],
    )?;
    if top.get("Schema") != Some(&serde_json::json!({"Name": "CloudWatchLogRule", "Version": 1})) {
        return Err(r#"Schema is {"Name": "CloudWatchLogRule", "Version": 1}"#.into());
    }
    if top.get("LogFormat") != Some(&Value::from("JSON")) {
        return Err("LogFormat: only JSON is evaluated here".into());
    }
    let log_group_names = strings(top.get("LogGroupNames"), "LogGroupNames", usize::MAX)?;
    let c = top
        .get("Contribution")
        .and_then(Value::as_object)
        .ok_or("no Contribution object")?;
    only(c, &["Keys", "ValueOf", "Filters"])?;
    let keys = strings(c.get("Keys"), "Keys", MAX_KEYS)?;
    let value_of = match (
        top.get("AggregateOn").and_then(Value::as_str),
        c.get("ValueOf"),
    ) {
        (Some("Count"), None) => None,
        (Some("Sum"), Some(Value::String(p))) => Some(p.clone()),
        (a, v) => return Err(format!("AggregateOn {a:?} with ValueOf {v:?}")),
    };
    let filters = match c.get("Filters") {
        None => Vec::new(),
        Some(Value::Array(fs)) if fs.len() <= MAX_FILTERS => {
            fs.iter().map(filter).collect::<Result<_, _>>()?
        }
        Some(other) => return Err(format!("Filters: up to {MAX_FILTERS}: {other}")),
    };
    for p in keys
        .iter()
        .chain(&value_of)
        .chain(filters.iter().map(|f| &f.path))
    {
        if !p.starts_with("$.") {
            return Err(format!("{p}: a JSON path ($.name)"));
        }
    }
    Ok(Rule {
        log_group_names,
        keys,
        value_of,
        filters,
    })
}

fn only(o: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("unknown field {k}")),
        None => Ok(()),
    }
}

/// A non-empty list of at most `max` strings.
fn strings(v: Option<&Value>, what: &str, max: usize) -> Result<Vec<String>, String> {
    let list = v
        .and_then(Value::as_array)
        .ok_or(format!("{what}: a list"))?;
    if list.is_empty() || list.len() > max {
        return Err(format!("{what}: 1 to {max} values"));
    }
    list.iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or(format!("{what}: strings only: {s}"))
        })
        .collect()
}

fn filter(v: &Value) -> Result<Filter, String> {
    let o = v.as_object().ok_or("a filter is an object")?;
    let path = o
        .get("Match")
        .and_then(Value::as_str)
        .ok_or("a filter has a Match path")?
        .to_string();
    let ops: Vec<(&String, &Value)> = o.iter().filter(|(k, _)| *k != "Match").collect();
    let [(op, arg)] = ops[..] else {
        return Err(format!("a filter has one operator: {v}"));
    };
    let number = || arg.as_f64().ok_or(format!("{op} takes a number: {v}"));
    let list = || strings(Some(arg), op, MAX_STRING_VALUES);
    let test = match op.as_str() {
        "In" => Test::In(list()?),
        "NotIn" => Test::NotIn(list()?),
        "StartsWith" => Test::StartsWith(list()?),
        "GreaterThan" => Test::GreaterThan(number()?),
        "LessThan" => Test::LessThan(number()?),
        "EqualTo" => Test::EqualTo(number()?),
        "NotEqualTo" => Test::NotEqualTo(number()?),
        "IsPresent" => Test::IsPresent(
            arg.as_bool()
                .ok_or(format!("IsPresent takes a boolean: {v}"))?,
        ),
        other => return Err(format!("unknown operator {other}")),
    };
    Ok(Filter { path, test })
}

impl Filter {
    pub fn holds(&self, message: &Value) -> bool {
        let field = select(message, &self.path);
        let (text, number) = match field {
            Some(Value::String(s)) => (Some(s.as_str()), None),
            Some(Value::Number(n)) => (None, n.as_f64()),
            _ => (None, None),
        };
        match &self.test {
            Test::IsPresent(want) => field.is_some() == *want,
            Test::In(vs) => text.is_some_and(|t| vs.iter().any(|v| v == t)),
            Test::NotIn(vs) => text.is_some_and(|t| vs.iter().all(|v| v != t)),
            Test::StartsWith(vs) => {
                text.is_some_and(|t| vs.iter().any(|v| t.starts_with(v.as_str())))
            }
            Test::GreaterThan(n) => number.is_some_and(|f| f > *n),
            Test::LessThan(n) => number.is_some_and(|f| f < *n),
            Test::EqualTo(n) => number.is_some_and(|f| f == *n),
            Test::NotEqualTo(n) => number.is_some_and(|f| f != *n),
        }
    }
}

impl Rule {
    /// What one event contributes: its key values and 1 (Count) or its `ValueOf` (Sum); `None`
    /// when a filter fails or a key or the value is missing.
    pub fn contribution(&self, message: &Value) -> Option<(Vec<String>, f64)> {
        if !self.filters.iter().all(|f| f.holds(message)) {
            return None;
        }
        let key = self
            .keys
            .iter()
            .map(|k| {
                select(message, k).map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            })
            .collect::<Option<Vec<String>>>()?;
        let value = match &self.value_of {
            None => 1.0,
            Some(p) => select(message, p)?.as_f64()?,
        };
        Some((key, value))
    }

    /// Every contributor over `messages` and its count or sum.
    pub fn contributions(&self, messages: &[Value]) -> BTreeMap<Vec<String>, f64> {
        let mut out = BTreeMap::new();
        for (key, value) in messages.iter().filter_map(|m| self.contribution(m)) {
            *out.entry(key).or_default() += value;
        }
        out
    }

    /// The `n` largest contributors, largest first (ties by key).
    pub fn top(&self, messages: &[Value], n: usize) -> Vec<(Vec<String>, f64)> {
        let mut all: Vec<(Vec<String>, f64)> = self.contributions(messages).into_iter().collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// How many events match the rule: what Contributor Insights bills.
    pub fn matched(&self, messages: &[Value]) -> usize {
        messages
            .iter()
            .filter(|m| self.contribution(m).is_some())
            .count()
    }
}
