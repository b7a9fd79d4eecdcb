//! Conformance against other projects' nginx parse fixtures (copied, data only, under
//! tests/corpora/; see its README for origins and licences).
//!
//! Each project names fields its own way and makes its own policy choices, so each corpus is
//! mapped onto our model (nginx variable names) and compared field by field: structure, not
//! policy. Our global policies, applied to every expectation:
//! - nginx's `-` means "no value": an expected `"-"` must be absent in our output.
//! - numbers are JSON numbers; an expected numeric string (`"200"`) matches our number 200.
//! - enrichment (GeoIP, user-agent parsing, URL parts, OCSF, `event.*`) is not a parser
//!   concern and is not mapped.
//!
//! Every case either passes or is listed in `KNOWN` with the reason our result differs; where a
//! different `ACCESS_LOG_FORMAT` makes the line parse as the project expects, the entry names it
//! and the test proves it. The test fails if a listed case starts passing (so the list stays
//! true) or an unlisted one fails.

mod common;

use std::collections::BTreeMap;

use nginx_cloudwatch_forwarder::parse::{
    FieldNames, LineParser, LocalZone, LogEvent, LogFormat, ParseSettings,
};
use nginx_cloudwatch_forwarder::route::LogKind;
use serde_json::Value;

const CORPORA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpora");

const UPSTREAMINFO: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;
const UPSTREAMINFO_NO_ALT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;
const UPSTREAMINFO_XFF_NO_ALT: &str = r#"$remote_addr - [$proxy_add_x_forwarded_for] - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;
const UPSTREAMINFO_XFF_NO_ALT_NO_ID: &str = r#"$remote_addr - [$proxy_add_x_forwarded_for] - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status"#;
const WITH_HOST: &str = r#"$host $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
const GZIP_RATIO: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$gzip_ratio""#;
const UPSTREAMINFO_XFF: &str = r#"$remote_addr - [$proxy_add_x_forwarded_for] - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id"#;
const COMMON: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#;

