//! The rules one value at a time.

use super::*;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn redaction(ip: &str, query: &str, fields: &str, patterns: &str) -> Redaction {
    Redaction::new(RedactSpec {
        ip: IpMask::parse(ip).unwrap(),
        query_params: parse_query_params(query).unwrap(),
        fields: parse_fields(fields).unwrap(),
        patterns: parse_patterns(patterns).unwrap(),
        hash_key: Some(HashKey::new(KEY).unwrap()),
    })
    .unwrap()
}

/// `v` of class `class` redacted by `r`, with the names of the rules that changed it.
fn apply(r: &Redaction, key: &str, class: FieldClass, v: &str) -> (Option<String>, Vec<String>) {
    let mut hits = 0;
    let out = r.value(key, class, v, &mut hits).map(Cow::into_owned);
    let names = (0..32)
        .filter(|i| hits & (1 << i) != 0)
        .map(|i| r.names()[i].clone())
        .collect();
    (out, names)
}

#[test]
fn ip_settings() {
    for (given, want) in [
        ("off", Ok(None)),
        ("", Ok(None)),
        ("on", Ok(Some((24, 48)))),
        ("ON", Ok(Some((24, 48)))),
        ("16", Ok(Some((16, 48)))),
        ("/20,/56", Ok(Some((20, 56)))),
        ("32,128", Ok(Some((32, 128)))),
        ("0,0", Ok(Some((0, 0)))),
        ("33", Err("\"33\" is not a prefix length for IPv4 (0-32)")),
        (
            "24,129",
            Err("\"129\" is not a prefix length for IPv6 (0-128)"),
        ),
        ("yes please", Err("is not a prefix length")),
    ] {
        let got = IpMask::parse(given).map(|m| m.map(|m| (m.v4, m.v6)));
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{given}"),
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{given}: {e}"),
            (g, w) => panic!("{given}: got {g:?}, want {w:?}"),
        }
    }
}

#[test]
fn addresses_keep_their_prefix() {
    let on = redaction("on", "", "", "");
    let narrow = redaction("20,32", "", "", "");
    for (name, r, class, v, want) in [
        (
            "v4 /24",
            &on,
            FieldClass::Addr,
            "203.0.113.50",
            "203.0.113.0",
        ),
        (
            "v4 /20",
            &narrow,
            FieldClass::Addr,
            "203.0.113.50",
            "203.0.112.0",
        ),
        (
            "v6 /48",
            &on,
            FieldClass::Addr,
            "2001:db8:85a3:8d3:1319:8a2e:370:7348",
            "2001:db8:85a3::",
        ),
        (
            "v6 /32",
            &narrow,
            FieldClass::Addr,
            "2001:db8:85a3::1",
            "2001:db8::",
        ),
        ("v6 loopback", &on, FieldClass::Addr, "::1", "::"),
        (
            "v4-mapped by the v4 prefix",
            &on,
            FieldClass::Addr,
            "::ffff:198.51.100.7",
            "::ffff:198.51.100.0",
        ),
        (
            "zone dropped",
            &on,
            FieldClass::Addr,
            "fe80::1%eth0",
            "fe80::",
        ),
        ("unix socket kept", &on, FieldClass::Addr, "unix:", "unix:"),
        (
            "forged header",
            &on,
            FieldClass::Addr,
            "jane@example.com",
            "-",
        ),
        (
            "binary address",
            &on,
            FieldClass::Addr,
            "\\x7F\\x00\\x00\\x01",
            "-",
        ),
        (
            "list: each item, port dropped, unknown kept, garbage out",
            &on,
            FieldClass::AddrList,
            "198.51.100.7, [2001:db8::7]:4711, unknown, bogus@example.com, 10.1.2.3:8080,,x",
            "198.51.100.0, [2001:db8::], unknown, -, 10.1.2.0,,-",
        ),
        (
            "forwarded",
            &on,
            FieldClass::Forwarded,
            "for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\", For=unknown, for=_hidden, for=evil",
            "for=192.0.2.0;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::]\", For=unknown, for=_hidden, for=-",
        ),
        (
            "forwarded, escape=default quotes",
            &on,
            FieldClass::Forwarded,
            "for=\\x22[2001:db8::9]:1\\x22;proto=https, for=192.0.2.60",
            "for=\\x22[2001:db8::]\\x22;proto=https, for=192.0.2.0",
        ),
        (
            "a number is not an address",
            &on,
            FieldClass::Fixed,
            "203.0.113.50",
            "203.0.113.50",
        ),
        (
            "free text: every literal",
            &on,
            FieldClass::Free,
            "connect() to 10.0.4.20:8080 failed, client: 2001:db8::1, at 01:02:03 v1.22.1 deadbeef",
            "connect() to 10.0.4.0:8080 failed, client: 2001:db8::, at 01:02:03 v1.22.1 deadbeef",
        ),
    ] {
        let (got, rules) = apply(r, "f", class, v);
        assert_eq!(got.as_deref(), Some(want), "{name}");
        assert_eq!(!rules.is_empty(), v != want, "{name}: {rules:?}");
    }
}

