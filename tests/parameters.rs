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
        // `!Ref P`, or a list parameter joined (`!Join [",", !Ref P]`: its default is the
        // text of the list); `!Ref AWS::…` is the stack's own (account, region), no setting.
        let from = value
            .strip_prefix("!Ref ")
            .or_else(|| {
                value
                    .strip_prefix(r#"!Join [",", !Ref "#)?
                    .strip_suffix(']')
            })
            .filter(|p| !p.starts_with("AWS::"));
        if let Some(p) = from {
            let default = params
                .get(p)
                .unwrap_or_else(|| panic!("{var}: !Ref {p} is no parameter"));
            vars.insert(var, default.clone());
        }
    }
    assert!(vars.len() >= 15, "{vars:?}");
    assert!(vars.contains_key("UPLOADER_CHECK"), "{vars:?}");
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

/// KeyPattern's default is the code's pattern itself, written out (a stack deployed before the
/// default learned the role-id segment shows what it had).
#[test]
fn the_key_pattern_parameter_defaults_to_the_codes_pattern() {
    let params = parameters(&read("template.yaml"));
    assert_eq!(
        params["KeyPattern"],
        nginx_cloudwatch_forwarder::route::DEFAULT_KEY_PATTERN
    );
}

/// The stack's bucket and account are what the function acts on: SOURCE_BUCKET is the bucket
/// the function's role may read (the same expression, LogBucket's name or
/// ExistingBucketName), SOURCE_ACCOUNT the stack's account.
#[test]
fn the_function_acts_only_on_the_stacks_bucket_and_account() {
    let template = read("template.yaml");
    let env = environment(&template);
    let read_sid = template
        .find("- Sid: ReadUploadedLogs")
        .expect("the role's read statement");
    let resource = &template[read_sid..];
    let start = resource
        .find("- Bucket: !If")
        .expect("its bucket expression")
        + "- Bucket: ".len();
    let end = resource[start..]
        .find("- Sid:")
        .expect("the next statement")
        + start;
    let words = |s: &str| {
        s.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let bucket = words(&resource[start..end]);
    assert!(bucket.contains("!Ref ExistingBucketName"), "{bucket}");
    assert_eq!(words(&env["SOURCE_BUCKET"]), bucket);
    assert_eq!(env["SOURCE_ACCOUNT"], "!Ref AWS::AccountId");
}

/// A top-level section of template.yaml (`Rules`, `Resources` …): from its heading to the next.
fn top_level<'a>(template: &'a str, name: &str) -> &'a str {
    let start = template
        .find(&format!("\n{name}:\n"))
        .unwrap_or_else(|| panic!("template.yaml has no {name} section"))
        + 1;
    let rest = &template[start..];
    let end = rest
        .match_indices('\n')
        .map(|(i, _)| i + 1)
        .find(|&i| rest[i..].starts_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The entries of a section (its rules, its resources …): each name, with its text from
/// `  Name:` up to the next line indented by two spaces.
fn entries(section: &str) -> Vec<(&str, &str)> {
    // Where each line indented by two spaces starts, and whether it names an entry (a comment
    // there ends the entry before it).
    let mut bounds = Vec::new();
    let mut offset = 0;
    for line in section.split_inclusive('\n') {
        if indent(line) == 2 {
            bounds.push((offset, !line.trim_start().starts_with('#')));
        }
        offset += line.len();
    }
    bounds.push((section.len(), false));
    bounds
        .windows(2)
        .filter(|w| w[0].1)
        .map(|w| {
            let text = &section[w[0].0..w[1].0];
            (text.trim().split(':').next().unwrap_or_default(), text)
        })
        .collect()
}

/// One entry of a section, by name.
fn entry<'a>(section: &'a str, name: &str) -> &'a str {
    entries(section)
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