/// Cases whose result differs from the corpus, why, and (for access lines) a format under
/// which they do match.
const KNOWN: &[(&str, &str, Option<&str>)] = &[
    (
        "vrl/combined_line_valid_all_fields",
        "a 10th field `\"2.75\"` after combined is kept verbatim, quotes included, as unparsed_tail; VRL calls it `compression`",
        Some(GZIP_RATIO),
    ),
    (
        "vrl/Parse via Nginx log format (combined)",
        "the same `\"2.75\"` 10th field (VRL's doc example)",
        Some(GZIP_RATIO),
    ),
    (
        "vrl/ingress_nginx_upstreaminfo_valid_without_optional_fields",
        "`[]` for $proxy_alternative_upstream_name is kept as \"\" (nginx wrote an empty value, not `-`; Beats agrees); VRL omits it",
        None,
    ),
    (
        "vrl/ingress_nginx_upstreaminfo_valid_missing_upstream",
        "`[]` kept as \"\" (see above)",
        None,
    ),
    (
        "vrl/ingress_nginx_upstreaminfo_valid_empty_referer",
        "`[]` kept as \"\" (see above)",
        None,
    ),
    (
        "beats/ingress_controller/test.log:5",
        "`PATCHp` is not a method nginx accepts (upper-case letters, `_` and `-` only): a 400 for which nginx sets none of the request variables, so none is derived",
        None,
    ),
    (
        "beats/ingress_controller/test.log:6",
        "`geti` is rejected by nginx (NGX_HTTP_PARSE_INVALID_METHOD): no request_method/request_uri/server_protocol",
        None,
    ),
    (
        "fluentd/test_parse_with_http_x_forwarded_for_multiple_ip",
        "a quoted XFF list after the agent is kept as unparsed_tail unless the format names it",
        Some(
            r#"$remote_addr $host $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#,
        ),
    ),
    (
        "datadog/nginx:0",
        "Apache `common` line (no referer/agent) is not in the combined format: forwarded raw",
        Some(COMMON),
    ),
    (
        "datadog/nginx:3",
        "the error log's `request` is kept whole (Datadog splits it into method and URL)",
        None,
    ),
    (
        "datadog/nginx:5",
        "$request_time between bytes and referer is not combined: forwarded raw",
        Some(
            r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent $request_time "$http_referer" "$http_user_agent""#,
        ),
    ),
    (
        "datadog/ingress:2",
        "the error log's `request` is kept whole (Datadog splits it into method and URL)",
        None,
    ),
    (
        "datadog/ingress:4",
        "not an nginx line (the ingress controller's own klog output): forwarded raw, by design",
        None,
    ),
    (
        "beats/access/test.log:5",
        "a quoted XFF list and `$remote_addr` before ` - -`: with combined, $remote_addr is the prefix as written (Beats merges both into remote_ip_list)",
        None,
    ),
    (
        "beats/access/test.log:6",
        "an XFF list and `$remote_addr` (`a, b c - -`): with combined, $remote_addr is the prefix as written; even with `$http_x_forwarded_for $remote_addr` ours keeps them apart where Beats merges them",
        None,
    ),
    (
        "beats/access/test-with-host.log:1",
        "`$host` before an XFF-style `$remote_addr` list",
        Some(WITH_HOST),
    ),
    (
        "beats/access/test-with-host.log:2",
        "`$host` before `$remote_addr`",
        Some(WITH_HOST),
    ),
    (
        "beats/access/test-with-host.log:3",
        "`$host` before an XFF-style `$remote_addr` list",
        Some(WITH_HOST),
    ),
    (
        "beats/access/test-with-host.log:4",
        "`$host:$port` before `$remote_addr`",
        Some(WITH_HOST),
    ),
    (
        "beats/access/test-with-host.log:5",
        "`$host:$port` and a quoted XFF list before `$remote_addr`",
        None,
    ),
    (
        "beats/access/test-with-host.log:6",
        "`$host` and an XFF list before `$remote_addr`",
        None,
    ),
    (
        "beats/access/test-with-host.log:7",
        "`$host:$port` before `$remote_addr`",
        Some(WITH_HOST),
    ),
    (
        "beats/access/test-with-host.log:8",
        "`$host:$port` before a `unix:` client",
        Some(WITH_HOST),
    ),
    (
        "beats/access/test-with-host.log:9",
        "`$host` before `$remote_addr`",
        Some(WITH_HOST),
    ),
    (
        "beats/access/test-with-host.log:10",
        "`$host` before a `localhost, localhost` client",
        Some(WITH_HOST),
    ),
    (
        "beats/access/access.log:13",
        "`$host` before `$remote_addr`",
        Some(WITH_HOST),
    ),
    (
        "beats/access/access.log:14",
        "`$host` before `$remote_addr`",
        Some(WITH_HOST),
    ),
];

#[derive(Debug, Clone)]
enum Exp {
    Str(String),
    Num(f64),
    Absent,
    /// Our string value, split on `, `, equals this list (sorted when `sorted`).
    List(Vec<String>, bool),
    /// Our value starts with this text (Beats keeps the error-log context in `message`).
    Prefix(String),
}

struct Case {
    id: String,
    kind: LogKind,
    format: &'static str,
    zone: &'static str,
    /// All lines of the input; `event` picks which resulting event is compared.
    input: String,
    event: usize,
    /// Expected timestamp in ms, and field expectations in our names.
    ts: Option<i64>,
    fields: Vec<(String, Exp)>,
    /// The corpus says this line must not parse.
    must_fail: bool,
}

fn parse_all(kind: LogKind, format: &str, zone: &str, input: &str) -> Vec<LogEvent> {
    let settings = ParseSettings {
        access_format: LogFormat::parse_config(format)
            .unwrap_or_else(|e| panic!("format {format:?}: {e}")),
        error_zone: LocalZone::parse(zone).expect("zone"),
        ..ParseSettings::default()
    };
    let mut p = LineParser::new(&settings, kind, -1);
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        if !line.trim().is_empty() {
            p.push(line, i as u64 + 1, &mut out);
        }
    }
    p.finish(&mut out);
    out
}

