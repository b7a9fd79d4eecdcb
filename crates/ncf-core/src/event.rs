//! Trigger payload → the S3 objects it announces.
//!
//! Pure: takes the JSON the Lambda runtime hands us and recognises it by shape: an S3 event
//! notification, an SQS message whose body is one (or an SNS envelope, or an EventBridge event),
//! an SNS notification, or an EventBridge `Object Created` event. What a failure leaves behind
//! is recognised too, so that `replay` takes it as it is: Lambda's invocation record (the
//! on-failure destination of an asynchronous invocation, wrapping the event that failed, also
//! as the `detail` of an EventBridge event), and `aws sqs receive-message` output (messages
//! from a dead-letter queue). Every record counts, not just the first. S3 notifications URL-encode keys (`+` is a space, `%XX` a byte):
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>;
//! how EventBridge encodes `detail.object.key` is not documented, so every key is decoded and
//! the key exactly as given is kept to try when the decoded one does not exist.
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};

use crate::object::ListedObject;
pub use crate::object::{ObjectRef, Provenance};

/// Envelopes inside envelopes are followed this deep at most: the deepest we know is a
/// dead-letter queue's message (SQS) holding an invocation record, its event an SNS
/// notification, its message the S3 event.
const MAX_NESTING: usize = 4;

/// What one trigger payload asks of us.
#[derive(Debug, Default, PartialEq)]
pub struct Announced {
    /// Objects to forward, in the order the payload lists them.
    pub objects: Vec<ObjectRef>,
    /// Records acknowledged and ignored (test events, deletions …), each with a reason.
    pub ignored: Vec<String>,
    /// Records that cannot be understood; each fails on its own.
    pub invalid: Vec<String>,
    /// SQS messages among `invalid` (they are reported as batch item failures).
    pub invalid_messages: Vec<String>,
    /// True when the payload is an SQS batch (the answer is `batchItemFailures`).
    pub from_sqs: bool,
    /// The functions whose failed invocations the payload's invocation records are
    /// (`requestContext.functionArn`, without the version), each once.
    pub failed_functions: Vec<String>,
    /// `s3:TestEvent` messages, which S3 sends once when a notification is configured: whether
    /// one is genuine (names the stack's bucket) is for [`crate::trust`] to say.
    pub test_events: Vec<TestEvent>,
}

/// One `s3:TestEvent` message.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEvent {
    /// Where the payload carried it (`record 1 of 2: SQS message …: `).
    pub at: String,
    /// Its `Bucket`.
    pub bucket: Option<String>,
    /// The SQS message that carried it.
    pub message_id: Option<String>,
    /// It carries `Records` too, which S3's never does.
    pub with_records: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error(
        "unrecognised trigger payload: expected an S3 event notification, an SQS or SNS event, an EventBridge S3 event, a Lambda invocation record (on-failure destination) or `aws sqs receive-message` output ({0})"
    )]
    UnknownShape(String),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeyError {
    #[error("key {0:?} is not valid URL encoding of UTF-8")]
    NotUtf8(String),
}

/// Decodes an S3 notification key: `+` is a space, `%XX` a byte, the bytes UTF-8.
pub fn decode_key(raw: &str) -> Result<String, KeyError> {
    let plus_as_space = raw.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| KeyError::NotUtf8(raw.to_string()))
}

/// What S3 leaves as it is in a notification's key: letters, digits, `-_.~` and `/`.
const KEY_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Encodes a key the way S3 notifications carry it (the inverse of [`decode_key`]): a space is
/// `+`, other bytes outside `KEY_KEEP` are `%XX`.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_KEEP)
        .to_string()
        .replace("%20", "+")
}

/// The S3 event notification S3 would have sent for a listed object, as a message body
/// (`backfill --enqueue`): one record, the key encoded as S3 encodes it, `configurationId`
/// naming the backfill. Only what [`announced_objects`] reads, plus the fields every S3
/// record has.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>
pub fn notification(bucket: &str, obj: &ListedObject) -> Value {
    let event_time = obj
        .last_modified_ms
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    let mut object = json!({"key": encode_key(&obj.key), "size": obj.size});
    if let Some(etag) = &obj.etag {
        object["eTag"] = json!(etag);
    }
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": event_time,
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": BACKFILL_CONFIGURATION_ID,
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": object,
        }
    }]})
}

/// `configurationId` of the notifications `backfill --enqueue` writes.
pub const BACKFILL_CONFIGURATION_ID: &str = "nginx-cloudwatch-forwarder-backfill";