/// The metric names the function publishes (its EMF line's metric declarations).
fn published_metrics() -> BTreeSet<String> {
    let line = nginx_cloudwatch_forwarder::summary::Summary::default().emf_line("f", 0);
    line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .expect("EMF metric declarations")
        .iter()
        .map(|m| m["Name"].as_str().expect("a name").to_string())
        .collect()
}

/// An object uploaded under another instance's key and a notification not acted on each sound
/// an alarm, on metrics the function publishes, wired as the stack's other alarms; and the
/// template refuses `instance-only` with EventBridge, whose events name no uploader.
#[test]
fn untrusted_uploads_and_refused_records_raise_alarms_and_instance_only_needs_s3() {
    let template = read("template.yaml");
    let resources = top_level(&template, "Resources");
    let published = published_metrics();
    let namespace = nginx_cloudwatch_forwarder::summary::METRICS_NAMESPACE;
    for (alarm, metric) in [
        ("UntrustedUploadsAlarm", "objects_untrusted"),
        ("RefusedRecordsAlarm", "records_refused"),
    ] {
        let text = entry(resources, alarm);
        for line in [
            "Type: AWS::CloudWatch::Alarm".to_string(),
            format!("Namespace: {namespace}"),
            format!("MetricName: {metric}"),
            "- Name: FunctionName".into(),
            "Value: !Ref ForwarderFunction".into(),
            "Statistic: Sum".into(),
            "Period: 300".into(),
            "Threshold: 0".into(),
            "ComparisonOperator: GreaterThanThreshold".into(),
            "TreatMissingData: notBreaching".into(),
            "AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]".into(),
        ] {
            assert!(
                text.lines().any(|l| l.trim() == line),
                "{alarm}: no `{line}`:\n{text}"
            );
        }
        assert!(!text.contains("Condition:"), "{alarm} is always created");
        assert!(
            published.contains(metric),
            "{alarm}: the function publishes no {metric}: {published:?}"
        );
    }
    // Every alarm on the function's own namespace watches a metric it publishes.
    for (name, text) in entries(resources) {
        if text.contains("Type: AWS::CloudWatch::Alarm")
            && text.contains(&format!("Namespace: {namespace}"))
        {
            let metric = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("MetricName: "))
                .expect("a metric name");
            assert!(
                published.contains(metric),
                "{name}: {metric}: {published:?}"
            );
        }
    }
    // The dashboard's forwarder widget draws both, and only metrics the function publishes.
    let dashboard = entry(resources, "NginxDashboard");
    let drawn: Vec<&str> = dashboard
        .split('[')
        .filter_map(|m| {
            let m = m
                .strip_prefix(&format!("\"{namespace}\", \""))
                .or_else(|| m.strip_prefix("\"...\", \""))?;
            m.split('"').next()
        })
        .collect();
    assert!(
        drawn.contains(&"objects_untrusted") && drawn.contains(&"records_refused"),
        "{drawn:?}"
    );
    for metric in &drawn {
        assert!(
            published.contains(*metric),
            "the dashboard draws {metric}: {published:?}"
        );
    }

    let rule = entry(top_level(&template, "Rules"), "UploaderCheckForEventBridge");
    assert!(
        rule.contains("RuleCondition: !Equals [!Ref Trigger, EventBridge]"),
        "{rule}"
    );
    assert!(
        rule.contains("- Assert: !Not [!Contains [!Ref UploaderCheck, instance-only]]"),
        "{rule}"
    );
    // Fn::Contains matches whole entries: the parameter must be a list for the mode to be one.
    let parameter = entry(top_level(&template, "Parameters"), "UploaderCheck");
    assert!(
        parameter.contains("\n    Type: CommaDelimitedList\n"),
        "{parameter}"
    );
}

/// A parameter's `AllowedPattern`, compiled.
fn allowed_pattern(template: &str, name: &str) -> regex::Regex {
    let text = entry(top_level(template, "Parameters"), name);
    let pattern = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("AllowedPattern: "))
        .unwrap_or_else(|| panic!("{name} has no AllowedPattern"));
    regex::Regex::new(pattern.trim_matches('"')).expect("a regex")
}

