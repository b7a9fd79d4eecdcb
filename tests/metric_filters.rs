//! The template's metric filters against the forwarder's own output: each `FilterPattern` (both
//! `FieldNames` variants) and `MetricValue` of template.yaml evaluated on the events `parse`
//! prints for a log whose statuses, sizes and times are known, in both JSON output modes.

mod common;

use std::collections::BTreeMap;

use common::filter_pattern::{Pattern, parse, select};
use common::template::{self, either};
use serde_json::Value;

const TIMING: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time "$upstream_response_time""#;

/// One `AWS::Logs::MetricFilter` of template.yaml.
#[derive(Debug)]
struct Filter {
    resource: String,
    metric: String,
    /// (nginx names, td-agent names)
    pattern: (String, String),
    value: (String, String),
}

fn template_filters() -> Vec<Filter> {
    let text = template::text();
    template::resources(&text, "AWS::Logs::MetricFilter")
        .into_iter()
        .map(|r| Filter {
            metric: r
                .field("MetricName:")
                .trim_start_matches("!Sub ")
                .trim_matches('"')
                .trim_start_matches("${MetricNamePrefix}")
                .to_string(),
            pattern: either(&r.field("FilterPattern:")),
            value: either(&r.field("MetricValue:")),
            resource: r.name,
        })
        .collect()
}

/// The log: `n` requests with known statuses, sizes, request and upstream times (some upstream
/// lists and `-`), and what the metrics must come to.
fn access_log(n: usize) -> (String, BTreeMap<&'static str, f64>) {
    let mut text = String::new();
    let mut want: BTreeMap<&'static str, f64> = BTreeMap::new();
    for i in 0..n {
        let status = match i % 100 {
            0..=6 => 500 + (i % 4) as u16, // 7 % server errors
            7..=19 => 404,                 // 13 % client errors
            20..=24 => 301,
            _ => 200,
        };
        let size = (i * 37) % 5000;
        let rt = format!("{}.{:03}", i % 3, (i * 7) % 1000);
        let urt = match i % 10 {
            0 => "-".to_string(),
            1 => "0.100, 0.200".to_string(),
            _ => format!("0.{:03}", (i * 3) % 1000),
        };
        text.push_str(&format!(
            "203.0.113.{} - - [24/Nov/2026:10:{:02}:{:02} +0000] \"GET /p/{i} HTTP/1.1\" {status} {size} \"-\" \"curl/8.5.0\" {rt} \"{urt}\"\n",
            i % 250,
            (i / 60) % 60,
            i % 60
        ));
        *want.entry("Requests").or_default() += 1.0;
        if (400..500).contains(&status) {
            *want.entry("4xx").or_default() += 1.0;
        }
        if status >= 500 {
            *want.entry("5xx").or_default() += 1.0;
        }
        *want.entry("BytesSent").or_default() += size as f64;
        *want.entry("RequestTime").or_default() += rt.parse::<f64>().unwrap();
        if let Ok(t) = urt.parse::<f64>() {
            *want.entry("UpstreamResponseTime").or_default() += t;
        }
    }
    (text, want)
}

fn error_log() -> (String, BTreeMap<&'static str, f64>) {
    let levels = [
        "debug", "info", "notice", "warn", "error", "crit", "alert", "emerg",
    ];
    let mut text = String::new();
    let mut want: BTreeMap<&'static str, f64> = BTreeMap::new();
    for i in 0..200 {
        let level = levels[(i * 5) % levels.len()];
        text.push_str(&format!(
            "2026/11/24 10:00:{:02} [{level}] 1204#1204: *{i} something happened, client: 203.0.113.9, server: www.example.com\n",
            i % 60
        ));
        if ["error", "crit", "alert", "emerg"].contains(&level) {
            *want.entry("ErrorLogErrors").or_default() += 1.0;
        }
        if ["crit", "alert", "emerg"].contains(&level) {
            *want.entry("ErrorLogCritical").or_default() += 1.0;
        }
    }
    (text, want)
}

/// The messages `parse` prints for `text`, as Logs Insights sees them: with the stream (the
/// instance), alternating between two.
fn messages(kind: &str, text: &str, env: &[(&str, &str)]) -> Vec<Value> {
    template::parsed(kind, text, env)
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut v: Value = serde_json::from_str(m).unwrap();
            v["@logStream"] = Value::from(["i-0123456789abcdef0", "i-0fedcba9876543210"][i % 2]);
            v
        })
        .collect()
}

