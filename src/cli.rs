//! The entry points: the Lambda runtime loop, and the local commands, which run the same code.
//!
//! ```text
//! nginx-cloudwatch-forwarder replay --event FILE
//! nginx-cloudwatch-forwarder parse --kind access|error [--log-format FMT] [FILE]
//! nginx-cloudwatch-forwarder ship [--once] [--interval SECONDS] [--max-segment BYTES] [--state-dir DIR] [FILE...]
//! ```

mod render;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::aws::{clients, production_handler};
use crate::config::Config;
use crate::forward::epoch_ms;
use crate::handler::{Budget, FALLBACK_BUDGET, budget};
use crate::lines::LineReader;
use crate::parse::LogFormat;
use crate::route::LogKind;
use crate::ship::ShipArgs;

pub const USAGE: &str = "\
nginx-cloudwatch-forwarder — nginx logs on S3 → CloudWatch Logs

Run by AWS Lambda (AWS_LAMBDA_RUNTIME_API set) it serves S3 event notifications.
Run by hand:

  nginx-cloudwatch-forwarder replay --event FILE
      Runs the Lambda handler on an event JSON file against the AWS endpoints the
      environment names (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3,
      AWS_ENDPOINT_URL_CLOUDWATCH_LOGS, credentials, region). Prints the invocation
      summary as JSON; exits 1 when any record failed.

  nginx-cloudwatch-forwarder parse --kind access|error [--log-format FMT] [FILE]
      Reads FILE (or stdin; gzip is detected) and prints one JSON object per event:
      {\"timestamp\": <ms>, \"message\": <the message CloudWatch would receive>}.
      --log-format overrides ACCESS_LOG_FORMAT.

  nginx-cloudwatch-forwarder ship [--once] [--interval SECONDS] [--max-segment BYTES]
                                  [--state-dir DIR] [FILE...]
      On the nginx host: ships what nginx appended to each FILE (default
      /var/log/nginx/access.log and error.log) since the last upload, whole lines only,
      as one gzip object per segment to s3://$NGINX_LOG_BUCKET/$NGINX_LOG_PREFIX
      <instance-id>/<access|error>/YYYY/MM/DD/<name>-<dev>.<inode>.g<generation>-<start>-<end>.gz,
      every --interval (SHIP_INTERVAL, default 60) seconds or as soon as --max-segment
      (SHIP_MAX_SEGMENT, default 16777216) bytes are pending. Follows rotation by rename
      and by copytruncate. Positions are saved in --state-dir (SHIP_STATE_DIR, default
      /var/lib/nginx-cloudwatch-forwarder/ship) after S3 confirmed each upload.
      --once ships what is pending and exits (1 when any upload failed); otherwise runs
      until SIGTERM or ctrl-c. The instance ID comes from IMDSv2 (IMDS_ENDPOINT, default
      http://169.254.169.254); NGINX_LOG_PREFIX defaults to nginx/.

Configuration comes from the environment (KEY_PATTERN, LOG_GROUP_TEMPLATE,
LOG_STREAM_TEMPLATE, RETENTION_DAYS, OUTPUT_FORMAT, ACCESS_LOG_FORMAT,
ERROR_LOG_TIMEZONE, MAX_CONCURRENT_OBJECTS); see README.md.
";

/// Exit code for bad usage or configuration (sysexits' EX_USAGE).
const EXIT_USAGE: u8 = 64;

#[derive(Debug, PartialEq)]
enum Command {
    Help,
    Version,
    Replay {
        event: String,
    },
    Parse {
        kind: LogKind,
        log_format: Option<String>,
        file: Option<String>,
    },
    Ship(ShipArgs),
}

/// Flags that take no value.
const SWITCHES: [&str; 1] = ["once"];

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter();
    let cmd = match it.next().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => return Ok(Command::Help),
        Some("-V" | "--version") => return Ok(Command::Version),
        Some(c) => c,
    };
    let mut flags: Vec<(&str, &str)> = Vec::new();
    let mut positional: Vec<&str> = Vec::new();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            if name == "help" {
                return Ok(Command::Help);
            }
            if SWITCHES.contains(&name) {
                flags.push((name, ""));
                continue;
            }
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n, v),
                None => (
                    name,
                    it.next()
                        .map(String::as_str)
                        .ok_or(format!("--{name} needs a value"))?,
                ),
            };
            flags.push((name, value));
        } else {
            positional.push(a);
        }
    }
    let take = |flags: &mut Vec<(&str, &str)>, name: &str| {
        flags
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| flags.remove(i).1.to_string())
    };
    let command = match cmd {
        "replay" => {
            let event = take(&mut flags, "event").ok_or("replay needs --event FILE")?;
            if let Some(p) = positional.first() {
                return Err(format!("unexpected argument {p:?}"));
            }
            Command::Replay { event }
        }
        "parse" => {
            let kind = take(&mut flags, "kind").ok_or("parse needs --kind access|error")?;
            let kind = LogKind::from_name(&kind)
                .ok_or(format!("--kind {kind:?}: expected access or error"))?;
            if positional.len() > 1 {
                return Err(format!("parse takes at most one FILE, got {positional:?}"));
            }
            Command::Parse {
                kind,
                log_format: take(&mut flags, "log-format"),
                file: positional.first().map(|s| s.to_string()),
            }
        }
        "ship" => Command::Ship(ShipArgs {
            once: take(&mut flags, "once").is_some(),
            interval: take(&mut flags, "interval"),
            max_segment: take(&mut flags, "max-segment"),
            state_dir: take(&mut flags, "state-dir"),
            files: positional.iter().map(|s| s.to_string()).collect(),
        }),
        other => return Err(format!("unknown command {other:?}")),
    };
    if let Some((n, _)) = flags.first() {
        return Err(format!("unknown flag --{n}"));
    }
    Ok(command)
}

