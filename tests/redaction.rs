//! Privacy before the lines leave (issue 33): a real nginx serves traffic full of what must not
//! reach CloudWatch (tokens in queries and path parameters, e-mail addresses plain and `%40`, a
//! card number, `Authorization`, `Cookie`, `X-Forwarded-For` lists, `Forwarded`, IPv4 and IPv6
//! clients, realip) and writes it in one `log_format` with `escape=default`, the same variables
//! with `escape=json` (the ground truth), and its error log. `parse` (every output mode, both
//! field namings) and `replay` against moto (the Lambda's handler, reading S3 and writing
//! CloudWatch Logs) run with every redaction rule on, and what they send must hold none of the
//! secrets and no full client address, while each masked address keeps its prefix; the same
//! logs without the rules must hold every secret, so that the check cannot pass vacuously.
//! Each request's fields are checked exactly (both namings, both escapings), `raw` read back
//! must give what `json` gives, a `FILTER_RULES` rule still sees the token nginx logged, and
//! each rule's count is checked against the `escape=json` truth.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::nginx::{Nginx, free_port, ipv6_loopback, request_with, send};
use common::truth::{lines_of, parse_truth_line, strict_parse};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder");
const HOST: &str = "redact.test";
/// `REDACT_HASH_KEY` of the redacted runs (at least 32 bytes).
const HASH_KEY: &str = "test-hash-key-0123456789abcdef-0123456789";

/// The variables of the site's access logs, in order; `$realip_remote_addr` only where nginx
/// has the realip module.
const VARS: &[&str] = &[
    "remote_addr",
    "realip_remote_addr",
    "time_local",
    "request",
    "status",
    "http_referer",
    "http_x_forwarded_for",
    "http_authorization",
    "http_cookie",
    "http_forwarded",
    "args",
];

/// What a location writes to the same access log in another layout: lines the site's format
/// cannot parse, which get the free-text pass.
const LEGACY_FORMAT: &str = r#"'$remote_addr - - [$time_local] "$request" $status "$http_x_forwarded_for" "$http_referer"'"#;

/// Every rule on, as a user of the issue's example would set them.
const RULES: &[(&str, &str)] = &[
    ("ANONYMIZE_IP", "on"),
    ("REDACT_QUERY_PARAMS", "token,access_token,email"),
    ("REDACT_FIELDS", "http_authorization,http_cookie:hash"),
    ("REDACT_PATTERNS", "email,card"),
    ("REDACT_HASH_KEY", HASH_KEY),
];

/// The access format with `escape=default`: `$remote_addr $realip_remote_addr [$time_local]
/// "$request" …` (quoted where a value may hold spaces, `$args` last).
fn site_format(realip: bool) -> String {
    let mut f = String::from("'$remote_addr ");
    if realip {
        f.push_str("$realip_remote_addr ");
    }
    f.push_str(
        r#"[$time_local] "$request" $status "$http_referer" "$http_x_forwarded_for" "$http_authorization" "$http_cookie" "$http_forwarded" $args'"#,
    );
    f
}

/// The same variables with `escape=json`, each a quoted string under its own name.
fn json_format(realip: bool) -> String {
    common::truth::truth_format(&vars(realip))
}

fn vars(realip: bool) -> Vec<&'static str> {
    VARS.iter()
        .copied()
        .filter(|v| realip || *v != "realip_remote_addr")
        .collect()
}

/// Which listener a request goes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Via {
    /// The plain server over IPv4.
    V4,
    /// The plain server over `[::1]`.
    V6,
    /// The realip server (`set_real_ip_from 127.0.0.1; real_ip_header X-Forwarded-For`).
    Realip,
}

/// One request: where to, and its bytes. `tag` is a path segment (`/r/<tag>`) that no rule
/// touches, to find its line again.
struct Req {
    via: Via,
    tag: &'static str,
    bytes: Vec<u8>,
}

fn get(via: Via, tag: &'static str, target: &str, headers: &[(&str, &[u8])]) -> Req {
    Req {
        via,
        tag,
        bytes: request_with(HOST, target, headers),
    }
}

