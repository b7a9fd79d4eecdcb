//! The follower (`ship`) under steady writes, as production runs it: a log appended at 1, 100
//! and 2,000 lines a second for several intervals, shipped to moto. What costs money is counted
//! where it is received, from moto's own request log: objects and S3 requests per interval,
//! beside exactly-once and the delay from a line's write to its object being stored.
//!
//! Issue 27: a pass shipped what was pending, found a newer line and shipped again until the
//! writes stopped, so under steady writes every line became its own object (634 objects in
//! 16 s at 200 lines a second). The bound asserted here: at most one object per file per
//! interval, plus one per full `max_segment`, plus the first look at start.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::block_on;
use common::imds::{Imds, ImdsServer};
use common::moto::Moto;

const BUCKET: &str = "steady-writes";
/// `--interval`, seconds: short, so that a test spans several intervals in seconds.
const INTERVAL: u64 = 2;
/// How long the writer writes.
const WRITING: Duration = Duration::from_secs(10);

/// Appends line `i` (`GET /r/<i>`) at `start + i / rate`, in one write per 10 ms of lines due,
/// for `WRITING`; when each line was written.
fn write_steadily(log: PathBuf, rate: u64) -> std::thread::JoinHandle<Vec<Instant>> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open the log");
        let start = Instant::now();
        let total = rate * WRITING.as_secs();
        let mut written = Vec::with_capacity(total as usize);
        while (written.len() as u64) < total {
            let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
            let mut text = String::new();
            for i in written.len() as u64..due {
                text.push_str(&common::combined_line(
                    "198.51.100.7",
                    common::now_ms(),
                    &format!("/r/{i}"),
                    200,
                ));
                text.push('\n');
            }
            if !text.is_empty() {
                f.write_all(text.as_bytes()).expect("append");
                let now = Instant::now();
                written.resize(due as usize, now);
            }
            std::thread::sleep(Duration::from_millis(10)); // pacing, not synchronisation
        }
        written
    })
}

/// What the test saw of the bucket: each object when first listed, and the lines in it.
#[derive(Default)]
struct Seen {
    /// Key → when it was first listed.
    objects: BTreeMap<String, Instant>,
    /// Line number → the keys it arrived in.
    lines: BTreeMap<u64, Vec<String>>,
}

impl Seen {
    /// Lists the bucket and reads each new object.
    fn poll(&mut self, s3: &aws_sdk_s3::Client) {
        let listed = block_on(s3.list_objects_v2().bucket(BUCKET).send()).expect("list");
        let now = Instant::now();
        for obj in listed.contents() {
            let key = obj.key().unwrap_or_default().to_string();
            if self.objects.contains_key(&key) {
                continue;
            }
            let body = block_on(async {
                let out = s3
                    .get_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .send()
                    .await
                    .expect("get");
                out.body.collect().await.expect("body").into_bytes()
            });
            for n in common::request_numbers(&body) {
                self.lines.entry(n).or_default().push(key.clone());
            }
            self.objects.insert(key, now);
        }
    }
}

