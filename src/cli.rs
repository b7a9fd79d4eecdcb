//! The command line: the local commands, which run the code the Lambda runs (the Lambda's own
//! loop is [`crate::lambda`]).
//!
//! ```text
//! nginx-cloudwatch-forwarder replay --event FILE | --queue QUEUE_URL [--function NAME]
//! nginx-cloudwatch-forwarder parse --kind access|error [--log-format FMT] [--nginx-version V] [FILE]
//! nginx-cloudwatch-forwarder ship [--once | --check] [--interval SECONDS] [--max-segment BYTES] [--state-dir DIR] [--key-layout instance|userid] [FILE...]
//! nginx-cloudwatch-forwarder backfill s3://BUCKET/PREFIX [--since DAY] [--until DAY] [--dry-run] [--enqueue QUEUE_URL] [--function NAME]
//! nginx-cloudwatch-forwarder nginx-logs [--formats-dir DIR] [--json]
//! nginx-cloudwatch-forwarder completions bash|zsh|fish|elvish|powershell
//! ```

// The doc comments of the arguments are clap's --help texts, written for a terminal
// (`<stack>-forwarder`, `KIND<TAB>FORMAT`), not HTML.
#![allow(rustdoc::invalid_html_tags)]

mod backfill;
mod exit;
mod nginx_logs;
mod render;
mod replay;
mod settings;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::Config;
use crate::forward::epoch_ms;
use crate::lines::LineReader;
use crate::parse::{LogFormat, ObjectParse, ParseSettings, RequestLineRules};
use crate::route::LogKind;
use crate::ship::ShipArgs;

pub use backfill::BackfillArgs;
use exit::EXIT_USAGE;
pub use nginx_logs::NginxLogsArgs;

/// nginx logs on S3 → CloudWatch Logs.
///
/// Run by AWS Lambda (AWS_LAMBDA_RUNTIME_API set) it serves S3 event notifications. Run by
/// hand, the commands below use the same code. The forwarder's configuration comes from the
/// environment (KEY_PATTERN, LOG_GROUP_TEMPLATE, LOG_STREAM_TEMPLATE, RETENTION_DAYS,
/// OUTPUT_FORMAT, ACCESS_LOG_FORMAT, ERROR_LOG_TIMEZONE, MAX_CONCURRENT_OBJECTS, …; see
/// docs/configuration.md), or for backfill and replay with --function from the deployed
/// function; the AWS endpoints and credentials from the SDK's usual variables
/// (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_CLOUDWATCH_LOGS, AWS_PROFILE, …).
#[derive(Debug, Parser, PartialEq)]
#[command(
    name = "nginx-cloudwatch-forwarder",
    version,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand, PartialEq)]