/// The traffic. Each secret appears in at least one request; see [`secrets`].
fn traffic() -> Vec<Req> {
    vec![
        get(
            Via::V4,
            "query",
            "/r/query?token=SECRET-T1&Email=jane%40example.com&x=1",
            &[
                ("Authorization", b"Bearer SECRET-A1"),
                ("Cookie", b"sid=SECRET-C1"),
            ],
        ),
        get(
            Via::V4,
            "pathparam",
            "/r/pathparam;token=SECRET-T2?page=2",
            &[
                (
                    "Referer",
                    b"https://a.example/?access_token=SECRET-T3&from=mary.major@example.org",
                ),
                ("Cookie", b"sid=SECRET-C1"),
            ],
        ),
        get(
            Via::V6,
            "v6",
            "/r/v6?q=shoes&contact=mary%40example.org",
            &[
                ("Cookie", b"sid=SECRET-C2"),
                ("Authorization", b"Basic YWxpY2U6U0VDUkVULVBX"),
            ],
        ),
        get(
            Via::Realip,
            "card",
            "/r/card?card=4111-1111-1111-1111&TOKEN=SECRET-T6",
            &[("X-Forwarded-For", b"198.51.100.7")],
        ),
        // A card typed with spaces into a form sent by GET: the browser writes `+`.
        get(
            Via::V4,
            "card-plus",
            "/r/card-plus?cc=4111+1111+1111+1111",
            &[],
        ),
        get(
            Via::Realip,
            "xff",
            "/r/xff?access_token=SECRET-T7",
            &[
                (
                    "X-Forwarded-For",
                    b"198.51.100.7, [2001:db8::7]:4711, unknown, bogus@example.com",
                ),
                (
                    "Forwarded",
                    b"for=\"[2001:db8::9]:1\";proto=https, for=192.0.2.60",
                ),
            ],
        ),
        get(
            Via::Realip,
            "garbage",
            "/r/garbage?%74oken=SECRET-T8",
            &[(
                "X-Forwarded-For",
                b"garbage, , 203.0.113.50:8080, 2001:db8:85a3::8a2e:370:7334",
            )],
        ),
        get(
            Via::V4,
            "spaced-card",
            "/r/spaced-card",
            &[(
                "Referer",
                b"https://shop.example/pay?cc=4111 1111 1111 1111",
            )],
        ),
        // A 404 that nginx writes to the error log with the request and the referrer.
        get(
            Via::V4,
            "missing",
            "/files/r/missing?token=SECRET-T9&email=jane%40example.com",
            &[("Referer", b"https://a.example/?access_token=SECRET-T10")],
        ),
        get(
            Via::V6,
            "missing6",
            "/files/r/missing6?token=SECRET-T13",
            &[],
        ),
        // A 404 whose error-log record nginx cuts at 2048 bytes, inside the request.
        get(
            Via::V4,
            "long",
            &format!(
                "/files/r/long?token=SECRET-T14&email=jane%40example.com&pad={}",
                "x".repeat(2100)
            ),
            &[],
        ),
        // Written by another location in another layout to the same file: the line does not
        // parse.
        get(
            Via::V4,
            "legacy",
            "/legacy/r/legacy?token=SECRET-T11&email=jane%40example.com",
            &[("X-Forwarded-For", b"198.51.100.7")],
        ),
        // A request line nginx refuses (400), logged in both logs with the request as sent.
        Req {
            via: Via::V4,
            tag: "bad",
            bytes: b"GET /r/bad?token=SECRET-T12 HTTP/1.1 junk\r\nHost: redact.test\r\n\r\n"
                .to_vec(),
        },
        // The same cookie again, from the other family: it must hash as the first one did.
        get(
            Via::V4,
            "again",
            "/r/again",
            &[("Cookie", b"sid=SECRET-C1")],
        ),
    ]
}

/// What must never be sent: the secrets of [`traffic`], in each form they take in the logs.
fn secrets() -> Vec<&'static str> {
    vec![
        "SECRET-T1",
        "SECRET-T2",
        "SECRET-T3",
        "SECRET-T6",
        "SECRET-T7",
        "SECRET-T8",
        "SECRET-T9",
        "SECRET-T10",
        "SECRET-T11",
        "SECRET-T12",
        "SECRET-T13",
        "SECRET-T14",
        "SECRET-A1",
        "YWxpY2U6U0VDUkVULVBX",
        "SECRET-C1",
        "SECRET-C2",
        "jane%40example.com",
        "mary%40example.org",
        "mary.major@example.org",
        "bogus@example.com",
        "4111-1111-1111-1111",
        "4111 1111 1111 1111",
        "4111+1111+1111+1111",
    ]
}

/// Every form an e-mail address of the traffic could take in what is sent (plain, `%40`,
/// nginx's `\x40`, JSON's `\u0040`): none may appear, whether or not nginx wrote that form.
const EMAIL_FORMS: &[&str] = &[
    "jane",
    "mary",
    "bogus",
    "@example.com",
    "@example.org",
    "%40example",
    "\\x40example",
    "\\u0040example",
];

/// The full client addresses of the traffic (`::1` only with an IPv6 client), each with what it
/// must become: its /24 or /48 prefix.
fn addresses(v6: bool) -> Vec<(&'static str, &'static str)> {
    let mut a = vec![
        ("127.0.0.1", "127.0.0.0"),
        ("198.51.100.7", "198.51.100.0"),
        ("2001:db8::7", "2001:db8::"),
        ("2001:db8::9", "2001:db8::"),
        ("192.0.2.60", "192.0.2.0"),
        ("203.0.113.50", "203.0.113.0"),
        ("2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::"),
    ];
    if v6 {
        a.push(("::1", "::"));
    }
    a
}

/// A real nginx after it served [`traffic`]: its logs are final.
struct Served {
    nginx: Nginx,
    /// nginx has the realip module: the realip server and `$realip_remote_addr` exist.
    realip: bool,
    /// A client reached nginx over `[::1]`.
    v6: bool,
    /// Each line of the `escape=json` log: variable → nginx's bytes.
    truth: Vec<HashMap<String, Vec<u8>>>,
    /// The listening sockets as nginx names them in the error log's `server:` (`127.0.0.1:PORT`,
    /// `[::1]:PORT`) when a connection ends before its request: the server's own address, kept.
    listens: Vec<String>,
}