/// Reads every record of a trigger payload.
pub fn announced_objects(payload: &Value) -> Result<Announced, EventError> {
    let mut out = Announced::default();
    if !collect(payload, None, "", 0, &mut out) {
        return Err(EventError::UnknownShape(shape_hint(payload)));
    }
    Ok(out)
}

/// Adds what `v` announces; false when `v` has no shape we know.
///
/// Only the fields the forwarder uses are read, each where the envelope puts it; everything else
/// may be absent. Emulators and S3-compatible stores (moto, LocalStack, MinIO, Ceph) leave out
/// fields AWS sends (`userIdentity`, `requestParameters`, a time zone on `eventTime` …), and a
/// typed record that demands them would refuse valid work.
fn collect(
    v: &Value,
    message_id: Option<&str>,
    at: &str,
    depth: usize,
    out: &mut Announced,
) -> bool {
    if depth > MAX_NESTING {
        return false;
    }
    // S3 sends `s3:TestEvent` once when a notification is configured; it has no Records.
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        out.test_events.push(TestEvent {
            at: at.to_string(),
            bucket: text(v, "/Bucket").map(str::to_string),
            message_id: message_id.map(str::to_string),
            with_records: v.get("Records").is_some(),
        });
        return true;
    }
    // An SNS envelope delivered to SQS without raw message delivery.
    if v.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(msg) = v.get("Message").and_then(Value::as_str)
    {
        nested(msg, message_id, &format!("{at}SNS message: "), depth, out);
        return true;
    }
    if v.get("requestPayload").is_some() && v.get("requestContext").is_some_and(Value::is_object) {
        invocation_record(v, message_id, at, depth, out);
        return true;
    }
    if v.get("detail-type").is_some() && v.get("source").is_some() {
        event_bus(v, message_id, at, depth, out);
        return true;
    }
    // `aws sqs receive-message` output: a dead-letter queue's messages saved to a file.
    // <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html#API_ReceiveMessage_ResponseElements>
    if let Some(messages) = v.get("Messages").and_then(Value::as_array) {
        for m in messages {
            let id = text(m, "/MessageId").unwrap_or_default();
            let here = format!("{at}SQS message {id}: ");
            match text(m, "/Body") {
                Some(body) => nested(body, Some(id), &here, depth, out),
                None => invalid(out, Some(id), format!("{here}missing Body")),
            }
        }
        return true;
    }
    let Some(records) = v.get("Records").and_then(Value::as_array) else {
        return false;
    };
    if depth == 0 {
        out.from_sqs = records
            .first()
            .and_then(|r| r.get("eventSource"))
            .and_then(Value::as_str)
            == Some("aws:sqs");
    }
    self::records(records, message_id, at, depth, out);
    true
}

/// The `Records` of a Lambda event: SQS messages, SNS notifications, or an S3 event
/// notification's records.
fn records(
    records: &[Value],
    message_id: Option<&str>,
    at: &str,
    depth: usize,
    out: &mut Announced,
) {
    let n = records.len();
    for (i, record) in records.iter().enumerate() {
        let here = format!("{at}record {} of {n}: ", i + 1);
        let source = text(record, "/eventSource")
            .or_else(|| text(record, "/EventSource"))
            .unwrap_or_default();
        match source {
            // https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#example-standard-queue-message-event
            "aws:sqs" => {
                let id = text(record, "/messageId").unwrap_or_default();
                let here = format!("{at}SQS message {id}: ");
                match text(record, "/body") {
                    Some(body) => nested(body, Some(id), &here, depth, out),
                    None => invalid(out, Some(id), format!("{here}missing body")),
                }
            }
            // https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html
            "aws:sns" => match text(record, "/Sns/Message") {
                Some(msg) => nested(msg, message_id, &format!("{here}SNS message: "), depth, out),
                None => invalid(out, message_id, format!("{here}missing Sns.Message")),
            },
            _ => s3_record(&here, message_id, record, out),
        }
    }
}

/// An EventBridge event: Lambda's invocation record when the on-failure destination is an
/// event bus (the record is the `detail`), or what S3 sends ([`eventbridge`]).
/// <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>
fn event_bus(v: &Value, message_id: Option<&str>, at: &str, depth: usize, out: &mut Announced) {
    if text(v, "/source") == Some("aws.lambda")
        && let Some(record) = v
            .get("detail")
            .filter(|d| d.get("requestPayload").is_some())
    {
        let here = format!(
            "{at}EventBridge {:?}: ",
            text(v, "/detail-type").unwrap_or_default()
        );
        if !collect(record, message_id, &here, depth + 1, out) {
            invalid(
                out,
                message_id,
                format!("{here}not a Lambda invocation record"),
            );
        }
        return;
    }
    eventbridge(v, message_id, at, out);
}