/// Compares one case under `format`; returns the differences (empty = pass).
fn check(case: &Case, format: &str) -> Vec<String> {
    let events = parse_all(case.kind, format, case.zone, &case.input);
    let Some(ev) = events.get(case.event) else {
        return vec![format!("only {} events", events.len())];
    };
    let msg: Value = serde_json::from_str(&ev.message.text()).expect("our messages are JSON");
    if case.must_fail {
        return if ev.parse_failed {
            vec![]
        } else {
            vec![format!("parsed, but the corpus says it must fail: {msg}")]
        };
    }
    let mut diffs = Vec::new();
    if ev.parse_failed {
        return vec![format!("did not parse: {msg}")];
    }
    if let Some(ts) = case.ts
        && ev.timestamp != ts
    {
        diffs.push(format!("timestamp {} != {ts}", ev.timestamp));
    }
    for (field, exp) in &case.fields {
        let ours = msg.get(field);
        let ok = match (exp, ours) {
            (Exp::Absent, None) => true,
            (Exp::Absent, Some(_)) | (_, None) => false,
            (Exp::Str(s), Some(Value::String(o))) => o == s,
            (Exp::Str(s), Some(Value::Number(n))) => s.parse::<f64>().ok() == n.as_f64(),
            (Exp::Num(f), Some(Value::Number(n))) => {
                n.as_f64().is_some_and(|o| (o - f).abs() < 1e-9)
            }
            (Exp::List(want, sorted), Some(Value::String(o))) => {
                let mut got: Vec<String> = o.split(", ").map(str::to_string).collect();
                if *sorted {
                    got.sort();
                }
                &got == want
            }
            (Exp::Prefix(p), Some(Value::String(o))) => {
                p.starts_with(o.as_str()) || o.starts_with(p.as_str())
            }
            (Exp::Prefix(p), Some(Value::Number(n))) => n.to_string() == *p,
            _ => false,
        };
        if !ok {
            diffs.push(format!("{field}: ours {ours:?}, expected {exp:?}"));
        }
    }
    diffs
}

/// An expectation from a corpus value, with our `-` policy applied.
fn exp(v: &Value) -> Exp {
    match v {
        Value::String(s) if s == "-" => Exp::Absent,
        Value::String(s) => Exp::Str(s.clone()),
        Value::Number(n) => Exp::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::Null => Exp::Absent,
        other => Exp::Str(other.to_string()),
    }
}

fn rfc3339_ms(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .as_millisecond()
}

fn load(rel: &str) -> Value {
    let path = format!("{CORPORA}/{rel}");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .expect("JSON")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{CORPORA}/{rel}")).expect("corpus file")
}

/// Maps `their` field names to ours and builds expectations from `expected`.
fn mapped(expected: &serde_json::Map<String, Value>, map: &[(&str, &str)]) -> Vec<(String, Exp)> {
    map.iter()
        .filter_map(|(theirs, ours)| expected.get(*theirs).map(|v| (ours.to_string(), exp(v))))
        .collect()
}