impl Served {
    fn path(&self, rel: &str) -> PathBuf {
        self.nginx.path(rel)
    }

    fn format(&self) -> String {
        site_format(self.realip)
    }
}

/// Starts `bin` with a plain server (IPv4 and, where the box allows, `[::1]`) and, with
/// `realip`, a realip server; sends [`traffic`] and stops nginx.
fn serve(bin: &Path, realip: bool) -> Served {
    let v6 = ipv6_loopback();
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let plain = SocketAddr::new(lo, free_port(lo));
    let plain6 = v6.then(|| {
        let l6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        SocketAddr::new(l6, free_port(l6))
    });
    let real = SocketAddr::new(lo, free_port(lo));
    let site = format!(
        "server_name {HOST};\n\
         error_log logs/site-error.log info;\n\
         access_log logs/site.log site;\n\
         access_log logs/site.json sitejson;\n\
         root html;\n\
         location / {{ return 200 \"ok\\n\"; }}\n\
         location /files/ {{ }}\n\
         location /legacy/ {{\n\
           access_log logs/site.log legacy;\n\
           access_log logs/site.json sitejson;\n\
           return 200 \"ok\\n\";\n\
         }}\n"
    );
    let listen6 = plain6.map(|a| format!("listen {a};\n")).unwrap_or_default();
    let realip_server = if realip {
        format!(
            "server {{\nlisten {real};\n\
             set_real_ip_from 127.0.0.1;\nreal_ip_header X-Forwarded-For;\n{site}}}\n"
        )
    } else {
        String::new()
    };
    let conf = format!(
        "log_format site {};\n\
         log_format sitejson {};\n\
         log_format legacy {LEGACY_FORMAT};\n\
         server {{\nlisten {plain};\n{listen6}{site}}}\n\
         {realip_server}",
        site_format(realip),
        json_format(realip),
    );
    let mut nginx = Nginx::start_with(bin, &conf);
    for req in traffic() {
        let to = match req.via {
            Via::V6 => plain6.unwrap_or(plain),
            Via::Realip if realip => real,
            _ => plain,
        };
        let answer = send(to, &req.bytes);
        assert!(
            answer.starts_with(b"HTTP/1.1 "),
            "{}: {:?}",
            req.tag,
            String::from_utf8_lossy(&answer)
        );
    }
    nginx.quit();
    let truth: Vec<_> = lines_of(&nginx.read("logs/site.json"))
        .into_iter()
        .map(|l| parse_truth_line(l).unwrap_or_else(|e| panic!("truth line {l:?}: {e}")))
        .collect();
    assert_eq!(truth.len(), traffic().len(), "one truth line a request");
    let listens = [Some(plain), plain6, realip.then_some(real)]
        .into_iter()
        .flatten()
        .map(|a| a.to_string())
        .collect();
    Served {
        nginx,
        realip,
        v6,
        truth,
        listens,
    }
}

/// What `parse` printed: each line's timestamp and message, and the whole output.
struct Printed {
    stdout: String,
    events: Vec<(i64, String)>,
}

impl Printed {
    fn messages(&self) -> impl Iterator<Item = &str> {
        self.events.iter().map(|(_, m)| m.as_str())
    }
}

/// `parse --kind KIND [--log-format FMT] FILE` with `env` and no other forwarder setting.
fn parse(kind: &str, format: Option<&str>, file: &Path, env: &[(&str, &str)]) -> Printed {
    let mut cmd = Command::new(BIN);
    cmd.args(["parse", "--kind", kind]);
    if let Some(f) = format {
        cmd.args(["--log-format", f]);
    }
    for var in nginx_cloudwatch_forwarder::config::FORWARDER_VARS {
        cmd.env_remove(var);
    }
    let out = cmd
        .arg(file)
        .envs(env.iter().copied())
        .output()
        .expect("run the forwarder's parse command");
    assert!(
        out.status.success(),
        "parse --kind {kind} {} with {env:?}: {}\n{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("parse prints UTF-8");
    let events = stdout
        .lines()
        .map(|l| {
            let outer = strict_parse(l).unwrap_or_else(|e| panic!("parse output {l:?}: {e}"));
            (
                outer["timestamp"].as_i64().expect("timestamp"),
                outer["message"].as_str().expect("message").to_string(),
            )
        })
        .collect();
    Printed { stdout, events }
}

/// `RULES` with more settings.
fn with_rules<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    RULES.iter().copied().chain(more.iter().copied()).collect()
}