/// The string at a JSON pointer, if it is one.
fn text<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// A size as S3 writes it (a number); a numeric string is taken too, anything else is unknown.
fn size(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A JSON document carried as a string (SQS body, SNS message).
fn nested(text: &str, message_id: Option<&str>, at: &str, depth: usize, out: &mut Announced) {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            if !collect(&v, message_id, at, depth + 1, out) {
                invalid(
                    out,
                    message_id,
                    format!(
                        "{at}not an S3, SNS or EventBridge notification ({})",
                        shape_hint(&v)
                    ),
                );
            }
        }
        Err(e) => invalid(out, message_id, format!("{at}not JSON: {e}")),
    }
}

fn invalid(out: &mut Announced, message_id: Option<&str>, reason: String) {
    out.invalid.push(reason);
    if let Some(id) = message_id
        && !out.invalid_messages.iter().any(|m| m == id)
    {
        out.invalid_messages.push(id.to_string());
    }
}

/// A Lambda invocation record, what the on-failure destination of an asynchronous invocation
/// receives after the retries (`condition` `RetriesExhausted`) or when the event waited too long
/// (`EventAgeExceeded`): the event that failed is `requestPayload`, as the function got it.
/// <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html#invocation-async-destinations>
fn invocation_record(
    v: &Value,
    message_id: Option<&str>,
    at: &str,
    depth: usize,
    out: &mut Announced,
) {
    let payload = &v["requestPayload"];
    let here = format!(
        "{at}invocation {} ({}): ",
        text(v, "/requestContext/requestId").unwrap_or("?"),
        text(v, "/requestContext/condition").unwrap_or("?")
    );
    if let Some(arn) = text(v, "/requestContext/functionArn") {
        // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:VERSION]
        let arn = arn.splitn(8, ':').take(7).collect::<Vec<_>>().join(":");
        if !out.failed_functions.contains(&arn) {
            out.failed_functions.push(arn);
        }
    }
    let understood = match payload {
        // Lambda passes the event as JSON; a payload that was a JSON string stays one.
        Value::String(s) => {
            nested(s, message_id, &here, depth, out);
            true
        }
        other => collect(other, message_id, &here, depth + 1, out),
    };
    if !understood {
        invalid(
            out,
            message_id,
            format!(
                "{here}requestPayload is not an S3, SQS, SNS or EventBridge event ({})",
                shape_hint(payload)
            ),
        );
    }
}

/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html>
fn eventbridge(v: &Value, message_id: Option<&str>, at: &str, out: &mut Announced) {
    let (source, detail_type) = (text(v, "/source"), text(v, "/detail-type"));
    if source != Some("aws.s3") || detail_type != Some("Object Created") {
        out.ignored.push(format!(
            "{at}EventBridge {:?} from {:?} is not an object creation",
            detail_type.unwrap_or_default(),
            source.unwrap_or_default()
        ));
        return;
    }
    let found = Found {
        bucket: text(v, "/detail/bucket/name"),
        key: text(v, "/detail/object/key"),
        size: size(v.pointer("/detail/object/size")),
        etag: text(v, "/detail/object/etag"),
        version_id: text(v, "/detail/object/version-id"),
        sequencer: text(v, "/detail/object/sequencer"),
        provenance: Provenance {
            principal: None,
            account: owned(v, "/account"),
            requester: owned(v, "/detail/requester"),
        },
    };
    found.push(at, "detail.", message_id, out);
}

/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>
fn s3_record(at: &str, message_id: Option<&str>, rec: &Value, out: &mut Announced) {
    // A record that names its event must name a creation; one that names none is taken for one
    // (the bucket and the key are what matter).
    if let Some(name) = rec.get("eventName") {
        let name = name.as_str().unwrap_or_default();
        if !name.starts_with("ObjectCreated:") {
            out.ignored
                .push(format!("{at}event {name:?} is not an object creation"));
            return;
        }
    }
    let found = Found {
        bucket: text(rec, "/s3/bucket/name"),
        key: text(rec, "/s3/object/key"),
        size: size(rec.pointer("/s3/object/size")),
        etag: text(rec, "/s3/object/eTag"),
        version_id: text(rec, "/s3/object/versionId"),
        sequencer: text(rec, "/s3/object/sequencer"),
        provenance: Provenance {
            principal: owned(rec, "/userIdentity/principalId"),
            ..Provenance::default()
        },
    };
    found.push(at, "s3.", message_id, out);
}

