//! `replay`: the handler on what a failure left behind, after the cause is fixed. `--event FILE`
//! takes one payload (any trigger shape, an invocation record from the on-failure destination,
//! `aws sqs receive-message` output); `--queue URL` empties a dead-letter queue: each batch of
//! messages goes through the handler as the SQS event Lambda would build from it, and exactly the
//! messages whose objects were all handled are deleted, the others made visible again.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::aws::sqs::SqsQueue;
use crate::aws::{clients, shared_config};
use crate::backfill::SQS_MAX_BATCH;
use crate::config::Config;
use crate::event::EventError;
use crate::ports::{QueueError, QueueReader, ReceivedMessage};
use crate::summary::Summary;
use crate::wiring::production_handler;

/// How long a message being replayed is hidden from other receivers: as long as one Lambda
/// invocation may run (its largest timeout), so that no message comes back while its objects
/// are forwarded. A replay stopped half-way leaves its messages hidden this long, not lost.
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html>
pub const REPLAY_HIDDEN_FOR: Duration = Duration::from_secs(900);

/// `replay --event FILE`; `function` is `--function`'s.
pub async fn event_file(
    config: Config,
    event_file: &str,
    function: Option<&str>,
) -> Result<ExitCode, String> {
    let text = tokio::fs::read_to_string(event_file)
        .await
        .map_err(|e| format!("cannot read {event_file}: {e}"))?;
    let payload: Value =
        serde_json::from_str(&text).map_err(|e| format!("{event_file} is not JSON: {e}"))?;
    if let Ok(announced) = crate::event::announced_objects(&payload) {
        for note in whose_record(&announced.failed_functions, function) {
            eprintln!("{note}");
        }
    }
    let (s3, logs) = clients().await;
    let handler = production_handler(config, s3, logs);
    let summary = handler
        .handle(&payload)
        .await
        .map_err(|e| format!("{event_file}: {e}"))?;
    print_json(&serde_json::to_value(&summary).map_err(|e| e.to_string())?)?;
    Ok(exit_code(&summary))
}

