//! The rules on whole lines, as the parser writes them: access JSON under both namings, raw
//! lines rebuilt, json-compact, `FILTER_RULES` first, error-log records, lines that do not
//! parse.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::access::parse_line;
use crate::filter::Rules;
use crate::line::LineParser;
use crate::{FieldNames, LogEvent, LogFormat, LogKind, OutputFormat, ParseSettings, filter_fields};

const KEY: &str = "0123456789abcdef0123456789abcdef";

const FORMAT: &str = r#"'$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" "$http_cookie" $args'"#;

const LINE: &str = r#"203.0.113.50 - alice [06/Dec/2026:01:02:03 +0000] "GET /a?token=s1&x=1 HTTP/1.1" 200 12 "https://r.example/?token=s2" "curl/8 jane@example.com" "198.51.100.7, 2001:db8::7" "sid=abc" token=s1&x=1"#;

fn settings(fmt: &str, output: OutputFormat, names: FieldNames) -> ParseSettings {
    ParseSettings {
        access_format: LogFormat::parse_config(fmt).unwrap(),
        output,
        redaction: Arc::new(all_rules()),
        ..ParseSettings::default()
    }
    .with_names(names)
}

fn all_rules() -> Redaction {
    Redaction::new(RedactSpec {
        ip: Some(IpMask::DEFAULT),
        query_params: parse_query_params("token").unwrap(),
        fields: parse_fields("http_cookie,remote_user:hash").unwrap(),
        patterns: parse_patterns("email").unwrap(),
        hash_key: Some(HashKey::new(KEY).unwrap()),
    })
    .unwrap()
}

fn message(ev: &LogEvent) -> Value {
    serde_json::from_str(&ev.message.text()).unwrap()
}

fn rules_of(s: &ParseSettings, ev: &LogEvent) -> Vec<String> {
    let names = s.redaction.names();
    (0..names.len())
        .filter(|i| ev.redacted & (1 << i) != 0)
        .map(|i| names[i].clone())
        .collect()
}

#[test]
fn access_json_under_both_namings() {
    let s = settings(FORMAT, OutputFormat::Json, FieldNames::Nginx);
    let ev = parse_line(&s, LINE, 1, 0);
    let v = message(&ev);
    let user = v["remote_user"].as_str().unwrap().to_string();
    assert!(user.starts_with(HASH_PREFIX), "{user}");
    assert_eq!(
        v,
        json!({
            "remote_addr": "203.0.113.0", "remote_user": user, "time_local": "06/Dec/2026:01:02:03 +0000",
            "request": "GET /a?token=REDACTED&x=1 HTTP/1.1", "request_method": "GET",
            "request_uri": "/a?token=REDACTED&x=1", "server_protocol": "HTTP/1.1", "status": 200,
            "body_bytes_sent": 12, "http_referer": "https://r.example/?token=REDACTED",
            "http_user_agent": "curl/8 REDACTED", "http_x_forwarded_for": "198.51.100.0, 2001:db8::",
            "args": "token=REDACTED&x=1"
        })
    );
    assert_eq!(
        rules_of(&s, &ev),
        [
            "ip",
            "query",
            "pattern:email",
            "field:http_cookie",
            "field:remote_user"
        ]
    );
    // td-agent's names: the same values under its keys (the classes follow the variables);
    // REDACT_FIELDS names the keys as written.
    let f = settings(FORMAT, OutputFormat::Json, FieldNames::Fluentd);
    let v = message(&parse_line(&f, LINE, 1, 0));
    assert_eq!(v["remote"], "203.0.113.0");
    assert_eq!(v["path"], "/a?token=REDACTED&x=1");
    assert_eq!(v["referer"], "https://r.example/?token=REDACTED");
    assert_eq!(v["agent"], "curl/8 REDACTED");
    assert_eq!(v["forwarder"], "198.51.100.0, 2001:db8::");
    assert_eq!(
        v["user"], "alice",
        "fluentd names the field user, not remote_user"
    );
    assert!(v.get("http_cookie").is_none());
}