/// The redaction parameters: each sets its variable; AnonymizeIp admits exactly the values
/// ANONYMIZE_IP takes in the forms it documents; RedactHashKeySecretArn only an ARN (the IAM
/// resource); and the role may read that secret, that one alone, only when it is given.
#[test]
fn the_redaction_parameters_set_their_variables_and_only_the_given_secret_is_readable() {
    let template = read("template.yaml");
    let env = environment(&template);
    let params = parameters(&template);
    for (var, param) in [
        ("ANONYMIZE_IP", "AnonymizeIp"),
        ("REDACT_QUERY_PARAMS", "RedactQueryParams"),
        ("REDACT_FIELDS", "RedactFields"),
        ("REDACT_PATTERNS", "RedactPatterns"),
        ("REDACT_HASH_KEY_SECRET", "RedactHashKeySecretArn"),
    ] {
        assert_eq!(env[var], format!("!Ref {param}"), "{var}");
    }
    assert_eq!(params["AnonymizeIp"], "off");
    // The key itself is never in the function's configuration.
    assert!(!env.contains_key("REDACT_HASH_KEY"));

    let ip = allowed_pattern(&template, "AnonymizeIp");
    let takes =
        |v: &str| Config::from_lookup(|k| (k == "ANONYMIZE_IP").then(|| v.to_string())).is_ok();
    let mut values: Vec<String> = ["off", "on"].map(String::from).to_vec();
    for v4 in 0..=40 {
        values.push(v4.to_string());
        values.extend(
            (0..=140)
                .step_by(7)
                .chain([128, 129])
                .map(|v6| format!("{v4},{v6}")),
        );
    }
    for v in &values {
        assert_eq!(ip.is_match(v), takes(v), "AnonymizeIp={v}");
    }
    for v in ["half", "24,48,1", "", " on", "/24", "1.2.3.0/24"] {
        assert!(!ip.is_match(v), "AnonymizeIp={v:?}");
    }

    let arn = allowed_pattern(&template, "RedactHashKeySecretArn");
    for v in [
        "",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nginx/hash-key-AbCdEf",
        "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:k-AbCdEf",
    ] {
        assert!(arn.is_match(v), "{v}");
    }
    for v in [
        "nginx/hash-key",
        "arn:aws:kms:eu-west-1:123456789012:key/1234",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:*",
    ] {
        assert!(!arn.is_match(v), "{v}");
    }

    let conditions = top_level(&template, "Conditions");
    assert!(
        conditions.lines().any(|l| l.trim()
            == r#"HasRedactHashKeySecret: !Not [!Equals [!Ref RedactHashKeySecretArn, ""]]"#),
        "{conditions}"
    );
    let role = entry(top_level(&template, "Resources"), "ForwarderFunctionRole");
    let sid = role
        .find("- Sid: ReadRedactHashKey")
        .expect("the secret's statement");
    let before: Vec<&str> = role[..sid]
        .lines()
        .rev()
        .skip(1)
        .take(2)
        .map(str::trim)
        .collect();
    assert_eq!(
        before,
        ["- HasRedactHashKeySecret", "- !If"],
        "under its condition"
    );
    let statement: Vec<&str> = role[sid..].lines().skip(1).take(4).map(str::trim).collect();
    assert_eq!(
        statement,
        [
            "Effect: Allow",
            "Action: secretsmanager:GetSecretValue",
            "Resource: !Ref RedactHashKeySecretArn",
            "- !Ref AWS::NoValue",
        ]
    );
    // No other Secrets Manager or KMS permission anywhere in the stack.
    let granted: String = top_level(&template, "Resources")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(granted.matches("secretsmanager:").count(), 1);
    assert!(!granted.contains("kms:Decrypt"));
}