/// Runs a local command; the return value is the process exit code.
pub async fn run(args: Vec<String>) -> ExitCode {
    let command = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let config = match Config::from_env() {
        Ok(c) => c,
        // `ship` runs on the host and does not use the forwarder's configuration.
        Err(e) if !matches!(command, Command::Help | Command::Version | Command::Ship(_)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(_) => Config::from_lookup(|_| None)
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}")),
    };
    let result = match command {
        Command::Help => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("nginx-cloudwatch-forwarder {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { event } => replay(config, &event).await,
        Command::Parse {
            kind,
            log_format,
            file,
        } => parse_command(config, kind, log_format, file).await,
        Command::Ship(args) => match crate::ship::command(args).await {
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

async fn replay(config: Config, event_file: &str) -> Result<ExitCode, String> {
    let text = tokio::fs::read_to_string(event_file)
        .await
        .map_err(|e| format!("cannot read {event_file}: {e}"))?;
    let payload: Value =
        serde_json::from_str(&text).map_err(|e| format!("{event_file} is not JSON: {e}"))?;
    let (s3, logs) = clients().await;
    let handler = production_handler(config, s3, logs);
    let summary = handler
        .handle(&payload)
        .await
        .map_err(|e| format!("{event_file}: {e}"))?;
    let out = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    println!("{out}");
    Ok(if summary.has_failures() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn parse_command(
    mut config: Config,
    kind: LogKind,
    log_format: Option<String>,
    file: Option<String>,
) -> Result<ExitCode, String> {
    if let Some(f) = log_format {
        config.parse.access_format = LogFormat::parse_config(&f)
            .map_err(|e| format!("--log-format {f:?}: {e}"))?
            .with_names(config.parse.names);
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
    match render::render(
        reader,
        &config.parse,
        kind,
        fallback_ts,
        std::io::stdout(),
        plan,
    )
    .await
    {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e @ render::RenderError::Read { .. }) => Err(format!("{name}: {e}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The Lambda runtime loop: configuration and clients once, then one handler call per event.
pub async fn run_lambda() -> Result<(), lambda_runtime::Error> {
    let config = Config::from_env()?;
    let (s3, logs) = clients().await;
    let handler = production_handler(config, s3, logs);
    let handler = &handler;
    // Once per process: an implausible deadline comes from the runtime (an emulator such as
    // `cargo lambda watch`), so every invocation of this process has it; one warning says it.
    let deadline_warned = AtomicBool::new(false);
    let deadline_warned = &deadline_warned;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Lambda's deadline (ms since the epoch) as an Instant, to stop objects in time.
        let budget = budget(
            event.context.deadline,
            epoch_ms(std::time::SystemTime::now()),
            std::time::Instant::now(),
        );
        if let Budget::Fallback { problem, .. } = &budget
            && !deadline_warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "{problem}; each invocation works for at most {} s instead (warned once per process)",
                FALLBACK_BUDGET.as_secs()
            );
        }
        let summary = handler
            .handle_within(&event.payload, budget)
            .await
            .map_err(|e| Diagnostic {
                error_type: "UnrecognisedEvent".into(),
                error_message: e.to_string(),
            })?;
        log_summary(&summary);
        if summary.from_sqs {
            // ReportBatchItemFailures: only the failed messages return to the queue.
            let mut response = SqsBatchResponse::default();
            for id in &summary.failed_messages {
                response.add_failure(id.clone());
            }
            return serde_json::to_value(&response).map_err(|e| Diagnostic {
                error_type: "SummaryNotSerialisable".into(),
                error_message: e.to_string(),
            });
        }
        if summary.has_failures() {
            // An error makes Lambda retry the invocation (async) or the message (SQS); the
            // runtime logs it.
            return Err(Diagnostic {
                error_type: "ObjectsFailed".into(),
                error_message: summary.failure_text(),
            });
        }
        serde_json::to_value(&summary).map_err(|e| Diagnostic {
            error_type: "SummaryNotSerialisable".into(),
            error_message: e.to_string(),
        })
    }))
    .await
}

/// One JSON line per invocation on stdout: the summary's fields at top level so that Logs
/// Insights can query them (`filter objects_failed > 0`), and Embedded Metric Format metrics.
fn log_summary(summary: &crate::summary::Summary) {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    println!(
        "{}",
        summary.emf_line(&function, epoch_ms(std::time::SystemTime::now()))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            parse_args(&args("replay --event e.json")),
            Ok(Command::Replay {
                event: "e.json".into()
            })
        );
        assert_eq!(
            parse_args(&args("replay --event=e.json")),
            Ok(Command::Replay {
                event: "e.json".into()
            })
        );
        assert_eq!(
            parse_args(&args("parse --kind error f.log")),
            Ok(Command::Parse {
                kind: LogKind::Error,
                log_format: None,
                file: Some("f.log".into())
            })
        );
        assert_eq!(
            parse_args(&args("parse --log-format main --kind access")),
            Ok(Command::Parse {
                kind: LogKind::Access,
                log_format: Some("main".into()),
                file: None
            })
        );
        assert_eq!(parse_args(&[]), Ok(Command::Help));
        assert_eq!(
            parse_args(&args(
                "ship --once --interval 5 a/access.log --state-dir=/s error.log"
            )),
            Ok(Command::Ship(ShipArgs {
                once: true,
                interval: Some("5".into()),
                max_segment: None,
                state_dir: Some("/s".into()),
                files: vec!["a/access.log".into(), "error.log".into()],
            }))
        );
        assert_eq!(
            parse_args(&args("ship")),
            Ok(Command::Ship(ShipArgs::default()))
        );
        for bad in [
            "replay",
            "replay --event",
            "parse",
            "parse --kind debug",
            "frobnicate",
            "replay --event a --bogus b",
            "parse --kind access a b",
            "ship --interval",
            "ship --follow x",
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad}");
        }
    }
}
