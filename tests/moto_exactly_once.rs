//! Exactly-once per object against moto (S3 object tags hold the progress) — and, for the
//! fault, the strict CloudWatch Logs endpoint, which can refuse puts on demand.

mod common;

use std::sync::atomic::Ordering;

use common::moto::{Moto, read_stream};
use common::strict_logs::{Faults, REFUSE_AFTER, StrictLogs};
use common::{combined_line, now_ms, numbered_log, s3_event_with_etag, uri_counts};
use nginx_cloudwatch_forwarder::aws::clients_from;
use nginx_cloudwatch_forwarder::checkpoint::TAG_KEY;
use nginx_cloudwatch_forwarder::config::Config;
use nginx_cloudwatch_forwarder::wiring::production_handler;

const BUCKET: &str = "nginx-logs-exactly-once";
const INSTANCE: &str = "i-0123456789abcdef0";

async fn upload(s3: &aws_sdk_s3::Client, key: &str, body: String) -> String {
    common::moto::upload(s3, BUCKET, key, body.into_bytes()).await
}

fn config() -> Config {
    Config::from_lookup(|_| None).expect("defaults")
}

#[tokio::test]
async fn redelivery_sends_nothing_and_an_overwrite_is_forwarded_again() {
    let moto = Moto::start();
    let (s3, logs) = clients_from(&moto.sdk_config(), true);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let key = format!("nginx/{INSTANCE}/access/a.log");
    let etag = upload(&s3, &key, numbered_log(300, "v1")).await;
    let user_tag = aws_sdk_s3::types::Tag::builder()
        .key("team")
        .value("web")
        .build()
        .unwrap();
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(user_tag)
        .build()
        .unwrap();
    s3.put_object_tagging()
        .bucket(BUCKET)
        .key(&key)
        .tagging(tagging)
        .send()
        .await
        .unwrap();
    let h = production_handler(config(), s3.clone(), logs.clone());

    let first = h
        .handle(&s3_event_with_etag(BUCKET, &key, &etag))
        .await
        .unwrap();
    assert_eq!(
        (first.objects_delivered, first.totals.events),
        (1, 300),
        "{first:#?}"
    );
    let second = h
        .handle(&s3_event_with_etag(BUCKET, &key, &etag))
        .await
        .unwrap();
    assert_eq!(
        (second.already_delivered, second.totals.events),
        (1, 0),
        "{second:#?}"
    );
    assert_eq!(
        read_stream(&logs, "nginx-access", INSTANCE).await.len(),
        300
    );

    // The progress tag sits beside the user's own tags, which are kept.
    let tags = s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await
        .unwrap();
    let ours: Vec<&str> = tags
        .tag_set()
        .iter()
        .filter(|t| t.key() == TAG_KEY)
        .map(|t| t.value())
        .collect();
    assert_eq!(ours.len(), 1);
    assert!(ours[0].ends_with("/done/300"), "{}", ours[0]);
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == "team" && t.value() == "web"),
        "the user's tag is kept"
    );

    // The host uploads the file again with more lines: a new version, forwarded again.
    let etag2 = upload(&s3, &key, numbered_log(310, "v2")).await;
    // The old event arrives late: the object changed since, so it is skipped as superseded.
    let late = h
        .handle(&s3_event_with_etag(BUCKET, &key, &etag))
        .await
        .unwrap();
    assert_eq!(
        (late.objects_skipped, late.totals.events),
        (1, 0),
        "{late:#?}"
    );
    let again = h
        .handle(&s3_event_with_etag(BUCKET, &key, &etag2))
        .await
        .unwrap();
    assert_eq!(
        (again.objects_delivered, again.totals.events),
        (1, 310),
        "{again:#?}"
    );
    assert_eq!(
        read_stream(&logs, "nginx-access", INSTANCE).await.len(),
        610
    );
}

#[tokio::test]
async fn puts_refused_after_the_fifth_batch_then_lifted_every_line_exactly_once() {
    let moto = Moto::start();
    let (s3, _) = clients_from(&moto.sdk_config(), true);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let strict = StrictLogs::start(Faults::default());
    let (_, logs) = clients_from(&strict.sdk_config(), true);
    let key = format!("nginx/{INSTANCE}/access/big.log");
    // Lines of ~700 bytes in JSON: ~1,400 per batch, so 30,000 lines make ~20 batches.
    let pad = "p".repeat(500);
    let start = now_ms() - 3_600_000;
    let text: String = (0..30_000)
        .map(|i| combined_line("10.0.0.1", start + i, &format!("/big/{i}?{pad}"), 200) + "\n")
        .collect();
    let etag = upload(&s3, &key, text).await;
    let h = production_handler(config(), s3.clone(), logs);

    REFUSE_AFTER.store(5, Ordering::SeqCst);
    let first = h
        .handle(&s3_event_with_etag(BUCKET, &key, &etag))
        .await
        .unwrap();
    REFUSE_AFTER.store(usize::MAX, Ordering::SeqCst);
    assert_eq!(first.objects_failed, 1, "{first:#?}");
    assert!(
        first.failure_text().contains("AccessDeniedException"),
        "{}",
        first.failure_text()
    );
    assert_eq!(strict.lock().put_bytes.len(), 5);

    let second = h
        .handle(&s3_event_with_etag(BUCKET, &key, &etag))
        .await
        .unwrap();
    assert_eq!(second.objects_delivered, 1, "{second:#?}");
    // Puts run in parallel: whichever 5 batches arrived first succeeded, so the resume line
    // may be 1; what matters is below: every line exactly once.
    assert!(second.objects[0].resumed_from_line.is_some());
    let st = strict.lock();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let got = uri_counts(&st.groups["nginx-access"][INSTANCE]);
    assert_eq!(got.len(), 30_000, "every line arrived");
    assert!(got.values().all(|c| *c == 1), "no line twice");
}

#[tokio::test]
async fn replay_twice_sends_nothing_the_second_time() {
    let moto = Moto::start();
    let (s3, logs) = clients_from(&moto.sdk_config(), true);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let key = format!("nginx/{INSTANCE}/access/replayed.log");
    let etag = upload(&s3, &key, numbered_log(50, "r")).await;
    let event = s3_event_with_etag(BUCKET, &key, &etag);
    let replay = || {
        let (code, summary) = common::moto::replay(&event, &moto.env());
        assert_eq!(code, Some(0), "{summary:#}");
        summary
    };
    let first = replay();
    assert_eq!(
        (
            first["objects_delivered"].as_u64(),
            first["events"].as_u64()
        ),
        (Some(1), Some(50)),
        "{first:#}"
    );
    let second = replay();
    assert_eq!(
        (
            second["already_delivered"].as_u64(),
            second["events"].as_u64()
        ),
        (Some(1), Some(0)),
        "{second:#}"
    );
    assert_eq!(second["delivery"], "exactly-once");
    assert_eq!(read_stream(&logs, "nginx-access", INSTANCE).await.len(), 50);
}