fn vrl_cases() -> Vec<Case> {
    const ACCESS: &[(&str, &str)] = &[
        ("client", "remote_addr"),
        ("remote_addr", "remote_addr"),
        ("user", "remote_user"),
        ("remote_user", "remote_user"),
        ("request", "request"),
        ("status", "status"),
        ("size", "body_bytes_sent"),
        ("body_bytes_size", "body_bytes_sent"),
        ("referer", "http_referer"),
        ("http_referer", "http_referer"),
        ("agent", "http_user_agent"),
        ("http_user_agent", "http_user_agent"),
        ("http_x_forwarded_for", "http_x_forwarded_for"),
        ("compression", "gzip_ratio"),
        ("request_length", "request_length"),
        ("request_time", "request_time"),
        ("proxy_upstream_name", "proxy_upstream_name"),
        (
            "proxy_alternative_upstream_name",
            "proxy_alternative_upstream_name",
        ),
        ("upstream_addr", "upstream_addr"),
        ("upstream_response_length", "upstream_response_length"),
        ("upstream_response_time", "upstream_response_time"),
        ("upstream_status", "upstream_status"),
        ("req_id", "req_id"),
    ];
    const ERROR: &[(&str, &str)] = &[
        ("severity", "level"),
        ("pid", "pid"),
        ("tid", "tid"),
        ("cid", "connection"),
        ("message", "message"),
        ("client", "client"),
        ("server", "server"),
        ("request", "request"),
        ("upstream", "upstream"),
        ("host", "host"),
        ("referer", "referrer"),
        ("excess", "excess"),
        ("zone", "zone"),
    ];
    let mut out = Vec::new();
    for c in load("vector-vrl-parse_nginx_log/cases.json")
        .as_array()
        .expect("array")
    {
        let format = c["format"].as_str().expect("format");
        let (kind, fmt) = match format {
            "combined" => (LogKind::Access, "combined"),
            "main" => (LogKind::Access, "main"),
            "ingress_upstreaminfo" => (LogKind::Access, UPSTREAMINFO),
            _ => (LogKind::Error, "combined"),
        };
        let expected = c["expected"].as_object();
        let mut fields = expected
            .map(|e| {
                mapped(
                    e,
                    if kind == LogKind::Access {
                        ACCESS
                    } else {
                        ERROR
                    },
                )
            })
            .unwrap_or_default();
        // VRL's expectations list every field: a variable of the format that VRL does not list
        // must be absent in ours.
        if let (Some(e), LogKind::Access) = (expected, kind) {
            let format_vars = LogFormat::parse_config(fmt).expect("test formats compile");
            for (theirs, ours) in ACCESS {
                let listed = e.contains_key(*theirs) || fields.iter().any(|(f, _)| f == ours);
                if !listed && format_vars.vars().iter().any(|v| v.name == *ours) {
                    fields.push((ours.to_string(), Exp::Absent));
                }
            }
        }
        // VRL reduces the message of limit_req lines to "limiting requests"; ours keeps it whole.
        if let Some(pos) = fields.iter().position(|(f, _)| f == "message")
            && let Exp::Str(m) = &fields[pos].1
        {
            fields[pos].1 = Exp::Prefix(m.clone());
        }
        out.push(Case {
            id: format!("vrl/{}", c["name"].as_str().expect("name")),
            kind,
            format: fmt,
            zone: "UTC",
            input: c["input"].as_str().expect("input").to_string(),
            event: 0,
            ts: expected
                .and_then(|e| e.get("timestamp"))
                .and_then(|t| t["$timestamp"].as_str())
                .map(rfc3339_ms),
            fields,
            must_fail: expected.is_none(),
        });
    }
    out
}

fn fluentd_cases() -> Vec<Case> {
    const MAP: &[(&str, &str)] = &[
        ("remote", "remote_addr"),
        ("host", "host"),
        ("user", "remote_user"),
        ("method", "request_method"),
        ("path", "request_uri"),
        ("code", "status"),
        ("size", "body_bytes_sent"),
        ("referer", "http_referer"),
        ("agent", "http_user_agent"),
        ("http_x_forwarded_for", "http_x_forwarded_for"),
    ];
    // fluentd's nginx parser reads `remote host user [time] "method path version" …`.
    const FORMAT: &str = r#"$remote_addr $host $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
    load("fluentd-parser-nginx/cases.json")
        .as_array()
        .expect("array")
        .iter()
        .map(|c| Case {
            id: format!("fluentd/{}", c["name"].as_str().expect("name")),
            kind: LogKind::Access,
            format: FORMAT,
            zone: "UTC",
            input: c["input"].as_str().expect("input").to_string(),
            event: 0,
            ts: c["expected_time"]["epoch"].as_i64().map(|s| s * 1000),
            fields: mapped(c["expected"].as_object().expect("object"), MAP),
            must_fail: false,
        })
        .collect()
}