#[test]
fn raw_lines_keep_nginxs_layout() {
    let s = settings(FORMAT, OutputFormat::Raw, FieldNames::Nginx);
    let ev = parse_line(&s, LINE, 1, 0);
    let text = ev.message.text();
    let user = {
        let j = parse_line(
            &settings(FORMAT, OutputFormat::Json, FieldNames::Nginx),
            LINE,
            1,
            0,
        );
        message(&j)["remote_user"].as_str().unwrap().to_string()
    };
    assert_eq!(
        text,
        format!(
            r#"203.0.113.0 - {user} [06/Dec/2026:01:02:03 +0000] "GET /a?token=REDACTED&x=1 HTTP/1.1" 200 12 "https://r.example/?token=REDACTED" "curl/8 REDACTED" "198.51.100.0, 2001:db8::" "-" token=REDACTED&x=1"#
        )
    );
    // The redacted line is still a line of the format.
    let plain = ParseSettings {
        access_format: LogFormat::parse_config(FORMAT).unwrap(),
        ..ParseSettings::default()
    };
    assert!(!parse_line(&plain, &text, 1, 0).parse_failed);
}

#[test]
fn raw_lines_of_an_escape_json_format_are_escaped_again() {
    let fmt = r#"escape=json '{"ip":"$remote_addr","uri":"$request_uri","ua":"$http_user_agent"}'"#;
    let line = r#"{"ip":"203.0.113.50","uri":"/a?token=\"q\"","ua":"say \"jane@example.com\""}"#;
    let s = settings(fmt, OutputFormat::Raw, FieldNames::Nginx);
    let text = parse_line(&s, line, 1, 0).message.text().to_string();
    assert_eq!(
        text,
        r#"{"ip":"203.0.113.0","uri":"/a?token=REDACTED","ua":"say \"REDACTED\""}"#
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["ua"], "say \"REDACTED\"");
}

#[test]
fn compact_messages_still_rebuild_the_request() {
    let s = ParseSettings {
        compact: true,
        ..settings(FORMAT, OutputFormat::Json, FieldNames::Nginx)
    };
    let v = message(&parse_line(&s, LINE, 1, 0));
    assert!(v.get("request").is_none(), "{v}");
    assert_eq!(v["request_uri"], "/a?token=REDACTED&x=1");
    let rebuilt = format!(
        "{} {} {}",
        v["request_method"].as_str().unwrap(),
        v["request_uri"].as_str().unwrap(),
        v["server_protocol"].as_str().unwrap()
    );
    assert_eq!(rebuilt, "GET /a?token=REDACTED&x=1 HTTP/1.1");
}

#[test]
fn filter_rules_see_the_values_as_logged() {
    let mut s = settings(FORMAT, OutputFormat::Json, FieldNames::Nginx);
    let rules = r#"[{"name": "office", "when": {"remote_addr": {"equals": "203.0.113.50"}}}]"#;
    s.rules = Arc::new(Rules::parse(rules, |k| filter_fields(&s, k)).unwrap());
    let ev = parse_line(&s, LINE, 1, 0);
    assert!(
        ev.filtered.is_some(),
        "the rule matched the address as logged"
    );
    assert_eq!(
        ev.redacted, 0,
        "a filtered line is not sent, so not redacted"
    );
    let other = LINE.replacen("203.0.113.50", "203.0.113.51", 1);
    let ev = parse_line(&s, &other, 1, 0);
    assert!(ev.filtered.is_none());
    assert_eq!(message(&ev)["remote_addr"], "203.0.113.0");
}

#[test]
fn lines_that_do_not_parse_get_the_free_text_rules() {
    for output in [OutputFormat::Json, OutputFormat::Raw] {
        let s = settings(FORMAT, output, FieldNames::Nginx);
        let ev = parse_line(
            &s,
            "junk 198.51.100.7 GET /x?token=s1 from jane%40example.com",
            1,
            0,
        );
        assert!(ev.parse_failed);
        let text = ev.message.text();
        assert!(
            text.contains("junk 198.51.100.0 GET /x?token=REDACTED from REDACTED"),
            "{output:?}: {text}"
        );
        assert_eq!(rules_of(&s, &ev), ["ip", "query", "pattern:email"]);
    }
}

fn error_events(s: &ParseSettings, lines: &[&str]) -> Vec<LogEvent> {
    let mut p = LineParser::new(s, LogKind::Error, 99);
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        p.push(l, i as u64 + 1, &mut out);
    }
    p.finish(&mut out);
    out
}

const ERROR: &str = r#"2026/11/24 10:00:02 [warn] 1204#1204: *32 "/srv/x?token=s0" is not found, client: 2001:db8:1:2::1, server: www.example.com, request: "POST /api?token=s1 HTTP/2.0", upstream: "http://10.0.4.20:8080/api?token=s1", host: "www.example.com", referrer: "https://r/?token=s2&e=jane%40example.com""#;