enum Command {
    /// Runs the Lambda handler on an event JSON file, or on the messages of a dead-letter
    /// queue, and prints the invocation summary as JSON; exits 1 when any record failed.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["event", "queue"])))]
    Replay {
        /// The event: an S3, SQS, SNS or EventBridge payload (as in events/), a Lambda
        /// invocation record from the on-failure destination, or `aws sqs receive-message`
        /// output.
        #[arg(long, value_name = "FILE")]
        event: Option<String>,
        /// Empties this SQS queue (the stack's DeadLetterQueueUrl or
        /// NotificationDeadLetterQueueUrl): each message is forwarded as Lambda would, and
        /// deleted once every object it announces is delivered; the others stay in the queue.
        #[arg(long, value_name = "QUEUE_URL")]
        queue: Option<String>,
        /// Writes with this deployed function's settings (its environment, read with
        /// GetFunctionConfiguration: name or ARN; the stack's is <stack>-forwarder) instead of
        /// this shell's; a forwarder variable set here that differs from it is refused.
        #[arg(long, value_name = "NAME")]
        function: Option<String>,
    },
    /// Parses a log and prints one JSON object per event: {"timestamp": <ms>, "message": <the
    /// message CloudWatch would receive>}.
    Parse {
        /// Which parser.
        #[arg(long, value_parser = parse_kind, value_name = "access|error")]
        kind: LogKind,
        /// The access log's log_format (overrides ACCESS_LOG_FORMAT).
        #[arg(long, value_name = "FMT")]
        log_format: Option<String>,
        /// The version of the nginx that wrote the log, as `nginx -v` gives it (1.18.0,
        /// nginx/1.22.1): request lines are read by its rules, as for an object whose
        /// `nginx-version` metadata says so. Without it, each line by what it proves.
        #[arg(long, value_parser = parse_nginx_version, value_name = "VERSION")]
        nginx_version: Option<RequestLineRules>,
        /// The log (plain, gzip or zstd); stdin when absent.
        file: Option<String>,
    },
    /// On the nginx host: ships what nginx appended to each FILE since the last upload, whole
    /// lines only, as one gzip object per kind (the files of one kind together) to
    /// s3://$NGINX_LOG_BUCKET/$NGINX_LOG_PREFIX<instance-id>/<access|error>/YYYY/MM/DD/…,
    /// every --interval or as soon as --max-segment bytes are pending; follows rotation by
    /// rename and by copytruncate. The instance ID comes from IMDSv2 (IMDS_ENDPOINT).
    Ship(ShipArgs),
    /// Forwards what is already in S3 under a prefix (or, with --enqueue, announces it to the
    /// stack's queue so that Lambda forwards it). Objects already delivered are not sent again.
    Backfill(BackfillArgs),
    /// On the nginx host: prints the log files nginx's configuration names (read as `ship`
    /// reads it: NGINX_BIN, else nginx on PATH, else /usr/sbin/nginx), one line each:
    /// KIND<TAB>FORMAT<TAB>PATH, where KIND is access, error or mixed and FORMAT the SHA-256
    /// of the log_format's text as ACCESS_LOG_FORMAT takes it (`-` for none). For scripts
    /// (scripts/ship-nginx-logs.sh); exits 1 when the configuration cannot be read.
    NginxLogs(NginxLogsArgs),
    /// Prints a completion script for a shell, e.g. `completions bash >
    /// /etc/bash_completion.d/nginx-cloudwatch-forwarder`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn parse_nginx_version(s: &str) -> Result<RequestLineRules, String> {
    RequestLineRules::for_version(s).map_err(|e| e.to_string())
}

fn parse_kind(s: &str) -> Result<LogKind, String> {
    LogKind::from_name(s).ok_or(format!("{s:?}: expected access or error"))
}

/// The command line (`args` without the program name).
fn parse_args(args: &[String]) -> Result<Command, clap::Error> {
    let argv = std::iter::once("nginx-cloudwatch-forwarder").chain(args.iter().map(String::as_str));
    let command = Cli::try_parse_from(argv)?.command;
    if let Command::Backfill(BackfillArgs {
        since: Some(since),
        until: Some(until),
        ..
    }) = &command
        && since > until
    {
        return Err(Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            format!("--since {since} is after --until {until} (both days are included)"),
        ));
    }
    Ok(command)
}

/// What a command line clap refused is: help and version are answers (exit 0; no arguments
/// at all shows the help, as before), anything else is bad usage (exit 64, not clap's 2).
fn refused(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    // clap prints help and version to stdout, errors (with a usage line) to stderr.
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_USAGE),
    }
}

/// Runs a local command; the return value is the process exit code.
pub async fn run(args: Vec<String>) -> ExitCode {
    let command = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => return refused(&e),
    };
    // The commands that write into the stack's log groups say whose settings they use.
    let writes_as = match &command {
        Command::Backfill(a) => Some(a.function.as_deref()),
        Command::Replay { function, .. } => Some(function.as_deref()),
        _ => None,
    };
    // `ship`, `nginx-logs` and `completions` do not use the forwarder's configuration.
    let uses_config = !matches!(
        command,
        Command::Ship(_) | Command::NginxLogs(_) | Command::Completions { .. }
    );
    let config = match (writes_as, uses_config) {
        (Some(function), _) => settings::forwarder_config(function).await,
        (None, true) => settings::shell_config().await,
        (None, false) => Ok(Config::from_lookup(|_| None)
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))),
    };
    let config = match config {
        Ok(c) => c,
        Err((code, e)) => {
            eprintln!("error: {e}");
            return code;
        }
    };
    let result = match command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "nginx-cloudwatch-forwarder",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Backfill(args) => backfill::command(config, args).await,
        Command::NginxLogs(args) => nginx_logs::command(&args),
        Command::Replay {
            event: Some(event),
            function,
            ..
        } => replay::event_file(config, &event, function.as_deref()).await,
        Command::Replay {
            queue: Some(queue), ..
        } => replay::queue(config, &queue).await,
        // clap requires one of them.
        Command::Replay { .. } => Err("replay needs --event FILE or --queue QUEUE_URL".into()),
        Command::Parse {
            kind,
            log_format,
            nginx_version,
            file,
        } => parse_command(config.parse, nginx_version, kind, log_format, file).await,
        Command::Ship(args) => match ship(args).await {
            Ok(code) => Ok(code),
            Err((code, e)) => {
                eprintln!("error: {e}");
                return ExitCode::from(code);
            }
        },
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

