//! The PutLogEvents request body, which we serialise ourselves, and the one way back from it
//! (the events of a body this sink wrote, for the read-back).

use std::ops::Range;
use std::sync::Arc;

use ncf_core::ports::Entity;
use ncf_parse::{LogEvent, json};

/// The PutLogEvents request body (awsJson1.1), copied together from messages the parser's
/// workers already wrote escaped ([`ncf_parse::Message`]): no message is escaped here, and
/// consecutive events that a worker wrote one after another as whole event objects
/// ([`ncf_parse::Message::frame`]) are copied as one run. The
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
    put_log_events_body_in(Vec::new(), group, stream, entity, events)
}

/// [`put_log_events_body`] written into `buffer` (cleared first; a body of an earlier put, so
/// that its memory is reused).
pub fn put_log_events_body_in(
    mut buffer: Vec<u8>,
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
    buffer.clear();
    // Empty, so valid UTF-8.
    let mut out = String::from_utf8(buffer).unwrap_or_default();
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
    // Room for the events and the end at once (`size` is an upper bound), and exactly: a kept
    // buffer then stays the size of the bodies it held (see `KEPT_BODY_MAX_CAPACITY`).
    out.reserve_exact(size + "]}".len());
    // Consecutive events whose objects the worker wrote one after another (with a comma
    // between) are copied as one run.
    let mut body = EventList {
        out: &mut out,
        first: true,
    };
    let mut run: Option<(&Arc<String>, Range<usize>)> = None;
    for e in events {
        match e.message.frame() {
            // The frame is the event's only while it carries the event's timestamp.
            Some(f) if f.timestamp == e.timestamp => {
                run = match run {
                    Some((arena, r))
                        if Arc::ptr_eq(arena, f.arena) && f.range.start == r.end + 1 =>
                    {
                        Some((arena, r.start..f.range.end))
                    }
                    before => {
                        body.run(before);
                        Some((f.arena, f.range))
                    }
                };
            }
            _ => {
                body.run(run.take());
                body.event(e);
            }
        }
    }
    body.run(run);
    out.push_str("]}");
    out.into_bytes()
}

/// The `logEvents` list of a request body being written.
struct EventList<'a> {
    out: &'a mut String,
    first: bool,
}

impl EventList<'_> {
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
    }

    /// Events written one after another in an arena, commas between them.
    fn run(&mut self, run: Option<(&Arc<String>, Range<usize>)>) {
        if let Some(text) = run.and_then(|(arena, range)| arena.get(range)) {
            self.comma();
            self.out.push_str(text);
        }
    }

    fn event(&mut self, e: &LogEvent) {
        self.comma();
        json::open_event(self.out, e.timestamp);
        self.out.push_str(e.message.escaped());
        self.out.push_str(json::CLOSE_EVENT);
    }
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

