//! The typed readers every setting goes through, the Lambda's variables and the follower's
//! flags and variables alike: one reader per kind of value, each error naming the setting
//! (the variable, or the flag that was given) and the value as given.

use std::ops::RangeInclusive;
use std::time::Duration;

/// A setting that is not valid: which one, its value as given, and what it must be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name}={value:?}: {reason}")]
pub struct SettingError {
    /// The variable, or the flag (`--interval`) when the flag was given.
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl SettingError {
    pub fn new(name: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            name,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// One setting as given: its name and its value (non-empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub name: &'static str,
    pub value: String,
}

impl Given {
    fn invalid(&self, reason: impl Into<String>) -> SettingError {
        SettingError::new(self.name, &self.value, reason)
    }
}

/// A lookup of variables where an empty value counts as unset. The Lambda's counts a value of
/// spaces as empty too (SAM passes unset parameters so); the follower's only `""`, as it
/// always did.
pub struct Vars<F> {
    get: F,
    blank_is_unset: bool,
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// The Lambda's: empty or only spaces is unset.
    pub fn lambda(get: F) -> Self {
        Self {
            get,
            blank_is_unset: true,
        }
    }

    /// The follower's: only `""` is unset.
    pub fn follower(get: F) -> Self {
        Self {
            get,
            blank_is_unset: false,
        }
    }

    /// `name`'s value when set.
    pub fn get(&self, name: &'static str) -> Option<Given> {
        let value = (self.get)(name)?;
        let empty = if self.blank_is_unset {
            value.trim().is_empty()
        } else {
            value.is_empty()
        };
        (!empty).then_some(Given { name, value })
    }

    /// `name`'s value exactly as the lookup has it (set but empty included).
    pub fn raw(&self, name: &str) -> Option<String> {
        (self.get)(name)
    }

    /// The flag's value when given (as `--flag`), else the variable's: flags win.
    pub fn flag_or(
        &self,
        flag: Option<&str>,
        flag_name: &'static str,
        var: &'static str,
    ) -> Option<Given> {
        match flag {
            Some(v) => Some(Given {
                name: flag_name,
                value: v.to_string(),
            }),
            None => self.get(var),
        }
    }
}

/// Text, as given (`None`: unset).
pub fn text(given: Option<Given>) -> Option<String> {
    given.map(|g| g.value)
}

/// `true`/`1`/`yes` or `false`/`0`/`no`, any case, spaces around ignored.
pub fn boolean(given: Option<Given>) -> Result<Option<bool>, SettingError> {
    let Some(g) = given else { return Ok(None) };
    match g.value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(Some(true)),
        "false" | "0" | "no" => Ok(Some(false)),
        _ => Err(g.invalid("must be true or false")),
    }
}

/// A whole number within `range`, spaces around ignored; `what` names it in the error
/// ("must be {what} from {start} to {end}": "a whole number", "a number of bytes" …).
pub fn number(
    given: Option<Given>,
    range: RangeInclusive<u64>,
    what: &str,
) -> Result<Option<u64>, SettingError> {
    let Some(g) = given else { return Ok(None) };
    match g.value.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(g.invalid(format!(
            "must be {what} from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

/// A duration: a whole number within `range` of the unit `unit` makes.
pub fn duration(
    given: Option<Given>,
    range: RangeInclusive<u64>,
    what: &str,
    unit: fn(u64) -> Duration,
) -> Result<Option<Duration>, SettingError> {
    Ok(number(given, range, what)?.map(unit))
}

/// One of a list of numbers (spaces around ignored).
pub fn member(given: Option<Given>, allowed: &[i32]) -> Result<Option<i32>, SettingError> {
    let Some(g) = given else { return Ok(None) };
    match g.value.trim().parse::<i32>() {
        Ok(n) if allowed.contains(&n) => Ok(Some(n)),
        _ => Err(g.invalid(format!("must be one of {allowed:?}"))),
    }
}

/// Whether [`choice`] tells `STANDARD` from `standard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Exact,
    Any,
}

/// One of the named choices (spaces around ignored); the error lists them.
pub fn choice<T: Copy>(
    given: Option<Given>,
    choices: &[(&str, T)],
    case: Case,
) -> Result<Option<T>, SettingError> {
    let Some(g) = given else { return Ok(None) };
    let v = g.value.trim();
    let found = choices.iter().find(|(name, _)| match case {
        Case::Exact => *name == v,
        Case::Any => name.eq_ignore_ascii_case(v),
    });
    match found {
        Some((_, value)) => Ok(Some(*value)),
        None => {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            let list = match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => {
                    format!("{} or {last}", rest.join(", "))
                }
                _ => names.join(""),
            };
            Err(g.invalid(format!("must be {list}")))
        }
    }
}

/// A value of a kind with its own parser (a regex, a format, a JSON list …): the parser's
/// error becomes the reason.
pub fn parsed<T, E: std::fmt::Display>(
    given: Option<Given>,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, SettingError> {
    let Some(g) = given else { return Ok(None) };
    parse(&g.value)
        .map(Some)
        .map_err(|e| g.invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(value: &str) -> Option<Given> {
        Some(Given {
            name: "X",
            value: value.into(),
        })
    }

    fn reason<T: std::fmt::Debug>(r: Result<Option<T>, SettingError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.name, "X");
        e.reason
    }

    #[test]
    fn unset_is_none_for_every_reader() {
        assert_eq!(boolean(None), Ok(None));
        assert_eq!(number(None, 1..=2, "n"), Ok(None));
        assert_eq!(member(None, &[1]), Ok(None));
        assert_eq!(choice(None, &[("a", 1)], Case::Exact), Ok(None));
        assert_eq!(parsed(None, |v| v.parse::<u8>()), Ok(None));
        assert_eq!(text(None), None);
    }

    #[test]
    fn each_reader_reads_and_refuses() {
        assert_eq!(boolean(given(" YES ")), Ok(Some(true)));
        assert_eq!(boolean(given("0")), Ok(Some(false)));
        assert_eq!(reason(boolean(given("maybe"))), "must be true or false");
        assert_eq!(number(given(" 64"), 1..=64, "a whole number"), Ok(Some(64)));
        assert_eq!(
            reason(number(given("65"), 1..=64, "a whole number")),
            "must be a whole number from 1 to 64"
        );
        assert_eq!(
            reason(number(given("-1"), 0..=9, "a number of bytes")),
            "must be a number of bytes from 0 to 9"
        );
        assert_eq!(
            duration(given("250"), 0..=600_000, "n", Duration::from_millis),
            Ok(Some(Duration::from_millis(250)))
        );
        assert_eq!(member(given("30"), &[1, 30]), Ok(Some(30)));
        assert_eq!(
            reason(member(given("31"), &[1, 30])),
            "must be one of [1, 30]"
        );
        let kinds = [("s3", 1), ("none", 2)];
        assert_eq!(choice(given(" none "), &kinds, Case::Exact), Ok(Some(2)));
        assert_eq!(
            reason(choice(given("NONE"), &kinds, Case::Exact)),
            "must be s3 or none"
        );
        assert_eq!(choice(given("NONE"), &kinds, Case::Any), Ok(Some(2)));
        assert_eq!(
            reason(choice(
                given("x"),
                &[("a", 1), ("b", 2), ("c", 3)],
                Case::Any
            )),
            "must be a, b or c"
        );
        assert_eq!(
            reason(parsed(given("x"), |v| v.parse::<u8>())),
            "invalid digit found in string"
        );
    }

    #[test]
    fn lookups_and_flags() {
        let get = |n: &str| match n {
            "EMPTY" => Some(String::new()),
            "SPACES" => Some("  ".into()),
            "SET" => Some("v".into()),
            _ => None,
        };
        let lambda = Vars::lambda(get);
        assert_eq!(lambda.get("EMPTY"), None);
        assert_eq!(lambda.get("SPACES"), None);
        assert_eq!(lambda.get("UNSET"), None);
        let follower = Vars::follower(get);
        assert_eq!(follower.get("EMPTY"), None);
        assert_eq!(follower.get("SPACES").map(|g| g.value), Some("  ".into()));
        assert_eq!(follower.raw("EMPTY"), Some(String::new()));
        let given = follower.flag_or(Some("5"), "--interval", "SET").unwrap();
        assert_eq!((given.name, given.value.as_str()), ("--interval", "5"));
        let given = follower.flag_or(None, "--interval", "SET").unwrap();
        assert_eq!((given.name, given.value.as_str()), ("SET", "v"));
        let e = SettingError::new("--interval", "0", "must be …");
        assert_eq!(e.to_string(), r#"--interval="0": must be …"#);
    }
}