/// Runs the follower on a log written at `rate` lines a second and checks exactly-once, the
/// objects and requests per interval, and the delay.
fn steady(rate: u64) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ncf-steady-{rate}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let log = dir.join("access.log");
    std::fs::write(&log, "").expect("create the log");
    let moto = Moto::start_logged();
    let (s3, _) = nginx_cloudwatch_forwarder::aws::clients_from(&moto.sdk_config(), true);
    block_on(s3.create_bucket().bucket(BUCKET).send()).expect("create bucket");
    let imds = ImdsServer::start(Imds::Serve);

    let follower_log = dir.join("follower.log");
    let mut follower = common::ship_command(&moto, &imds, BUCKET, &dir.join("state"), &log)
        .args(["--interval", &INTERVAL.to_string()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&follower_log).expect("follower log"))
        .spawn()
        .expect("start the follower");
    let started = Instant::now();
    let writer = write_steadily(log.clone(), rate);
    let mut seen = Seen::default();
    while !writer.is_finished() {
        seen.poll(&s3);
        std::thread::sleep(Duration::from_millis(100)); // poll interval
    }
    let written = writer.join().expect("writer");
    let total = written.len() as u64;
    // The last lines wait for the next interval at most (and one poll of the files).
    let deadline = Instant::now() + Duration::from_secs(INTERVAL * 2 + 10);
    while (seen.lines.len() as u64) < total && Instant::now() < deadline {
        seen.poll(&s3);
        std::thread::sleep(Duration::from_millis(100)); // poll interval
    }
    let ran = started.elapsed();
    let _ = Command::new("kill")
        .args(["-TERM", &follower.id().to_string()])
        .status();
    let status = follower.wait().expect("wait for the follower");
    let stderr = std::fs::read_to_string(&follower_log).unwrap_or_default();
    let context = || format!("follower's log:\n{stderr}");
    assert!(
        status.success(),
        "follower exited {status:?}\n{}",
        context()
    );

    // Every line exactly once.
    let missing: Vec<u64> = (0..total).filter(|n| !seen.lines.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{} of {total} lines missing: {missing:?}\n{}",
        missing.len(),
        context()
    );
    let twice: Vec<(&u64, &Vec<String>)> = seen.lines.iter().filter(|(_, k)| k.len() > 1).collect();
    assert!(twice.is_empty(), "lines shipped twice: {twice:?}");
    assert_eq!(
        seen.lines.len() as u64,
        total,
        "lines that were never written"
    );

    // Objects per interval: one per interval the follower ran, and the first look at start.
    let objects = seen.objects.len() as u64;
    let intervals = ran.as_secs_f64() / INTERVAL as f64;
    let bound = intervals.ceil() as u64 + 1;
    assert!(
        objects <= bound,
        "{objects} objects for {total} lines in {intervals:.1} intervals of {INTERVAL} s (at most {bound})\n{}",
        context()
    );
    // And it ships every interval rather than holding everything back.
    let writing = WRITING.as_secs() / INTERVAL;
    assert!(
        objects >= writing - 1,
        "{objects} objects in {writing} intervals of writing"
    );

    // Requests as moto received them: the follower makes one PutObject per object and nothing
    // else; the rest are this test's own listings and reads.
    let kinds = moto.received_by_kind();
    let own: BTreeSet<&str> = ["CreateBucket", "ListObjectsV2", "GetObject"].into();
    let follower_kinds: BTreeMap<&&str, &u64> =
        kinds.iter().filter(|(k, _)| !own.contains(*k)).collect();
    assert_eq!(
        follower_kinds,
        BTreeMap::from([(&"PutObject", &objects)]),
        "requests by kind: {kinds:?}"
    );
    let failed: Vec<_> = moto
        .received()
        .into_iter()
        .filter(|r| r.status >= 300)
        .collect();
    assert!(failed.is_empty(), "requests moto refused: {failed:?}");

    // Delay from a line's write to its object being listed.
    let mut delays: Vec<Duration> = seen
        .lines
        .iter()
        .map(|(n, keys)| seen.objects[&keys[0]].saturating_duration_since(written[*n as usize]))
        .collect();
    delays.sort_unstable();
    let pct = |p: f64| delays[((delays.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    eprintln!(
        "steady writes, {rate} lines/s for {} s, --interval {INTERVAL}: {total} lines each once in {objects} objects ({:.2} per interval over {intervals:.1} intervals), S3 requests from the follower {follower_kinds:?}, delay write → stored p50 {:?} p99 {:?} max {:?}",
        WRITING.as_secs(),
        objects as f64 / intervals,
        pct(0.5),
        pct(0.99),
        delays[delays.len() - 1],
    );
    // At most an interval and a poll of the files, plus the upload and this test's poll.
    let limit = Duration::from_secs(INTERVAL) + Duration::from_millis(2500);
    assert!(
        pct(0.99) <= limit,
        "p99 delay {:?} over {limit:?}",
        pct(0.99)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_line_a_second() {
    steady(1);
}

#[test]
fn a_hundred_lines_a_second() {
    steady(100);
}

#[test]
fn two_thousand_lines_a_second() {
    steady(2000);
}
