//! `backfill`: what is already in S3 under a prefix, listed (ListObjectsV2), chosen the way an
//! event would route it, and then forwarded here through the handler, announced to the stack's
//! queue (`--enqueue`) for Lambda to forward, or only described (`--dry-run`).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use jiff::civil::Date;
use serde_json::json;

use crate::aws::cloudwatch::CloudWatchSink;
use crate::aws::{ConfiguredCheckpoints, clients, s3::S3Source};
use crate::backfill::{
    Days, ListingPlan, Progress, SQS_MAX_BATCH, Selection, Target, choose, expired_warning,
    first_accepted_day, first_kept_day, human_bytes, parse_day,
};
use crate::checkpoint::State;
use crate::config::{CheckpointStoreKind, Config};
use crate::event::{ObjectRef, notification};
use crate::handler::Handler;
use crate::ports::{
    CheckpointStore, ListError, ListedObject, MessageQueue, ObjectLister, QueueMessage,
};
use crate::summary::{Outcome, Summary};
use crate::wiring::production_handler;

use super::exit::EXIT_INTERRUPTED;

/// The command line of `backfill`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct BackfillArgs {
    /// Where the logs are: every key under the prefix that KEY_PATTERN routes.
    #[arg(value_name = "s3://BUCKET/PREFIX")]
    pub target: Target,
    /// Only objects of this UTC day or later: the key's YYYY/MM/DD/ directories (the layout
    /// both shippers write), or the object's LastModified when its key has none.
    #[arg(long, value_parser = parse_day, value_name = "YYYY-MM-DD")]
    pub since: Option<Date>,
    /// Only objects of this UTC day or earlier (the day included), chosen as for --since.
    #[arg(long, value_parser = parse_day, value_name = "YYYY-MM-DD")]
    pub until: Option<Date>,
    /// Lists what would be done (each object, its destination, whether its progress record
    /// says it is delivered) and the total bytes; sends nothing.
    #[arg(long, conflicts_with = "enqueue")]
    pub dry_run: bool,
    /// Instead of forwarding here, sends one S3-notification-shaped message per object to this
    /// SQS queue (the stack's NotificationQueueUrl output), 10 per SendMessageBatch, so that
    /// Lambda forwards them, as many at once as its concurrency allows.
    #[arg(long, value_name = "QUEUE_URL")]
    pub enqueue: Option<String>,
    /// Chooses, routes and writes with this deployed function's settings (its environment,
    /// read with GetFunctionConfiguration: name or ARN; the stack's is <stack>-forwarder)
    /// instead of this shell's; a forwarder variable set here that differs from it is refused.
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
}

/// How often a terminal's progress line is redrawn.
const REDRAW: Duration = Duration::from_millis(500);
/// How often a progress line is printed when standard error is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(10);
/// Progress records looked up at once by `--dry-run`.
const DRY_RUN_LOOKUPS: usize = 32;
/// SendMessageBatch calls in flight at once.
const ENQUEUE_CALLS: usize = 8;
/// Attempts for a message SQS did not take (not the sender's fault), with a doubling pause.
const ENQUEUE_ATTEMPTS: u32 = 5;
const ENQUEUE_FIRST_PAUSE: Duration = Duration::from_millis(200);

pub async fn command(config: Config, args: BackfillArgs) -> Result<ExitCode, String> {
    let (s3, logs) = clients().await;
    let source = S3Source::new(s3);
    if let Some(since) = args.since {
        warn_expired(&source, &args.target, since).await;
    }
    let mut status = Status::new();
    let plan = list(&source, &config, &args, &mut status)
        .await
        .map_err(|e| e.to_string())?;
    status.done(&plan.describe());
    let interrupted = watch_ctrl_c();
    if args.dry_run {
        return dry_run(config.checkpoints, source, &args.target.bucket, plan).await;
    }
    if let Some(queue) = &args.enqueue {
        let sqs = crate::aws::sqs::SqsQueue::new(aws_sdk_sqs::Client::new(
            &crate::aws::shared_config().await,
        ));
        let run = Controls {
            interrupted: &interrupted,
            status: &mut status,
        };
        return enqueue(&sqs, queue, &args.target.bucket, plan, run).await;
    }
    let handler = production_handler(config, source.client(), logs);
    forward_here(
        &handler,
        &args.target.bucket,
        plan,
        interrupted,
        &mut status,
    )
    .await
}