/// The fields of one object announcement, wherever the envelope keeps them.
struct Found<'v> {
    bucket: Option<&'v str>,
    key: Option<&'v str>,
    size: Option<u64>,
    etag: Option<&'v str>,
    version_id: Option<&'v str>,
    sequencer: Option<&'v str>,
    provenance: Provenance,
}

/// The non-empty string at a JSON pointer, owned.
fn owned(v: &Value, pointer: &str) -> Option<String> {
    text(v, pointer)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Found<'_> {
    /// Adds the object, or an invalid record naming what is missing (`prefix` is where the
    /// envelope keeps the fields: `s3.` or `detail.`).
    fn push(self, at: &str, prefix: &str, message_id: Option<&str>, out: &mut Announced) {
        let (bucket, raw_key) = match (self.bucket, self.key) {
            (Some(b), Some(k)) if !b.is_empty() && !k.is_empty() => (b, k),
            (b, _) => {
                let missing = if b.is_none_or(str::is_empty) {
                    "bucket.name"
                } else {
                    "object.key"
                };
                return invalid(
                    out,
                    message_id,
                    format!("{at}missing {prefix}{missing}: cannot tell which object"),
                );
            }
        };
        let present = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
        // A key that is not valid URL encoding can only be meant as it is.
        let key = decode_key(raw_key).unwrap_or_else(|_| raw_key.to_string());
        out.objects.push(ObjectRef {
            bucket: bucket.to_string(),
            key,
            raw_key: raw_key.to_string(),
            size: self.size,
            etag: present(self.etag.map(|e| e.trim_matches('"'))),
            version_id: present(self.version_id),
            sequencer: present(self.sequencer),
            message_id: message_id.map(str::to_string),
            provenance: self.provenance,
        });
    }
}

