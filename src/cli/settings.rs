//! Which settings a local `backfill` or `replay` writes with: the deployed function's
//! (`--function NAME`, read with GetFunctionConfiguration), or this shell's, said on standard
//! error either way. With `--function`, a setting this shell has and the function has not is
//! refused, each one named: messages of two shapes in one log group are not undone.

use std::process::ExitCode;

use crate::aws::lambda::function_environment;
use crate::config::{Config, FunctionSettings, SettingDiff, function_settings, set_vars};
use crate::wiring::{StartError, configuration};

use super::exit::EXIT_USAGE;

/// A setting refused is bad usage; a secret that cannot be read, a failure.
fn start_error(e: StartError, context: &str) -> (ExitCode, String) {
    let code = match e {
        StartError::Config(_) => ExitCode::from(EXIT_USAGE),
        StartError::Secret(_) => ExitCode::FAILURE,
    };
    (code, format!("{context}{e}"))
}

/// The configuration of a local command from this shell's environment (`parse`), the secret
/// `REDACT_HASH_KEY_SECRET` names read as the function reads it.
pub async fn shell_config() -> Result<Config, (ExitCode, String)> {
    configuration(|k| std::env::var(k).ok(), None)
        .await
        .map_err(|e| start_error(e, ""))
}

/// The configuration for a command that writes into the stack's log groups.
pub async fn forwarder_config(function: Option<&str>) -> Result<Config, (ExitCode, String)> {
    let usage = |e: String| (ExitCode::from(EXIT_USAGE), e);
    let Some(function) = function else {
        let config = shell_config().await?;
        let set = names(&set_vars(|k| std::env::var(k).ok()));
        eprintln!(
            "settings: this shell's environment ({}); pass --function NAME to write with the deployed function's",
            if set.is_empty() {
                "no forwarder variable set: the defaults".to_string()
            } else {
                format!("{set} set, the rest default")
            }
        );
        return Ok(config);
    };
    let sdk = crate::aws::shared_config().await;
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let env = function_environment(&lambda, function)
        .await
        .map_err(|e| (ExitCode::FAILURE, e.to_string()))?;
    let FunctionSettings {
        vars: settings,
        tuned,
    } = function_settings(&env, |k| std::env::var(k).ok())
        .map_err(|d| usage(differ(function, &d)))?;
    let config = configuration(|k| settings.get(k).cloned(), Some(&sdk))
        .await
        .map_err(|e| start_error(e, &format!("function {function:?}'s settings: ")))?;
    let theirs = names(&set_vars(|k| env.get(k).cloned()));
    eprintln!(
        "settings: function {function:?}'s ({}){}",
        if theirs.is_empty() {
            "none set: the defaults".to_string()
        } else {
            format!("{theirs} set, the rest default")
        },
        if tuned.is_empty() {
            String::new()
        } else {
            format!("; this run's own {}", tuned.join(", "))
        }
    );
    Ok(config)
}

/// The refusal: every difference, and what to do.
fn differ(function: &str, diffs: &[SettingDiff]) -> String {
    let list: Vec<String> = diffs.iter().map(ToString::to_string).collect();
    format!(
        "this shell's settings differ from function {function:?}'s: {}; unset them (or set them as the function has them) to write as the function does",
        list.join("; ")
    )
}

/// `NAME=value` items as their names.
fn names(vars: &[String]) -> String {
    vars.iter()
        .map(|v| v.split_once('=').map_or(v.as_str(), |(n, _)| n))
        .collect::<Vec<_>>()
        .join(", ")
}