fn flatten(prefix: &str, v: &Value, out: &mut serde_json::Map<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// ECS-style fields (Logstash ecs-v1, Beats) → ours.
const ECS: &[(&str, &str)] = &[
    ("source.address", "remote_addr"),
    ("user.name", "remote_user"),
    ("http.request.method", "request_method"),
    ("url.original", "request_uri"),
    ("http.response.status_code", "status"),
    ("http.response.body.bytes", "body_bytes_sent"),
    ("http.request.referrer", "http_referer"),
    ("user_agent.original", "http_user_agent"),
];

fn ecs_fields(flat: &serde_json::Map<String, Value>) -> Vec<(String, Exp)> {
    let mut fields = mapped(flat, ECS);
    if let Some(Value::String(v)) = flat.get("http.version") {
        fields.push(("server_protocol".into(), Exp::Str(format!("HTTP/{v}"))));
    }
    fields
}

fn logstash_cases() -> Vec<Case> {
    load("logstash-patterns-core-httpd/cases.json")
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            let mut flat = serde_json::Map::new();
            flatten("", &c["expected_subset"]["ecs-v1"], &mut flat);
            let mut fields = ecs_fields(&flat);
            for absent in c["expected_absent_nested_keys"]["ecs-v1"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some((_, ours)) = ECS.iter().find(|(t, _)| Some(*t) == absent.as_str()) {
                    fields.push((ours.to_string(), Exp::Absent));
                }
            }
            Case {
                id: format!("logstash/{}", c["name"].as_str().expect("name")),
                kind: LogKind::Access,
                format: "combined",
                zone: "UTC",
                input: c["input"].as_str().expect("input").to_string(),
                event: 0,
                ts: None,
                fields,
                must_fail: false,
            }
        })
        .collect()
}

fn datadog_cases() -> Vec<Case> {
    const MAP: &[(&str, &str)] = &[
        ("http.method", "request_method"),
        ("http.url", "request_uri"),
        ("http.status_code", "status"),
        ("http.referer", "http_referer"),
        ("http.useragent", "http_user_agent"),
        ("http.auth", "remote_user"),
        ("http.request_id", "req_id"),
        ("network.bytes_written", "body_bytes_sent"),
        ("network.client.ip", "remote_addr"),
        ("network.request_size", "request_length"),
        ("proxy.name", "proxy_upstream_name"),
        ("proxy.alternate_name", "proxy_alternative_upstream_name"),
        ("level", "level"),
        ("host", "host"),
        ("server", "server"),
        ("request", "request"),
        ("client", "client"),
    ];
    let mut out = Vec::new();
    for (file, tag, formats) in [
        (
            "nginx_tests.json",
            "nginx",
            ["combined", "combined", "combined", "", "", "combined"].as_slice(),
        ),
        (
            "nginx-ingress-controller_tests.json",
            "ingress",
            [
                UPSTREAMINFO_XFF_NO_ALT,
                UPSTREAMINFO_NO_ALT,
                "",
                "",
                "",
                UPSTREAMINFO_XFF_NO_ALT_NO_ID,
                UPSTREAMINFO_XFF_NO_ALT,
                UPSTREAMINFO_XFF_NO_ALT,
                UPSTREAMINFO_XFF_NO_ALT,
                UPSTREAMINFO_XFF,
                UPSTREAMINFO,
            ]
            .as_slice(),
        ),
    ] {
        let doc = load(&format!("datadog-integrations-core-nginx/{file}"));
        let tests = doc["tests"].as_array().expect("tests");
        assert_eq!(tests.len(), formats.len(), "{file}: one format per sample");
        for (i, t) in tests.iter().enumerate() {
            let sample = t["sample"].as_str().expect("sample");
            let is_error = sample.as_bytes().get(4) == Some(&b'/');
            let mut flat = serde_json::Map::new();
            flatten("", &t["result"]["custom"], &mut flat);
            let mut fields = mapped(&flat, MAP);
            if is_error {
                // In an error line the client is nginx's `client:` context, not $remote_addr.
                for (f, _) in fields.iter_mut().filter(|(f, _)| f == "remote_addr") {
                    *f = "client".into();
                }
            }
            // Datadog leaves `pid#tid: *cid` at the start of error.message.
            if let Some(Value::String(m)) = flat.get("error.message") {
                let text = m.split_once(' ').map(|(_, r)| r).unwrap_or(m);
                let text = if text.starts_with('*') {
                    text.split_once(' ').map_or(text, |(_, r)| r)
                } else {
                    text
                };
                fields.push(("message".into(), Exp::Str(text.to_string())));
            }
            if !is_error {
                if let Some(Value::String(v)) = flat.get("http.version") {
                    fields.push(("server_protocol".into(), Exp::Str(format!("HTTP/{v}"))));
                }
                // Datadog takes the first upstream of a list; ours keeps the list as written.
                if let Some(v) = flat
                    .get("http.upstream_status_code")
                    .and_then(Value::as_f64)
                {
                    fields.push(("upstream_status".into(), Exp::Prefix(format!("{v}"))));
                }
            }
            // Datadog's klog line is not nginx: the sample has no nginx timestamp to compare.
            let is_nginx = !formats[i].is_empty() || is_error;
            out.push(Case {
                id: format!("datadog/{tag}:{i}"),
                kind: if is_error {
                    LogKind::Error
                } else {
                    LogKind::Access
                },
                format: if formats[i].is_empty() {
                    "combined"
                } else {
                    formats[i]
                },
                zone: "UTC",
                input: sample.to_string(),
                event: 0,
                ts: flat
                    .get("date_access")
                    .and_then(Value::as_i64)
                    .filter(|_| is_nginx),
                fields,
                must_fail: false,
            });
        }
    }
    out
}