#[test]
fn query_parameters_by_name() {
    let r = redaction("", "token, Access_Token,email,X-Amz-Signature", "", "");
    for (name, class, v, want) in [
        (
            "request",
            FieldClass::Uri,
            "GET /a?token=s1&x=1 HTTP/1.1",
            "GET /a?token=REDACTED&x=1 HTTP/1.1",
        ),
        (
            "case",
            FieldClass::Uri,
            "/a?TOKEN=s1&Access_token=s2",
            "/a?TOKEN=REDACTED&Access_token=REDACTED",
        ),
        (
            "percent-encoded name",
            FieldClass::Uri,
            "/a?%74oken=s1",
            "/a?%74oken=REDACTED",
        ),
        (
            "brackets",
            FieldClass::Uri,
            "/a?token[]=s1&token[1]=s2",
            "/a?token[]=REDACTED&token[1]=REDACTED",
        ),
        (
            "repeats",
            FieldClass::Uri,
            "/a?token=s1&token=s2",
            "/a?token=REDACTED&token=REDACTED",
        ),
        (
            "semicolons",
            FieldClass::Uri,
            "/a?x=1;token=s1",
            "/a?x=1;token=REDACTED",
        ),
        (
            "path parameter",
            FieldClass::Uri,
            "/p;token=s1/q",
            "/p;token=REDACTED/q",
        ),
        (
            "fragment ends it",
            FieldClass::Uri,
            "https://a.example/?email=j%40e.com#token=x",
            "https://a.example/?email=REDACTED#token=x",
        ),
        (
            "no value",
            FieldClass::Uri,
            "/a?token&token=",
            "/a?token&token=",
        ),
        (
            "other names",
            FieldClass::Uri,
            "/a?tokens=1&mytoken=2",
            "/a?tokens=1&mytoken=2",
        ),
        (
            "args",
            FieldClass::Args,
            "token=s1&x=2",
            "token=REDACTED&x=2",
        ),
        ("no query", FieldClass::Uri, "/token=s1", "/token=s1"),
        (
            "signed URL",
            FieldClass::Uri,
            "/o?X-Amz-Signature=abc&X-Amz-Date=1",
            "/o?X-Amz-Signature=REDACTED&X-Amz-Date=1",
        ),
        (
            "text is not a query",
            FieldClass::Text,
            "Mozilla ?token=x",
            "Mozilla ?token=x",
        ),
        (
            "free text, quoted",
            FieldClass::Free,
            "open() \"/x\" failed, request: \"GET /x?token=s1 HTTP/1.1\", referrer: \"https://r/?a=1&token=s2\"",
            "open() \"/x\" failed, request: \"GET /x?token=REDACTED HTTP/1.1\", referrer: \"https://r/?a=1&token=REDACTED\"",
        ),
    ] {
        let (got, rules) = apply(&r, "f", class, v);
        assert_eq!(got.as_deref(), Some(want), "{name}");
        let want_rules: &[&str] = if v == want { &[] } else { &["query"] };
        assert_eq!(rules, want_rules, "{name}");
    }
    // `$arg_token` holds the parameter's value alone.
    assert_eq!(
        apply(&r, "arg_token", FieldClass::Text, "s1").0.as_deref(),
        Some(REDACTED)
    );
    assert_eq!(
        apply(&r, "arg_page", FieldClass::Text, "2").0.as_deref(),
        Some("2")
    );
}