/// The issue's "sends none of them": no secret, no form of an e-mail address and no full
/// client address in any message (as sent) nor in the printed output (as escaped). On loopback
/// the server's own address is the client's too: the listening sockets of `served` (which
/// the error log names as `server:`) are taken out first.
fn assert_sends_none<'a>(label: &str, messages: impl Iterator<Item = &'a str>, served: &Served) {
    let addrs = addresses(served.v6);
    let forbidden: Vec<&str> = secrets()
        .into_iter()
        .chain(EMAIL_FORMS.iter().copied())
        .chain(addrs.iter().map(|(full, _)| *full))
        .collect();
    let mut found = Vec::new();
    let mut n = 0;
    for m in messages {
        n += 1;
        let m = served
            .listens
            .iter()
            .fold(m.to_string(), |m, ours| m.replace(ours, "<server>"));
        for f in &forbidden {
            if m.contains(f) {
                found.push(format!("{f:?} in {m}"));
            }
        }
    }
    assert!(n > 0, "{label}: nothing was sent");
    assert!(
        found.is_empty(),
        "{label}: {} leaked:\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The check itself can fail: without the rules every secret and every full client address is
/// in what would be sent.
fn assert_holds_every_secret<'a>(label: &str, messages: impl Iterator<Item = &'a str>, v6: bool) {
    let all: String = messages.collect::<Vec<_>>().join("\n");
    let addrs = addresses(v6);
    let missing: Vec<&str> = secrets()
        .into_iter()
        .chain(addrs.iter().map(|(full, _)| *full))
        .filter(|s| !all.contains(s))
        .collect();
    assert!(
        missing.is_empty(),
        "{label}: without the rules these never appear, so their absence proves nothing: {missing:?}"
    );
}

/// The tag of the request a message is about: the path segment after `/r/`.
fn tag_of(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("/r/")?;
    let end = rest.find(['?', ';', ' ', '"', '\\']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// JSON messages by tag.
fn by_tag(printed: &Printed) -> BTreeMap<String, serde_json::Map<String, Value>> {
    let mut out = BTreeMap::new();
    for m in printed.messages() {
        let Some(tag) = tag_of(m) else { continue };
        let Ok(Value::Object(fields)) = strict_parse(m) else {
            panic!("not a JSON object: {m}")
        };
        out.insert(tag.to_string(), fields);
    }
    out
}

/// The output modes and namings every redacted run is checked in.
const MODES: &[(&str, &str)] = &[
    ("json", "nginx"),
    ("json", "fluentd"),
    ("json-compact", "nginx"),
    ("json-compact", "fluentd"),
    ("raw", "nginx"),
];

/// Debian's nginx (1.22), with realip: the whole check.
#[test]
fn nothing_secret_leaves_debian_nginx() {
    nothing_secret_leaves(&common::nginx::nginx_binary(), true);
}

/// nginx 1.30, the stable branch (built without realip: no realip server, no
/// `$realip_remote_addr`).
#[test]
fn nothing_secret_leaves_nginx_1_30() {
    nothing_secret_leaves(&common::oracles::nginx_bin("1.30.4"), false);
}

/// A misspelt `REDACT_FIELDS` key would redact nothing and send the field as logged: the start
/// is refused, naming the variable and the key, as for a `FILTER_RULES` field.
#[test]
fn a_redact_fields_key_the_messages_do_not_have_is_refused() {
    let dir = common::Scratch::new("redact-typo", &[]);
    let log = dir.path("access.log");
    std::fs::write(
        &log,
        "127.0.0.1 127.0.0.1 [06/Dec/2026:01:35:31 +0000] \"GET / HTTP/1.1\" 200 \"-\" \"-\" \
         \"-\" \"sid=SECRET-C1\" \"-\" -\n",
    )
    .expect("write the log");
    let mut cmd = Command::new(BIN);
    for var in nginx_cloudwatch_forwarder::config::FORWARDER_VARS {
        cmd.env_remove(var);
    }
    let out = cmd
        .args([
            "parse",
            "--kind",
            "access",
            "--log-format",
            &site_format(true),
        ])
        .arg(&log)
        .envs([
            ("REDACT_FIELDS", "http_cookies:hash"),
            ("REDACT_HASH_KEY", HASH_KEY),
        ])
        .output()
        .expect("run parse");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("REDACT_FIELDS")
            && stderr.contains("http_cookies"),
        "{}: stdout {} stderr {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

fn nothing_secret_leaves(bin: &Path, realip: bool) {
    let served = serve(bin, realip);
    let v6 = served.v6;
    let site = served.format();
    let json = json_format(realip);
    let access = served.path("logs/site.log");
    let json_log = served.path("logs/site.json");
    let error = served.path("logs/site-error.log");
    let logs: [(&str, Option<&str>, &Path); 3] = [
        ("access", Some(&site), &access),
        ("access", Some(&json), &json_log),
        ("error", None, &error),
    ];

    // Without the rules, what would be sent holds every secret and every full address.
    let all: Vec<Printed> = logs
        .iter()
        .map(|(kind, f, file)| parse(kind, *f, file, &[]))
        .collect();
    assert_holds_every_secret(
        "parse without the rules",
        all.iter().flat_map(Printed::messages),
        v6,
    );

    for (output, names) in MODES {
        let env = with_rules(&[("OUTPUT_FORMAT", output), ("FIELD_NAMES", names)]);
        for (kind, f, file) in &logs {
            let label = format!("parse --kind {kind} {} ({output}, {names})", file.display());
            let printed = parse(kind, *f, file, &env);
            assert_sends_none(&label, printed.messages(), &served);
            assert_sends_none(&label, std::iter::once(printed.stdout.as_str()), &served);
            if *kind == "access" {
                assert_prefixes_kept(&label, &printed, v6);
                assert!(printed.stdout.contains("token=REDACTED"), "{label}");
            }
        }
    }
    let mut wrong = Vec::new();
    let mut hashes = Vec::new();
    for (fmt, file, escape) in [
        (&site, &access, Escape::Default),
        (&json, &json_log, Escape::Json),
    ] {
        for fluentd in [false, true] {
            let names = if fluentd { "fluentd" } else { "nginx" };
            let printed = parse(
                "access",
                Some(fmt),
                file,
                &with_rules(&[("FIELD_NAMES", names)]),
            );
            let (hash, w) = access_fields(&printed, &served, escape, fluentd);
            hashes.push(hash);
            wrong.extend(w);
        }
    }
    hashes.dedup();
    assert_eq!(
        hashes.len(),
        1,
        "one cookie, one hash, whatever the format and names: {hashes:?}"
    );
    error_fields(&parse("error", None, &error, &with_rules(&[])), &served);
    raw_keeps_the_layout(&served);

    // The Lambda's handler (`replay`) against moto: S3 in, CloudWatch Logs out.
    let sent_access = parse("access", Some(&site), &access, &with_rules(&[]));
    let sent_error = parse("error", None, &error, &with_rules(&[]));
    let (stored, summary) = tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(through_moto(&served, &sent_access, &sent_error));
    assert_sends_none(
        "CloudWatch Logs",
        stored.iter().map(String::as_str),
        &served,
    );
    let object = |kind: &str| {
        summary["objects"]
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|o| o["key"].as_str().is_some_and(|k| k.contains(kind)))
            })
            .unwrap_or_else(|| panic!("no {kind} object in {summary:#}"))
    };
    let access_counts = &object("/access/")["redacted_by_rule"];
    let error_counts = &object("/error/")["redacted_by_rule"];
    // Each rule counts the events it changed: every line has a client address (`ip`), and the
    // other rules are read from nginx's own values of the variables.
    let truth_counts = counts_from_truth(
        served
            .truth
            .iter()
            .filter(|t| !String::from_utf8_lossy(&t["request"]).contains(FILTERED_TAG)),
    );
    let error_expected = error_counts_expected(&parse("error", None, &error, &[]));
    for (what, got, want) in [
        ("access", access_counts, &truth_counts),
        ("error", error_counts, &error_expected),
        (
            "access lines_redacted",
            &object("/access/")["lines_redacted"],
            &truth_counts["ip"],
        ),
        (
            "error lines_redacted",
            &object("/error/")["lines_redacted"],
            &error_expected["ip"],
        ),
    ] {
        if got != want {
            wrong.push(format!(
                "redacted_by_rule of the {what} object: {got}, want {want}"
            ));
        }
    }
    println!(
        "redaction ({}): {} access and {} error events, none with a secret; \
         redacted_by_rule access {access_counts} (truth: {truth_counts}), error {error_counts} \
         (expected {error_expected})",
        if realip {
            "nginx 1.22, realip"
        } else {
            "nginx 1.30"
        },
        sent_access.events.len(),
        sent_error.events.len(),
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Each masked address of the traffic is there with its prefix.
fn assert_prefixes_kept(label: &str, printed: &Printed, v6: bool) {
    let all: String = printed.messages().collect::<Vec<_>>().join("\n");
    for (full, prefix) in addresses(v6) {
        assert!(
            all.contains(prefix),
            "{label}: {full} should be sent as {prefix}, which is nowhere:\n{all}"
        );
    }
}

/// Which log a message came from: nginx's `escape=default` or its `escape=json` twin.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Escape {
    Default,
    Json,
}

/// The redacted fields (`json`, nginx names) of each request, exactly: queries masked by name
/// in `request`, `request_uri`, `args` and `http_referer` (path parameters too), e-mail
/// addresses and a card masked by pattern, each address masked to its prefix (every item of an
/// `X-Forwarded-For` list, the `for=` of `Forwarded`), `Authorization` left out and the cookie
/// hashed: the same cookie to the same hash, in both logs, another cookie to another. Returns
/// the first cookie's hash and what differs (the caller asserts once every check has run).
fn access_fields(
    printed: &Printed,
    served: &Served,
    escape: Escape,
    fluentd: bool,
) -> (String, Vec<String>) {
    let t = by_tag(printed);
    // td-agent's names for the fields that have one; `request` is not a field there.
    let named = |key: &'static str| -> Option<&'static str> {
        if !fluentd {
            return Some(key);
        }
        match key {
            "remote_addr" => Some("remote"),
            "request_uri" => Some("path"),
            "http_referer" => Some("referer"),
            "http_x_forwarded_for" => Some("forwarder"),
            "request" => None,
            other => Some(other),
        }
    };
    let lo = "127.0.0.0";
    let v6 = if served.v6 { "::" } else { lo };
    let by_realip = |addr: &'static str| if served.realip { addr } else { lo };
    // nginx writes the quotes of `Forwarded` as `\x22` with escape=default.
    let forwarded = match escape {
        Escape::Default => r"for=\x22[2001:db8::]\x22;proto=https, for=192.0.2.0",
        Escape::Json => r#"for="[2001:db8::]";proto=https, for=192.0.2.0"#,
    };
    let want: &[(&str, &str, &str)] = &[
        ("query", "remote_addr", lo),
        (
            "query",
            "request_uri",
            "/r/query?token=REDACTED&Email=REDACTED&x=1",
        ),
        ("query", "args", "token=REDACTED&Email=REDACTED&x=1"),
        (
            "pathparam",
            "request",
            "GET /r/pathparam;token=REDACTED?page=2 HTTP/1.1",
        ),
        (
            "pathparam",
            "http_referer",
            "https://a.example/?access_token=REDACTED&from=REDACTED",
        ),
        ("v6", "remote_addr", v6),
        ("v6", "request_uri", "/r/v6?q=shoes&contact=REDACTED"),
        ("card", "remote_addr", by_realip("198.51.100.0")),
        (
            "card",
            "request_uri",
            "/r/card?card=REDACTED&TOKEN=REDACTED",
        ),
        ("card", "http_x_forwarded_for", "198.51.100.0"),
        ("card-plus", "request_uri", "/r/card-plus?cc=REDACTED"),
        ("xff", "remote_addr", lo),
        (
            "xff",
            "http_x_forwarded_for",
            "198.51.100.0, [2001:db8::], unknown, -",
        ),
        ("xff", "http_forwarded", forwarded),
        ("garbage", "remote_addr", by_realip("2001:db8:85a3::")),
        (
            "garbage",
            "http_x_forwarded_for",
            "-, , 203.0.113.0, 2001:db8:85a3::",
        ),
        ("garbage", "args", "%74oken=REDACTED"),
        (
            "spaced-card",
            "http_referer",
            "https://shop.example/pay?cc=REDACTED",
        ),
        (
            "missing",
            "request_uri",
            "/files/r/missing?token=REDACTED&email=REDACTED",
        ),
        (
            "missing",
            "http_referer",
            "https://a.example/?access_token=REDACTED",
        ),
        ("bad", "request", "GET /r/bad?token=REDACTED HTTP/1.1 junk"),
    ];
    let mut wrong = Vec::new();
    for (tag, key, value) in want {
        let Some(key) = named(key) else { continue };
        let got = t.get(*tag).and_then(|f| f.get(key)).and_then(Value::as_str);
        if got != Some(value) {
            wrong.push(format!("{tag}.{key}: {got:?}, want {value:?}"));
        }
    }
    if served.realip {
        let got = t.get("card").and_then(|f| f.get("realip_remote_addr"));
        if got != Some(&Value::from(lo)) {
            wrong.push(format!("card.realip_remote_addr: {got:?}, want {lo:?}"));
        }
    }
    for tag in ["query", "v6"] {
        if let Some(a) = t.get(tag).and_then(|f| f.get("http_authorization")) {
            wrong.push(format!("{tag}.http_authorization is sent: {a}"));
        }
    }
    let cookie = |tag: &str| {
        t.get(tag)
            .and_then(|f| f.get("http_cookie"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let hash = cookie("query");
    let is_hash = |h: &str| {
        h.strip_prefix("hmac:")
            .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if !is_hash(&hash) || cookie("pathparam") != hash || cookie("again") != hash {
        wrong.push(format!(
            "the same cookie hashed as {hash:?}, {:?}, {:?}",
            cookie("pathparam"),
            cookie("again")
        ));
    }
    if !is_hash(&cookie("v6")) || cookie("v6") == hash {
        wrong.push(format!("another cookie hashed as {:?}", cookie("v6")));
    }
    // No cookie is no value to hash: nginx's `-` is left out, and the empty string that
    // escape=json writes for it stays empty.
    let none = match escape {
        Escape::Default => None,
        Escape::Json => Some(Value::from("")),
    };
    if t.get("card").and_then(|f| f.get("http_cookie")) != none.as_ref() {
        wrong.push(format!(
            "card.http_cookie (no Cookie sent): {:?}, want {none:?}",
            t.get("card").and_then(|f| f.get("http_cookie"))
        ));
    }
    let names = if fluentd { "fluentd" } else { "nginx" };
    let wrong = wrong
        .into_iter()
        .map(|w| format!("{escape:?} log, every rule on, {names} names: {w}"))
        .collect();
    (hash, wrong)
}

/// The error log's context: `client` masked, the query of `request` and `referrer` masked.
fn error_fields(printed: &Printed, served: &Served) {
    let mut seen = 0;
    for m in printed.messages() {
        let v = strict_parse(m).unwrap_or_else(|e| panic!("{m}: {e}"));
        if let Some(client) = v.get("client") {
            let want = ["127.0.0.0", if served.v6 { "::" } else { "127.0.0.0" }];
            assert!(want.iter().any(|w| client == w), "client in {m}");
        }
        match tag_of(m) {
            Some("missing")
                if v["message"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("open()")) =>
            {
                assert_eq!(
                    v["request"], "GET /files/r/missing?token=REDACTED&email=REDACTED HTTP/1.1",
                    "{m}"
                );
                assert_eq!(
                    v["referrer"], "https://a.example/?access_token=REDACTED",
                    "{m}"
                );
                seen += 1;
            }
            Some("bad") => {
                assert_eq!(
                    v["request"], "GET /r/bad?token=REDACTED HTTP/1.1 junk",
                    "{m}"
                );
                seen += 1;
            }
            Some("long") => {
                assert_eq!(v["truncated"], true, "{m}");
                let request = v["request"].as_str().unwrap_or_default();
                assert!(
                    request.starts_with("GET /files/r/long?token=REDACTED&email=REDACTED&pad=xxx"),
                    "{m}"
                );
                seen += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        seen, 3,
        "the 404's, the 400's and the cut records:\n{}",
        printed.stdout
    );
}

/// `raw` keeps nginx's layout with the values replaced in place: its lines, read back by the
/// same format with no rule, give exactly what `json` with the rules gives (a dropped field is
/// `-`, which `json` leaves out), and the line that never matched the format got the
/// free-text pass (every address, the query, the e-mail address).
fn raw_keeps_the_layout(served: &Served) {
    let format = served.format();
    let access = served.path("logs/site.log");
    let raw = parse(
        "access",
        Some(&format),
        &access,
        &with_rules(&[("OUTPUT_FORMAT", "raw")]),
    );
    let again = served.path("logs/site-redacted-raw.log");
    let text: String = raw.messages().map(|m| format!("{m}\n")).collect();
    std::fs::write(&again, &text).expect("write the raw lines");
    let reread = parse("access", Some(&format), &again, &[]);
    let json = parse("access", Some(&format), &access, &with_rules(&[]));
    assert_eq!(reread.events.len(), json.events.len());
    for (r, j) in reread.events.iter().zip(&json.events) {
        let (r, j) = (
            strict_parse(&r.1).expect("JSON"),
            strict_parse(&j.1).expect("JSON"),
        );
        if r.get("parse_error").is_some() {
            // The line that never matched: the same free-text pass in both modes.
            assert_eq!(r["raw"], j["raw"]);
        } else {
            assert_eq!(r, j, "raw read back against json");
        }
    }
    let legacy = raw
        .messages()
        .find(|m| tag_of(m) == Some("legacy"))
        .expect("the legacy line");
    assert!(
        legacy.starts_with("127.0.0.0 - - [")
            && legacy.ends_with(
                "\"GET /legacy/r/legacy?token=REDACTED&email=REDACTED HTTP/1.1\" 200 \"198.51.100.0\" \"-\""
            ),
        "{legacy}"
    );
    let dropped = raw
        .messages()
        .find(|m| tag_of(m) == Some("query"))
        .expect("the query line");
    assert!(
        dropped.contains("\"-\" \"hmac:"),
        "Authorization as -: {dropped}"
    );
}

/// A `FILTER_RULES` rule on a token the query rule masks: it still takes its line (rules see
/// the values as nginx logged them), which is then not sent and not counted as redacted.
const FILTER: &str =
    r#"[{"name": "by-token", "when": {"request_uri": {"contains": "token=SECRET-T13"}}}]"#;
/// The request of the line [`FILTER`] takes.
const FILTERED_TAG: &str = "missing6";

/// Uploads the access log (`escape=default`) and the error log to moto's S3 under an
/// instance's keys, runs `replay` (the handler as the Lambda runs it) with every rule on and
/// [`FILTER`], and checks that each stream holds exactly what `parse` printed with the same
/// settings (`parse` applies no filter: less the line the filter takes). Returns
/// every stored message and the run's summary.
async fn through_moto(served: &Served, access: &Printed, error: &Printed) -> (Vec<String>, Value) {
    const BUCKET: &str = "redaction-test";
    const INSTANCE: &str = "i-0123456789abcdef0";
    let (moto, s3, logs) = common::moto::with_bucket(BUCKET).await;
    let keys = [
        format!("nginx/{INSTANCE}/access/2026/12/06/access.log-20261206T0300.gz"),
        format!("nginx/{INSTANCE}/error/2026/12/06/error.log-20261206T0300.gz"),
    ];
    for (key, file) in keys.iter().zip(["logs/site.log", "logs/site-error.log"]) {
        let body = std::fs::read(served.path(file)).expect("nginx's log");
        common::moto::upload(&s3, BUCKET, key, common::gzip(&body)).await;
    }
    let mut env = moto.env();
    env.push(("ACCESS_LOG_FORMAT", served.format()));
    env.extend(RULES.iter().map(|(k, v)| (*k, v.to_string())));
    env.push(("FILTER_RULES", FILTER.to_string()));
    let event = common::s3_event(BUCKET, &[&keys[0], &keys[1]]);
    let (code, summary) = common::moto::replay(&event, &env);
    assert_eq!(code, Some(0), "replay: {summary:#}");
    assert_eq!(summary["objects_delivered"], 2, "{summary:#}");
    assert_eq!(
        summary["filtered_by_rule"],
        serde_json::json!({"by-token": 1}),
        "the rule saw the token nginx logged: {summary:#}"
    );
    let mut stored = Vec::new();
    for (group, printed) in [("nginx-access", access), ("nginx-error", error)] {
        let mut got = common::moto::read_stream(&logs, group, INSTANCE).await;
        let mut want: Vec<(i64, String)> = printed
            .events
            .iter()
            .filter(|(_, m)| group != "nginx-access" || tag_of(m) != Some(FILTERED_TAG))
            .cloned()
            .collect();
        // CloudWatch orders by time; lines of the same millisecond may come in any order.
        got.sort();
        want.sort();
        assert_eq!(got, want, "{group}: CloudWatch holds what parse printed");
        stored.extend(got.into_iter().map(|(_, m)| m));
    }
    // The bill: what CloudWatch holds, the redacted messages (26 bytes an event besides), is
    // what the summary says was ingested, in one put an object.
    let billed: usize = stored.iter().map(|m| m.len() + 26).sum();
    assert_eq!(summary["ingested_bytes"], billed, "{summary:#}");
    assert_eq!(summary["batches"], 2, "{summary:#}");
    (stored, summary)
}

/// The names of `REDACT_QUERY_PARAMS`, as they compare (lower case).
const QUERY_NAMES: &[&str] = &["token", "access_token", "email"];

/// `text` with the value of each parameter [`QUERY_NAMES`] names taken out (after `?`, `&` or
/// `;`; names percent-decoded, case-insensitive, up to a `[`); whether one was.
fn without_masked_params(text: &str) -> (String, bool) {
    let mut out = String::new();
    let mut hit = false;
    let mut rest = text;
    while let Some(at) = rest.find(['?', '&', ';']) {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let end = rest.find(['&', ';', ' ', '#', '"']).unwrap_or(rest.len());
        let (param, after) = rest.split_at(end);
        match param.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_masked_name(name) => {
                hit = true;
                out.push_str(name);
                out.push('=');
            }
            _ => out.push_str(param),
        }
        rest = after;
    }
    out.push_str(rest);
    (out, hit)
}

fn is_masked_name(name: &str) -> bool {
    let name = name.split('[').next().unwrap_or(name).replace('+', " ");
    let decoded = percent_decode(&name).to_ascii_lowercase();
    QUERY_NAMES.contains(&decoded.as_str())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(v) if b[i] == b'%' => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A run of 13 to 19 digits (a single space, `+`, `%20` or dash between them) that passes
/// Luhn.
fn has_card(text: &str) -> bool {
    let re = regex::Regex::new(r"\d(?:(?:[ +-]|%20)?\d){12,18}").expect("regex");
    re.find_iter(text).any(|m| {
        let digits: Vec<u32> = m
            .as_str()
            .replace("%20", " ")
            .chars()
            .filter_map(|c| c.to_digit(10))
            .collect();
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                if i % 2 == 1 {
                    (d * 2) % 9 + u32::from(d == 9) * 9
                } else {
                    d
                }
            })
            .sum();
        sum.is_multiple_of(10)
    })
}

/// The text rules that must have changed a line or record whose texts are `texts` (each with
/// the query rule already applied, and whether it changed it): `query`, then each pattern left
/// in them.
fn text_hits(texts: &[(String, bool)]) -> Vec<&'static str> {
    let email = regex::Regex::new(
        r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    )
    .expect("regex");
    let mut hits = Vec::new();
    if texts.iter().any(|(_, hit)| *hit) {
        hits.push("query");
    }
    if texts.iter().any(|(t, _)| email.is_match(t)) {
        hits.push("pattern:email");
    }
    if texts.iter().any(|(t, _)| has_card(t)) {
        hits.push("pattern:card");
    }
    hits
}

/// What each rule must have changed in the access log, read from nginx's `escape=json` truth:
/// `ip` every line (each has a client address), a field rule each line where that header was
/// sent, `query` each line with a named parameter in `$request`, `$args` or `$http_referer`,
/// and each pattern each line where that pattern is left in those once the query rule ran.
/// The caller leaves out the lines a filter took: they are not sent, so not redacted.
fn counts_from_truth<'a>(truth: impl Iterator<Item = &'a HashMap<String, Vec<u8>>>) -> Value {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for line in truth {
        let var =
            |k: &str| String::from_utf8_lossy(line.get(k).map_or(&[][..], |v| v)).into_owned();
        let mut hits = vec!["ip"];
        for (field, rule) in [
            ("http_authorization", "field:http_authorization"),
            ("http_cookie", "field:http_cookie"),
        ] {
            if !var(field).is_empty() {
                hits.push(rule);
            }
        }
        let texts: Vec<(String, bool)> = ["request", "args", "http_referer"]
            .iter()
            .map(|k| {
                let v = var(k);
                // `$args` is the query itself.
                if *k == "args" {
                    without_masked_params(&format!("?{v}"))
                } else {
                    without_masked_params(&v)
                }
            })
            .collect();
        hits.extend(text_hits(&texts));
        for h in hits {
            *counts.entry(h).or_default() += 1;
        }
    }
    serde_json::to_value(counts).expect("counts")
}

/// What each rule must have changed in the error log, read from its records as `parse` prints
/// them without the rules: `ip` each record naming a client, `query` each with a named
/// parameter in its message, `request`, `upstream` or `referrer`, and each pattern each record
/// where that pattern is left in those once the query rule ran (which records nginx writes at
/// `info` depends on how each connection ended, so the counts are read from the records).
fn error_counts_expected(unredacted: &Printed) -> Value {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for m in unredacted.messages() {
        let v = strict_parse(m).expect("JSON");
        let mut hits = Vec::new();
        if v.get("client").is_some() {
            hits.push("ip");
        }
        let texts: Vec<(String, bool)> = ["message", "request", "upstream", "referrer"]
            .iter()
            .filter_map(|k| v.get(*k).and_then(Value::as_str))
            .map(without_masked_params)
            .collect();
        hits.extend(text_hits(&texts));
        for h in hits {
            *counts.entry(h).or_default() += 1;
        }
    }
    serde_json::to_value(counts).expect("counts")
}