/// What a metric filter publishes over `events`: the number of matches, and the sum of the
/// values (`MetricValue`: "1" or a selector).
fn publish(pattern: &Pattern, value: &str, events: &[Value]) -> (usize, f64) {
    let matched: Vec<&Value> = events.iter().filter(|e| pattern.matches(e)).collect();
    let sum = matched
        .iter()
        .map(|e| match value {
            "1" => 1.0,
            sel => select(e, sel)
                .and_then(Value::as_f64)
                .unwrap_or_else(|| panic!("{sel} is not a number in a matching event: {e}")),
        })
        .sum();
    (matched.len(), sum)
}

/// A parameter's `Default:` in template.yaml.
fn default_of(parameter: &str) -> f64 {
    let template = template::text();
    let at = template
        .find(&format!("\n  {parameter}:\n"))
        .unwrap_or_else(|| panic!("no parameter {parameter}"));
    template[at..]
        .lines()
        .find_map(|l| l.trim().strip_prefix("Default:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{parameter}: no numeric default"))
}

/// The nginx alarms at their default thresholds, over the metrics the filters publish for the
/// test log taken as one period: what each would do.
#[test]
fn the_alarms_fire_on_the_test_logs_numbers() {
    let (access, want) = access_log(500);
    let events = messages("access", &access, &[("ACCESS_LOG_FORMAT", TIMING)]);
    let mut times: Vec<f64> = events
        .iter()
        .filter_map(|e| e["request_time"].as_f64())
        .collect();
    times.sort_by(f64::total_cmp);
    let p99 = times[(times.len() as f64 * 0.99).ceil() as usize - 1];
    let ratio = 100.0 * want["5xx"] / want["Requests"];
    let (_, want_error) = error_log();
    let critical = want_error["ErrorLogCritical"];
    let (ratio_max, p99_max) = (
        default_of("ServerErrorPercentThreshold"),
        default_of("LatencyP99ThresholdSeconds"),
    );
    eprintln!(
        "ServerErrorRatioAlarm: 5xx {ratio:.1} % > {ratio_max} %; LatencyP99Alarm: p99 {p99:.3} s > {p99_max} s; \
         CriticalErrorLogAlarm: {critical} critical entries > 0"
    );
    assert!(ratio > ratio_max, "35 of 500 is 7 %");
    assert!(p99 > p99_max);
    assert!(critical > 0.0);
}

#[test]
fn every_metric_filter_counts_what_the_forwarder_wrote() {
    let filters = template_filters();
    assert_eq!(filters.len(), 8, "{filters:#?}");
    let (access, want_access) = access_log(500);
    let (error, want_error) = error_log();
    for names in ["nginx", "fluentd"] {
        for output in ["json", "json-compact"] {
            let env = [
                ("FIELD_NAMES", names),
                ("OUTPUT_FORMAT", output),
                ("ACCESS_LOG_FORMAT", TIMING),
            ];
            let access_events = messages("access", &access, &env);
            let error_events = messages("error", &error, &env);
            assert_eq!(access_events.len(), 500);
            for f in &filters {
                let (pattern, value) = if names == "nginx" {
                    (&f.pattern.0, &f.value.0)
                } else {
                    (&f.pattern.1, &f.value.1)
                };
                let p = parse(pattern).unwrap_or_else(|e| panic!("{}: {e}", f.resource));
                let (events, want) = if f.metric.starts_with("ErrorLog") {
                    (&error_events, &want_error)
                } else {
                    (&access_events, &want_access)
                };
                let (matched, sum) = publish(&p, value, events);
                let expected = want[f.metric.as_str()];
                assert!(
                    (sum - expected).abs() < 1e-6,
                    "{} ({names}, {output}): {pattern} → {sum}, want {expected}",
                    f.resource
                );
                if names == "nginx" && output == "json" {
                    eprintln!(
                        "{:<34} {:<22} {matched:>4} events matched, metric {sum:.3}",
                        f.resource, f.metric
                    );
                }
            }
        }
    }
}

