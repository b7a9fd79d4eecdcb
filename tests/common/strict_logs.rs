//! A strict local CloudWatch Logs endpoint for the real SDK: it enforces every documented
//! PutLogEvents rule (moto enforces few of them) and records each violation so the test fails,
//! and it injects throttling, 500s, dropped connections and lost replies on demand. It answers
//! GetLogEvents (time range, oldest first, forward tokens) so a put whose reply was lost can be
//! checked.
//!
//! Protocol: awsJson1_1, `POST /` with `X-Amz-Target: Logs_20140328.<Operation>`.
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::io::{BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudwatchlogs::config::{Credentials, SharedCredentialsProvider};
use serde_json::{Value, json};

const MAX_EVENTS: usize = 10_000;
const MAX_BYTES: usize = 1_048_576;
const OVERHEAD: usize = 26;
const DAY_MS: i64 = 86_400_000;

/// Per-mille chances of each fault, decided per request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub throttle: u32,
    pub server_error: u32,
    pub drop: u32,
    /// Every this many PutLogEvents calls (0: never), one is stored and then the connection
    /// closes without an answer: a lost reply.
    pub lost_reply_every: u64,
    /// Faults in a row for the same request body at most (a fault is transient, as in AWS).
    pub max_in_a_row: u32,
}

#[derive(Default)]
pub struct State {
    /// group → stream → events in arrival order.
    pub groups: BTreeMap<String, BTreeMap<String, Vec<(i64, String)>>>,
    pub retention: HashMap<String, i64>,
    pub violations: Vec<String>,
    pub calls: BTreeMap<String, u64>,
    /// Bytes (as CloudWatch counts them) of every accepted PutLogEvents call.
    pub put_bytes: Vec<usize>,
    pub faults_injected: BTreeMap<&'static str, u64>,
    /// PutLogEvents calls dropped before they were handled (nothing stored).
    pub dropped_puts: u64,
    /// PutLogEvents calls stored whose answer was then lost.
    pub lost_put_replies: u64,
    puts_seen: u64,
    /// The `entity` of every accepted PutLogEvents call that had one, by group/stream.
    pub entities: Vec<(String, String, Value)>,
    attempts: HashMap<u64, u32>,
}

pub struct StrictLogs {
    pub endpoint: String,
    pub state: Arc<Mutex<State>>,
}

/// Refuse every PutLogEvents (non-retryable AccessDeniedException) once this many have been
/// accepted; `usize::MAX` means never. Process-wide: only one test per test binary may set it.
pub static REFUSE_AFTER: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(usize::MAX);