/// `ship`, or with `--check` the readiness report.
async fn ship(args: ShipArgs) -> Result<ExitCode, (u8, String)> {
    if args.check {
        crate::ship::check::command(args).await
    } else {
        crate::ship::command(args).await
    }
}

async fn parse_command(
    mut parse: ParseSettings,
    request_line: Option<RequestLineRules>,
    kind: LogKind,
    log_format: Option<String>,
    file: Option<String>,
) -> Result<ExitCode, String> {
    // Every line is shown: FILTER_RULES' samples go by line number, which this road does not
    // count (replay and backfill apply the rules as the Lambda does).
    parse.rules = std::sync::Arc::default();
    if let Some(f) = log_format {
        parse.access_format = LogFormat::parse_config(&f)
            .map_err(|e| format!("--log-format {f:?}: {e}"))?
            .with_names(parse.names);
    }
    // The format is known here: a REDACT_FIELDS key its messages do not have is a mistake
    // (the function can only warn, objects may name other formats).
    if kind == LogKind::Access
        && let Some(key) = crate::config::parse::unknown_redacted_fields(&parse).first()
    {
        return Err(format!(
            "REDACT_FIELDS: {key} is not a field of these messages (the access format's \
             fields, the parts of $request, the error log's message and context)"
        ));
    }
    let (body, fallback_ts): (Box<dyn tokio::io::AsyncRead + Send + Unpin>, i64) = match &file {
        Some(path) => {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("cannot open {path}: {e}"))?;
            let mtime = f
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .map_or(0, epoch_ms);
            (Box::new(f), mtime)
        }
        None => (
            Box::new(tokio::io::stdin()),
            epoch_ms(std::time::SystemTime::now()),
        ),
    };
    let name = file.as_deref().unwrap_or("<stdin>");
    let reader = LineReader::open(body)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let plan = render::Plan::default();
    // The file's own part: the request-line rules of the nginx that wrote it (`--nginx-version`).
    let object = ObjectParse {
        request_line,
        ..ObjectParse::default()
    };
    let job = render::Job::new(Arc::new(parse), object, kind, fallback_ts, 0);
    match render::render(reader, job, std::io::stdout(), plan).await {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e @ render::RenderError::Read { .. }) => Err(format!("{name}: {e}")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn ok(s: &str) -> Command {
        parse_args(&args(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The command lines the hand-written parser took before clap, and the new ones: replay
    /// and parse.
    #[test]
    fn replay_and_parse_lines() {
        assert_eq!(
            ok("replay --event e.json"),
            Command::Replay {
                event: Some("e.json".into()),
                queue: None,
                function: None
            }
        );
        assert_eq!(
            ok("replay --event=e.json"),
            Command::Replay {
                event: Some("e.json".into()),
                queue: None,
                function: None
            }
        );
        assert_eq!(
            ok("replay --queue https://sqs.eu-west-1.amazonaws.com/1/dlq --function web-forwarder"),
            Command::Replay {
                event: None,
                queue: Some("https://sqs.eu-west-1.amazonaws.com/1/dlq".into()),
                function: Some("web-forwarder".into())
            }
        );
        assert_eq!(
            ok("parse --kind error f.log"),
            Command::Parse {
                kind: LogKind::Error,
                log_format: None,
                nginx_version: None,
                file: Some("f.log".into())
            }
        );
        assert_eq!(
            ok("parse --log-format main --kind access"),
            Command::Parse {
                kind: LogKind::Access,
                log_format: Some("main".into()),
                nginx_version: None,
                file: None
            }
        );
        assert_eq!(
            ok("parse --kind access --nginx-version 1.18.0 a.log"),
            Command::Parse {
                kind: LogKind::Access,
                log_format: None,
                nginx_version: Some(RequestLineRules::UpTo1_19_5),
                file: Some("a.log".into())
            }
        );
        assert_eq!(
            ok("parse --kind access --nginx-version=nginx/1.30.4"),
            Command::Parse {
                kind: LogKind::Access,
                log_format: None,
                nginx_version: Some(RequestLineRules::From1_29_3),
                file: None
            }
        );
    }

    /// ship, backfill, nginx-logs and completions.
    #[test]
    fn ship_backfill_and_other_lines() {
        assert_eq!(
            ok("ship --once --interval 5 a/access.log --state-dir=/s error.log"),
            Command::Ship(ShipArgs {
                once: true,
                check: false,
                interval: Some("5".into()),
                max_segment: None,
                state_dir: Some("/s".into()),
                key_layout: None,
                files: vec!["a/access.log".into(), "error.log".into()],
            })
        );
        assert_eq!(ok("ship"), Command::Ship(ShipArgs::default()));
        assert_eq!(
            ok("ship --check --key-layout userid"),
            Command::Ship(ShipArgs {
                check: true,
                key_layout: Some("userid".into()),
                ..ShipArgs::default()
            })
        );
        assert_eq!(
            ok("backfill s3://logs/nginx/ --since 2026-11-01 --until=2026-11-30 --dry-run"),
            Command::Backfill(BackfillArgs {
                target: "s3://logs/nginx/".parse().expect("a target"),
                since: Some(crate::backfill::parse_day("2026-11-01").expect("a day")),
                until: Some(crate::backfill::parse_day("2026-11-30").expect("a day")),
                dry_run: true,
                enqueue: None,
                function: None,
            })
        );
        assert!(matches!(
            ok("backfill s3://logs --function arn:aws:lambda:eu-west-1:1:function:web-forwarder"),
            Command::Backfill(BackfillArgs { function: Some(f), .. }) if f.ends_with(":web-forwarder")
        ));
        assert!(matches!(
            ok("backfill s3://logs --enqueue https://sqs.eu-west-1.amazonaws.com/1/q"),
            Command::Backfill(BackfillArgs { enqueue: Some(q), .. }) if q.ends_with("/1/q")
        ));
        assert_eq!(
            ok("nginx-logs --formats-dir /tmp/f"),
            Command::NginxLogs(NginxLogsArgs {
                formats_dir: Some("/tmp/f".into()),
                json: false
            })
        );
        assert_eq!(
            ok("nginx-logs --json"),
            Command::NginxLogs(NginxLogsArgs {
                formats_dir: None,
                json: true
            })
        );
        assert_eq!(
            ok("completions bash"),
            Command::Completions {
                shell: clap_complete::Shell::Bash
            }
        );
    }

    /// Lines clap refuses, with an error rather than help or the version.
    #[test]
    fn bad_lines_are_refused() {
        for bad in [
            "replay",
            "replay --event",
            "parse",
            "parse --kind debug",
            "frobnicate",
            "replay --event a --bogus b",
            "replay --event a --queue q",
            "replay --queue",
            "replay --event a --function",
            "parse --kind access a b",
            "parse --kind access --nginx-version 1.22",
            "parse --kind access --nginx-version tengine/2.3.3",
            "ship --interval",
            "ship --follow x",
            "ship --check --once",
            "backfill",
            "backfill logs/nginx",
            "backfill s3://logs --since 2026-11-31",
            "backfill s3://logs --since 2026-11-02 --until 2026-11-01",
            "backfill s3://logs --enqueue q --dry-run",
            "completions tcsh",
            "nginx-logs /var/log/nginx/access.log",
            "nginx-logs --formats-dir",
        ] {
            let e = parse_args(&args(bad)).expect_err(bad);
            assert!(
                !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn help_and_version_are_answers_and_bad_usage_is_64() {
        for (line, kind) in [
            ("", ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand),
            ("--help", ErrorKind::DisplayHelp),
            ("help", ErrorKind::DisplayHelp),
            ("backfill --help", ErrorKind::DisplayHelp),
            ("-V", ErrorKind::DisplayVersion),
            ("--version", ErrorKind::DisplayVersion),
        ] {
            let e = parse_args(&args(line)).expect_err(line);
            assert_eq!(e.kind(), kind, "{line:?}");
            assert_eq!(refused(&e), ExitCode::SUCCESS, "{line:?}");
        }
        let e = parse_args(&args("frobnicate")).expect_err("unknown");
        assert_eq!(refused(&e), ExitCode::from(EXIT_USAGE));
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
