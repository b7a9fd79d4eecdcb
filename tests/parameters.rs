//! Every setting the function reads can be set through the stack: each variable of
//! [`FORWARDER_VARS`] (the list `Config::from_lookup` is checked against) is set in
//! template.yaml's function environment from a parameter, and the configuration reference
//! (docs/configuration.md) has a row for it naming that parameter (or saying it is fixed, and
//! why). The template's defaults configure the function as the code's defaults do, and every
//! parameter is named in the reference. (Text checks on the two files: no YAML parser knows
//! CloudFormation's tags.)

mod common;

use std::collections::{BTreeMap, BTreeSet};

use nginx_cloudwatch_forwarder::config::{Config, FORWARDER_VARS};

/// The configuration reference.
const REFERENCE: &str = "docs/configuration.md";

/// Read by the Lambda runtime's tracing, not by `Config`: the log level.
const RUNTIME_VARS: [&str; 2] = ["AWS_LAMBDA_LOG_LEVEL", "RUST_LOG"];

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", common::MANIFEST_DIR))
        .unwrap_or_else(|e| panic!("read {name}: {e}"))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// template.yaml's parameters and their defaults (unquoted; empty when none).
fn parameters(template: &str) -> BTreeMap<String, String> {
    let start = template
        .find("\nParameters:\n")
        .expect("a Parameters section");
    let end = template[start..]
        .find("\nRules:\n")
        .expect("Rules after it")
        + start;
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in template[start..end].lines().skip(2) {
        if indent(line) == 2 && line.trim_end().ends_with(':') {
            let name = line.trim().trim_end_matches(':').to_string();
            out.insert(name.clone(), String::new());
            current = Some(name);
        } else if let (Some(name), Some(d)) = (&current, line.trim().strip_prefix("Default: ")) {
            out.insert(name.clone(), d.trim_matches('"').to_string());
        }
    }
    out
}

/// The function's environment variables as written in template.yaml: name → value text
/// (continuation lines included).
fn environment(template: &str) -> BTreeMap<String, String> {
    let marker = "      Environment:\n        Variables:\n";
    let start = template.find(marker).expect("the function's Environment") + marker.len();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in template[start..].lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match indent(line) {
            i if i < 10 => break,
            10 => {
                let (name, value) = trimmed.split_once(':').expect("NAME: value");
                out.insert(name.to_string(), value.trim().to_string());
                current = Some(name.to_string());
            }
            _ => {
                let name = current.as_ref().expect("a continuation of a variable");
                let value = out.get_mut(name).expect("its value");
                value.push(' ');
                value.push_str(trimmed);
            }
        }
    }
    out
}

/// The parameters a value text refers to (`!Ref P`, `${P}`).
fn referenced(value: &str, params: &BTreeMap<String, String>) -> BTreeSet<String> {
    let words: Vec<&str> = value
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '!'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut out = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        let by_ref = i > 0 && words[i - 1] == "!Ref";
        let by_sub = value.contains(&format!("${{{w}}}"));
        if (by_ref || by_sub) && params.contains_key(*w) {
            out.insert((*w).to_string());
        }
    }
    out
}