impl StrictLogs {
    pub fn start(faults: Faults) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(conn, &state, faults));
            }
        });
        Self { endpoint, state }
    }

    /// SDK configuration for this endpoint: dummy credentials, the production retry and timeout
    /// settings, but millisecond backoff so that tests with faults stay fast.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
            .retry_config(
                nginx_cloudwatch_forwarder::aws::retry_config()
                    .with_initial_backoff(Duration::from_millis(2))
                    .with_max_backoff(Duration::from_millis(20)),
            )
            .timeout_config(nginx_cloudwatch_forwarder::aws::timeout_config())
            .build()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>, faults: Faults) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut out = conn;
    while let Some(req) = super::http::read_request(&mut reader) {
        let target = req.header("x-amz-target").unwrap_or_default().to_string();
        let body = req.body;
        let op = target.rsplit('.').next().unwrap_or_default().to_string();
        let fault = if op == "PutLogEvents" && lost_reply_now(state, faults) {
            Some("lost_reply")
        } else {
            decide_fault(state, faults, &body)
        };
        let (status, reply) = match fault {
            Some("drop") => {
                // Close the connection without an answer, nothing done.
                if op == "PutLogEvents" {
                    state.lock().expect("not poisoned").dropped_puts += 1;
                }
                return;
            }
            Some("lost_reply") => {
                // Done, but the answer never arrives.
                let (status, _) = handle(state, &op, &body);
                if op == "PutLogEvents" && status == 200 {
                    state.lock().expect("not poisoned").lost_put_replies += 1;
                }
                return;
            }
            Some("throttle") => (
                400,
                json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
            ),
            Some(_) => (
                500,
                json!({"__type": "ServiceUnavailableException", "message": "injected 500"}),
            ),
            None => handle(state, &op, &body),
        };
        let text = reply.to_string();
        let reason = if status == 200 { "OK" } else { "Error" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nx-amzn-RequestId: test\r\n\r\n",
            text.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(text.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

/// Counts PutLogEvents calls; true for every `lost_reply_every`-th.
fn lost_reply_now(state: &Mutex<State>, faults: Faults) -> bool {
    let mut st = state.lock().expect("not poisoned");
    st.puts_seen += 1;
    faults.lost_reply_every > 0 && st.puts_seen.is_multiple_of(faults.lost_reply_every)
}

fn decide_fault(state: &Mutex<State>, faults: Faults, body: &[u8]) -> Option<&'static str> {
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    let key = h.finish();
    let mut st = state.lock().expect("not poisoned");
    let attempt = st.attempts.entry(key).or_insert(0);
    *attempt += 1;
    if *attempt > faults.max_in_a_row {
        return None;
    }
    let mut h = DefaultHasher::new();
    (key, *attempt).hash(&mut h);
    let roll = (h.finish() % 1000) as u32;
    let fault = if roll < faults.throttle {
        Some("throttle")
    } else if roll < faults.throttle + faults.server_error {
        Some("500")
    } else if roll < faults.throttle + faults.server_error + faults.drop {
        Some("drop")
    } else {
        None
    };
    match fault {
        Some(f) => *st.faults_injected.entry(f).or_default() += 1,
        // A request that got through starts a new run of attempts (the same body sent again
        // later is a new request, e.g. a duplicate we want to see).
        None => {
            st.attempts.remove(&key);
        }
    }
    fault
}

fn error(kind: &str, message: &str) -> (u16, Value) {
    (400, json!({"__type": kind, "message": message}))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn handle(state: &Mutex<State>, op: &str, body: &[u8]) -> (u16, Value) {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error("SerializationException", "body is not JSON");
    };
    let mut st = state.lock().expect("not poisoned");
    *st.calls.entry(op.to_string()).or_default() += 1;
    let group = req["logGroupName"].as_str().unwrap_or_default().to_string();
    let stream = req["logStreamName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match op {
        "CreateLogGroup" => {
            if st.groups.contains_key(&group) {
                return error(
                    "ResourceAlreadyExistsException",
                    "The specified log group already exists",
                );
            }
            st.groups.insert(group, BTreeMap::new());
            (200, json!({}))
        }
        "PutRetentionPolicy" => {
            let days = req["retentionInDays"].as_i64().unwrap_or(0);
            st.retention.insert(group, days);
            (200, json!({}))
        }
        "CreateLogStream" => match st.groups.get_mut(&group) {
            None => error(
                "ResourceNotFoundException",
                "The specified log group does not exist.",
            ),
            Some(streams) if streams.contains_key(&stream) => error(
                "ResourceAlreadyExistsException",
                "The specified log stream already exists",
            ),
            Some(streams) => {
                streams.insert(stream, Vec::new());
                (200, json!({}))
            }
        },
        "PutLogEvents"
            if st.put_bytes.len() >= REFUSE_AFTER.load(std::sync::atomic::Ordering::SeqCst) =>
        {
            error("AccessDeniedException", "injected: puts refused")
        }
        "PutLogEvents" => put(&mut st, &group, &stream, &req),
        "GetLogEvents" => get(&st, &group, &stream, &req),
        "DescribeLogStreams" => {
            st.violations
                .push("DescribeLogStreams called (never on the hot path)".into());
            error("InvalidParameterException", "not allowed here")
        }
        other => error("UnknownOperationException", other),
    }
}

/// GetLogEvents with `startTime`/`endTime` (exclusive), `startFromHead`, `limit` and forward
/// tokens; at the end of the stream the token sent comes back.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_GetLogEvents.html>
fn get(st: &State, group: &str, stream: &str, req: &Value) -> (u16, Value) {
    let Some(events) = st.groups.get(group).and_then(|s| s.get(stream)) else {
        return error(
            "ResourceNotFoundException",
            "The specified log group or stream does not exist.",
        );
    };
    if req["startFromHead"] != json!(true) {
        return error(
            "InvalidParameterException",
            "this endpoint reads from the head only",
        );
    }
    let start = req["startTime"].as_i64().unwrap_or(i64::MIN);
    let end = req["endTime"].as_i64().unwrap_or(i64::MAX);
    let limit = req["limit"].as_u64().unwrap_or(10_000).min(10_000) as usize;
    let from = match req["nextToken"].as_str() {
        None => 0,
        Some(t) => match t.strip_prefix("f/").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return error("InvalidParameterException", "bad nextToken"),
        },
    };
    let mut in_range: Vec<&(i64, String)> = events
        .iter()
        .filter(|(ts, _)| (start..end).contains(ts))
        .collect();
    in_range.sort_by_key(|(ts, _)| *ts);
    let page: Vec<Value> = in_range
        .iter()
        .skip(from)
        .take(limit)
        .map(|(ts, m)| json!({"timestamp": ts, "message": m, "ingestionTime": ts}))
        .collect();
    let next = from + page.len();
    (
        200,
        json!({"events": page, "nextForwardToken": format!("f/{next}"), "nextBackwardToken": "b/0"}),
    )
}

fn put(st: &mut State, group: &str, stream: &str, req: &Value) -> (u16, Value) {
    if !st.groups.get(group).is_some_and(|s| s.contains_key(stream)) {
        return error(
            "ResourceNotFoundException",
            "The specified log group or stream does not exist.",
        );
    }
    if req.get("sequenceToken").is_some() {
        st.violations
            .push(format!("{group}/{stream}: sequenceToken sent"));
    }
    let events: Vec<(i64, String)> = req["logEvents"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["timestamp"].as_i64().unwrap_or(i64::MIN),
                        e["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let bytes: usize = events.iter().map(|(_, m)| m.len() + OVERHEAD).sum();
    let now = now_ms();
    let mut broken = Vec::new();
    if events.is_empty() {
        broken.push("empty batch".to_string());
    }
    if events.len() > MAX_EVENTS {
        broken.push(format!("{} events", events.len()));
    }
    if bytes > MAX_BYTES {
        broken.push(format!("{bytes} bytes"));
    }
    if !events.windows(2).all(|w| w[0].0 <= w[1].0) {
        broken.push("not in chronological order".into());
    }
    if let (Some(first), Some(last)) = (events.first(), events.last())
        && last.0 - first.0 > DAY_MS
    {
        broken.push(format!("spans {} ms", last.0 - first.0));
    }
    for (ts, m) in &events {
        if m.is_empty() {
            broken.push("empty message".into());
        }
        if m.len() + OVERHEAD > MAX_BYTES {
            broken.push(format!("event of {} bytes", m.len()));
        }
        if *ts < now - 14 * DAY_MS || *ts > now + 2 * 3_600_000 {
            broken.push(format!(
                "event at {ts} is outside [now - 14 d, now + 2 h]: it would be rejected"
            ));
        }
    }
    if !broken.is_empty() {
        st.violations
            .push(format!("{group}/{stream}: {}", broken.join("; ")));
        return error("InvalidParameterException", &broken.join("; "));
    }
    st.put_bytes.push(bytes);
    if let Some(s) = st.groups.get_mut(group).and_then(|g| g.get_mut(stream)) {
        s.extend(events);
    }
    let mut answer = json!({"nextSequenceToken": "0"});
    if let Some(entity) = req.get("entity") {
        // As CloudWatch does: the events are stored, the entity is refused with a reason.
        if let Err(why) = entity_shape(entity) {
            st.violations
                .push(format!("{group}/{stream}: entity {entity}: {why}"));
            answer["rejectedEntityInfo"] = json!({"errorType": why});
        }
        st.entities
            .push((group.to_string(), stream.to_string(), entity.clone()));
    }
    (200, answer)
}

/// The documented shape of PutLogEvents' `entity`: `keyAttributes` 2–4 of `Type`,
/// `ResourceType`, `Identifier`, `Name`, `Environment` (keys 1–32, values 1–512 characters; an
/// `AWS::Resource` needs `ResourceType` and `Identifier`), `attributes` at most 10 (keys 1–256,
/// values 1–512). Err: the `errorType` CloudWatch answers.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_Entity.html>
fn entity_shape(entity: &Value) -> Result<(), &'static str> {
    let strings = |v: &Value, key_max: usize, value_max: usize| -> Option<Vec<(String, String)>> {
        v.as_object()?
            .iter()
            .map(|(k, v)| {
                let v = v.as_str()?;
                ((1..=key_max).contains(&k.chars().count())
                    && (1..=value_max).contains(&v.chars().count()))
                .then(|| (k.clone(), v.to_string()))
            })
            .collect()
    };
    let keys = strings(&entity["keyAttributes"], 32, 512).ok_or("InvalidKeyAttribute")?;
    if !(2..=4).contains(&keys.len())
        || keys.iter().any(|(k, _)| {
            !["Type", "ResourceType", "Identifier", "Name", "Environment"].contains(&k.as_str())
        })
    {
        return Err("InvalidKeyAttribute");
    }
    let get = |name: &str| {
        keys.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match get("Type") {
        Some("AWS::Resource") if get("ResourceType").is_none() || get("Identifier").is_none() => {
            return Err("MissingRequiredFields");
        }
        Some("AWS::Resource" | "AWS::Service" | "Service" | "Resource" | "RemoteService") => {}
        _ => return Err("InvalidTypeValue"),
    }
    if let Some(attrs) = entity.get("attributes") {
        let attrs = strings(attrs, 256, 512).ok_or("InvalidAttributes")?;
        if attrs.len() > 10 {
            return Err("InvalidAttributes");
        }
    }
    Ok(())
}
