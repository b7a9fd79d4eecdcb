//! The refused-puts scenario of exactly-once delivery through the `replay` command: S3 is moto
//! (the progress tag), CloudWatch Logs the strict local endpoint refusing puts after the 5th.
//! (A test binary of its own: REFUSE_AFTER is process-wide.)

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use common::moto::Moto;
use common::strict_logs::{Faults, REFUSE_AFTER, StrictLogs};
use common::{combined_line, now_ms, s3_event_with_etag};
use nginx_cloudwatch_forwarder::aws::clients_from;
use serde_json::Value;

#[tokio::test]
async fn replay_fails_at_the_refused_batch_then_resumes_and_sends_every_line_once() {
    let moto = Moto::start();
    let (s3, _) = clients_from(&moto.sdk_config(), true);
    s3.create_bucket()
        .bucket("replay-resume")
        .send()
        .await
        .unwrap();
    let strict = StrictLogs::start(Faults::default());
    let key = "nginx/i-0123456789abcdef0/access/big.log";
    let pad = "p".repeat(500);
    let start = now_ms() - 3_600_000;
    let text: String = (0..30_000)
        .map(|i| combined_line("10.0.0.1", start + i, &format!("/r/{i}?{pad}"), 200) + "\n")
        .collect();
    let etag = common::moto::upload(&s3, "replay-resume", key, text.into_bytes()).await;
    let event = s3_event_with_etag("replay-resume", key, &etag);
    // S3 on moto, CloudWatch on the strict endpoint (which can refuse puts).
    let mut env = moto.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL_S3", moto.endpoint.clone()));
    env.push(("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", strict.endpoint.clone()));
    let replay = || common::moto::replay(&event, &env);

    REFUSE_AFTER.store(5, Ordering::SeqCst);
    let (code, first) = replay();
    REFUSE_AFTER.store(usize::MAX, Ordering::SeqCst);
    assert_eq!(code, Some(1), "{first:#}");
    assert_eq!(first["objects_failed"], 1);

    let (code, second) = replay();
    // (Puts run in parallel: whichever 5 batches arrived first succeeded, so the resume line may
    // be 1; what matters is that every line arrives exactly once, checked below.)
    assert_eq!(code, Some(0), "{second:#}");
    assert!(
        second["objects"][0]["resumed_from_line"].as_u64().is_some(),
        "{second:#}"
    );
    let (code, third) = replay();
    assert_eq!(
        (code, third["already_delivered"].as_u64()),
        (Some(0), Some(1)),
        "{third:#}"
    );

    let st = strict.lock();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, m) in &st.groups["nginx-access"]["i-0123456789abcdef0"] {
        let v: Value = serde_json::from_str(m).unwrap();
        *seen
            .entry(v["request_uri"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 30_000, "every line arrived");
    assert!(seen.values().all(|c| *c == 1), "no line twice");
}