/// Warns when `--since` asks for days the bucket's lifecycle rules have deleted (or says that
/// they could not be read).
async fn warn_expired(lister: &impl ObjectLister, target: &Target, since: Date) {
    match lister.expirations(&target.bucket).await {
        Ok(rules) => {
            let today = jiff::tz::Offset::UTC
                .to_datetime(jiff::Timestamp::now())
                .date();
            if let Some(warning) = first_kept_day(&target.prefix, today, &rules)
                .and_then(|(first, rule)| expired_warning(since, first, rule))
            {
                eprintln!("{warning}");
            }
        }
        Err(e) => eprintln!(
            "note: the bucket's lifecycle rules could not be read, so whether --since asks for days it deleted is not checked: {e}"
        ),
    }
}

/// Forwards the selected objects through the handler, showing progress; prints the summary.
async fn forward_here(
    handler: &Handler<S3Source, CloudWatchSink, ConfiguredCheckpoints>,
    bucket: &str,
    plan: ListingPlan,
    interrupted: Arc<AtomicBool>,
    status: &mut Status,
) -> Result<ExitCode, String> {
    let sizes: HashMap<String, u64> = plan
        .take
        .iter()
        .map(|(o, _)| (o.key.clone(), o.size))
        .collect();
    let mut progress = Progress {
        objects_total: plan.take.len() as u64,
        bytes_total: plan.bytes(),
        ..Progress::default()
    };
    let bucket = bucket.to_string();
    let refs = plan.take.into_iter().map(move |(o, _)| ObjectRef {
        size: Some(o.size),
        etag: o.etag,
        ..ObjectRef::new(bucket.clone(), o.key)
    });
    let started = Instant::now();
    let mut summary = Summary::new();
    let mut reports = std::pin::pin!(handler.forward_listed(refs, interrupted.clone()));
    let mut redraw = tokio::time::interval(status.every());
    loop {
        tokio::select! {
            report = reports.next() => {
                let Some(report) = report else { break };
                progress.objects_done += 1;
                progress.bytes_done += sizes.get(&report.key).copied().unwrap_or(0);
                progress.lines += report.counters.lines;
                progress.events += report.counters.events;
                match &report.outcome {
                    Outcome::Failed { error } => {
                        progress.failed += 1;
                        status.note(&format!("failed: {error}"));
                    }
                    Outcome::AlreadyDelivered => progress.already_delivered += 1,
                    _ => {}
                }
                let keep = !matches!(report.outcome, Outcome::Delivered { .. } | Outcome::AlreadyDelivered);
                summary.push(report);
                // Only the objects that need a look stay listed; the counts cover all.
                if !keep {
                    summary.objects.pop();
                }
            }
            _ = redraw.tick() => status.show(&progress.line(started.elapsed().as_secs_f64())),
        }
    }
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    status.done(&progress.line(started.elapsed().as_secs_f64()));
    let out = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    println!("{out}");
    if interrupted.load(Ordering::SeqCst) {
        let left = progress.objects_total - progress.objects_done;
        eprintln!(
            "interrupted: {left} objects not started; what was confirmed is recorded, so the same command continues where this one stopped"
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(if summary.has_failures() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// How far this machine's clock may be behind S3's before an object uploaded before the
/// listing began is taken for a newer one (left to the live trigger).
const LISTING_CLOCK_MARGIN_MS: i64 = 5 * 60 * 1000;

/// Lists the target page by page and chooses each object: what was there when the listing
/// began (see [`crate::backfill::Choice::Newer`]), so that hosts uploading meanwhile do not
/// keep it going.
async fn list(
    lister: &impl ObjectLister,
    config: &Config,
    args: &BackfillArgs,
    status: &mut Status,
) -> Result<ListingPlan, ListError> {
    let selection = Selection {
        router: &config.route,
        days: Days {
            since: args.since,
            until: args.until,
        },
        lease_prefix: Some(
            config
                .leases
                .as_ref()
                .map_or(crate::config::DEFAULT_LEASE_PREFIX, |l| l.prefix.as_str()),
        ),
        listed_at_ms: Some(
            crate::forward::epoch_ms(std::time::SystemTime::now()) + LISTING_CLOCK_MARGIN_MS,
        ),
        first_accepted: first_accepted_day(
            crate::forward::epoch_ms(std::time::SystemTime::now()),
            config.sink.retention_days,
        ),
    };
    let (bucket, prefix) = (&args.target.bucket, &args.target.prefix);
    let mut plan = ListingPlan::default();
    let mut token = None;
    loop {
        let page = lister.list_page(bucket, prefix, token).await?;
        for obj in page.objects {
            let choice = choose(&obj, &selection);
            plan.add(obj, choice);
        }
        status.show(&format!(
            "listing {}: {} objects, {} selected",
            args.target,
            plan.listed,
            plan.take.len()
        ));
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(plan),
        }
    }
}

/// Prints each selected object (key, bytes, group/stream, what its progress record says) on
/// standard output, and the totals.
async fn dry_run(
    checkpoints: CheckpointStoreKind,
    source: S3Source,
    bucket: &str,
    plan: ListingPlan,
) -> Result<ExitCode, String> {
    let checkpoints = ConfiguredCheckpoints::new(checkpoints, source);
    let checkpoints = &checkpoints;
    let mut states = futures_util::stream::iter(plan.take.iter())
        .map(|(obj, route)| async move {
            let state = recorded(checkpoints, bucket, obj).await;
            (obj, route, state)
        })
        .buffered(DRY_RUN_LOOKUPS);
    let (mut to_send, mut bytes_to_send, mut delivered) = (0u64, 0u64, 0u64);
    let mut stdout = std::io::stdout().lock();
    while let Some((obj, route, state)) = states.next().await {
        if state == "delivered" {
            delivered += 1;
        } else {
            to_send += 1;
            bytes_to_send += obj.size;
        }
        writeln!(
            stdout,
            "{}\t{}\t{}/{}\t{state}",
            obj.key, obj.size, route.log_group, route.log_stream
        )
        .map_err(|e| e.to_string())?;
    }
    eprintln!(
        "dry run: would forward {to_send} objects ({}; {} in all selected), {delivered} already delivered; nothing was sent",
        human_bytes(bytes_to_send),
        human_bytes(plan.bytes())
    );
    Ok(ExitCode::SUCCESS)
}

/// What an object's progress record says of its current version: `new`, `partly delivered`,
/// `delivered`, or why it could not be read.
async fn recorded(checkpoints: &ConfiguredCheckpoints, bucket: &str, obj: &ListedObject) -> String {
    let stored = checkpoints
        .load(&ObjectRef::new(bucket, obj.key.clone()))
        .await;
    match stored {
        Err(e) => format!("unknown ({e})"),
        Ok(stored) => match stored.progress {
            Some(p) if obj.etag.as_deref() == Some(p.etag.as_str()) => match p.state {
                State::Done { .. } => "delivered".into(),
                State::Partial { .. } => "partly delivered".into(),
            },
            _ => "new".into(),
        },
    }
}

/// The notifications announcing the selected objects, [`SQS_MAX_BATCH`] per batch, each with
/// the key it announces.
fn notifications(bucket: &str, plan: &ListingPlan) -> Vec<Vec<(String, QueueMessage)>> {
    plan.take
        .chunks(SQS_MAX_BATCH)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .map(|(i, (obj, _))| {
                    let message = QueueMessage {
                        id: i.to_string(),
                        body: notification(bucket, obj).to_string(),
                    };
                    (obj.key.clone(), message)
                })
                .collect()
        })
        .collect()
}

/// What `enqueue` achieved: the messages taken, and the keys never taken with the reason.
#[derive(Debug, Default)]
struct Enqueued {
    taken: usize,
    refused: Vec<(String, String)>,
}

/// Sends one notification per selected object to `queue`, [`SQS_MAX_BATCH`] per call, until
/// all are sent or ctrl-c; prints what was sent.
async fn enqueue(
    sqs: &impl MessageQueue,
    queue: &str,
    bucket: &str,
    plan: ListingPlan,
    run: Controls<'_>,
) -> Result<ExitCode, String> {
    let started = Instant::now();
    let total = plan.take.len();
    let mut sent = futures_util::stream::iter(notifications(bucket, &plan))
        .take_while(|_| std::future::ready(!run.interrupted.load(Ordering::SeqCst)))
        .map(|batch| send_all(sqs, queue, batch))
        .buffer_unordered(ENQUEUE_CALLS);
    let mut done = Enqueued::default();
    let mut redraw = tokio::time::interval(run.status.every());
    loop {
        tokio::select! {
            sent = sent.next() => {
                let Some(sent) = sent else { break };
                let (ok, not) = sent.map_err(|e| {
                    format!("{e} ({} of {total} objects were enqueued before this; running the command again enqueues all, and objects already delivered are not sent twice)", done.taken)
                })?;
                done.taken += ok;
                done.refused.extend(not);
            }
            _ = redraw.tick() => run.status.show(&format!("enqueued {}/{total} objects", done.taken)),
        }
    }
    run.status.done(&format!(
        "enqueued {}/{total} objects ({}) in {:.1} s",
        done.taken,
        human_bytes(plan.bytes()),
        started.elapsed().as_secs_f64()
    ));
    enqueued_report(queue, &plan, &done, run.interrupted)
}

/// Prints what `enqueue` did as JSON; the exit code.
fn enqueued_report(
    queue: &str,
    plan: &ListingPlan,
    done: &Enqueued,
    interrupted: &AtomicBool,
) -> Result<ExitCode, String> {
    let total = plan.take.len();
    let out = json!({
        "queue": queue,
        "objects_enqueued": done.taken,
        "objects_selected": total,
        "bytes": plan.bytes(),
        "not_enqueued": done.refused
            .iter()
            .map(|(key, reason)| json!({"key": key, "reason": reason}))
            .collect::<Vec<_>>(),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
    );
    if interrupted.load(Ordering::SeqCst) {
        eprintln!("interrupted: {} objects not enqueued", total - done.taken);
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    Ok(if done.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sends one batch (each message with the key it announces), again for the messages SQS did
/// not take unless it says they are wrong: how many were taken, and the keys never taken with
/// the reason.
async fn send_all(
    sqs: &impl MessageQueue,
    queue: &str,
    mut batch: Vec<(String, QueueMessage)>,
) -> Result<(usize, Vec<(String, String)>), crate::ports::QueueError> {
    let (mut taken, mut never) = (0, Vec::new());
    let mut pause = ENQUEUE_FIRST_PAUSE;
    for attempt in 1..=ENQUEUE_ATTEMPTS {
        let messages: Vec<QueueMessage> = batch.iter().map(|(_, m)| m.clone()).collect();
        let not = sqs.send_batch(queue, &messages).await?;
        taken += batch.len().saturating_sub(not.len());
        let reason = |id: &str| not.iter().find(|n| n.id == id);
        let mut again = Vec::new();
        for (key, message) in batch {
            match reason(&message.id) {
                None => {}
                Some(n) if n.sender_fault || attempt == ENQUEUE_ATTEMPTS => {
                    never.push((key, n.reason.clone()));
                }
                Some(_) => again.push((key, message)),
            }
        }
        if again.is_empty() {
            break;
        }
        batch = again;
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    Ok((taken, never))
}

/// Sets the flag on the first ctrl-c; a second one ends the process at once.
fn watch_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        set.store(true, Ordering::SeqCst);
        eprintln!(
            "\nstopping: no new object starts, objects in flight stop at their next batch and record their progress (ctrl-c again to quit at once)"
        );
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
    });
    flag
}

/// What a run that sends shares: the ctrl-c flag and the progress display.
struct Controls<'a> {
    interrupted: &'a AtomicBool,
    status: &'a mut Status,
}

/// The progress display on standard error: one line redrawn in place on a terminal, plain
/// lines every [`PLAIN_EVERY`] otherwise (logs, CI).
struct Status {
    tty: bool,
    last: Option<Instant>,
}

impl Status {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn every(&self) -> Duration {
        if self.tty { REDRAW } else { PLAIN_EVERY }
    }

    /// A progress line, shown if it is time.
    fn show(&mut self, line: &str) {
        if self.last.is_some_and(|t| t.elapsed() < self.every()) {
            return;
        }
        self.last = Some(Instant::now());
        crate::logging::progress(line, self.tty);
    }

    /// A line that stays (a failure), above the progress line.
    fn note(&mut self, line: &str) {
        crate::logging::above_progress(line);
        self.last = None;
    }

    /// The final state of a step, always shown.
    fn done(&mut self, line: &str) {
        self.note(line);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::{NotQueued, QueueError};

    /// A queue refusing each message ID as told, per attempt: `(id, sender_fault)`.
    struct Refusing {
        refusals: Mutex<Vec<Vec<(&'static str, bool)>>>,
        seen: Mutex<Vec<Vec<String>>>,
    }

    impl MessageQueue for Refusing {
        async fn send_batch(
            &self,
            _queue: &str,
            messages: &[QueueMessage],
        ) -> Result<Vec<NotQueued>, QueueError> {
            self.seen
                .lock()
                .expect("not poisoned")
                .push(messages.iter().map(|m| m.id.clone()).collect());
            let mut refusals = self.refusals.lock().expect("not poisoned");
            let now = if refusals.is_empty() {
                Vec::new()
            } else {
                refusals.remove(0)
            };
            Ok(now
                .into_iter()
                .filter(|(id, _)| messages.iter().any(|m| m.id == *id))
                .map(|(id, sender_fault)| NotQueued {
                    id: id.to_string(),
                    reason: format!("refused {id}"),
                    sender_fault,
                })
                .collect())
        }
    }

    fn batch(n: usize) -> Vec<(String, QueueMessage)> {
        (0..n)
            .map(|i| {
                let m = QueueMessage {
                    id: i.to_string(),
                    body: format!("body {i}"),
                };
                (format!("key{i}"), m)
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn refused_messages_are_sent_again_unless_they_are_at_fault() {
        let q = Refusing {
            // 1: a throttle-like refusal; 2: its fault; then 1 again, and then taken.
            refusals: Mutex::new(vec![vec![("1", false), ("2", true)], vec![("1", false)]]),
            seen: Mutex::new(Vec::new()),
        };
        let (taken, never) = send_all(&q, "q", batch(4)).await.expect("sent");
        assert_eq!(taken, 3);
        assert_eq!(never, [("key2".to_string(), "refused 2".to_string())]);
        let seen = q.seen.lock().expect("not poisoned").clone();
        assert_eq!(seen, [vec!["0", "1", "2", "3"], vec!["1"], vec!["1"]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_refused_every_time_is_reported_after_the_last_attempt() {
        let always = vec![vec![("0", false)]; ENQUEUE_ATTEMPTS as usize];
        let q = Refusing {
            refusals: Mutex::new(always),
            seen: Mutex::new(Vec::new()),
        };
        let (taken, never) = send_all(&q, "q", batch(2)).await.expect("sent");
        assert_eq!(taken, 1);
        assert_eq!(never, [("key0".to_string(), "refused 0".to_string())]);
        assert_eq!(
            q.seen.lock().expect("not poisoned").len(),
            ENQUEUE_ATTEMPTS as usize
        );
    }
}