/// `replay --queue URL`.
pub async fn queue(config: Config, url: &str) -> Result<ExitCode, String> {
    let (s3, logs) = clients().await;
    let handler = production_handler(config, s3, logs);
    let sqs = SqsQueue::new(aws_sdk_sqs::Client::new(&shared_config().await));
    let drained = drain(&sqs, url, |event| {
        let handler = &handler;
        async move { handler.handle(&event).await }
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut out = serde_json::to_value(&drained.summary).map_err(|e| e.to_string())?;
    if let Value::Object(fields) = &mut out {
        fields.insert("queue".into(), drained.report(url));
    }
    print_json(&out)?;
    for problem in &drained.problems {
        eprintln!("warning: {problem}");
    }
    let failed = drained.summary.has_failures() || !drained.problems.is_empty();
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What to say when invocation records name the function that failed: how to write with its
/// settings when `--function` is not given, or that `--function` names another one.
fn whose_record(recorded: &[String], function: Option<&str>) -> Vec<String> {
    let name = |arn: &str| arn.rsplit(':').next().unwrap_or(arn).to_string();
    recorded
        .iter()
        .filter_map(|arn| match function {
            None => Some(format!(
                "note: this is a failed invocation of function {}: `--function {}` writes with its settings",
                name(arn),
                name(arn)
            )),
            Some(f) if f == arn || f == name(arn) => None,
            Some(f) => Some(format!(
                "warning: this is a failed invocation of function {arn}, and --function names {f}: its settings are used"
            )),
        })
        .collect()
}

fn print_json(v: &Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn exit_code(summary: &Summary) -> ExitCode {
    if summary.has_failures() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What emptying a queue did.
#[derive(Debug, Default)]
pub struct Drained {
    /// Every batch's summary as one.
    pub summary: Summary,
    /// Messages received (each counted once, however often it came).
    pub received: usize,
    /// Messages deleted: every object they announce is delivered, already delivered or
    /// skipped, or they announce nothing to forward (a test event, a deletion).
    pub deleted: usize,
    /// IDs of the messages left in the queue (an object failed, or the message is not
    /// understood), visible again for the next attempt.
    pub kept: Vec<String>,
    /// Deletions or releases the queue refused (a deleted message's objects are delivered; one
    /// not deleted is found delivered next time).
    pub problems: Vec<String>,
}

impl Drained {
    /// The `queue` field of the printed summary.
    pub fn report(&self, url: &str) -> Value {
        json!({"url": url, "received": self.received, "deleted": self.deleted, "kept": self.kept})
    }
}

/// The SQS event Lambda's event source mapping builds from received messages, with the fields
/// the handler reads. <https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>
pub fn sqs_event(messages: &[ReceivedMessage]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({"messageId": m.id, "receiptHandle": m.receipt_handle, "body": m.body,
                   "eventSource": "aws:sqs"})
        })
        .collect();
    json!({ "Records": records })
}

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Event(#[from] EventError),
}

/// Receives every visible message of `url` in batches, runs `handle` on each batch as an SQS
/// event, deletes the messages it handled and releases the others once the queue is empty (so
/// that no failed message is taken twice in one run). Ends when a receive finds nothing new.
pub async fn drain<Q, F, Fut>(queue: &Q, url: &str, mut handle: F) -> Result<Drained, DrainError>
where
    Q: QueueReader,
    F: FnMut(Value) -> Fut,
    Fut: Future<Output = Result<Summary, EventError>>,
{
    let mut out = Drained {
        summary: Summary::new(),
        ..Drained::default()
    };
    // Messages to make visible again at the end, by ID, with their latest receipt.
    let mut keep: HashMap<String, ReceivedMessage> = HashMap::new();
    let mut keep_order: Vec<String> = Vec::new();
    loop {
        let batch = queue.receive(url, SQS_MAX_BATCH, REPLAY_HIDDEN_FOR).await?;
        let (again, fresh): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|m| keep.contains_key(&m.id));
        // A kept message seen again (its hidden time ran out during a long run) is not handled
        // twice; only its newest receipt can release it.
        for m in again {
            keep.insert(m.id.clone(), m);
        }
        if fresh.is_empty() {
            break;
        }
        out.received += fresh.len();
        let summary = handle(sqs_event(&fresh)).await?;
        let (failed, handled): (Vec<_>, Vec<_>) = fresh
            .into_iter()
            .partition(|m| summary.failed_messages.contains(&m.id));
        let refused = queue.delete(url, &handled).await?;
        out.deleted += handled.len().saturating_sub(refused.len());
        for r in refused {
            out.problems.push(format!(
                "message {} was handled but not deleted: {}",
                r.id, r.reason
            ));
        }
        for m in failed {
            keep_order.push(m.id.clone());
            keep.insert(m.id.clone(), m);
        }
        out.summary.absorb(summary);
    }
    let kept: Vec<ReceivedMessage> = keep_order.iter().filter_map(|id| keep.remove(id)).collect();
    for chunk in kept.chunks(SQS_MAX_BATCH) {
        for r in queue.release(url, chunk).await? {
            out.problems.push(format!(
                "message {} stays hidden until its time runs out (up to {} s): {}",
                r.id,
                REPLAY_HIDDEN_FOR.as_secs(),
                r.reason
            ));
        }
    }
    out.kept = keep_order;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::event::announced_objects;
    use crate::ports::NotDone;
    use crate::summary::{ObjectReport, Outcome};

    #[test]
    fn a_record_points_at_its_functions_settings() {
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:web-forwarder".to_string();
        let recorded = [arn.clone()];
        assert_eq!(
            whose_record(&recorded, None),
            [
                "note: this is a failed invocation of function web-forwarder: `--function web-forwarder` writes with its settings"
            ]
        );
        assert!(whose_record(&recorded, Some("web-forwarder")).is_empty());
        assert!(whose_record(&recorded, Some(&arn)).is_empty());
        assert_eq!(
            whose_record(&recorded, Some("other")),
            [format!(
                "warning: this is a failed invocation of function {arn}, and --function names other: its settings are used"
            )]
        );
        assert!(whose_record(&[], None).is_empty());
    }

    /// A queue in memory: visible messages, and what was done to each.
    #[derive(Default)]
    struct Fake {
        visible: Mutex<Vec<ReceivedMessage>>,
        deleted: Mutex<Vec<String>>,
        released: Mutex<Vec<String>>,
        receives: Mutex<usize>,
    }

    impl QueueReader for Fake {
        async fn receive(
            &self,
            _queue: &str,
            max: usize,
            hidden_for: Duration,
        ) -> Result<Vec<ReceivedMessage>, QueueError> {
            assert_eq!(hidden_for, REPLAY_HIDDEN_FOR);
            *self.receives.lock().unwrap() += 1;
            let mut v = self.visible.lock().unwrap();
            let n = max.min(v.len());
            Ok(v.drain(..n).collect())
        }
        async fn delete(
            &self,
            _queue: &str,
            messages: &[ReceivedMessage],
        ) -> Result<Vec<NotDone>, QueueError> {
            assert!(messages.len() <= SQS_MAX_BATCH);
            let mut d = self.deleted.lock().unwrap();
            d.extend(messages.iter().map(|m| m.id.clone()));
            Ok(Vec::new())
        }
        async fn release(
            &self,
            _queue: &str,
            messages: &[ReceivedMessage],
        ) -> Result<Vec<NotDone>, QueueError> {
            assert!(messages.len() <= SQS_MAX_BATCH);
            let mut r = self.released.lock().unwrap();
            r.extend(messages.iter().map(|m| m.id.clone()));
            Ok(Vec::new())
        }
    }

    fn message(i: usize, body: &str) -> ReceivedMessage {
        ReceivedMessage {
            id: format!("m-{i}"),
            receipt_handle: format!("r-{i}"),
            body: body.to_string(),
        }
    }

    /// A handler stand-in: an object whose key contains "bad" fails, the rest is delivered;
    /// what is announced is read by the real parser.
    async fn handle(event: Value) -> Result<Summary, EventError> {
        let announced = announced_objects(&event)?;
        let mut s = Summary {
            failed_messages: announced.invalid_messages,
            records_invalid: announced.invalid,
            from_sqs: announced.from_sqs,
            ..Summary::new()
        };
        for o in announced.objects {
            let outcome = if o.key.contains("bad") {
                s.failed_messages.extend(o.message_id.clone());
                Outcome::Failed {
                    error: "refused".into(),
                }
            } else {
                Outcome::Delivered {
                    log_group: "g".into(),
                    log_stream: "s".into(),
                }
            };
            s.push(ObjectReport::new(&o, outcome));
        }
        Ok(s)
    }

    fn s3(key: &str) -> String {
        json!({"Records": [{"s3": {"bucket": {"name": "logs"}, "object": {"key": key}}}]})
            .to_string()
    }

    #[tokio::test]
    async fn handled_messages_are_deleted_and_the_others_released_once() {
        let queue = Fake::default();
        let bodies: Vec<String> = (0..23)
            .map(|i| match i {
                5 | 17 => s3(&format!("nginx/i-1/access/bad-{i}.log")),
                9 => "not json".to_string(),
                _ => s3(&format!("nginx/i-1/access/{i}.log")),
            })
            .collect();
        *queue.visible.lock().unwrap() = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| message(i, b))
            .collect();
        let got = drain(&queue, "q", handle).await.expect("drained");
        assert_eq!((got.received, got.deleted), (23, 20));
        assert_eq!(got.kept, ["m-5", "m-9", "m-17"]);
        assert_eq!(*queue.released.lock().unwrap(), ["m-5", "m-9", "m-17"]);
        let deleted = queue.deleted.lock().unwrap();
        assert_eq!(deleted.len(), 20);
        assert!(!deleted.iter().any(|d| got.kept.contains(d)), "{deleted:?}");
        assert_eq!(
            (got.summary.objects_delivered, got.summary.objects_failed),
            (20, 2)
        );
        assert_eq!(got.summary.records_invalid.len(), 1);
        assert!(got.problems.is_empty(), "{:?}", got.problems);
        // 3 batches of at most 10, then the receive that finds the queue empty.
        assert_eq!(*queue.receives.lock().unwrap(), 4);
    }

    #[tokio::test]
    async fn an_empty_queue_is_one_receive_and_nothing_else() {
        let queue = Fake::default();
        let got = drain(&queue, "q", handle).await.expect("drained");
        assert_eq!((got.received, got.deleted, got.kept.len()), (0, 0, 0));
        assert_eq!(*queue.receives.lock().unwrap(), 1);
        assert!(!got.summary.has_failures());
    }

    #[test]
    fn the_event_is_what_the_handler_reads_as_sqs() {
        let event = sqs_event(&[message(1, &s3("nginx/i-1/access/a.log"))]);
        let got = announced_objects(&event).expect("an SQS event");
        assert!(got.from_sqs);
        assert_eq!(got.objects[0].message_id.as_deref(), Some("m-1"));
    }
}