#[test]
fn patterns() {
    let r = redaction("", "", "", "email,card");
    for (name, class, v, want, rules) in [
        (
            "email",
            FieldClass::Text,
            "mail jane.doe+x@example.co.uk now",
            "mail REDACTED now",
            &["pattern:email"][..],
        ),
        (
            "encoded email",
            FieldClass::Uri,
            "/a?e=jane%40example.com&b=1",
            "/a?e=REDACTED&b=1",
            &["pattern:email"],
        ),
        (
            "not an email",
            FieldClass::Text,
            "user@localhost",
            "user@localhost",
            &[],
        ),
        (
            "card with spaces",
            FieldClass::Uri,
            "/pay?n=4111 1111 1111 1111",
            "/pay?n=REDACTED",
            &["pattern:card"],
        ),
        (
            "card with dashes",
            FieldClass::Text,
            "4111-1111-1111-1111",
            "REDACTED",
            &["pattern:card"],
        ),
        (
            "GET form, +",
            FieldClass::Uri,
            "/r?cc=4111+1111+1111+1111&x=1",
            "/r?cc=REDACTED&x=1",
            &["pattern:card"],
        ),
        (
            "GET form, %20",
            FieldClass::Uri,
            "/r?cc=4111%201111%201111%201111",
            "/r?cc=REDACTED",
            &["pattern:card"],
        ),
        (
            "a number after it",
            FieldClass::Text,
            "4111 1111 1111 1111 737",
            "REDACTED 737",
            &["pattern:card"],
        ),
        (
            "a number before it",
            FieldClass::Text,
            "n 12 4111-1111-1111-1111",
            "n 12 REDACTED",
            &["pattern:card"],
        ),
        (
            "17 digits, Luhn fails",
            FieldClass::Text,
            "94111111111111111",
            "94111111111111111",
            &[],
        ),
        (
            "19 digits",
            FieldClass::Text,
            "x6011000990139424y",
            "xREDACTEDy",
            &["pattern:card"],
        ),
        (
            "Luhn fails",
            FieldClass::Text,
            "4111 1111 1111 1112",
            "4111 1111 1111 1112",
            &[],
        ),
        (
            "too long",
            FieldClass::Text,
            "41111111111111111111111",
            "41111111111111111111111",
            &[],
        ),
        (
            "double separators",
            FieldClass::Text,
            "4111  1111 1111 1111",
            "4111  1111 1111 1111",
            &[],
        ),
        (
            "numbers are not text",
            FieldClass::Fixed,
            "4111111111111111",
            "4111111111111111",
            &[],
        ),
        (
            "both",
            FieldClass::Free,
            "a@b.io paid 4111111111111111",
            "REDACTED paid REDACTED",
            &["pattern:email", "pattern:card"],
        ),
    ] {
        let (got, got_rules) = apply(&r, "f", class, v);
        assert_eq!(got.as_deref(), Some(want), "{name}");
        assert_eq!(got_rules, rules, "{name}");
    }
    let named = parse_patterns(
        r#"["email", {"name": "jwt", "matches": "eyJ[\\w-]+\\.[\\w-]+\\.[\\w-]+"}]"#,
    )
    .unwrap();
    let r = Redaction::new(RedactSpec {
        patterns: named,
        ..RedactSpec::default()
    })
    .unwrap();
    let (got, rules) = apply(
        &r,
        "f",
        FieldClass::Text,
        "Bearer eyJhbGciOi.eyJzdWIiOi.sig-1 x",
    );
    assert_eq!(got.as_deref(), Some("Bearer REDACTED x"));
    assert_eq!(rules, ["pattern:jwt"]);
}