/// The example event and patterns of AWS's "Using filter patterns to match terms in JSON
/// log events" (the ones within this subset), with the documented outcomes.
#[test]
fn the_evaluator_follows_awss_documented_examples() {
    let event = serde_json::json!({
        "eventType": "UpdateTrail", "sourceIPAddress": "111.111.111.111",
        "arrayKey": ["value", "another value"],
        "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "SomeObject": null, "cluster.name": "c", "ThisFlag": true
    });
    for (pattern, want) in [
        (r#"{ $.eventType = "UpdateTrail" }"#, true),
        ("{ $.eventType = UpdateTrail }", true),
        (r#"{ $.sourceIPAddress != 123.123.* }"#, true),
        (r#"{ $.sourceIPAddress = 111.111.* }"#, true),
        (r#"{ $.arrayKey[0] = "value" }"#, true),
        ("{ $.objectList[1].id = 2 }", true),
        ("{ $.objectList[1].id > 1 }", true),
        ("{ $.objectList[1].id < 2 }", false),
        (
            r#"{ ($.eventType = "UpdateTrail") && ($.objectList[0].id = 2) }"#,
            false,
        ),
        (
            r#"{ $.eventType = "UpdateTrail" || $.objectList[0].id = 2 }"#,
            true,
        ),
        // A number compared with a string field never matches.
        ("{ $.eventType > 1 }", false),
        ("{ $.missing = 1 }", false),
    ] {
        assert_eq!(parse(pattern).unwrap().matches(&event), want, "{pattern}");
    }
    assert_eq!(
        select(&event, "$.objectList[1].id"),
        Some(&serde_json::json!(2))
    );
    for bad in [
        "$.a = 1",
        "{ $.a }",
        "{ $.a >= \"x\" }",
        "{ a = 1 }",
        "{ ($.a = 1 }",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

// --- Logs Insights: the saved queries and the dashboard -------------------------------------

/// The `QueryString` blocks of template.yaml: (resource, nginx-names query, td-agent query).
fn template_queries() -> Vec<(String, String, String)> {
    let text = template::text();
    let mut out = Vec::new();
    for r in template::resources(&text, "AWS::Logs::QueryDefinition") {
        let lines = &r.lines;
        let at = r.line_of("QueryString:");
        // A block scalar (`|`) indented below; with `!If`, two of them after `- FluentdNames`.
        let mut blocks: Vec<String> = Vec::new();
        let base = template::indent(lines[at]);
        for l in &lines[at + 1..] {
            if !l.trim().is_empty() && template::indent(l) <= base {
                break;
            }
            if l.trim() == "- |" {
                blocks.push(String::new());
                continue;
            }
            if blocks.is_empty() && !l.trim().starts_with('-') {
                blocks.push(String::new());
            }
            if !l.trim().starts_with("- FluentdNames")
                && let Some(b) = blocks.last_mut()
            {
                b.push_str(l.trim());
                b.push('\n');
            }
        }
        let resource = r.name;
        let (nginx, fluentd) = match blocks.len() {
            1 => (blocks[0].clone(), blocks[0].clone()),
            2 => (blocks[1].clone(), blocks[0].clone()),
            n => panic!("{resource}: {n} query blocks"),
        };
        out.push((resource, nginx, fluentd));
    }
    out
}

/// What a query of the subset the template uses (`filter` with `and`, comparisons and
/// `ispresent`, `stats count(*) … by …`; `fields`, `sort` and `limit` do not change counts)
/// gives over `events`: the rows `stats` makes (group → count), or the matching events as one
/// group when there is no `stats`.
fn insights(query: &str, events: &[Value]) -> BTreeMap<String, usize> {
    let mut rows: Vec<&Value> = events.iter().collect();
    let mut grouped: Option<BTreeMap<String, usize>> = None;
    for stage in query.split('|').map(str::trim).filter(|s| !s.is_empty()) {
        if stage.starts_with("SOURCE") {
            continue;
        }
        if let Some(cond) = stage.strip_prefix("filter ") {
            rows.retain(|e| cond.split(" and ").all(|c| holds(c.trim(), e)));
        } else if let Some(stats) = stage.strip_prefix("stats ") {
            let by: Vec<&str> = stats
                .split_once(" by ")
                .map(|(_, b)| b.split(',').map(str::trim).collect())
                .unwrap_or_default();
            let mut g = BTreeMap::new();
            for e in &rows {
                let key: Vec<String> = by
                    .iter()
                    .map(|f| e.get(*f).map_or("(none)".into(), |v| v.to_string()))
                    .collect();
                *g.entry(key.join(" / ")).or_default() += 1;
            }
            grouped = Some(g);
        } else {
            assert!(
                ["fields ", "sort ", "limit "]
                    .iter()
                    .any(|p| stage.starts_with(p)),
                "not in the evaluated subset: {stage}"
            );
        }
    }
    grouped.unwrap_or_else(|| BTreeMap::from([("matched".to_string(), rows.len())]))
}

/// One `filter` clause: `ispresent(f)`, `f = "text"`, or `f <op> number`.
fn holds(clause: &str, e: &Value) -> bool {
    if let Some(f) = clause
        .strip_prefix("ispresent(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return e.get(f).is_some();
    }
    let (field, op, value) = [">=", "<=", "!=", "=", ">", "<"]
        .iter()
        .find_map(|op| {
            clause
                .split_once(op)
                .map(|(f, v)| (f.trim(), *op, v.trim()))
        })
        .unwrap_or_else(|| panic!("not in the evaluated subset: {clause}"));
    let Some(got) = e.get(field) else {
        return false;
    };
    if let Some(text) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        return (op == "=") == (got.as_str() == Some(text));
    }
    let (Some(got), Ok(want)) = (got.as_f64(), value.parse::<f64>()) else {
        return false;
    };
    match op {
        ">=" => got >= want,
        "<=" => got <= want,
        "!=" => got != want,
        "=" => got == want,
        ">" => got > want,
        _ => got < want,
    }
}

#[test]
fn every_saved_query_and_dashboard_query_reads_the_forwarders_fields() {
    let queries = template_queries();
    assert_eq!(queries.len(), 7, "{queries:#?}");
    let (access, want) = access_log(500);
    // access_log's plan: request i comes from 203.0.113.{i % 250}, is a 5xx when i % 100 <= 6,
    // and lands in the first stream when i is even.
    let from_9 = (0..500).filter(|i| i % 250 == 9).count();
    let first_stream_5xx = (0..500).filter(|i| i % 100 <= 6 && i % 2 == 0).count();
    let (error, _) = error_log();
    // Two invocation summaries as the function logs them, one with a failed object.
    let summaries = vec![
        serde_json::json!({"message": "invocation summary", "objects_failed": 0, "objects_delivered": 3}),
        serde_json::json!({"message": "invocation summary", "objects_failed": 1, "objects_delivered": 2}),
    ];
    for names in ["nginx", "fluentd"] {
        let env = [("FIELD_NAMES", names), ("ACCESS_LOG_FORMAT", TIMING)];
        let access_events = messages("access", &access, &env);
        let error_events = messages("error", &error, &env);
        for (resource, nginx_q, fluentd_q) in &queries {
            let q = if names == "nginx" { nginx_q } else { fluentd_q };
            let events = match resource.as_str() {
                "ErrorLogByLevelQuery" => &error_events,
                "FailedObjectsQuery" => &summaries,
                _ => &access_events,
            };
            let rows = insights(q, events);
            let total: usize = rows.values().sum();
            let (want_total, want_rows) = match resource.as_str() {
                "SlowestRequestsQuery" => (500, 1),
                "ServerErrorsByUriQuery" => (want["5xx"] as usize, want["5xx"] as usize),
                "TopClientsQuery" => (500, 250),
                "ErrorLogByLevelQuery" => (200, 8),
                "FailedObjectsQuery" => (1, 1),
                "ClientRequestsQuery" => (from_9, 1),
                "InstanceServerErrorsQuery" => (first_stream_5xx, first_stream_5xx),
                other => panic!("a query this test does not know: {other}"),
            };
            assert_eq!(
                (total, rows.len()),
                (want_total, want_rows),
                "{resource} ({names}): {q}"
            );
            assert!(
                !rows.contains_key("(none)"),
                "{resource} ({names}) groups by a field the events lack: {rows:?}"
            );
            if names == "nginx" {
                eprintln!("{resource:<24} {total:>4} events in {:>3} rows", rows.len());
            }
        }
    }
}

#[test]
fn the_dashboard_is_valid_json_and_its_queries_use_the_forwarders_fields() {
    let template = template::text();
    let start = template.find("DashboardBody: !Sub").expect("a dashboard");
    let body: String = template[start..]
        .lines()
        .skip(2)
        .take_while(|l| !l.trim_start().starts_with("- AccessGroup:"))
        .map(|l| l.trim().to_string() + "\n")
        .collect();
    let (access, want) = access_log(500);
    for (names, client, uri, status) in [
        ("nginx", "remote_addr", "request_uri", "status"),
        ("fluentd", "remote", "path", "code"),
    ] {
        let rendered = body
            .replace("${AWS::Region}", "us-east-1")
            .replace("${MetricNamespace}", "Nginx")
            .replace("${MetricNamePrefix}", "")
            .replace("${AccessGroup}", "nginx-access")
            .replace("${Function}", "stack-forwarder")
            .replace("${ClientField}", client)
            .replace("${UriField}", uri)
            .replace("${StatusField}", status);
        assert!(
            !rendered.contains("${"),
            "an unsubstituted name: {rendered}"
        );
        let dash: Value =
            serde_json::from_str(&rendered).unwrap_or_else(|e| panic!("{e}: {rendered}"));
        let widgets = dash["widgets"].as_array().expect("widgets");
        assert_eq!(widgets.len(), 8);
        let events = messages(
            "access",
            &access,
            &[("FIELD_NAMES", names), ("ACCESS_LOG_FORMAT", TIMING)],
        );
        for w in widgets.iter().filter(|w| w["type"] == "log") {
            let q = w["properties"]["query"].as_str().expect("a query");
            let rows = insights(q, &events);
            assert!(rows.keys().all(|k| !k.contains("(none)")), "{q}: {rows:?}");
            let total: usize = rows.values().sum();
            let title = w["properties"]["title"].as_str().unwrap();
            let expected = if title == "5xx by instance" {
                want["5xx"] as usize
            } else {
                500
            };
            assert_eq!(total, expected, "{title} ({names})");
        }
    }
}

/// A field index lowers a query's scan only through `field = value` or `field IN […]`
/// (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CloudWatchLogs-Field-Indexing.html>).
/// Every saved query on the nginx groups that filters by equality names a field the stack
/// indexes (or `@logStream`, which CloudWatch indexes by default), under both field namings;
/// the others filter by a range (`status >= 500`) or not at all, which no index serves.
#[test]
fn the_saved_queries_that_filter_by_equality_filter_on_an_index() {
    let text = template::text();
    let index = |group: &str| template::index_fields(&text, group);
    let ((access_n, access_f), (error_n, error_f)) =
        (index("AccessLogGroup"), index("ErrorLogGroup"));
    let groups: BTreeMap<String, String> = template::resources(&text, "AWS::Logs::QueryDefinition")
        .into_iter()
        .map(|r| (r.field("LogGroupNames:"), r))
        .map(|(groups, r)| (r.name, groups))
        .collect();
    let mut using = Vec::new();
    for (resource, nginx_q, fluentd_q) in template_queries() {
        let indexed = match groups[&resource].as_str() {
            "[!Ref AccessLogGroup]" => [&access_n, &access_f],
            "[!Ref ErrorLogGroup]" => [&error_n, &error_f],
            other => {
                eprintln!("{resource:<26} on {other}: not an nginx group");
                continue;
            }
        };
        let mut equalities = Vec::new();
        for (q, fields) in [(&nginx_q, indexed[0]), (&fluentd_q, indexed[1])] {
            let clauses = q
                .split('|')
                .filter_map(|s| s.trim().strip_prefix("filter "))
                .flat_map(|c| c.split(" and "));
            for (field, value) in clauses.filter_map(|c| c.split_once(" = ")) {
                assert!(
                    value.trim().starts_with('"'),
                    "{resource}: {field} = {value}"
                );
                assert!(
                    field.trim() == "@logStream" || fields.iter().any(|f| f == field.trim()),
                    "{resource} filters on {field}, which no index of its group has: {fields:?}"
                );
                equalities.push(field.trim().to_string());
            }
        }
        eprintln!("{resource:<26} equality filters on {equalities:?}");
        if !equalities.is_empty() {
            using.push(resource);
        }
    }
    assert_eq!(using, ["ClientRequestsQuery", "InstanceServerErrorsQuery"]);
}