/// The events of a body this sink wrote (for a check, which is rare: the events themselves
/// were freed when the body was written).
pub(super) fn sent_events(body: &[u8]) -> Result<Vec<(i64, String)>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(rename = "logEvents")]
        events: Vec<Event>,
    }
    #[derive(serde::Deserialize)]
    struct Event {
        timestamp: i64,
        message: String,
    }
    let b: Body = serde_json::from_slice(body)?;
    Ok(b.events
        .into_iter()
        .map(|e| (e.timestamp, e.message))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ncf_parse::Message;
    use serde_json::{Value, json};

    #[test]
    fn the_body_is_the_api_request_syntax() {
        let ev = |timestamp, message: &str| LogEvent {
            timestamp,
            message: Message::new(message),
            line: 1,
            offset: 0,
            parse_failed: false,
            filtered: None,
            redacted: 0,
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
        // A reused buffer (an earlier, longer body) gives the same bytes.
        let reused = b"{\"logGroupName\":\"an earlier body, longer than this one\"}".repeat(9);
        assert_eq!(
            put_log_events_body_in(reused, "nginx-access", "i-0abc/x \"y\"", None, &events),
            body
        );
        let empty: Value =
            serde_json::from_slice(&put_log_events_body("g", "s", None, &[])).unwrap();
        assert_eq!(empty["logEvents"], json!([]));
        let entity = Entity::ec2_instance("i-0abc");
        // Sized once, entity included, and not much over: a kept buffer keeps its size.
        let fresh = put_log_events_body("g", "s", Some(&entity), &events);
        let slack = fresh.capacity() - fresh.len();
        assert!(slack <= 20 * events.len(), "{slack} bytes over");
        let capacity = fresh.capacity();
        let again = put_log_events_body_in(fresh, "g", "s", Some(&entity), &events);
        assert_eq!(again.capacity(), capacity);
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

    /// The events of `lines`, parsed as one block of a worker: their messages in one arena.
    fn parse_block(settings: &ncf_parse::ParseSettings, lines: &[&str]) -> Vec<LogEvent> {
        use ncf_parse::access::{Buffers, parse_line_into};
        let (mut buffers, mut placed) = (Buffers::default(), Vec::new());
        let mut events: Vec<LogEvent> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let (ev, at) = parse_line_into(settings, line, i as u64 + 1, 7, &mut buffers);
                placed.push(at);
                ev
            })
            .collect();
        let arena = Arc::new(buffers.arena);
        for (ev, at) in events.iter_mut().zip(placed) {
            if let Some(at) = at {
                ev.message = Message::in_arena(&arena, at);
            }
        }
        events
    }

    /// Batches cut from two blocks (`one` of five events, the third unparsed; `two` of two):
    /// all of a block, a gap, a changed timestamp, another order, another arena, an owned
    /// message between them, the same event twice, one event.
    fn batches(one: &[LogEvent], two: &[LogEvent]) -> Vec<Vec<LogEvent>> {
        let mut retimed = one[1].clone();
        retimed.timestamp += 1;
        let pick = |from: &[&LogEvent]| from.iter().map(|&e| e.clone()).collect::<Vec<_>>();
        vec![
            one.to_vec(),
            pick(&[&one[0], &one[1], &one[3], &one[4]]),
            pick(&[&one[3], &one[0], &one[1], &one[4]]),
            pick(&[&one[0], &retimed, &one[3], &one[4]]),
            pick(&[&one[0], &two[1], &one[3], &two[0]]),
            pick(&[&one[0], &one[0], &one[1]]),
            pick(&[&one[4]]),
        ]
    }

    /// Events a worker wrote into one arena are copied in runs; the body is byte for byte the
    /// one written event by event, whatever the batch holds (see [`batches`]).
    #[test]
    fn runs_of_a_blocks_events_give_the_same_body_as_event_by_event() {
        use ncf_parse::{OutputFormat, ParseSettings};
        let lines = [
            r#"203.0.113.7 - - [24/Nov/2026:10:00:01 +0000] "GET /a?q="x" HTTP/1.1" 200 612 "-" "curl/8.5.0""#,
            r#"203.0.113.8 - alice [24/Nov/2026:10:00:02 +0000] "POST /b HTTP/2.0" 201 0 "https://example.com/" "Mozilla/5.0 (X11) é""#,
            "not an access line",
            r#"198.51.100.1 - - [24/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 304 0 "-" "-""#,
            r#"198.51.100.2 - - [24/Nov/2026:10:00:03 +0000] "GET /c HTTP/1.1" 404 153 "-" "-""#,
        ];
        for output in [OutputFormat::Json, OutputFormat::Raw] {
            let settings = ParseSettings {
                output,
                ..ParseSettings::default()
            };
            let one = parse_block(&settings, &lines);
            let two = parse_block(&settings, &lines[..2]);
            // The frame is the event object of the request syntax around the message.
            let f = one[0].message.frame().expect("a frame");
            let framed: Value = serde_json::from_str(&f.arena[f.range.clone()]).unwrap();
            assert_eq!(
                framed,
                json!({"timestamp": one[0].timestamp, "message": one[0].message.text()})
            );
            assert!(
                one[2].message.frame().is_none(),
                "an unparsed line is its own"
            );
            for events in batches(&one, &two) {
                let owned: Vec<LogEvent> = events
                    .iter()
                    .map(|e| LogEvent {
                        message: Message::new(&e.message.text()),
                        ..e.clone()
                    })
                    .collect();
                assert!(owned.iter().all(|e| e.message.frame().is_none()));
                let got = put_log_events_body("g", "s", None, &events);
                let want = put_log_events_body("g", "s", None, &owned);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{output:?}"
                );
                let parsed: Value = serde_json::from_slice(&got).unwrap();
                assert_eq!(
                    parsed["logEvents"].as_array().map(Vec::len),
                    Some(events.len())
                );
                // What the read-back sends again comes out of the body as it went in.
                let sent: Vec<(i64, String)> = owned
                    .iter()
                    .map(|e| (e.timestamp, e.message.text()))
                    .collect();
                assert_eq!(sent_events(&got).expect("our own body"), sent);
            }
        }
    }
}