fn beats_access_cases(file: &str) -> Vec<Case> {
    let text = read(&format!("elastic-beats-filebeat-nginx/access/{file}"));
    let expected = load(&format!(
        "elastic-beats-filebeat-nginx/access/{file}-expected.json"
    ));
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let docs = expected.as_array().expect("array");
    assert_eq!(lines.len(), docs.len(), "{file}: one doc per line");
    lines
        .iter()
        .zip(docs)
        .enumerate()
        .map(|(i, (line, doc))| {
            let doc = doc.as_object().expect("object");
            let mut fields = ecs_fields(doc);
            if let Some(list) = doc
                .get("nginx.access.remote_ip_list")
                .and_then(Value::as_array)
            {
                let mut want: Vec<String> = list
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                want.sort();
                fields.retain(|(f, _)| f != "remote_addr");
                fields.push(("remote_addr".into(), Exp::List(want, true)));
            }
            // Beats omits referrer/agent for `-` and the request fields for a garbage request.
            for (theirs, ours) in [
                ("http.request.referrer", "http_referer"),
                ("user_agent.original", "http_user_agent"),
            ] {
                if !doc.contains_key(theirs) {
                    fields.push((ours.into(), Exp::Absent));
                }
            }
            Case {
                id: format!("beats/access/{file}:{}", i + 1),
                kind: LogKind::Access,
                format: "combined",
                zone: "UTC",
                input: line.to_string(),
                event: 0,
                ts: doc
                    .get("@timestamp")
                    .and_then(Value::as_str)
                    .map(rfc3339_ms),
                fields,
                must_fail: false,
            }
        })
        .collect()
}

fn beats_error_cases() -> Vec<Case> {
    let text = read("elastic-beats-filebeat-nginx/error/error.log");
    let expected = load("elastic-beats-filebeat-nginx/error/error.log-expected.json");
    expected
        .as_array()
        .expect("array")
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            let doc = doc.as_object().expect("object");
            let mut fields = mapped(
                doc,
                &[
                    ("log.level", "level"),
                    ("process.pid", "pid"),
                    ("process.thread.id", "tid"),
                    ("nginx.error.connection_id", "connection"),
                ],
            );
            // Beats keeps nginx's `, client: …` context inside `message`; ours splits it off.
            if let Some(Value::String(m)) = doc.get("message") {
                fields.push(("message".into(), Exp::Prefix(m.clone())));
            }
            Case {
                id: format!("beats/error/error.log#{}", i + 1),
                kind: LogKind::Error,
                format: "combined",
                zone: "-02:00",
                input: text.clone(),
                event: i,
                ts: doc
                    .get("@timestamp")
                    .and_then(Value::as_str)
                    .map(rfc3339_ms),
                fields,
                must_fail: false,
            }
        })
        .collect()
}