/// Words between backquotes.
fn quoted(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The reference's table of the function's environment: its rows' cells (variable, parameter,
/// meaning, default, example), split on `|` but not on `\|`.
fn reference_rows(readme: &str) -> Vec<Vec<String>> {
    let start = readme
        .find("\n## The function's environment\n")
        .expect("a section on the function's environment");
    let end = readme[start + 1..]
        .find("\n## ")
        .expect("a section after it")
        + start
        + 1;
    let section = &readme[start..end];
    assert!(
        section.contains("| variable | template parameter |"),
        "the reference has a parameter column"
    );
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let mut cells = vec![String::new()];
            let mut escaped = false;
            for c in l.chars() {
                if c == '|' && !escaped {
                    cells.push(String::new());
                } else if let Some(cell) = cells.last_mut() {
                    cell.push(c);
                }
                escaped = c == '\\';
            }
            cells[1..cells.len() - 1]
                .iter()
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn every_setting_the_function_reads_is_a_parameter_of_the_stack_and_in_the_reference() {
    let template = read("template.yaml");
    let readme = read(REFERENCE);
    let params = parameters(&template);
    let env = environment(&template);
    let rows = reference_rows(&readme);
    let mut problems = Vec::new();

    for var in FORWARDER_VARS {
        let row: Vec<&Vec<String>> = rows
            .iter()
            .filter(|r| quoted(&r[0]).contains(var))
            .collect();
        let [row] = row[..] else {
            problems.push(format!("{var}: {} rows in {REFERENCE}, not 1", row.len()));
            continue;
        };
        let cell = &row[1];
        let named = quoted(cell);
        match env.get(var) {
            None if cell.starts_with("fixed") => {}
            None => problems.push(format!(
                "{var}: not set in template.yaml's function environment, and {REFERENCE} does not say it is fixed"
            )),
            Some(value) => {
                let refs = referenced(value, &params);
                if refs.is_empty() && !cell.starts_with("fixed") {
                    problems.push(format!(
                        "{var}: set to {value} in template.yaml, from no parameter, and {REFERENCE} does not say it is fixed"
                    ));
                }
                for p in refs.difference(&named) {
                    problems.push(format!(
                        "{var}: template.yaml sets it from {p}, {REFERENCE} does not name `{p}`: {cell:?}"
                    ));
                }
            }
        }
        for p in named
            .iter()
            .filter(|w| w.chars().next().is_some_and(char::is_uppercase))
        {
            if !params.contains_key(p) && !p.starts_with("AWS_") && !p.starts_with("RUST_") {
                problems.push(format!(
                    "{var}: {REFERENCE} names `{p}`, which is no parameter"
                ));
            }
        }
    }
    for var in env.keys() {
        if !FORWARDER_VARS.contains(&var.as_str()) {
            problems.push(format!(
                "template.yaml sets {var}, which the function does not read"
            ));
        }
    }
    for row in &rows {
        for var in quoted(&row[0]) {
            if !FORWARDER_VARS.contains(&var.as_str()) && !RUNTIME_VARS.contains(&var.as_str()) {
                problems.push(format!(
                    "{REFERENCE} has {var}, which the function does not read"
                ));
            }
        }
    }
    // The log level: a parameter through Lambda's ApplicationLogLevel, RUST_LOG not set.
    if !template.contains("ApplicationLogLevel: !Ref LogLevel") {
        problems.push("ApplicationLogLevel is not the LogLevel parameter".into());
    }
    let level_row = rows
        .iter()
        .find(|r| quoted(&r[0]).contains("AWS_LAMBDA_LOG_LEVEL"));
    if !level_row.is_some_and(|r| quoted(&r[1]).contains("LogLevel")) {
        problems.push(format!(
            "{REFERENCE} does not give LogLevel for the log level"
        ));
    }
    for var in RUNTIME_VARS {
        if env.contains_key(var) {
            problems.push(format!(
                "template.yaml sets {var}: LogLevel decides the level"
            ));
        }
    }
    // Every parameter is named in the reference.
    for p in params.keys() {
        if !readme.contains(&format!("`{p}`")) {
            problems.push(format!("parameter {p} is not named in {REFERENCE}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A stack deployed with the defaults configures the function as no variable at all does
/// (variables set from one parameter as such; RetentionDays, 30 in the template against
/// never expire in the code, and the group template, rendered from LogGroupNamePrefix, aside).
#[test]
fn the_templates_defaults_are_the_codes() {
    let template = read("template.yaml");
    let params = parameters(&template);
    let mut vars = BTreeMap::new();
    for (var, value) in environment(&template) {
        if let Some(p) = value.strip_prefix("!Ref ") {
            let default = params
                .get(p)
                .unwrap_or_else(|| panic!("{var}: !Ref {p} is no parameter"));
            vars.insert(var, default.clone());
        }
    }
    assert!(vars.len() >= 15, "{vars:?}");
    let deployed = Config::from_lookup(|k| vars.get(k).cloned()).expect("the defaults are valid");
    let bare = Config::from_lookup(|_| None).expect("the defaults are valid");
    assert_eq!(format!("{deployed:?}"), format!("{bare:?}"), "{vars:?}");
    assert_eq!(params["RetentionDays"], "30");
    assert!(
        environment(&template)["LOG_GROUP_TEMPLATE"].contains("${LogGroupNamePrefix}{log_type}")
    );
    assert_eq!(
        format!("{}{{log_type}}", params["LogGroupNamePrefix"]),
        nginx_cloudwatch_forwarder::route::DEFAULT_LOG_GROUP_TEMPLATE
    );
}
