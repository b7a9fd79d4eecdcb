//! CloudWatch Logs as a [`LogSink`].
//!
//! PutLogEvents without sequence tokens (ignored since January 2023). A missing group or stream
//! is created on `ResourceNotFoundException` — `ResourceAlreadyExistsException` counts as
//! success, because another invocation may win the race — and the put is sent again. We never
//! call DescribeLogStreams: its quota (25 requests/s per account) cannot serve a hot path.
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, SdkError};
use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamError;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::{info, warn};

#[cfg(test)]
use crate::parse::Message;
use crate::parse::{LogEvent, json};
use crate::ports::{Entity, LogSink, Rejected, SinkError};

/// After creating a group and stream, puts that failed with ResourceNotFound before the create
/// finished only repeat their put for this long instead of creating again.
const RECENTLY_CREATED: Duration = Duration::from_secs(60);

pub struct CloudWatchSink {
    client: Client,
    retention_days: Option<i32>,
    /// Streams this process created, and when: parallel puts to a new stream all get
    /// ResourceNotFound, but only the first creates it. Lives as long as the warm Lambda.
    created: tokio::sync::Mutex<HashMap<(String, String), Instant>>,
}

impl CloudWatchSink {
    pub fn new(client: Client, retention_days: Option<i32>) -> Self {
        Self {
            client,
            retention_days,
            created: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn put_once(
        &self,
        group: &str,
        stream: &str,
        body: &Bytes,
    ) -> Result<Rejected, SdkError<PutLogEventsError>> {
        let (body, len) = (body.clone(), body.len().to_string());
        let out = self
            .client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .customize()
            // Before signing, on every attempt: the body we wrote replaces the SDK's.
            // (`Bytes` clones share the buffer.)
            .mutate_request(move |req| {
                *req.body_mut() = SdkBody::from(body.clone());
                req.headers_mut().insert("content-length", len.clone());
            })
            .send()
            .await?;
        let idx = |v: Option<i32>| v.and_then(|i| usize::try_from(i).ok());
        let mut rejected = out
            .rejected_log_events_info()
            .map_or_else(Rejected::default, |r| Rejected {
                // `*_end_index` is inclusive in the API: events 0..=end were rejected.
                too_old_end: idx(r.too_old_log_event_end_index()).map(|i| i + 1),
                too_new_start: idx(r.too_new_log_event_start_index()),
                expired_end: idx(r.expired_log_event_end_index()).map(|i| i + 1),
                entity_rejected: false,
            });
        if let Some(e) = out.rejected_entity_info() {
            rejected.entity_rejected = true;
            warn!(group, stream, error_type = %e.error_type(),
                  "CloudWatch Logs did not take the entity sent with the events (the events were stored)");
        }
        Ok(rejected)
    }

    /// Creates the group and stream unless this process just did (a parallel put got there
    /// first); `force` creates regardless.
    async fn ensure(&self, group: &str, stream: &str, force: bool) -> Result<(), SinkError> {
        let key = (group.to_string(), stream.to_string());
        // Held across the create calls, so that concurrent puts wait for the one creating.
        let mut created = self.created.lock().await;
        if !force
            && created
                .get(&key)
                .is_some_and(|t| t.elapsed() < RECENTLY_CREATED)
        {
            return Ok(());
        }
        self.create(group, stream).await?;
        created.insert(key, Instant::now());
        Ok(())
    }

    /// Creates the group (with retention) and the stream; "already exists" is success.
    async fn create(&self, group: &str, stream: &str) -> Result<(), SinkError> {
        let fail = |what: &str, detail: String| SinkError::Failed {
            group: group.to_string(),
            stream: stream.to_string(),
            detail: format!("{what}: {detail}"),
        };
        match self
            .client
            .create_log_group()
            .log_group_name(group)
            .send()
            .await
        {
            Ok(_) => {
                info!(group, "created log group");
                if let Some(days) = self.retention_days {
                    self.client
                        .put_retention_policy()
                        .log_group_name(group)
                        .retention_in_days(days)
                        .send()
                        .await
                        .map_err(|e| {
                            fail("PutRetentionPolicy", DisplayErrorContext(&e).to_string())
                        })?;
                }
            }
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateLogGroupError::ResourceAlreadyExistsException(_))
                ) => {}
            Err(e) => return Err(fail("CreateLogGroup", DisplayErrorContext(&e).to_string())),
        }
        match self
            .client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
        {
            Ok(_) => info!(group, stream, "created log stream"),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(CreateLogStreamError::ResourceAlreadyExistsException(_))
                ) => {}
            Err(e) => return Err(fail("CreateLogStream", DisplayErrorContext(&e).to_string())),
        }
        Ok(())
    }
}