fn beats_ingress_cases() -> Vec<Case> {
    let text = read("elastic-beats-filebeat-nginx/ingress_controller/test.log");
    let expected =
        load("elastic-beats-filebeat-nginx/ingress_controller/test.log-expected.lines1-23.json");
    let lines: Vec<&str> = text.lines().collect();
    let ic = "nginx.ingress_controller.";
    expected
        .as_array()
        .expect("array")
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            let doc = doc.as_object().expect("object");
            let mut fields = ecs_fields(doc);
            let list = |k: &str| {
                doc.get(&format!("{ic}{k}"))
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect::<Vec<_>>()
                    })
            };
            for (theirs, ours) in [
                ("upstream_address_list", "upstream_addr"),
                ("upstream.response.length_list", "upstream_response_length"),
                ("upstream.response.time_list", "upstream_response_time"),
                ("upstream.response.status_code_list", "upstream_status"),
            ] {
                match list(theirs) {
                    // A single value is a number in ours (or absent for `-`).
                    Some(l) if l.len() == 1 => {
                        fields.push((ours.into(), exp(&Value::String(l[0].clone()))))
                    }
                    Some(l) => fields.push((ours.into(), Exp::List(l, false))),
                    None => {}
                }
            }
            for (theirs, ours) in [
                ("http.request.length", "request_length"),
                ("http.request.time", "request_time"),
                ("http.request.id", "req_id"),
                ("upstream.name", "proxy_upstream_name"),
                (
                    "upstream.alternative_name",
                    "proxy_alternative_upstream_name",
                ),
            ] {
                if let Some(v) = doc.get(&format!("{ic}{theirs}")) {
                    fields.push((ours.into(), exp(v)));
                }
            }
            if let Some(l) = list("remote_ip_list") {
                fields.retain(|(f, _)| f != "remote_addr");
                fields.push(("remote_addr".into(), Exp::List(l, true)));
            }
            Case {
                id: format!("beats/ingress_controller/test.log:{}", i + 1),
                kind: LogKind::Access,
                format: UPSTREAMINFO,
                zone: "UTC",
                input: lines[i].to_string(),
                event: 0,
                ts: doc
                    .get("@timestamp")
                    .and_then(Value::as_str)
                    .map(rfc3339_ms),
                fields,
                must_fail: false,
            }
        })
        .collect()
}

/// Beats ingress lines 24–29 have no expectations (IPv6 clients and upstreams, a malformed
/// upstream, `unix:` sockets, lists with holes): they must parse into fields, not crash.
#[test]
fn beats_ingress_lines_without_expectations_parse() {
    let text = read("elastic-beats-filebeat-nginx/ingress_controller/test.log");
    let lines: Vec<&str> = text.lines().skip(23).collect();
    assert_eq!(lines.len(), 6);
    for line in lines {
        let ev = &parse_all(LogKind::Access, UPSTREAMINFO, "UTC", line)[0];
        let v: Value = serde_json::from_str(&ev.message.text()).expect("JSON");
        assert!(!ev.parse_failed, "{line}\n{v}");
        assert!(v.get("unparsed_tail").is_none(), "{line}\n{v}");
        assert!(
            v["remote_addr"].is_string() && v["status"].is_number(),
            "{v}"
        );
    }
}

