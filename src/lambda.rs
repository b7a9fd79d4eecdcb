//! The Lambda runtime loop: configuration and clients once per cold start, then one handler
//! call per event, its summary logged and turned into the invocation's answer ([`response`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use aws_lambda_events::sqs::SqsBatchResponse;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::aws::{clients_with, shared_config};
use crate::forward::epoch_ms;
use crate::handler::{Budget, FALLBACK_BUDGET, budget};
use crate::summary::Summary;
use crate::wiring::{configuration, production_handler};

/// Whether this process was started by Lambda (or an emulator of its runtime API).
pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Serves invocations until the runtime stops the process. The configuration (and the secret
/// it names) is read once, before the first invocation: a function that cannot read it fails
/// at init, and sends nothing.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let sdk = shared_config().await;
    let config = configuration(|k| std::env::var(k).ok(), Some(&sdk)).await?;
    let (s3, logs) = clients_with(&sdk);
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
            epoch_ms(SystemTime::now()),
            Instant::now(),
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
        response(&summary)
    }))
    .await
}

/// What an invocation answers for its summary. From SQS, the failed messages only
/// (ReportBatchItemFailures: they alone return to the queue; the event source mapping must
/// have it turned on, <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>).
/// Otherwise the summary, or an `ObjectsFailed` error when something failed: an error makes
/// Lambda retry an asynchronous invocation, and the runtime logs it.
pub fn response(summary: &Summary) -> Result<Value, Diagnostic> {
    let not_serialisable = |e: serde_json::Error| Diagnostic {
        error_type: "SummaryNotSerialisable".into(),
        error_message: e.to_string(),
    };
    if summary.from_sqs {
        let mut response = SqsBatchResponse::default();
        for id in &summary.failed_messages {
            response.add_failure(id.clone());
        }
        return serde_json::to_value(&response).map_err(not_serialisable);
    }
    if summary.has_failures() {
        return Err(Diagnostic {
            error_type: "ObjectsFailed".into(),
            error_message: summary.failure_text(),
        });
    }
    serde_json::to_value(summary).map_err(not_serialisable)
}

/// One JSON line per invocation on stdout: the summary's fields at top level so that Logs
/// Insights can query them (`filter objects_failed > 0`), and Embedded Metric Format metrics.
fn log_summary(summary: &Summary) {
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    println!(
        "{}",
        summary.emf_line(&function, epoch_ms(SystemTime::now()))
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::ObjectRef;
    use crate::summary::{ObjectReport, Outcome};
    use serde_json::json;

    fn failed(key: &str, message_id: Option<&str>) -> ObjectReport {
        let mut report = ObjectReport::new(
            &ObjectRef::new("logs", key),
            Outcome::Failed {
                error: "CloudWatch Logs call failed".into(),
            },
        );
        report.message_id = message_id.map(String::from);
        report
    }

    /// From SQS one good message and one bad one: only the bad one goes back to the queue,
    /// and the invocation itself succeeds.
    #[test]
    fn from_sqs_only_the_failed_messages_are_returned() {
        let mut summary = Summary::new();
        summary.from_sqs = true;
        summary.push(failed("a.log", Some("m-2")));
        summary.failed_messages = vec!["m-2".into()];
        let answer = response(&summary).expect("an answer, not an error");
        assert_eq!(
            answer,
            json!({"batchItemFailures": [{"itemIdentifier": "m-2"}]})
        );
        summary.failed_messages.clear();
        assert_eq!(
            response(&summary).expect("an answer"),
            json!({"batchItemFailures": []})
        );
    }

    /// Not from SQS: a failure is an error Lambda retries; success answers the summary.
    #[test]
    fn otherwise_a_failure_is_an_error_and_success_the_summary() {
        let mut summary = Summary::new();
        summary.push(failed("a.log", None));
        let e = response(&summary).expect_err("an error");
        assert_eq!(e.error_type, "ObjectsFailed");
        assert_eq!(e.error_message, summary.failure_text());
        let ok = Summary::new();
        assert_eq!(
            response(&ok).expect("the summary"),
            serde_json::to_value(&ok).expect("serialisable")
        );
    }
}