impl LogSink for CloudWatchSink {
    async fn put(
        &self,
        group: &str,
        stream: &str,
        entity: Option<&Entity>,
        events: Vec<LogEvent>,
    ) -> Result<Rejected, SinkError> {
        let to_sink_error = |e: SdkError<PutLogEventsError>| {
            let detail = DisplayErrorContext(&e).to_string();
            match e {
                SdkError::ServiceError(_) => SinkError::Rejected {
                    group: group.into(),
                    stream: stream.into(),
                    detail,
                },
                _ => SinkError::Failed {
                    group: group.into(),
                    stream: stream.into(),
                    detail,
                },
            }
        };
        let body = Bytes::from(put_log_events_body(group, stream, entity, &events));
        // The body holds the messages now: no need to keep a second copy during the call.
        drop(events);
        match self.put_once(group, stream, &body).await {
            Ok(r) => Ok(r),
            Err(e) if is_not_found(&e) => {
                self.ensure(group, stream, false).await?;
                match self.put_once(group, stream, &body).await {
                    // Deleted since we created it: create once more, then give up.
                    Err(e) if is_not_found(&e) => {
                        self.ensure(group, stream, true).await?;
                        self.put_once(group, stream, &body)
                            .await
                            .map_err(to_sink_error)
                    }
                    other => other.map_err(to_sink_error),
                }
            }
            Err(e) => Err(to_sink_error(e)),
        }
    }
}

fn is_not_found(e: &SdkError<PutLogEventsError>) -> bool {
    matches!(
        e.as_service_error(),
        Some(PutLogEventsError::ResourceNotFoundException(_))
    )
}

/// The PutLogEvents request body (awsJson1.1), copied together from messages the parser's
/// workers already wrote escaped ([`crate::parse::Message`]): no message is escaped here. The
/// SDK would escape each message byte by byte, about a third of the CPU a forwarded gigabyte
/// cost; so the request is built without events and this body replaces the SDK's just before
/// signing (`mutate_request`, on every attempt). The SDK still resolves the endpoint, signs,
/// retries and parses the answer.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html#API_PutLogEvents_RequestSyntax>
pub fn put_log_events_body(
    group: &str,
    stream: &str,
    entity: Option<&Entity>,
    events: &[LogEvent],
) -> Vec<u8> {
    const EVENT_FRAME: &str = r#"{"timestamp":-9223372036854775808,"message":""},"#;
    let size: usize = events
        .iter()
        .map(|e| e.message.escaped().len() + EVENT_FRAME.len())
        .sum();
    let mut out = String::with_capacity(size + 2 * (group.len() + stream.len()) + 64);
    out.push_str("{\"logGroupName\":");
    json::push_str(&mut out, group);
    out.push_str(",\"logStreamName\":");
    json::push_str(&mut out, stream);
    if let Some(entity) = entity {
        out.push_str(",\"entity\":{\"keyAttributes\":");
        push_map(&mut out, &entity.key_attributes);
        out.push_str(",\"attributes\":");
        push_map(&mut out, &entity.attributes);
        out.push('}');
    }
    out.push_str(",\"logEvents\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"timestamp\":");
        json::push_i64(&mut out, e.timestamp);
        out.push_str(",\"message\":\"");
        out.push_str(e.message.escaped());
        out.push_str("\"}");
    }
    out.push_str("]}");
    out.into_bytes()
}

/// A JSON object of string values.
fn push_map(out: &mut String, map: &[(&str, String)]) {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::push_str(out, k);
        out.push(':');
        json::push_str(out, v);
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_body_is_the_api_request_syntax() {
        let ev = |timestamp, message: &str| LogEvent {
            timestamp,
            message: Message::new(message),
            line: 1,
            offset: 0,
            parse_failed: false,
        };
        let events = [
            ev(
                1_795_514_401_000,
                r#"{"remote_addr":"1.2.3.4","status":200}"#,
            ),
            ev(
                -1,
                "quote \" backslash \\ nl \n tab \t nul \u{0} é ✓ \u{1F600}",
            ),
            ev(0, ""),
        ];
        let body = put_log_events_body("nginx-access", "i-0abc/x \"y\"", None, &events);
        let got: Value = serde_json::from_slice(&body).unwrap();
        let want = json!({
            "logGroupName": "nginx-access",
            "logStreamName": "i-0abc/x \"y\"",
            "logEvents": events.iter().map(|e| json!({"timestamp": e.timestamp, "message": e.message.text()})).collect::<Vec<_>>(),
        });
        assert_eq!(got, want);
        let empty: Value =
            serde_json::from_slice(&put_log_events_body("g", "s", None, &[])).unwrap();
        assert_eq!(empty["logEvents"], json!([]));
        let entity = Entity::ec2_instance("i-0abc");
        let with: Value =
            serde_json::from_slice(&put_log_events_body("g", "s", Some(&entity), &events)).unwrap();
        assert_eq!(
            with["entity"],
            json!({
                "keyAttributes": {"Type": "AWS::Resource", "ResourceType": "AWS::EC2::Instance",
                                  "Identifier": "i-0abc"},
                "attributes": {"PlatformType": "AWS::EC2", "EC2.InstanceId": "i-0abc"},
            })
        );
        assert_eq!(with["logEvents"], want["logEvents"]);
    }
}
