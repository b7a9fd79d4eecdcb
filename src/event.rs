//! Trigger payload → the S3 objects it announces.
//!
//! Pure: takes the JSON the Lambda runtime hands us, returns object references with the key
//! already URL-decoded. S3 event notifications URL-encode keys (`+` is a space, `%XX` a byte):
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html>

use aws_lambda_events::s3::S3EventRecord;
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// One S3 object version announced by a trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The key as S3 stores it (decoded).
    pub key: String,
    /// The key exactly as the notification carried it (URL-encoded).
    pub raw_key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

/// What one trigger payload asks of us.
#[derive(Debug, Default, PartialEq)]
pub struct Announced {
    /// Objects to forward, in the order the payload lists them.
    pub objects: Vec<ObjectRef>,
    /// Records acknowledged and ignored (test events, deletions …), each with a reason.
    pub ignored: Vec<String>,
    /// Records that cannot be understood; each fails on its own.
    pub invalid: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error(
        "unrecognised trigger payload: expected an S3 event notification with a `Records` array ({0})"
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

/// Reads every record of an S3 event notification (never just the first).
pub fn announced_objects(payload: &Value) -> Result<Announced, EventError> {
    // S3 sends `s3:TestEvent` once when a notification is configured; it has no Records.
    if payload.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Announced {
            ignored: vec!["s3:TestEvent".to_string()],
            ..Announced::default()
        });
    }
    let records = payload
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| EventError::UnknownShape(shape_hint(payload)))?;

    let mut out = Announced::default();
    for (i, record) in records.iter().enumerate() {
        match serde_json::from_value::<S3EventRecord>(record.clone()) {
            Ok(rec) => classify(i, rec, &mut out),
            Err(e) => out
                .invalid
                .push(format!("record {i}: not an S3 event record: {e}")),
        }
    }
    Ok(out)
}

fn classify(i: usize, rec: S3EventRecord, out: &mut Announced) {
    let name = rec.event_name.unwrap_or_default();
    if !name.starts_with("ObjectCreated:") {
        out.ignored.push(format!(
            "record {i}: event {name:?} is not an object creation"
        ));
        return;
    }
    let (Some(bucket), Some(raw_key)) = (rec.s3.bucket.name, rec.s3.object.key) else {
        out.invalid.push(format!(
            "record {i}: missing s3.bucket.name or s3.object.key"
        ));
        return;
    };
    match decode_key(&raw_key) {
        Ok(key) => out.objects.push(ObjectRef {
            bucket,
            key,
            raw_key,
            size: rec.s3.object.size.and_then(|s| u64::try_from(s).ok()),
            etag: rec.s3.object.e_tag.filter(|e| !e.is_empty()),
            version_id: rec.s3.object.version_id.filter(|v| !v.is_empty()),
        }),
        Err(e) => out
            .invalid
            .push(format!("record {i} in bucket {bucket:?}: {e}")),
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
            record("ObjectCreated:Put", "logs", "bad%FF"),
        ]});
        let got = announced_objects(&payload).unwrap();
        let keys: Vec<&str> = got.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "nginx/i-0123456789abcdef0/access/a b.log",
                "nginx/i-0123456789abcdef1/error/e.log.gz"
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
        assert_eq!(got.invalid.len(), 2, "{:?}", got.invalid);
    }

    #[test]
    fn test_event_is_ignored() {
        let payload = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "logs"});
        let got = announced_objects(&payload).unwrap();
        assert!(got.objects.is_empty());
        assert_eq!(got.ignored, ["s3:TestEvent"]);
    }

    #[test]
    fn unknown_shape_is_a_clear_error() {
        let err = announced_objects(&json!({"hello": 1})).unwrap_err();
        assert!(err.to_string().contains("hello"), "{err}");
        assert!(announced_objects(&json!([1])).is_err());
    }
}