#[test]
fn error_records_mask_their_context() {
    let s = settings(FORMAT, OutputFormat::Json, FieldNames::Nginx);
    let ev = &error_events(&s, &[ERROR])[0];
    let v = message(ev);
    assert_eq!(v["message"], "\"/srv/x?token=REDACTED\" is not found");
    assert_eq!(v["client"], "2001:db8:1::");
    assert_eq!(v["request"], "POST /api?token=REDACTED HTTP/2.0");
    assert_eq!(
        v["upstream"], "http://10.0.4.20:8080/api?token=REDACTED",
        "our upstream's address stays"
    );
    assert_eq!(v["referrer"], "https://r/?token=REDACTED&e=REDACTED");
    assert_eq!(v["host"], "www.example.com");
    assert_eq!(rules_of(&s, ev), ["ip", "query", "pattern:email"]);
    // td-agent's message is the whole record: it gets the free-text rules.
    let f = settings(FORMAT, OutputFormat::Json, FieldNames::Fluentd);
    let text = message(&error_events(&f, &[ERROR])[0])["message"].to_string();
    for secret in ["s0", "s1", "s2", "2001:db8:1:2::1", "jane"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // Raw records: the free-text rules over the whole record (every IP literal).
    let r = settings(FORMAT, OutputFormat::Raw, FieldNames::Nginx);
    let text = error_events(&r, &[ERROR])[0].message.text().to_string();
    assert!(text.contains("client: 2001:db8:1::, server"), "{text}");
    assert!(
        text.contains("upstream: \"http://10.0.4.0:8080/api?token=REDACTED\""),
        "{text}"
    );
}

#[test]
fn error_fields_can_be_dropped() {
    let mut s = settings(FORMAT, OutputFormat::Json, FieldNames::Nginx);
    s.redaction = Arc::new(
        Redaction::new(RedactSpec {
            fields: parse_fields("client,referrer").unwrap(),
            ..RedactSpec::default()
        })
        .unwrap(),
    );
    let v = message(&error_events(&s, &[ERROR])[0]);
    assert!(
        v.get("client").is_none() && v.get("referrer").is_none(),
        "{v}"
    );
    assert_eq!(
        v["request"], "POST /api?token=s1 HTTP/2.0",
        "no other rule set"
    );
}

proptest! {
    /// Whatever the addresses and queries, a raw line redacted is still a line of the format,
    /// and the fields no rule touches are as nginx wrote them.
    #[test]
    fn redacted_raw_lines_still_parse(
        (a, b) in (any::<[u8; 4]>(), any::<[u16; 8]>()),
        token in "[A-Za-z0-9._~-]{1,20}",
        path in "/[a-z0-9/]{0,12}",
        status in 100u16..600,
        agent in "[ -!#-\\[\\]-~]{0,30}",
    ) {
        let v4 = std::net::Ipv4Addr::from(a);
        let v6 = std::net::Ipv6Addr::from(b);
        let line = format!(
            r#"{v4} - - [06/Dec/2026:01:02:03 +0000] "GET {path}?Token={token}&a=1 HTTP/1.1" {status} 5 "-" "{agent}" "{v6}, {v4}" "-" -"#
        );
        let plain = ParseSettings {
            access_format: LogFormat::parse_config(FORMAT).unwrap(),
            ..ParseSettings::default()
        };
        let before = message(&parse_line(&plain, &line, 1, 0));
        let s = settings(FORMAT, OutputFormat::Raw, FieldNames::Nginx);
        let text = parse_line(&s, &line, 1, 0).message.text().to_string();
        let after = parse_line(&plain, &text, 1, 0);
        prop_assert!(!after.parse_failed, "{text}");
        let after = message(&after);
        prop_assert_eq!(&after["status"], &before["status"]);
        prop_assert_eq!(&after["time_local"], &before["time_local"]);
        prop_assert_eq!(
            after["request"].as_str().unwrap(),
            format!("GET {path}?Token=REDACTED&a=1 HTTP/1.1")
        );
        let secret = format!("={token}&");
        prop_assert!(!text.contains(&secret), "{}", text);
        let masked = mask_ip(std::net::IpAddr::V4(v4), IpMask::DEFAULT).to_string();
        prop_assert_eq!(after["remote_addr"].as_str().unwrap(), masked);
        if !agent.contains('@') {
            prop_assert_eq!(&after["http_user_agent"], &before["http_user_agent"]);
        }
    }
}
