//! SQS as a [`MessageQueue`]: `SendMessageBatch`, for `backfill --enqueue`.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::ports::{MessageQueue, NotQueued, QueueError, QueueMessage};

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

impl MessageQueue for SqsQueue {
    async fn send_batch(
        &self,
        queue: &str,
        messages: &[QueueMessage],
    ) -> Result<Vec<NotQueued>, QueueError> {
        let entries = messages
            .iter()
            .map(|m| {
                SendMessageBatchRequestEntry::builder()
                    .id(&m.id)
                    .message_body(&m.body)
                    .build()
                    .map_err(|e| QueueError::Other {
                        queue: queue.to_string(),
                        detail: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                let (code, status, detail) = super::error_facts(&e);
                let queue = queue.to_string();
                if NO_QUEUE.contains(&code.as_str()) {
                    QueueError::NoQueue { queue }
                } else if code == "AccessDenied" || status == Some(403) {
                    QueueError::AccessDenied { queue, detail }
                } else {
                    QueueError::Other { queue, detail }
                }
            })?;
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
