//! The template's Contributor Insights rules and field indexes against the forwarder's own
//! output: each `AWS::CloudWatch::InsightRule` body of template.yaml (both `FieldNames`
//! variants) parsed and evaluated (tests/common/insight_rule.rs, checked on AWS's documented
//! example) on what `parse` prints for a real nginx's log of known traffic, in both JSON output
//! modes; and each field the index policies name found in that output.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};

use common::insight_rule::{self, Rule};
use common::nginx::{Nginx, free_port};
use common::template::{self, either};
use nginx_cloudwatch_forwarder::parse::extra::ExtraFields;
use nginx_cloudwatch_forwarder::parse::redact::REDACTED;
use nginx_cloudwatch_forwarder::route::DEFAULT_KEY_PATTERN;
use serde_json::Value;

/// The access group's name with the default `LogGroupNamePrefix`.
const ACCESS_GROUP: &str = "nginx-access";

/// One `AWS::CloudWatch::InsightRule` of template.yaml: its definition for each field naming.
#[derive(Debug)]
struct TemplateRule {
    resource: String,
    /// (nginx names, td-agent names)
    body: (String, String),
}

/// The rules of template.yaml, their `RuleBody: !Sub [body, {Var: !If [FluentdNames, a, b]}]`
/// substituted for each naming, with `${AccessLogGroup}` as the default group's name.
fn template_rules() -> Vec<TemplateRule> {
    let text = template::text();
    let mut out = Vec::new();
    for r in template::resources(&text, "AWS::CloudWatch::InsightRule") {
        assert_eq!(
            r.field("Condition:"),
            "WithContributorInsights",
            "{}",
            r.name
        );
        assert_eq!(r.field("RuleState:"), "ENABLED", "{}", r.name);
        let at = r.line_of("RuleBody: !Sub");
        let body = r.lines[at + 1]
            .trim()
            .strip_prefix("- '")
            .and_then(|b| b.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{}: a quoted body after RuleBody: !Sub", r.name));
        let (mut nginx, mut fluentd) = (body.to_string(), body.to_string());
        for l in r.lines[at + 2..]
            .iter()
            .take_while(|l| !l.trim().is_empty())
        {
            let (var, value) = l
                .trim()
                .trim_start_matches("- ")
                .split_once(": ")
                .unwrap_or_else(|| panic!("{}: a variable: {l}", r.name));
            let (n, f) = either(value);
            nginx = nginx.replace(&format!("${{{var}}}"), &n);
            fluentd = fluentd.replace(&format!("${{{var}}}"), &f);
        }
        let resolve = |b: String| {
            let b = b.replace("${AccessLogGroup}", ACCESS_GROUP);
            assert!(!b.contains("${"), "{}: unsubstituted: {b}", r.name);
            b
        };
        let body = (resolve(nginx), resolve(fluentd));
        out.push(TemplateRule {
            resource: r.name,
            body,
        });
    }
    out
}

fn rule(t: &TemplateRule, names: &str) -> Rule {
    let body = if names == "nginx" {
        &t.body.0
    } else {
        &t.body.1
    };
    insight_rule::parse(body).unwrap_or_else(|e| panic!("{} ({names}): {e}: {body}", t.resource))
}

#[test]
fn every_insight_rule_parses_under_both_field_names() {
    let rules = template_rules();
    let names: Vec<&str> = rules.iter().map(|r| r.resource.as_str()).collect();
    assert_eq!(
        names,
        [
            "TopClientsInsightRule",
            "TopServerErrorUrisInsightRule",
            "TopUserAgentsInsightRule"
        ]
    );
    for t in &rules {
        for names in ["nginx", "fluentd"] {
            let r = rule(t, names);
            // The stack's own group, by name: every matched event is billed, so no wildcard.
            assert_eq!(r.log_group_names, [ACCESS_GROUP], "{}", t.resource);
            assert_eq!(r.value_of, None, "{}: counts", t.resource);
        }
        assert_ne!(t.body.0, t.body.1, "{}: the namings differ", t.resource);
    }
}

/// The rule of AWS's syntax page (top `$.ip` by the sum of `$.requestBytes` of `PUT`s), its
/// filter examples, and definitions the page does not allow.
#[test]
fn the_evaluator_follows_awss_documented_example() {
    let documented = r#"{
        "Schema": {"Name": "CloudWatchLogRule", "Version": 1},
        "LogGroupNames": ["API-Gateway-Access-Logs*", "Log-group-name2"],
        "LogFormat": "JSON",
        "Contribution": {
            "Keys": ["$.ip"],
            "ValueOf": "$.requestBytes",
            "Filters": [{"Match": "$.httpMethod", "In": ["PUT"]}]
        },
        "AggregateOn": "Sum"
    }"#;
    let r = insight_rule::parse(documented).unwrap();
    let events: Vec<Value> = [
        r#"{"ip": "192.0.2.1", "httpMethod": "PUT", "requestBytes": 100}"#,
        r#"{"ip": "192.0.2.1", "httpMethod": "PUT", "requestBytes": 50}"#,
        r#"{"ip": "192.0.2.2", "httpMethod": "GET", "requestBytes": 1000}"#,
        r#"{"ip": "192.0.2.2", "httpMethod": "PUT", "requestBytes": 7}"#,
        // No key: not counted. Matching is case-sensitive: `put` is not `PUT`.
        r#"{"httpMethod": "PUT", "requestBytes": 3}"#,
        r#"{"ip": "192.0.2.3", "httpMethod": "put", "requestBytes": 9}"#,
    ]
    .iter()
    .map(|e| serde_json::from_str(e).unwrap())
    .collect();
    let key = |ip: &str| vec![ip.to_string()];
    assert_eq!(
        r.top(&events, 10),
        [(key("192.0.2.1"), 150.0), (key("192.0.2.2"), 7.0)]
    );
    assert_eq!(r.matched(&events), 3);

    // The page's filter examples (its `In` example has a trailing comma, not JSON: left out).
    let event = serde_json::json!({"StatusCode": 200, "BytesReceived": 20000, "eventSource": "ecs.amazonaws.com", "details": {"c-count": {"c1": 1}}});
    for (filter, want) in [
        (r#"{"Match": "$.StatusCode", "EqualTo": 200}"#, true),
        (
            r#"{"Match": "$.BytesReceived", "GreaterThan": 10000}"#,
            true,
        ),
        (
            r#"{"Match": "$.eventSource", "StartsWith": ["ec2", "ecs"]}"#,
            true,
        ),
        (r#"{"Match": "$.StatusCode", "NotEqualTo": 200}"#, false),
        (r#"{"Match": "$.BytesReceived", "LessThan": 10000}"#, false),
        (
            r#"{"Match": "$.eventSource", "NotIn": ["ecs.amazonaws.com"]}"#,
            false,
        ),
        (
            r#"{"Match": "$.details.c-count.c1", "IsPresent": true}"#,
            true,
        ),
        (r#"{"Match": "$.missing", "IsPresent": false}"#, true),
        // A number operator on a string, a string operator on a number: no match.
        (r#"{"Match": "$.eventSource", "GreaterThan": 0}"#, false),
        (r#"{"Match": "$.StatusCode", "In": ["200"]}"#, false),
    ] {
        let body = format!(
            r#"{{"Schema": {{"Name": "CloudWatchLogRule", "Version": 1}}, "LogGroupNames": ["g"], "LogFormat": "JSON", "Contribution": {{"Keys": ["$.StatusCode"], "Filters": [{filter}]}}, "AggregateOn": "Count"}}"#
        );
        let r = insight_rule::parse(&body).unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(
            r.matched(std::slice::from_ref(&event)),
            want as usize,
            "{filter}"
        );
    }

    let with = |contribution: &str, aggregate: &str| {
        format!(
            r#"{{"Schema": {{"Name": "CloudWatchLogRule", "Version": 1}}, "LogGroupNames": ["g"], "LogFormat": "JSON", "Contribution": {contribution}, "AggregateOn": "{aggregate}"}}"#
        )
    };
    let five_filters = format!(
        r#"{{"Keys": ["$.a"], "Filters": [{}]}}"#,
        [r#"{"Match": "$.a", "IsPresent": true}"#; 5].join(", ")
    );
    let eleven_values = format!(
        r#"{{"Keys": ["$.a"], "Filters": [{{"Match": "$.a", "In": [{}]}}]}}"#,
        [r#""x""#; 11].join(", ")
    );
    for (bad, why) in [
        (
            with(r#"{"Keys": ["$.a", "$.b", "$.c", "$.d", "$.e"]}"#, "Count"),
            "five keys",
        ),
        (with(&five_filters, "Count"), "five filters"),
        (with(&eleven_values, "Count"), "eleven In values"),
        (with(r#"{"Keys": []}"#, "Count"), "no key"),
        (
            with(
                r#"{"Keys": ["$.a"], "Filters": [{"Match": "$.a", "Contains": ["x"]}]}"#,
                "Count",
            ),
            "an unknown operator",
        ),
        (
            with(
                r#"{"Keys": ["$.a"], "Filters": [{"Match": "$.a", "In": [1]}]}"#,
                "Count",
            ),
            "a number in In",
        ),
        (
            with(
                r#"{"Keys": ["$.a"], "Filters": [{"Match": "$.a", "GreaterThan": "1"}]}"#,
                "Count",
            ),
            "a string for GreaterThan",
        ),
        (with(r#"{"Keys": ["$.a"]}"#, "Sum"), "Sum without ValueOf"),
        (
            with(r#"{"Keys": ["$.a"], "ValueOf": "$.b"}"#, "Count"),
            "ValueOf with Count",
        ),
        (
            with(r#"{"Keys": ["a"]}"#, "Count"),
            "a key that is no JSON path",
        ),
        (with(r#"{"Keys": ["$.é"]}"#, "Count"), "not ASCII"),
        (
            documented.replace("CloudWatchLogRule", "ServiceLogRule"),
            "another schema",
        ),
        (documented.replace(r#""JSON""#, r#""CLF""#), "CLF"),
        (
            with(
                &format!(r#"{{"Keys": ["$.{}"]}}"#, "a".repeat(8192)),
                "Count",
            ),
            "over 8192 characters",
        ),
    ] {
        assert!(insight_rule::parse(&bad).is_err(), "{why}: {bad:.200}");
    }
}

// --- Real nginx traffic with a known truth ---------------------------------------------------

/// One planned request: (client address, target, user agent).
type Request = (&'static str, &'static str, &'static str);

const CLIENTS: [(&str, usize); 5] = [
    ("203.0.113.1", 50),
    ("203.0.113.2", 40),
    ("203.0.113.3", 30),
    ("203.0.113.4", 20),
    ("203.0.113.5", 10),
];
/// The 5xx (`/fail/…`: 503), 404 (`/gone/…`, and `/missing/…`, a file nginx does not find,
/// which it also writes to the error log) targets and how often each is asked for; the rest of
/// the 150 requests ask for `/ok/N` (200).
const SPECIAL: [(&str, usize); 6] = [
    ("/fail/a", 12),
    ("/fail/b", 7),
    ("/fail/c?token=x", 3),
    ("/gone/x", 9),
    ("/missing/one", 2),
    ("/missing/two", 2),
];
const AGENTS: [(&str, usize); 3] = [
    ("curl/8.5.0", 75),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        50,
    ),
    ("Googlebot/2.1 (+http://www.google.com/bot.html)", 25),
];

fn status_of(target: &str) -> u16 {
    match target {
        t if t.starts_with("/fail/") => 503,
        t if t.starts_with("/gone/") || t.starts_with("/missing/") => 404,
        _ => 200,
    }
}

/// `n` items: each `(item, count)` repeated `count` times, interleaved (one of each in turn).
fn spread<'a>(plan: &[(&'a str, usize)]) -> Vec<&'a str> {
    let mut left: Vec<(&str, usize)> = plan.to_vec();
    let mut out = Vec::new();
    while left.iter().any(|(_, n)| *n > 0) {
        for (item, n) in left.iter_mut().filter(|(_, n)| *n > 0) {
            out.push(*item);
            *n -= 1;
        }
    }
    out
}

/// One request (client address in `X-Forwarded-For`, which nginx's realip module turns into
/// `$remote_addr`); waits for nginx to close the connection, so the line is logged.
fn request(addr: SocketAddr, target: &str, agent: &str, client: &str) {
    let mut s = TcpStream::connect(addr).expect("connect to nginx");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: {agent}\r\nX-Forwarded-For: {client}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read the answer");
    let want = format!("HTTP/1.1 {} ", status_of(target));
    assert!(answer.starts_with(want.as_bytes()), "{target}: {answer:?}");
}

/// The plan's requests sent to a real nginx (combined format): its access and error logs.
fn real_traffic() -> (
    String,
    String,
    Vec<(&'static str, &'static str, &'static str)>,
) {
    let clients = spread(&CLIENTS);
    let agents = spread(&AGENTS);
    let mut targets = spread(&SPECIAL);
    let ok: Vec<String> = (targets.len()..clients.len())
        .map(|n| format!("/ok/{n}"))
        .collect();
    let ok: Vec<&'static str> = ok.into_iter().map(|s| &*s.leak()).collect();
    targets.extend(ok);
    assert_eq!(
        (clients.len(), agents.len(), targets.len()),
        (150, 150, 150)
    );
    let plan: Vec<_> = (0..150)
        .map(|i| (clients[i], targets[i], agents[i]))
        .collect();

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST.into())));
    let mut nginx = Nginx::start(&format!(
        "set_real_ip_from 127.0.0.1;\n\
         real_ip_header X-Forwarded-For;\n\
         server {{\n\
           listen {addr};\n\
           root html;\n\
           access_log logs/access.log combined;\n\
           error_log logs/error.log error;\n\
           location /fail/ {{ return 503; }}\n\
           location /gone/ {{ return 404; }}\n\
           location /missing/ {{ }}\n\
           location / {{ return 200 \"ok\\n\"; }}\n\
         }}"
    ));
    for (client, target, agent) in &plan {
        request(addr, target, agent, client);
    }
    nginx.stop();
    let read = |f: &str| std::fs::read_to_string(nginx.path(f)).expect("nginx wrote it");
    (read("logs/access.log"), read("logs/error.log"), plan)
}

fn json(messages: &[String]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| serde_json::from_str(m).unwrap_or_else(|e| panic!("{e}: {m}")))
        .collect()
}

/// The truth each rule must find, from the plan: (resource, contributors largest first).
fn truth(plan: &[Request]) -> BTreeMap<&'static str, Vec<(Vec<String>, f64)>> {
    let ranked = |counts: BTreeMap<String, f64>| {
        let mut v: Vec<(Vec<String>, f64)> =
            counts.into_iter().map(|(k, n)| (vec![k], n)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    };
    let count = |pick: &dyn Fn(&Request) -> Option<String>| {
        let mut m = BTreeMap::new();
        for p in plan {
            if let Some(k) = pick(p) {
                *m.entry(k).or_insert(0.0) += 1.0;
            }
        }
        ranked(m)
    };
    BTreeMap::from([
        (
            "TopClientsInsightRule",
            count(&|(c, _, _)| Some(c.to_string())),
        ),
        (
            "TopServerErrorUrisInsightRule",
            count(&|(_, t, _)| (status_of(t) >= 500).then(|| t.to_string())),
        ),
        (
            "TopUserAgentsInsightRule",
            count(&|(_, _, a)| Some(a.to_string())),
        ),
    ])
}

#[test]
fn top_contributors_on_real_nginx_traffic() {
    let (access, _, plan) = real_traffic();
    assert_eq!(access.lines().count(), 150);
    let truth = truth(&plan);
    // The plan's figures, so that a wrong plan cannot pass unnoticed.
    assert_eq!(
        truth["TopClientsInsightRule"][0],
        (vec!["203.0.113.1".to_string()], 50.0)
    );
    assert_eq!(
        truth["TopServerErrorUrisInsightRule"],
        [
            (vec!["/fail/a".to_string()], 12.0),
            (vec!["/fail/b".to_string()], 7.0),
            (vec!["/fail/c?token=x".to_string()], 3.0)
        ]
    );
    assert_eq!(truth["TopUserAgentsInsightRule"].len(), 3);
    let rules = template_rules();
    for names in ["nginx", "fluentd"] {
        for output in ["json", "json-compact"] {
            let env = [("FIELD_NAMES", names), ("OUTPUT_FORMAT", output)];
            let events = json(&template::parsed("access", &access, &env));
            assert_eq!(events.len(), 150);
            for t in &rules {
                let r = rule(t, names);
                let want = &truth[t.resource.as_str()];
                assert_eq!(
                    &r.top(&events, 10),
                    want,
                    "{} ({names}, {output})",
                    t.resource
                );
                let billed = want.iter().map(|(_, n)| *n as usize).sum::<usize>();
                assert_eq!(
                    r.matched(&events),
                    billed,
                    "{} ({names}, {output})",
                    t.resource
                );
                if names == "nginx" && output == "json" {
                    eprintln!(
                        "{:<30} {billed:>3} of 150 events matched, top {:?}",
                        t.resource,
                        r.top(&events, 1)
                    );
                }
            }
        }
    }
}

/// With redaction on (`ANONYMIZE_IP=on`, `REDACT_QUERY_PARAMS=token`) the rules count what was
/// sent: clients by their /24, the 5xx URI with its token masked. No secret and no full address
/// becomes a contributor key.
#[test]
fn no_secret_becomes_a_contributor_key() {
    let (access, _, _) = real_traffic();
    let rules = template_rules();
    let masked = format!("/fail/c?token={REDACTED}");
    for names in ["nginx", "fluentd"] {
        for output in ["json", "json-compact"] {
            let env = [
                ("FIELD_NAMES", names),
                ("OUTPUT_FORMAT", output),
                ("ANONYMIZE_IP", "on"),
                ("REDACT_QUERY_PARAMS", "token"),
            ];
            let events = json(&template::parsed("access", &access, &env));
            let top = |resource: &str| {
                let t = rules.iter().find(|t| t.resource == resource).unwrap();
                rule(t, names).top(&events, 10)
            };
            let key = |k: &str| vec![k.to_string()];
            assert_eq!(
                top("TopClientsInsightRule"),
                [(key("203.0.113.0"), 150.0)],
                "{names}, {output}"
            );
            assert_eq!(
                top("TopServerErrorUrisInsightRule"),
                [
                    (key("/fail/a"), 12.0),
                    (key("/fail/b"), 7.0),
                    (key(&masked), 3.0)
                ],
                "{names}, {output}"
            );
        }
    }
}

/// `OUTPUT_FORMAT=raw` sends the lines as nginx wrote them: no JSON, so no rule counts anything
/// (and no index, metric filter or field query applies).
#[test]
fn raw_output_feeds_no_rule() {
    let (access, _, _) = real_traffic();
    for names in ["nginx", "fluentd"] {
        let messages = template::parsed(
            "access",
            &access,
            &[("FIELD_NAMES", names), ("OUTPUT_FORMAT", "raw")],
        );
        assert_eq!(messages.len(), 150);
        let as_json: Vec<Value> = messages
            .iter()
            .filter_map(|m| serde_json::from_str(m).ok())
            .collect();
        assert!(as_json.is_empty(), "{as_json:?}");
        for t in template_rules() {
            assert_eq!(rule(&t, names).matched(&as_json), 0, "{}", t.resource);
        }
    }
}

/// PutIndexPolicy: "up to 20 fields", each name up to 100 characters.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutIndexPolicy.html>
const MAX_INDEX_FIELDS: usize = 20;
const MAX_INDEX_FIELD_CHARS: usize = 100;

/// Every field an index policy names is one the forwarder writes: in every access (error) event
/// `parse` prints for the real nginx's log, under both namings and JSON modes, or, for
/// `instance_id`, the field the user guide's `EXTRA_FIELDS` example adds from the default
/// `KEY_PATTERN`. The account-level policy (`FieldIndexes=account`) names the same fields.
#[test]
fn every_indexed_field_is_one_the_forwarder_writes() {
    let text = template::text();
    let (access, error, _) = real_traffic();
    assert!(error.lines().count() >= 4, "{error}");
    let access_idx = template::index_fields(&text, "AccessLogGroup");
    let error_idx = template::index_fields(&text, "ErrorLogGroup");
    let documented = documented_extra_fields();
    for (names, access_fields, error_fields) in [
        ("nginx", &access_idx.0, &error_idx.0),
        ("fluentd", &access_idx.1, &error_idx.1),
    ] {
        for output in ["json", "json-compact"] {
            let env = [("FIELD_NAMES", names), ("OUTPUT_FORMAT", output)];
            for (kind, log, fields) in [
                ("access", &access, access_fields),
                ("error", &error, error_fields),
            ] {
                let events = json(&template::parsed(kind, log, &env));
                assert!(!events.is_empty());
                for f in fields.iter() {
                    assert!(f.len() <= MAX_INDEX_FIELD_CHARS);
                    if f == "instance_id" {
                        assert!(documented.contains(f), "{documented:?}");
                        continue;
                    }
                    let missing = events.iter().filter(|e| e.get(f).is_none()).count();
                    assert_eq!(
                        missing, 0,
                        "{kind} ({names}, {output}): {f} missing from {missing} events"
                    );
                }
            }
        }
        assert!(access_fields.len() + error_fields.len() <= MAX_INDEX_FIELDS);
        // The account-level policy: the access fields, then the error fields.
        let account = account_policy_fields(&text, names);
        assert_eq!(
            account,
            [access_fields.clone(), error_fields.clone()].concat(),
            "{names}"
        );
    }
    eprintln!("access indexes {access_idx:?}, error indexes {error_idx:?}");
}

/// The fields of `AccountFieldIndexPolicy`'s `PolicyDocument` for a naming.
fn account_policy_fields(template: &str, names: &str) -> Vec<String> {
    let r = template::resources(template, "AWS::Logs::AccountPolicy")
        .into_iter()
        .find(|r| r.name == "AccountFieldIndexPolicy")
        .expect("AccountFieldIndexPolicy");
    assert_eq!(r.field("Condition:"), "WithAccountFieldIndexes");
    let at = r.line_of("PolicyDocument: !If");
    assert_eq!(r.lines[at + 1].trim(), "- FluentdNames");
    let doc = r.lines[at + if names == "fluentd" { 2 } else { 3 }]
        .trim()
        .trim_start_matches("- ")
        .trim_matches('\'');
    let v: Value = serde_json::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
    v["Fields"]
        .as_array()
        .expect("Fields")
        .iter()
        .map(|f| f.as_str().expect("a name").to_string())
        .collect()
}

/// The names the user guide's `EXTRA_FIELDS='…'` example writes, checked as the cold start
/// checks them (with the default `KEY_PATTERN`'s groups) and rendered for a host's key.
fn documented_extra_fields() -> Vec<String> {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/user-guide.md"))
        .expect("the user guide");
    let example = guide
        .lines()
        .find_map(|l| l.strip_prefix("EXTRA_FIELDS='"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("the EXTRA_FIELDS example");
    let pattern = regex::Regex::new(DEFAULT_KEY_PATTERN).unwrap();
    let groups: Vec<&str> = pattern.capture_names().flatten().collect();
    let fields = ExtraFields::parse(example, &groups, &[]).expect("the example is valid");
    let key = "nginx/i-0123456789abcdef0/access/2026/12/06/access.log.gz";
    let caps = pattern
        .captures(key)
        .expect("the default pattern matches a host's key");
    let rendered = fields.render(|g| caps.name(g).map(|m| m.as_str()), |_| Some("web-01"));
    assert!(!rendered.is_empty());
    fields.names().into_iter().map(str::to_string).collect()
}
