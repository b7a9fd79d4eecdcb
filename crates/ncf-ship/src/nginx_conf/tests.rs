use super::*;

/// A dump as `nginx -T` prints it: each file's header, its bytes and a newline.
fn dump(files: &[(&str, &str)]) -> String {
    files
        .iter()
        .map(|(path, text)| format!("{FILE_HEADER}{path}:\n{text}\n"))
        .collect()
}

/// (name, args) of each top-level directive; blocks as `name{…}` with their directives.
fn shape(ds: &[Directive]) -> Vec<String> {
    ds.iter()
        .map(|d| {
            let mut s = format!("{}@{}", d.name, d.line);
            for a in &d.args {
                s.push_str(&format!(" [{a}]"));
            }
            if let Some(b) = &d.block {
                s.push_str(&format!(" {{{}}}", shape(b).join("; ")));
            }
            s
        })
        .collect()
}

#[test]
fn tokenises_as_nginx_does() {
    type Case<'a> = (&'a str, &'a str, Result<&'a [&'a str], &'a str>);
    let cases: &[Case] = &[
        (
            "log_format strings: quotes, escapes, concatenated across lines",
            "log_format t '$a \"q\" \\'s\\' \\\\ \\t'\n    \"b\\\"c\" x\\d;",
            Ok(&["log_format@1 [t] [$a \"q\" 's' \\ \t] [b\"c] [x\\d]"]),
        ),
        (
            "# starts a comment only where a word could start",
            "return 200 a#b; # c ; d\nx \"y # z\";",
            Ok(&["return@1 [200] [a#b]", "x@2 [y # z]"]),
        ),
        (
            "${var} does not open a block, } inside a word is a character",
            "set $x ${host}a}b;",
            Ok(&["set@1 [$x] [${host}a}b]"]),
        ),
        (
            "a backslash protects ; and stays",
            "a b\\;c;",
            Ok(&["a@1 [b\\;c]"]),
        ),
        (
            "blocks and lines",
            "http {\n  server { listen 80; }\n\n  access_log off;}\n",
            Ok(&["http@1 {server@2 {listen@2 [80]}; access_log@4 [off]}"]),
        ),
        (
            "if with parentheses after a quoted word",
            "if ($a = \"b\") { return 404; }",
            Ok(&["if@1 [($a] [=] [b] [)] {return@1 [404]}"]),
        ),
        (
            "a directive's line is its name's line",
            "# c\n\n  access_log\n   logs/a.log\n   main;",
            Ok(&["access_log@3 [logs/a.log] [main]"]),
        ),
        ("empty", "", Ok(&[])),
        ("stray }", "a;\n}", Err("f:2: unexpected \"}\"")),
        (
            "no ;",
            "a b",
            Err("f:1: unexpected end of file, expecting \";\" or \"}\""),
        ),
        (
            "unclosed block",
            "http {\n",
            Err("f:2: unexpected end of file, expecting \"}\""),
        ),
        (
            "a quoted word runs into text",
            "a 'b'c;",
            Err("f:1: unexpected \"c\""),
        ),
        ("; alone", ";", Err("f:1: unexpected \";\"")),
        (
            "} inside a directive",
            "a b }",
            Err("f:1: unexpected \"}\""),
        ),
    ];
    for (name, text, want) in cases {
        let got = Lexer::new("f", text).file();
        match (got, want) {
            (Ok(ds), Ok(w)) => assert_eq!(shape(&ds), *w, "{name}: {text:?}"),
            (Err(e), Err(w)) => assert_eq!(e.to_string(), *w, "{name}: {text:?}"),
            (got, want) => panic!("{name}: {text:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn splits_the_dump_at_its_headers() {
    let text = dump(&[("/etc/nginx/nginx.conf", "a;\n"), ("/etc/nginx/b", "b;")]);
    let files = split_dump(&text).unwrap();
    assert_eq!(
        files,
        vec![
            ("/etc/nginx/nginx.conf".to_string(), "a;\n"),
            ("/etc/nginx/b".to_string(), "b;")
        ]
    );
    for bad in [
        "",
        "worker_processes 1;\n",
        "# configuration file nginx.conf:\n",
        "nginx: the configuration file /etc/nginx/nginx.conf syntax is ok\n",
    ] {
        assert_eq!(split_dump(bad), Err(ConfError::NotADump), "{bad:?}");
    }
}

#[test]
fn glob_matches_as_glob3() {
    let cases = [
        ("/e/sites-enabled/*", "/e/sites-enabled/shop", true),
        ("/e/sites-enabled/*", "/e/sites-enabled/.hidden", false),
        ("/e/sites-enabled/.*", "/e/sites-enabled/.hidden", true),
        ("/e/sites-enabled/*", "/e/sites-enabled/a/b", false),
        ("/e/*/x.conf", "/e/conf.d/x.conf", true),
        ("/e/conf.d/*.conf", "/e/conf.d/a.conf", true),
        ("/e/conf.d/*.conf", "/e/conf.d/a.conf.bak", false),
        ("/e/conf.d/?.conf", "/e/conf.d/ab.conf", false),
        ("/e/conf.d/[ab].conf", "/e/conf.d/b.conf", true),
        ("/e/conf.d/[!ab].conf", "/e/conf.d/b.conf", false),
        ("/e/conf.d/[a-c]*", "/e/conf.d/cx", true),
        ("/e/conf.d/[]x]", "/e/conf.d/]", true),
        ("/e/conf.d/\\*", "/e/conf.d/*", true),
        ("/e/conf.d/\\*", "/e/conf.d/a", false),
    ];
    for (pattern, path, want) in cases {
        assert_eq!(glob_match(pattern, path), want, "{pattern} ~ {path}");
    }
}

#[test]
fn reads_the_defaults_from_nginx_v() {
    // Debian 12's nginx 1.22.1 prints this (to stderr), trimmed after the paths.
    let debian = "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.22 25 Aug 2026\n\
        TLS SNI support enabled\nconfigure arguments: --with-cc-opt='-g -O2 \
        -ffile-prefix-map=/build/reproducible-path/nginx-1.22.1=. -fstack-protector-strong' \
        --with-ld-opt='-Wl,-z,relro -Wl,-z,now -fPIC' --prefix=/usr/share/nginx \
        --conf-path=/etc/nginx/nginx.conf --http-log-path=/var/log/nginx/access.log \
        --error-log-path=stderr --lock-path=/var/lock/nginx.lock --pid-path=/run/nginx.pid\n";
    assert_eq!(Defaults::from_version_output(debian), Defaults::debian());
    assert_eq!(
        Defaults::from_version_output("nginx version: nginx/1.30.4\nconfigure arguments:\n"),
        Defaults::nginx()
    );
    assert_eq!(
        Defaults::from_version_output("configure arguments: --prefix=/opt/ngx/"),
        Defaults {
            prefix: "/opt/ngx/".into(),
            ..Defaults::nginx()
        }
    );
}

/// The outcome per file: "PATH: format-name[ gz]" per writer (or "error"), conflicts joined by
/// " + ", then "not PATH (reason)" for each target not followed.
fn outcome(text: &str, defaults: &Defaults) -> Result<Vec<String>, String> {
    let logs = parse_dump(text)
        .and_then(|d| d.logs(defaults))
        .map_err(|e| e.to_string())?;
    let mut out: Vec<String> = logs
        .files
        .iter()
        .map(|f| {
            let ws: Vec<String> = f
                .writers
                .iter()
                .map(|w| match &w.writes {
                    Writes::Access {
                        module,
                        format,
                        gzip,
                    } => format!(
                        "{}{}{}{}",
                        if *module == Module::Stream {
                            "stream "
                        } else {
                            ""
                        },
                        format.name,
                        if *gzip { " gz" } else { "" },
                        if w.default { " (default)" } else { "" }
                    ),
                    Writes::Error => "error".to_string(),
                })
                .collect();
            format!("{}: {}", f.path, ws.join(" + "))
        })
        .collect();
    out.extend(logs.not_followed.iter().map(|n| {
        let why = match n.reason {
            Unfollowable::Syslog => "syslog",
            Unfollowable::Stderr => "stderr",
            Unfollowable::Memory => "memory",
            Unfollowable::Variables => "variables",
        };
        let glob = n
            .glob
            .as_deref()
            .map(|g| format!(" glob {g}"))
            .unwrap_or_default();
        format!("not {} ({why}){glob} {}", n.target, n.at)
    }));
    Ok(out)
}

const MAIN: &str = "/etc/nginx/nginx.conf";

fn test_defaults() -> Defaults {
    Defaults {
        prefix: "/usr/share/nginx/".into(),
        access_log: "/var/log/nginx/access.log".into(),
        error_log: "/var/log/nginx/error.log".into(),
        conf_path: MAIN.into(),
    }
}

#[test]
fn follows_nginx_inheritance() {
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, &'a str)],
        Result<&'a [&'a str], &'a str>,
    );
    let cases: &[Case] = &[
        (
            "no log directive at all: nginx's compiled-in defaults, combined",
            &[(MAIN, "events {}\nhttp { server { listen 80; } }")],
            Ok(&[
                "/var/log/nginx/access.log: combined (default)",
                "/var/log/nginx/error.log: error",
            ]),
        ),
        (
            "http's list reaches servers and locations; a level with its own replaces it",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp {\n log_format t '$status rt=$request_time';\n \
                 access_log /l/a.log;\n server { location / {} location /t { access_log /l/t.log t; } }\n}",
            )],
            Ok(&["/l/a.log: combined", "/l/e.log: error", "/l/t.log: t"]),
        ),
        (
            "a nested location inherits from the location around it",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { access_log /l/h.log; server { location /a { access_log /l/a.log; \
                 location /a/b { location /a/b/c { } } } } }",
            )],
            Ok(&[
                "/l/a.log: combined",
                "/l/e.log: error",
                "/l/h.log: combined",
            ]),
        ),
        (
            "the built-in default only where nothing is inherited",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { server { access_log /l/b.log; } server { listen 81; } }",
            )],
            Ok(&[
                "/l/b.log: combined",
                "/l/e.log: error",
                "/var/log/nginx/access.log: combined (default)",
            ]),
        ),
        (
            "off in a location: that location writes nothing, others still do",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { server { access_log /l/s.log; location /x { access_log off; } } }",
            )],
            Ok(&["/l/e.log: error", "/l/s.log: combined"]),
        ),
        (
            "off beside a file at one level: off wins, the file is never written",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { server { access_log /l/never.log; access_log off; } }",
            )],
            Ok(&["/l/e.log: error"]),
        ),
        (
            "an access_log after a location still belongs to the server level",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { access_log /l/h.log; server { location / {} access_log /l/s.log; } }",
            )],
            Ok(&["/l/e.log: error", "/l/s.log: combined"]),
        ),
        (
            "several access_logs at one level all apply; if and limit_except are levels",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { log_format j escape=json '{\"s\":$status}';\n\
                 server { access_log /l/a.log; access_log /l/j.log j gzip=5 buffer=64k;\n\
                 location / { if ($x) { access_log /l/if.log; } limit_except GET { access_log /l/le.log j; } } } }",
            )],
            Ok(&[
                "/l/a.log: combined",
                "/l/e.log: error",
                "/l/if.log: combined",
                "/l/j.log: j gz",
                "/l/le.log: j",
            ]),
        ),
        (
            "relative log paths start at the prefix, relative includes at the conf directory",
            &[
                (
                    MAIN,
                    "error_log logs/e.log;\nhttp { include sites-enabled/*; }",
                ),
                (
                    "/etc/nginx/sites-enabled/shop",
                    "server { access_log ./logs//shop.example.com.access.log; }",
                ),
            ],
            Ok(&[
                "/usr/share/nginx/logs/e.log: error",
                "/usr/share/nginx/logs/shop.example.com.access.log: combined",
            ]),
        ),
        (
            "an included server block inherits http's list where the include stands",
            &[
                (
                    MAIN,
                    "error_log /l/e.log;\nhttp {\n log_format t '$request_time';\n access_log /l/a.log t;\n \
                     include /etc/nginx/conf.d/*.conf;\n}",
                ),
                ("/etc/nginx/conf.d/a.conf", "server { listen 81; }"),
                (
                    "/etc/nginx/conf.d/b.conf",
                    "server { listen 82; access_log /l/b.log; }",
                ),
                ("/etc/nginx/conf.d/c.conf.off", "this is not read;"),
            ],
            Ok(&["/l/a.log: t", "/l/b.log: combined", "/l/e.log: error"]),
        ),
        (
            "a format name is matched case-insensitively; a name may be defined twice in two cases",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { log_format Main 'A $status'; log_format main 'B $status';\n\
                 server { access_log /l/a.log MAIN; } }",
            )],
            Ok(&["/l/a.log: Main", "/l/e.log: error"]),
        ),
        (
            "one file written by two formats is reported, not guessed",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { log_format t '$request_time';\n\
                 server { access_log /l/a.log; } server { access_log /l/a.log t; } }",
            )],
            Ok(&["/l/a.log: combined + t", "/l/e.log: error"]),
        ),
        (
            "two names for the same format are one writer",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { log_format c2 '$remote_addr - $remote_user [$time_local] \
                 \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"';\n\
                 server { access_log /l/a.log; } server { access_log /l/a.log c2; } }",
            )],
            Ok(&["/l/a.log: combined", "/l/e.log: error"]),
        ),
        (
            "an access log that is also an error log is reported",
            &[(
                MAIN,
                "error_log /l/x.log;\nhttp { server { access_log /l/x.log; } }",
            )],
            Ok(&["/l/x.log: error + combined"]),
        ),
        (
            "syslog, variables and stderr are listed as not followed",
            &[(
                MAIN,
                "error_log stderr;\nhttp { server { access_log syslog:server=127.0.0.1:514; \
                 access_log /l/$host.log; access_log /l/a.log; error_log memory:1m; \
                 error_log syslog:server=unix:/dev/log; } }",
            )],
            Ok(&[
                "/l/a.log: combined",
                "not stderr (stderr) /etc/nginx/nginx.conf:1",
                "not syslog:server=127.0.0.1:514 (syslog) /etc/nginx/nginx.conf:2",
                "not /l/$host.log (variables) glob /l/*.log /etc/nginx/nginx.conf:2",
                "not memory:1m (memory) /etc/nginx/nginx.conf:2",
                "not syslog:server=unix:/dev/log (syslog) /etc/nginx/nginx.conf:2",
            ]),
        ),
        (
            "stream has its own formats and no default; mail's error_log counts",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { log_format basic '$status'; server { access_log /l/h.log basic; } }\n\
                 stream { log_format basic '$remote_addr $session_time'; access_log /l/s.log basic;\n\
                 server { listen 9000; } server { listen 9001; access_log off; error_log /l/se.log; } server { listen 9002; access_log /l/t.log basic gzip; } }\n\
                 mail { server { error_log /l/m.log; } }",
            )],
            Ok(&[
                "/l/e.log: error",
                "/l/h.log: basic",
                "/l/m.log: error",
                "/l/s.log: stream basic",
                "/l/se.log: error",
                "/l/t.log: stream basic gz",
            ]),
        ),
        (
            "directives inside other blocks are not logs",
            &[(
                MAIN,
                "error_log /l/e.log;\nhttp { map $a $b { access_log 1; } upstream u { server 127.0.0.1; } \
                 server { access_log /l/a.log; } }",
            )],
            Ok(&["/l/a.log: combined", "/l/e.log: error"]),
        ),
        (
            "an unknown format name",
            &[(MAIN, "http {\nserver {\naccess_log /l/a.log nope; } }")],
            Err("/etc/nginx/nginx.conf:3: unknown log format \"nope\""),
        ),
        (
            "stream's access_log needs a format",
            &[(MAIN, "stream { server { access_log /l/a.log; } }")],
            Err("/etc/nginx/nginx.conf:1: log format is not specified"),
        ),
        (
            "an include the dump does not hold",
            &[(MAIN, "http { include extra.conf; }")],
            Err(
                "/etc/nginx/nginx.conf:1: include \"extra.conf\" names /etc/nginx/extra.conf, \
                 which the dump does not contain",
            ),
        ),
        (
            "an include loop",
            &[(MAIN, "include /etc/nginx/nginx.conf;")],
            Err(
                "/etc/nginx/nginx.conf:1: blocks and includes nested deeper than 64 (an include loop?)",
            ),
        ),
        (
            "an unknown escape",
            &[(MAIN, "http { log_format x escape=xml '$a'; }")],
            Err("/etc/nginx/nginx.conf:1: unknown log format escaping \"xml\""),
        ),
    ];
    for (name, files, want) in cases {
        let got = outcome(&dump(files), &test_defaults());
        let want = want
            .map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .map_err(str::to_string);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn formats_keep_their_text_escape_and_place() {
    let text = dump(&[(
        MAIN,
        "http {\n    log_format timing '$remote_addr [$time_local] \"$request\" $status '\n\
         \x20                     'rt=$request_time urt=\"$upstream_response_time\"';\n\
         \x20   log_format js escape=json '{\"addr\":\"$remote_addr\",\"status\":$status}';\n\
         \x20   server { access_log /l/t.log timing; access_log /l/j.log js; }\n}\n",
    )]);
    let logs = parse_dump(&text).unwrap().logs(&test_defaults()).unwrap();
    let format = |path: &str| match &logs.file(path).unwrap().writer().unwrap().writes {
        Writes::Access { format, .. } => format.clone(),
        Writes::Error => panic!("{path} is an error log"),
    };
    assert_eq!(
        format("/l/t.log"),
        Format {
            name: "timing".into(),
            escape: Escape::Default,
            text: "$remote_addr [$time_local] \"$request\" $status rt=$request_time \
                   urt=\"$upstream_response_time\""
                .into(),
            at: Some(Origin {
                file: MAIN.into(),
                line: 2
            }),
        }
    );
    let js = format("/l/j.log");
    assert_eq!(
        (js.escape, js.text.as_str()),
        (
            Escape::Json,
            "{\"addr\":\"$remote_addr\",\"status\":$status}"
        )
    );
    // Each compiles with the forwarder's own compiler.
    for f in [format("/l/t.log"), js] {
        ncf_parse::LogFormat::compile(&f.text).unwrap_or_else(|e| panic!("{}: {e}", f.name));
    }
}

#[test]
fn a_conflict_names_each_writer_and_where() {
    let text = dump(&[(
        MAIN,
        "error_log /l/e.log;\nhttp { log_format t '$request_time';\n\
         server { access_log /l/a.log; }\nserver { access_log /l/a.log t; } }",
    )]);
    let logs = parse_dump(&text).unwrap().logs(&test_defaults()).unwrap();
    let file = logs.file("/l/a.log").unwrap();
    assert_eq!(file.kind(), Some(LogKind::Access));
    assert_eq!(
        file.writer().unwrap_err().to_string(),
        "/l/a.log is written in 2 ways, which no one format reads: log_format combined \
         (/etc/nginx/nginx.conf:3); log_format t (/etc/nginx/nginx.conf:4);"
    );
    assert_eq!(
        logs.file("/l/e.log").unwrap().writer().map(|w| &w.writes),
        Ok(&Writes::Error)
    );
}

/// Debian 12's own configuration as its nginx 1.22.1 dumps it (`nginx -T` as root, with
/// sites-enabled/default and one module include).
#[test]
fn reads_debians_default_configuration() {
    let text = include_str!("../../../../tests/data/nginx-T/debian-12-default.txt");
    let d = parse_dump(text).unwrap();
    assert_eq!(
        d.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        [
            "/etc/nginx/nginx.conf",
            "/etc/nginx/modules-enabled/50-mod-http-echo.conf",
            "/etc/nginx/mime.types",
            "/etc/nginx/sites-enabled/default"
        ]
    );
    assert_eq!(
        outcome(text, &Defaults::debian()),
        Ok(vec![
            "/var/log/nginx/access.log: combined".to_string(),
            "/var/log/nginx/error.log: error".to_string(),
        ])
    );
}

/// What the dump says each format is, handed to the forwarder's own reader of
/// `ACCESS_LOG_FORMAT`, compiles to the format nginx compiled: same escape, same variables
/// and literals (quotes, backslashes and a tab in the text included).
#[test]
fn to_config_round_trips_through_the_forwarders_reader() {
    let text = dump(&[(
        MAIN,
        "http {\n  log_format q 'a\\'b \"$request\" \\\\x \\t$status';\n\
         \x20 log_format js escape=json '{\"u\":\"$uri\",\"s\":$status}';\n\
         \x20 log_format raw escape=none '$request_body';\n\
         \x20 server { access_log /l/q.log q; access_log /l/js.log js; \
         access_log /l/raw.log raw; access_log /l/c.log; } }",
    )]);
    let logs = parse_dump(&text).unwrap().logs(&test_defaults()).unwrap();
    let cases = [
        (
            "/l/q.log",
            "'a\\'b \"$request\" \\\\x \t$status'",
            Escape::Default,
        ),
        (
            "/l/js.log",
            "escape=json '{\"u\":\"$uri\",\"s\":$status}'",
            Escape::Json,
        ),
        ("/l/raw.log", "escape=none '$request_body'", Escape::None),
        (
            "/l/c.log",
            "'$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"'",
            Escape::Default,
        ),
    ];
    for (path, spec, escape) in cases {
        let Writes::Access { format, .. } = &logs.file(path).unwrap().writers[0].writes else {
            panic!("{path}: not an access log");
        };
        assert_eq!(format.to_config(), spec, "{path}");
        let read = ncf_parse::LogFormat::parse_config(&format.to_config())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let direct = ncf_parse::LogFormat::compile(&format.text).unwrap();
        assert_eq!(
            (read.escape(), read.vars()),
            (escape, direct.vars()),
            "{path}"
        );
    }
    assert_eq!(
        logs.file("/l/q.log").map(|f| &f.writers[0].writes),
        Some(&Writes::Access {
            module: Module::Http,
            format: Format {
                name: "q".into(),
                escape: Escape::Default,
                text: "a'b \"$request\" \\x \t$status".into(),
                at: Some(Origin {
                    file: MAIN.into(),
                    line: 2
                }),
            },
            gzip: false
        })
    );
}

/// Includes that multiply (each of 20 levels includes both files of the next: 2^20 reads) end
/// in an error instead of running for ever.
#[test]
fn includes_that_multiply_are_refused() {
    let mut files = vec![(MAIN.to_string(), "include /d/0/*;".to_string())];
    for level in 0..20 {
        for f in ["a", "b"] {
            files.push((
                format!("/d/{level}/{f}"),
                format!("include /d/{}/*;", level + 1),
            ));
        }
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let got = parse_dump(&dump(&files)).unwrap().logs(&test_defaults());
    assert!(matches!(got, Err(ConfError::TooMany { .. })), "{got:?}");
}

proptest::proptest! {
    /// Any text after a header is read or refused with an error, never a panic.
    #[test]
    fn any_text_reads_or_errs(
        body in "(http|server|location|stream|access_log|error_log|log_format|include|off|\
                  escape=json|syslog:x|/l/a|b\\.log|x\\.conf|\\*|'a|\"b|\\{|\\}|;| |\n|#|\\\\|\\$|[ -~]){0,80}"
    ) {
        let text = dump(&[(MAIN, &body), ("/etc/nginx/x.conf", "server { access_log off; }")]);
        if let Ok(d) = parse_dump(&text) {
            let _ = d.logs(&test_defaults());
        }
    }
}

#[test]
fn variables_become_stars() {
    for (path, want) in [
        ("logs/$host.log", "logs/*.log"),
        ("/l/${host}_$server_port.access.log", "/l/*_*.access.log"),
        ("/l/$host", "/l/*"),
        ("/l/${unclosed", "/l/*"),
        ("/l/a$", "/l/a*"),
    ] {
        assert_eq!(variables_as_stars(path), want, "{path}");
    }
}

/// Every `include` of a file, at every level, relative names after the main file's directory
/// (not the including file's), globs marked; one whose arguments nginx refuses is refused.
#[test]
fn includes_are_found_at_every_level() {
    let text = "include modules/*.conf;\nhttp {\n  include mime.types;\n  types { include more.types; }\n\
                map $uri $x { include /etc/nginx/map.d/[a-z]*; }\n  server { location / { include snippets/a.conf; } }\n}\n";
    let got: Vec<(String, bool, usize)> =
        includes_of(MAIN, "/etc/nginx/sites-available/shop", text)
            .expect("reads")
            .into_iter()
            .map(|i| {
                assert_eq!(i.at.file, "/etc/nginx/sites-available/shop");
                (i.pattern, i.glob, i.at.line)
            })
            .collect();
    let want = [
        ("/etc/nginx/modules/*.conf", true, 1),
        ("/etc/nginx/mime.types", false, 3),
        ("/etc/nginx/more.types", false, 4),
        ("/etc/nginx/map.d/[a-z]*", true, 5),
        ("/etc/nginx/snippets/a.conf", false, 6),
    ];
    let want: Vec<(String, bool, usize)> = want
        .iter()
        .map(|(p, g, l)| ((*p).to_string(), *g, *l))
        .collect();
    assert_eq!(got, want);
    for bad in ["include;", "include a b;"] {
        assert!(
            matches!(
                includes_of(MAIN, MAIN, bad),
                Err(ConfError::Arguments { .. })
            ),
            "{bad}"
        );
    }
}

/// The text made from files read directly parses as `nginx -T`'s: the same files, the same
/// logs.
#[test]
fn dump_of_files_reads_as_a_dump() {
    let files = [
        (MAIN, "http { include conf.d/*.conf; }"),
        (
            "/etc/nginx/conf.d/a.conf",
            "server { access_log /var/log/a.log; }\n",
        ),
    ];
    let text = dump_of(files);
    let dump = parse_dump(&text).expect("a dump");
    assert_eq!(
        dump.paths().collect::<Vec<_>>(),
        vec![MAIN, "/etc/nginx/conf.d/a.conf"]
    );
    assert_eq!(
        outcome(&text, &test_defaults()).expect("logs"),
        outcome(
            &format!(
                "# configuration file {MAIN}:\n{}\n# configuration file /etc/nginx/conf.d/a.conf:\n{}\n",
                files[0].1, files[1].1
            ),
            &test_defaults()
        )
        .expect("logs")
    );
    assert_eq!(dump.includes().expect("includes").len(), 1);
}