#[test]
fn corpora_pass_or_differ_for_a_documented_reason() {
    let corpora: Vec<(&str, Vec<Case>)> = vec![
        ("vector-vrl", vrl_cases()),
        ("fluentd", fluentd_cases()),
        ("logstash", logstash_cases()),
        ("datadog", datadog_cases()),
        (
            "beats access",
            ["test.log", "test-with-host.log", "access.log"]
                .into_iter()
                .flat_map(beats_access_cases)
                .collect(),
        ),
        ("beats error", beats_error_cases()),
        ("beats ingress", beats_ingress_cases()),
    ];
    let known: BTreeMap<&str, (&str, Option<&str>)> = KNOWN
        .iter()
        .map(|(id, why, alt)| (*id, (*why, *alt)))
        .collect();
    let mut problems = Vec::new();
    let mut seen = 0;
    for (name, cases) in &corpora {
        let mut passed = 0;
        let mut differ = 0;
        for case in cases {
            let diffs = check(case, case.format);
            match (diffs.is_empty(), known.get(case.id.as_str())) {
                (true, None) => passed += 1,
                (false, Some((_, alt))) => {
                    differ += 1;
                    seen += 1;
                    if let Some(alt) = alt {
                        let d = check(case, alt);
                        if !d.is_empty() {
                            problems.push(format!(
                                "{}: documented format {alt:?} does not make it pass: {d:?}",
                                case.id
                            ));
                        }
                    }
                }
                (true, Some(_)) => {
                    seen += 1;
                    problems.push(format!(
                        "{}: listed in KNOWN but now passes: remove it",
                        case.id
                    ));
                }
                (false, None) => {
                    problems.push(format!("{}: {diffs:?}\n    input: {}", case.id, case.input))
                }
            }
        }
        println!(
            "{name}: {passed} of {} pass, {differ} differ for documented reasons",
            cases.len()
        );
    }
    assert_eq!(seen, KNOWN.len(), "KNOWN names cases that do not exist");
    for (_, cases) in &corpora {
        for c in cases {
            assert!(
                c.must_fail || !c.fields.is_empty(),
                "{}: no expectation mapped",
                c.id
            );
        }
    }
    assert!(
        problems.is_empty(),
        "{} conformance problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// With `FIELD_NAMES=fluentd` a message is what fluentd's own `nginx` parser test expects,
/// key for key: its names, its values (`code` and `size` as numbers), no `time` (it is the
/// event's timestamp) — minus the `-` values we leave out everywhere, and with the trailing
/// X-Forwarded-For under td-agent's `forwarder`. The case nginx itself would log differently
/// (see `KNOWN`) is left out.
#[test]
fn fluentd_cases_in_fluentd_names_are_fluentds_records() {
    const FORMAT: &str = r#"$remote_addr $host $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
    let settings = |format: &str| {
        ParseSettings {
            access_format: LogFormat::parse_config(format).expect("format"),
            ..ParseSettings::default()
        }
        .with_names(FieldNames::Fluentd)
    };
    let (plain, with_xff) = (
        settings(FORMAT),
        settings(&format!("{FORMAT} $http_x_forwarded_for")),
    );
    let mut compared = 0;
    for c in load("fluentd-parser-nginx/cases.json")
        .as_array()
        .expect("array")
    {
        let name = c["name"].as_str().expect("name");
        if KNOWN
            .iter()
            .any(|(id, _, _)| *id == format!("fluentd/{name}"))
        {
            continue;
        }
        let settings = match c["expected"].get("http_x_forwarded_for") {
            Some(_) => &with_xff,
            None => &plain,
        };
        let mut p = LineParser::new(settings, LogKind::Access, -1);
        let mut out = Vec::new();
        p.push(c["input"].as_str().expect("input"), 1, &mut out);
        p.finish(&mut out);
        let got: Value = serde_json::from_str(&out[0].message.text()).expect("JSON");
        let want: serde_json::Map<String, Value> = c["expected"]
            .as_object()
            .expect("object")
            .iter()
            .filter(|(_, v)| v.as_str() != Some("-"))
            .map(|(k, v)| {
                let k = if k == "http_x_forwarded_for" {
                    "forwarder"
                } else {
                    k
                };
                let v = match (k, v.as_str()) {
                    ("code" | "size", Some(n)) => Value::from(n.parse::<u64>().expect("number")),
                    _ => v.clone(),
                };
                (k.to_string(), v)
            })
            .collect();
        assert_eq!(got, Value::Object(want), "{name}");
        assert_eq!(
            Some(out[0].timestamp),
            c["expected_time"]["epoch"].as_i64().map(|s| s * 1000),
            "{name}"
        );
        compared += 1;
    }
    // `GET /a[ ]b HTTP/1.1` answered 200 among them: an nginx before 1.21.1 served it.
    assert_eq!(compared, 4, "the cases nginx logs the same way");
}
