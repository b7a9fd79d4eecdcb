//! SQS as a [`MessageQueue`] (`SendMessageBatch`, for `backfill --enqueue`) and a
//! [`QueueReader`] (`ReceiveMessage`, `DeleteMessageBatch`, `ChangeMessageVisibilityBatch`, for
//! `replay --queue`).

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    SendMessageBatchRequestEntry,
};

use ncf_core::ports::{
    MessageQueue, NotDone, NotQueued, QueueError, QueueMessage, QueueReader, ReceivedMessage,
};

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
}

impl SqsQueue {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// SQS's error codes for a queue that is not there.
const NO_QUEUE: [&str; 2] = [
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
];

/// How long one ReceiveMessage waits for a message when none is visible. Long polling (any
/// wait above 0) asks every SQS server, so an empty answer means an empty queue; short polling
/// samples a few and may answer empty while messages wait.
/// <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html>
pub const RECEIVE_WAIT_SECONDS: i32 = 1;

/// The error of one call (`action` is the IAM action it needs).
fn queue_error<E>(
    queue: &str,
    action: &'static str,
    e: &aws_sdk_sqs::error::SdkError<E>,
) -> QueueError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, status, detail) = crate::sdk_error::error_facts(e);
    let queue = queue.to_string();
    if NO_QUEUE.contains(&code.as_str()) {
        QueueError::NoQueue { queue }
    } else if code == "AccessDenied" || status == Some(403) {
        QueueError::AccessDenied {
            queue,
            action,
            detail,
        }
    } else {
        QueueError::Other {
            queue,
            action,
            detail,
        }
    }
}

/// A batch entry the SDK refused to build (a missing required field: a bug of ours).
fn entry_error(queue: &str, action: &'static str, e: impl std::fmt::Display) -> QueueError {
    QueueError::Other {
        queue: queue.to_string(),
        action,
        detail: e.to_string(),
    }
}

/// The entries of a batch answer that failed.
fn not_done(failed: &[aws_sdk_sqs::types::BatchResultErrorEntry]) -> Vec<NotDone> {
    failed
        .iter()
        .map(|f| NotDone {
            id: f.id().to_string(),
            reason: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
        })
        .collect()
}

impl MessageQueue for SqsQueue {
    async fn send_batch(
        &self,
        queue: &str,
        messages: &[QueueMessage],
    ) -> Result<Vec<NotQueued>, QueueError> {
        const ACTION: &str = "sqs:SendMessage";
        let entries = messages
            .iter()
            .map(|m| {
                SendMessageBatchRequestEntry::builder()
                    .id(&m.id)
                    .message_body(&m.body)
                    .build()
                    .map_err(|e| entry_error(queue, ACTION, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| queue_error(queue, ACTION, &e))?;
        Ok(out
            .failed()
            .iter()
            .map(|f| NotQueued {
                id: f.id().to_string(),
                reason: format!("{}: {}", f.code(), f.message().unwrap_or_default()),
                sender_fault: f.sender_fault(),
            })
            .collect())
    }
}

/// Batch entry IDs are the message's position in the batch (SQS wants them unique within it).
fn entry_id(i: usize) -> String {
    i.to_string()
}

/// Maps entry IDs in a batch answer back to message IDs.
fn by_message(messages: &[ReceivedMessage], failed: Vec<NotDone>) -> Vec<NotDone> {
    failed
        .into_iter()
        .map(|f| NotDone {
            id: f
                .id
                .parse::<usize>()
                .ok()
                .and_then(|i| messages.get(i))
                .map_or(f.id, |m| m.id.clone()),
            reason: f.reason,
        })
        .collect()
}

impl QueueReader for SqsQueue {
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        hidden_for: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(i32::try_from(max).unwrap_or(i32::MAX))
            .visibility_timeout(i32::try_from(hidden_for.as_secs()).unwrap_or(i32::MAX))
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .send()
            .await
            .map_err(|e| queue_error(queue, "sqs:ReceiveMessage", &e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| ReceivedMessage {
                id: m.message_id().unwrap_or_default().to_string(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
            })
            .collect())
    }

    async fn delete(
        &self,
        queue: &str,
        messages: &[ReceivedMessage],
    ) -> Result<Vec<NotDone>, QueueError> {
        const ACTION: &str = "sqs:DeleteMessage";
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(entry_id(i))
                    .receipt_handle(&m.receipt_handle)
                    .build()
                    .map_err(|e| entry_error(queue, ACTION, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| queue_error(queue, ACTION, &e))?;
        Ok(by_message(messages, not_done(out.failed())))
    }

    async fn release(
        &self,
        queue: &str,
        messages: &[ReceivedMessage],
    ) -> Result<Vec<NotDone>, QueueError> {
        const ACTION: &str = "sqs:ChangeMessageVisibility";
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(entry_id(i))
                    .receipt_handle(&m.receipt_handle)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| entry_error(queue, ACTION, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| queue_error(queue, ACTION, &e))?;
        Ok(by_message(messages, not_done(out.failed())))
    }
}