fn shape_hint(payload: &Value) -> String {
    match payload {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
            format!("top-level keys: {}", keys.join(", "))
        }
        other => format!("got a JSON {}", json_type(other)),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(event_name: &str, bucket: &str, key: &str) -> Value {
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-24T10:00:05.123Z", "eventName": event_name,
            "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
            "requestParameters": {"sourceIPAddress": "10.0.0.12"},
            "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810"},
            "s3": {
                "s3SchemaVersion": "1.0", "configurationId": "nginx-logs",
                "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {"key": key, "size": 1234, "eTag": "0123456789abcdef0123456789abcdef",
                           "sequencer": "0055AED6DCD90281E5"}
            }
        })
    }

    #[test]
    fn encoded_keys_decode_to_themselves() {
        let cases = [
            ("nginx/i-0abc/access/a.log", "nginx/i-0abc/access/a.log"),
            ("dir with spaces/a.log", "dir+with+spaces/a.log"),
            ("a+b/c%d", "a%2Bb/c%25d"),
            ("café/✓.log", "caf%C3%A9/%E2%9C%93.log"),
            ("x=1&y/~a_b-c.gz", "x%3D1%26y/~a_b-c.gz"),
        ];
        for (key, want) in cases {
            assert_eq!(encode_key(key), want, "{key}");
            assert_eq!(decode_key(want).as_deref(), Ok(key), "{key}");
        }
    }

    #[test]
    fn a_backfill_notification_announces_the_listed_object() {
        let obj = ListedObject {
            key: "nginx/i-0123456789abcdef0/access/2026/11/24/a b+c.log.gz".into(),
            size: 1234,
            last_modified_ms: Some(1_795_564_800_123),
            etag: Some("0123456789abcdef0123456789abcdef".into()),
        };
        let msg = notification("logs", &obj);
        assert_eq!(msg["Records"][0]["eventTime"], "2026-11-25T00:00:00.123Z");
        // As an SQS message body, the way the stack's queue hands it to the function.
        let sqs = json!({"Records": [{"messageId": "m1", "eventSource": "aws:sqs", "body": msg.to_string()}]});
        let got = announced_objects(&sqs).expect("an SQS event");
        assert_eq!(got.objects.len(), 1, "{got:?}");
        let o = &got.objects[0];
        assert_eq!(
            (o.bucket.as_str(), o.key.as_str()),
            ("logs", obj.key.as_str())
        );
        assert_eq!(
            (o.size, o.etag.as_deref()),
            (Some(1234), obj.etag.as_deref())
        );
        assert_eq!(o.message_id.as_deref(), Some("m1"));
    }

    #[test]
    fn decodes_keys() {
        let cases = [
            ("nginx/i-0abc/access/a.log", "nginx/i-0abc/access/a.log"),
            ("dir+with+spaces/a.log", "dir with spaces/a.log"),
            ("a%2Bb/c%25d", "a+b/c%d"),
            ("caf%C3%A9/%E2%9C%93.log", "café/✓.log"),
            ("%20lead", " lead"),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_key(raw).as_deref(), Ok(want), "{raw}");
        }
        assert_eq!(
            decode_key("bad%FF"),
            Err(KeyError::NotUtf8("bad%FF".into()))
        );
    }

    #[test]
    fn reads_every_record_and_classifies() {
        let payload = json!({"Records": [
            record("ObjectCreated:Put", "logs", "nginx/i-0123456789abcdef0/access/a+b.log"),
            record("ObjectRemoved:Delete", "logs", "nginx/x"),
            record("ObjectCreated:CompleteMultipartUpload", "logs", "nginx/i-0123456789abcdef1/error/e.log.gz"),
            {"eventName": "ObjectCreated:Put"},
            record("ObjectCreated:Put", "logs", "literal%FF"),
        ]});
        let got = announced_objects(&payload).unwrap();
        let keys: Vec<&str> = got.objects.iter().map(|o| o.key.as_str()).collect();
        // A key that is not valid URL encoding is taken as it is.
        assert_eq!(
            keys,
            [
                "nginx/i-0123456789abcdef0/access/a b.log",
                "nginx/i-0123456789abcdef1/error/e.log.gz",
                "literal%FF"
            ]
        );
        assert_eq!(
            got.objects[0].raw_key,
            "nginx/i-0123456789abcdef0/access/a+b.log"
        );
        assert_eq!(got.objects[0].size, Some(1234));
        assert_eq!(
            got.objects[0].etag.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(got.ignored.len(), 1);
        assert_eq!(got.invalid.len(), 1, "{:?}", got.invalid);
        assert!(
            got.invalid[0].starts_with("record 4 of 5: "),
            "{:?}",
            got.invalid
        );
        assert!(!got.from_sqs);
    }

    fn sqs(id: &str, body: &str) -> Value {
        json!({"messageId": id, "receiptHandle": "AQEB…", "body": body, "attributes": {"ApproximateReceiveCount": "1"},
               "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
               "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:nginx-logs", "awsRegion": "us-east-1"})
    }

    fn sns(message: &str) -> Value {
        json!({"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:1",
               "Sns": {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                       "Subject": "Amazon S3 Notification", "Message": message, "Timestamp": "2026-11-24T10:00:12.345Z",
                       "SignatureVersion": "1", "Signature": "s", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://y",
                       "MessageAttributes": {}}})
    }

    fn eventbridge(detail_type: &str, key: &str) -> Value {
        json!({"version": "0", "id": "c9888434-815d-c6f4-9fc2-4dd7bdeccaaf", "detail-type": detail_type, "source": "aws.s3",
               "account": "123456789012", "time": "2026-11-24T10:00:12Z", "region": "us-east-1",
               "resources": ["arn:aws:s3:::logs"],
               "detail": {"version": "0", "bucket": {"name": "logs"},
                          "object": {"key": key, "size": 99, "etag": "4af981f98d22a0b9979da24b259e5e42-12",
                                     "version-id": "uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G", "sequencer": "0064D3901D00059242"},
                          "request-id": "R", "requester": "123456789012", "reason": "PutObject"}})
    }

    #[test]
    fn every_envelope_announces_the_same_object() {
        let s3 = json!({"Records": [record("ObjectCreated:Put", "logs", "nginx/i-0123456789abcdef0/access/a+b%2B.log")]});
        let sns_envelope = json!({"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": s3.to_string()});
        let shapes = [
            ("s3", s3.clone(), None),
            (
                "sqs",
                json!({"Records": [sqs("m-1", &s3.to_string())]}),
                Some("m-1"),
            ),
            ("sns", json!({"Records": [sns(&s3.to_string())]}), None),
            (
                "sns→sqs",
                json!({"Records": [sqs("m-2", &sns_envelope.to_string())]}),
                Some("m-2"),
            ),
            (
                "eventbridge",
                eventbridge(
                    "Object Created",
                    "nginx/i-0123456789abcdef0/access/a b+.log",
                ),
                None,
            ),
            (
                "eventbridge→sqs",
                json!({"Records": [sqs("m-3", &eventbridge("Object Created", "nginx/i-0123456789abcdef0/access/a b+.log").to_string())]}),
                Some("m-3"),
            ),
        ];
        for (name, payload, message_id) in shapes {
            let got = announced_objects(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.objects.len(), 1, "{name}: {got:?}");
            let o = &got.objects[0];
            assert_eq!(
                (o.bucket.as_str(), o.message_id.as_deref()),
                ("logs", message_id),
                "{name}"
            );
            assert_eq!(got.from_sqs, message_id.is_some(), "{name}");
            if name.starts_with("eventbridge") {
                // Decoded first; the key as given is kept to try if the decoded one is missing.
                assert_eq!(
                    (o.key.as_str(), o.raw_key.as_str()),
                    (
                        "nginx/i-0123456789abcdef0/access/a b .log",
                        "nginx/i-0123456789abcdef0/access/a b+.log"
                    )
                );
                assert_eq!(
                    o.version_id.as_deref(),
                    Some("uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G")
                );
            } else {
                assert_eq!(o.key, "nginx/i-0123456789abcdef0/access/a b+.log", "{name}");
            }
        }
    }

    /// Lambda's record of an asynchronous invocation that failed, as the on-failure destination
    /// gets it (the documented example, with our function's error).
    /// <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>
    fn on_failure(payload: Value) -> Value {
        json!({"version": "1.0", "timestamp": "2026-11-24T10:07:31.082Z",
               "requestContext": {"requestId": "e4b46cbf-b738-4a3b-8880-a18cdf61200e",
                                  "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:nginx-logs-forwarder:$LATEST",
                                  "condition": "RetriesExhausted", "approximateInvokeCount": 3},
               "requestPayload": payload,
               "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
               "responsePayload": {"errorType": "ObjectsFailed", "errorMessage": "1 of 1 objects failed"}})
    }

    /// `aws sqs receive-message` output for one message.
    fn received(id: &str, body: &str) -> Value {
        json!({"Messages": [{"MessageId": id, "ReceiptHandle": "AQEB…", "MD5OfBody": "x", "Body": body}]})
    }

    #[test]
    fn what_a_failure_leaves_behind_announces_the_object() {
        let key = "nginx/i-0123456789abcdef0/access/a b.log";
        let s3 = json!({"Records": [record("ObjectCreated:Put", "logs", "nginx/i-0123456789abcdef0/access/a+b.log")]});
        let eb = eventbridge("Object Created", key);
        let sns_event = json!({"Records": [sns(&s3.to_string())]});
        let shapes = [
            (
                "on-failure record of an S3 event",
                on_failure(s3.clone()),
                None,
                false,
            ),
            (
                "on-failure record of an EventBridge event",
                on_failure(eb.clone()),
                None,
                false,
            ),
            (
                "on-failure record of an SNS event",
                on_failure(sns_event.clone()),
                None,
                false,
            ),
            (
                "on-failure record, payload as a string",
                on_failure(json!(s3.to_string())),
                None,
                false,
            ),
            (
                "on-failure record in the dead-letter queue, as an SQS event",
                json!({"Records": [sqs("d-1", &on_failure(s3.clone()).to_string())]}),
                Some("d-1"),
                true,
            ),
            (
                "on-failure record of an SNS event in the dead-letter queue",
                json!({"Records": [sqs("d-2", &on_failure(sns_event).to_string())]}),
                Some("d-2"),
                true,
            ),
            (
                "receive-message output of the dead-letter queue",
                received("d-3", &on_failure(s3.clone()).to_string()),
                Some("d-3"),
                false,
            ),
            (
                "receive-message output of the notification dead-letter queue",
                received("d-4", &s3.to_string()),
                Some("d-4"),
                false,
            ),
            (
                "receive-message output, an EventBridge event",
                received("d-5", &eb.to_string()),
                Some("d-5"),
                false,
            ),
            (
                "on-failure destination that is an event bus",
                json!({"version": "0", "id": "x", "detail-type": "Lambda Function Invocation Result - Failure",
                       "source": "aws.lambda", "account": "123456789012", "time": "2026-11-24T10:07:31Z",
                       "region": "us-east-1", "resources": [], "detail": on_failure(s3.clone())}),
                None,
                false,
            ),
        ];
        for (name, payload, message_id, from_sqs) in shapes {
            let got = announced_objects(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(got.invalid.is_empty(), "{name}: {:?}", got.invalid);
            assert_eq!(got.objects.len(), 1, "{name}: {got:?}");
            let o = &got.objects[0];
            assert_eq!(
                (o.bucket.as_str(), o.key.as_str(), o.message_id.as_deref()),
                ("logs", key, message_id),
                "{name}"
            );
            assert_eq!(got.from_sqs, from_sqs, "{name}");
            // The record names its function (for `replay` to point at its settings).
            let function = "arn:aws:lambda:us-east-1:123456789012:function:nginx-logs-forwarder";
            let recorded = payload.to_string().contains("functionArn");
            assert_eq!(
                got.failed_functions,
                if recorded { vec![function] } else { vec![] },
                "{name}"
            );
        }
    }

    #[test]
    fn a_failure_record_of_something_else_names_it() {
        // The documented example's payload is not ours: it fails on its own, naming what it has.
        let other = on_failure(json!({"ORDER_IDS": ["9e07af03"]}));
        let got = announced_objects(&other).unwrap();
        assert_eq!(
            got.invalid,
            [
                "invocation e4b46cbf-b738-4a3b-8880-a18cdf61200e (RetriesExhausted): requestPayload is not an S3, SQS, SNS or EventBridge event (top-level keys: ORDER_IDS)"
            ]
        );
        let got = announced_objects(&received("d-1", &other.to_string())).unwrap();
        assert_eq!(got.invalid_messages, ["d-1"]);
        assert!(
            got.invalid[0].starts_with("SQS message d-1: invocation "),
            "{:?}",
            got.invalid
        );
        let got = announced_objects(&json!({"Messages": [{"MessageId": "d-2"}]})).unwrap();
        assert_eq!(got.invalid, ["SQS message d-2: missing Body"]);
    }

    #[test]
    fn sqs_batch_with_bad_and_test_messages() {
        let s3 = json!({"Records": [record("ObjectCreated:Put", "logs", "nginx/i-0123456789abcdef0/access/a.log")]});
        let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "logs"});
        let payload = json!({"Records": [
            sqs("ok", &s3.to_string()),
            sqs("not-json", "hello"),
            sqs("test", &test_event.to_string()),
            sqs("other", "{\"foo\": 1}"),
            sqs("deleted", &eventbridge("Object Deleted", "k").to_string()),
        ]});
        let got = announced_objects(&payload).unwrap();
        assert!(got.from_sqs);
        assert_eq!(got.objects.len(), 1);
        assert_eq!(got.invalid_messages, ["not-json", "other"]);
        assert_eq!(got.ignored.len(), 1, "{:?}", got.ignored);
        assert_eq!(got.test_events.len(), 1, "{:?}", got.test_events);
        assert!(
            got.invalid.iter().all(|r| r.starts_with("SQS message ")),
            "{:?}",
            got.invalid
        );
    }

    /// What moto 5.2 writes to SQS for an upload (no `userIdentity`, `requestParameters` or
    /// `responseElements`, and `eventTime` without a time zone).
    fn moto_record(key: &str) -> Value {
        json!({"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
               "eventTime": "2026-11-30T03:30:00.000", "eventName": "ObjectCreated:Put",
               "s3": {"s3SchemaVersion": "1.0", "configurationId": "nginx-logs",
                      "bucket": {"name": "logs", "arn": "arn:aws:s3:::logs"},
                      "object": {"key": key, "size": 240, "eTag": "\"9b2cf535f27731c974343645a3985328\"",
                                 "versionId": null, "sequencer": "0055AED6DCD90281E5"}}})
    }

    #[test]
    fn records_need_only_bucket_and_key() {
        let key = "nginx/i-0123456789abcdef0/access/a.log";
        let mut minimal_sns = sns(&json!({"Records": [moto_record(key)]}).to_string());
        // An SNS record with only what we read.
        minimal_sns["Sns"] = json!({"Message": minimal_sns["Sns"]["Message"].clone()});
        let minimal_sqs = json!({"eventSource": "aws:sqs", "messageId": "m-9",
                                 "body": json!({"Records": [moto_record(key)]}).to_string()});
        let cases: [(&str, Value, Option<u64>); 6] = [
            (
                "moto's own record",
                json!({"Records": [moto_record(key)]}),
                Some(240),
            ),
            (
                "bare s3 block",
                json!({"Records": [{"s3": {"bucket": {"name": "logs"}, "object": {"key": key}}}]}),
                None,
            ),
            (
                "size as a string",
                json!({"Records": [{"eventName": "ObjectCreated:Post",
                "s3": {"bucket": {"name": "logs"}, "object": {"key": key, "size": "17"}}}]}),
                Some(17),
            ),
            (
                "minimal SNS record",
                json!({"Records": [minimal_sns]}),
                Some(240),
            ),
            (
                "minimal SQS message",
                json!({"Records": [minimal_sqs]}),
                Some(240),
            ),
            (
                "minimal EventBridge event",
                json!({"detail-type": "Object Created", "source": "aws.s3",
                "detail": {"bucket": {"name": "logs"}, "object": {"key": key}}}),
                None,
            ),
        ];
        for (name, payload, want_size) in cases {
            let got = announced_objects(&payload).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(got.invalid.is_empty(), "{name}: {:?}", got.invalid);
            assert_eq!(got.objects.len(), 1, "{name}: {got:?}");
            let o = &got.objects[0];
            assert_eq!(
                (o.bucket.as_str(), o.key.as_str(), o.size),
                ("logs", key, want_size),
                "{name}"
            );
        }
        let got = announced_objects(&json!({"Records": [moto_record(key)]})).unwrap();
        let o = &got.objects[0];
        assert_eq!(o.etag.as_deref(), Some("9b2cf535f27731c974343645a3985328"));
        assert_eq!(o.version_id, None, "null is no version");
        assert_eq!(o.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
    }

    #[test]
    fn a_record_without_bucket_or_key_names_what_is_missing() {
        let no_key = json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "logs"}, "object": {"size": 3}}});
        let no_bucket = json!({"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "k"}}});
        let empty_key = json!({"s3": {"bucket": {"name": "logs"}, "object": {"key": ""}}});
        let payload = json!({"Records": [moto_record("ok"), no_key, no_bucket, empty_key]});
        let got = announced_objects(&payload).unwrap();
        assert_eq!(got.objects.len(), 1);
        assert_eq!(
            got.invalid,
            [
                "record 2 of 4: missing s3.object.key: cannot tell which object",
                "record 3 of 4: missing s3.bucket.name: cannot tell which object",
                "record 4 of 4: missing s3.object.key: cannot tell which object",
            ]
        );
        let eb = json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {"name": "logs"}}});
        let got = announced_objects(&json!({"Records": [sqs("m-1", &eb.to_string())]})).unwrap();
        assert_eq!(
            got.invalid,
            ["SQS message m-1: missing detail.object.key: cannot tell which object"]
        );
        assert_eq!(got.invalid_messages, ["m-1"]);
        let got = announced_objects(
            &json!({"Records": [{"eventSource": "aws:sqs", "messageId": "m-2"}]}),
        )
        .unwrap();
        assert_eq!(got.invalid, ["SQS message m-2: missing body"]);
    }

    #[test]
    fn a_test_event_is_kept_with_its_bucket() {
        let payload = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "logs"});
        let got = announced_objects(&payload).unwrap();
        assert!(got.objects.is_empty() && got.ignored.is_empty());
        let want = TestEvent {
            at: String::new(),
            bucket: Some("logs".into()),
            message_id: None,
            with_records: false,
        };
        assert_eq!(got.test_events, std::slice::from_ref(&want));
        let mut forged = payload.clone();
        forged["Records"] = json!([moto_record("nginx/i-0123456789abcdef0/access/x.log")]);
        let got =
            announced_objects(&json!({"Records": [sqs("m-1", &forged.to_string())]})).unwrap();
        assert!(
            got.objects.is_empty(),
            "a test event's records are not read"
        );
        let want = TestEvent {
            at: "SQS message m-1: ".into(),
            message_id: Some("m-1".into()),
            with_records: true,
            ..want
        };
        assert_eq!(got.test_events, [want]);
    }

    #[test]
    fn who_uploaded_is_kept_as_the_trigger_says() {
        let principal = "AWS:AROAEXAMPLEROLEID1234:i-0123456789abcdef0";
        let mut record = moto_record("nginx/i-0123456789abcdef0/access/x.log");
        record["userIdentity"] = json!({"principalId": principal});
        let direct = json!({"Records": [record.clone()]});
        let via_sqs = json!({"Records": [sqs("m-1", &direct.to_string())]});
        for payload in [direct, via_sqs] {
            let got = announced_objects(&payload).unwrap();
            assert_eq!(
                got.objects[0].provenance,
                Provenance {
                    principal: Some(principal.into()),
                    ..Provenance::default()
                }
            );
        }
        let eb = json!({"detail-type": "Object Created", "source": "aws.s3",
            "account": "111122223333", "region": "us-east-1",
            "detail": {"bucket": {"name": "logs"}, "object": {"key": "k", "size": 1},
                       "requester": "444455556666"}});
        let got = announced_objects(&eb).unwrap();
        assert_eq!(
            got.objects[0].provenance,
            Provenance {
                principal: None,
                account: Some("111122223333".into()),
                requester: Some("444455556666".into()),
            }
        );
        let got = announced_objects(&json!({"Records": [moto_record("k")]})).unwrap();
        assert_eq!(
            got.objects[0].provenance,
            Provenance::default(),
            "moto writes none"
        );
    }

    #[test]
    fn unknown_shape_is_a_clear_error() {
        let err = announced_objects(&json!({"hello": 1})).unwrap_err();
        assert!(err.to_string().contains("hello"), "{err}");
        assert!(announced_objects(&json!([1])).is_err());
    }
}