#[test]
fn fields_dropped_or_hashed() {
    let r = redaction(
        "on",
        "token",
        "http_cookie,http_authorization:drop,remote_user:hash",
        "email",
    );
    assert_eq!(
        r.names(),
        [
            "ip",
            "query",
            "pattern:email",
            "field:http_cookie",
            "field:http_authorization",
            "field:remote_user"
        ]
    );
    assert_eq!(apply(&r, "http_cookie", FieldClass::Text, "sid=1").0, None);
    assert_eq!(
        apply(&r, "http_authorization", FieldClass::Text, "Bearer x").0,
        None
    );
    let (alice, rules) = apply(&r, "remote_user", FieldClass::Text, "alice@example.com");
    let alice = alice.unwrap();
    assert_eq!(
        rules,
        ["field:remote_user"],
        "a hashed field takes no other rule"
    );
    assert!(
        alice.starts_with(HASH_PREFIX) && alice.len() == HASH_PREFIX.len() + 32,
        "{alice}"
    );
    assert!(
        alice[HASH_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
    );
    assert_eq!(
        apply(&r, "remote_user", FieldClass::Text, "alice@example.com")
            .0
            .unwrap(),
        alice,
        "stable"
    );
    assert_ne!(
        apply(&r, "remote_user", FieldClass::Text, "bob").0.unwrap(),
        alice
    );
    // HMAC-SHA256, keyed: the same value under another key hashes otherwise.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(b"alice@example.com");
    let full: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(alice, format!("{HASH_PREFIX}{}", &full[..32]));
    let other = Redaction::new(RedactSpec {
        fields: parse_fields("remote_user:hash").unwrap(),
        hash_key: Some(HashKey::new(&KEY.replace('0', "1")).unwrap()),
        ..RedactSpec::default()
    })
    .unwrap();
    assert_ne!(
        apply(&other, "remote_user", FieldClass::Text, "alice@example.com")
            .0
            .unwrap(),
        alice
    );
    // The key is never shown.
    assert!(!format!("{r:?} {:?}", HashKey::new(KEY).unwrap()).contains(KEY));
}

#[test]
fn settings_errors_name_the_item() {
    for (got, want) in [
        (
            parse_fields("a,b:zap").unwrap_err(),
            "item 2: \"zap\" is not an action",
        ),
        (
            parse_fields("a b").unwrap_err(),
            "\"a b\" is not a field name",
        ),
        (parse_fields("a,a:hash").unwrap_err(), "a is listed twice"),
        (
            parse_query_params("ok,a=b").unwrap_err(),
            "item 2: \"a=b\" is not a parameter name",
        ),
        (
            parse_patterns("email,ssn").unwrap_err(),
            "\"ssn\" is not a built-in pattern (email, card)",
        ),
        (
            parse_patterns("email,email").unwrap_err(),
            "pattern:email is listed twice",
        ),
        (
            parse_patterns(r#"[{"name": "x", "matches": "("}]"#).unwrap_err(),
            "pattern x: regex parse error",
        ),
        (
            parse_patterns(r#"[{"name": "x"}]"#).unwrap_err(),
            "a named pattern is",
        ),
        (
            HashKey::new("short").unwrap_err(),
            "the hash key has 5 bytes; give at least 32",
        ),
        (
            Redaction::new(RedactSpec {
                fields: parse_fields("a:hash").unwrap(),
                ..RedactSpec::default()
            })
            .unwrap_err(),
            "neither REDACT_HASH_KEY nor REDACT_HASH_KEY_SECRET",
        ),
    ] {
        assert!(got.to_string().contains(want), "{got} / {want}");
    }
    let many: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
    let err = Redaction::new(RedactSpec {
        fields: parse_fields(&many.join(",")).unwrap(),
        ..RedactSpec::default()
    })
    .unwrap_err();
    assert_eq!(err, RedactError::TooMany(40));
}

#[test]
fn empty_values_are_left_alone() {
    // `escape=json` writes "" for no value: nothing to drop, hash or count.
    let r = redaction(
        "on",
        "token",
        "http_cookie:hash,http_authorization",
        "email",
    );
    for key in ["http_cookie", "http_authorization", "remote_addr"] {
        let (got, rules) = apply(&r, key, FieldClass::Addr, "");
        assert_eq!(got.as_deref(), Some(""), "{key}");
        assert!(rules.is_empty(), "{key}: {rules:?}");
    }
}

#[test]
fn nothing_set_changes_nothing() {
    let r = Redaction::default();
    assert!(r.is_empty());
    for class in [FieldClass::Addr, FieldClass::Free, FieldClass::Uri] {
        let (got, rules) = apply(&r, "f", class, "203.0.113.50 ?token=x a@b.io");
        assert_eq!(got.as_deref(), Some("203.0.113.50 ?token=x a@b.io"));
        assert!(rules.is_empty());
    }
}
