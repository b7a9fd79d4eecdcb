//! The follower's loop against a fake uploader and real files in a scratch directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// Bytes `start..end` of a path.
type Range = (String, u64, u64);

/// Objects by key; `fail` refuses every put while set.
#[derive(Default)]
struct Fake {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    puts: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
    /// nginx writing while the follower ships: each put appends a line to this file, up to
    /// the count.
    writes_on_put: Mutex<Option<(PathBuf, usize)>>,
    /// Format objects by key, and the formats each object named.
    formats: Mutex<BTreeMap<String, String>>,
    named: Mutex<BTreeMap<String, plan::ObjectFormats>>,
    /// Each object's sources (path, start, end).
    sources: Mutex<BTreeMap<String, Vec<Range>>>,
    /// Objects that named a format object not put before them.
    unnamed: Mutex<Vec<String>>,
    /// A crash right after S3 stored the object: the put's answer never arrives.
    lose_reply: std::sync::atomic::AtomicBool,
    /// Run at each put, before anything else (a crash point set up by the test).
    on_put: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Keys under this prefix are refused with AccessDenied (a host policy that allows only
    /// another layout).
    deny: Mutex<Option<String>>,
}

impl Uploader for Fake {
    async fn put(&self, seg: Segment<'_>) -> Result<Put, UploadError> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst);
        if let Some((path, left)) = self.writes_on_put.lock().unwrap().as_mut()
            && *left > 0
        {
            *left -= 1;
            append(path, &format!("written while shipping {n}\n"));
        }
        let hook = self.on_put.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(UploadError {
                bucket: "b".into(),
                key: seg.key.into(),
                detail: "injected".into(),
                denied: false,
            });
        }
        if let Some(p) = self.deny.lock().unwrap().as_deref()
            && seg.key.starts_with(p)
        {
            return Err(UploadError {
                bucket: "b".into(),
                key: seg.key.into(),
                detail: "AccessDenied".into(),
                denied: true,
            });
        }
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(seg.key) {
            return Ok(Put::AlreadyThere);
        }
        let formats = self.formats.lock().unwrap();
        if seg.formats.keys().iter().any(|k| !formats.contains_key(*k)) {
            self.unnamed.lock().unwrap().push(seg.key.to_string());
        }
        objects.insert(seg.key.to_string(), seg.body);
        self.named
            .lock()
            .unwrap()
            .insert(seg.key.to_string(), seg.formats.clone());
        self.sources.lock().unwrap().insert(
            seg.key.to_string(),
            seg.sources
                .iter()
                .map(|s| (s.path.to_string(), s.start, s.end))
                .collect(),
        );
        if self.lose_reply.load(Ordering::SeqCst) {
            return Err(UploadError {
                bucket: "b".into(),
                key: seg.key.into(),
                detail: "stored, but the answer was lost".into(),
                denied: false,
            });
        }
        Ok(Put::Stored { etag: None })
    }

    async fn put_format(&self, key: &str, body: &str) -> Result<Put, UploadError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(UploadError {
                bucket: "b".into(),
                key: key.into(),
                detail: "injected".into(),
                denied: false,
            });
        }
        let mut formats = self.formats.lock().unwrap();
        if formats.contains_key(key) {
            return Ok(Put::AlreadyThere);
        }
        formats.insert(key.to_string(), body.to_string());
        Ok(Put::Stored { etag: None })
    }

    fn bucket(&self) -> &str {
        "b"
    }
}

impl Fake {
    /// Every object's content, in the order of (generation, start) per key name.
    fn text(&self) -> String {
        let objects = self.objects.lock().unwrap();
        let mut segs: Vec<(u64, u64, String)> = objects
            .iter()
            .map(|(k, body)| {
                let tail = k.rsplit('/').next().unwrap().trim_end_matches(".gz");
                let mut parts = tail.rsplitn(3, '-');
                let _end = parts.next().unwrap();
                let start: u64 = parts.next().unwrap().parse().unwrap();
                let gen_part = parts.next().unwrap();
                let generation: u64 = gen_part.rsplit(".g").next().unwrap().parse().unwrap();
                let mut s = String::new();
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_string(&mut s)
                    .unwrap();
                (generation, start, s)
            })
            .collect();
        segs.sort();
        segs.into_iter().map(|(_, _, s)| s).collect()
    }
}

impl Fake {
    /// Every line in every object, with how many times it was shipped.
    fn lines(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for body in self.objects.lock().unwrap().values() {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_string(&mut s)
                .unwrap();
            for line in s.lines() {
                *out.entry(line.to_string()).or_insert(0) += 1;
            }
        }
        out
    }

    fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ncf-ship-unit-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn settings(dir: &Path, max_segment: u64) -> Settings {
    Settings {
        once: true,
        interval: Duration::from_secs(60),
        max_segment,
        state_dir: dir.join("state"),
        asked: vec![dir.join("access.log")],
        files: vec![(dir.join("access.log"), LogKind::Access)],
        refused: Vec::new(),
        log_formats: BTreeMap::new(),
        bucket: "b".into(),
        prefix: "nginx/".into(),
        key_layout: plan::KeyLayout::Instance,
        imds_endpoint: DEFAULT_IMDS_ENDPOINT.into(),
        nginx_bin: None,
        nginx_paths: discover::Overrides::default(),
    }
}

fn follower(s: &Settings) -> Follower {
    Follower::open(&s.files[0].0, LogKind::Access, &s.state_dir).unwrap()
}

const ID: &str = "i-0123456789abcdef0";

#[tokio::test]
async fn gzip_is_deterministic_with_a_fixed_header() {
    let data = b"10.0.0.1 - - [30/Nov/2026:04:00:00 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"t\"\n"
        .repeat(500);
    let a = gzip(&data).await.unwrap();
    let b = gzip(&data).await.unwrap();
    assert_eq!(a, b);
    // magic, deflate, no flags, mtime 0: no name and no time in the header.
    assert_eq!(&a[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&a[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
}

#[tokio::test]
async fn whole_lines_only_and_a_segment_at_most() {
    let dir = Scratch::new("cut");
    let s = settings(&dir.0, 10);
    let log = &s.files[0].0;
    append(log, "aaaa\nbbbb\ncccccccccccccc\ndd");
    let up = Fake::default();
    let mut f = follower(&s);
    f.pass(&up, &s, ID, true).await.unwrap();
    // "aaaa\nbbbb\n" (10 bytes), then a line longer than a segment in pieces; "dd" waits.
    assert_eq!(up.text(), "aaaa\nbbbb\ncccccccccccccc\n");
    assert_eq!(f.position().unwrap().offset, 25);
    append(log, "\n");
    f.pass(&up, &s, ID, true).await.unwrap();
    assert_eq!(up.text(), "aaaa\nbbbb\ncccccccccccccc\ndd\n");
    // Not due and under a segment: nothing is shipped.
    append(log, "e\n");
    f.pass(&up, &s, ID, false).await.unwrap();
    assert_eq!(f.position().unwrap().offset, 28);
}

/// nginx appends while a pass ships: the pass ships what the file held when it started, and
/// the lines written meanwhile wait for the next interval (issue 27: a pass that chased them
/// made one object per line under steady writes and never returned).
#[tokio::test]
async fn a_pass_ships_what_was_there_not_what_arrives_while_it_ships() {
    let dir = Scratch::new("edge");
    let s = settings(&dir.0, 1 << 20);
    let log = &s.files[0].0;
    append(log, "one\ntwo\n");
    let up = Fake::default();
    *up.writes_on_put.lock().unwrap() = Some((log.clone(), 1));
    let mut f = follower(&s);
    let first = f.pass(&up, &s, ID, true).await.unwrap();
    assert_eq!((first.segments, up.puts.load(Ordering::SeqCst)), (1, 1));
    assert_eq!(up.text(), "one\ntwo\n");
    // The next interval ships the line written during the first upload, and only it.
    let second = f.pass(&up, &s, ID, true).await.unwrap();
    assert_eq!((second.segments, up.puts.load(Ordering::SeqCst)), (1, 2));
    assert_eq!(up.text(), "one\ntwo\nwritten while shipping 0\n");
    // Before the interval is up only full segments go, and only of what was there: 40 bytes
    // make three segments of one 10-byte line each (16-byte segments, cut after a line), and the
    // last line waits with the three written meanwhile.
    let s = settings(&dir.0, 16);
    append(log, &"aaaaaaaaa\n".repeat(4));
    *up.writes_on_put.lock().unwrap() = Some((log.clone(), 3));
    let early = f.pass(&up, &s, ID, false).await.unwrap();
    assert_eq!((early.segments, up.puts.load(Ordering::SeqCst)), (3, 5));
    assert!(
        up.text()
            .ends_with("shipping 0\naaaaaaaaa\naaaaaaaaa\naaaaaaaaa\n")
    );
}

#[tokio::test]
async fn failed_upload_keeps_the_position_and_the_plan_is_resent_as_is() {
    let dir = Scratch::new("fail");
    let s = settings(&dir.0, 1 << 20);
    let log = &s.files[0].0;
    append(log, "one\ntwo\n");
    let up = Fake::default();
    up.fail.store(true, Ordering::SeqCst);
    let mut f = follower(&s);
    assert!(f.pass(&up, &s, ID, true).await.is_err());
    let pos = f.position().unwrap().clone();
    assert_eq!(pos.offset, 0);
    let planned = pos.pending.clone().unwrap();
    assert_eq!(planned.end, 8);
    // More lines arrive; a restart first sends exactly the planned segment, then the rest.
    append(log, "three\n");
    up.fail.store(false, Ordering::SeqCst);
    let mut f = follower(&s);
    assert_eq!(f.position(), Some(&pos));
    f.pass(&up, &s, ID, true).await.unwrap();
    let keys: Vec<String> = up.objects.lock().unwrap().keys().cloned().collect();
    assert!(keys.contains(&planned.key), "{keys:?}");
    assert_eq!(keys.len(), 2);
    assert_eq!(up.text(), "one\ntwo\nthree\n");
    assert_eq!(f.position().unwrap().offset, 14);
    assert_eq!(f.position().unwrap().pending, None);
}

/// A plan saved under the instance layout and refused (the host policy allows only the
/// userid layout's prefix) is planned again under the userid layout's key once the host
/// switches; a plan refused under the run's own prefix is kept, as any failed upload.
#[tokio::test]
async fn a_plan_refused_under_the_other_key_layout_is_planned_again_under_this_one() {
    let dir = Scratch::new("relayout");
    let s = settings(&dir.0, 1 << 20);
    let log = &s.files[0].0;
    append(log, "one\ntwo\n");
    let up = Fake::default();
    *up.deny.lock().unwrap() = Some(format!("nginx/{ID}/"));
    let mut f = follower(&s);
    assert!(f.pass(&up, &s, ID, true).await.is_err());
    let planned = f.position().unwrap().pending.clone().unwrap();
    assert!(
        planned.key.starts_with(&format!("nginx/{ID}/")),
        "{planned:?}"
    );
    // Under its own prefix a refusal keeps the plan, to be sent again under the same key.
    let mut f = follower(&s);
    assert!(f.pass(&up, &s, ID, true).await.is_err());
    assert_eq!(f.position().unwrap().pending.as_ref(), Some(&planned));
    // The userid layout: the old plan's put is refused, then the bytes go under the new key.
    append(log, "three\n");
    let owner = format!("AROAEXAMPLE:{ID}");
    let mut f = follower(&s);
    f.pass(&up, &s, &owner, true).await.unwrap();
    let keys = up.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(
        keys[0].starts_with(&format!("nginx/{owner}/access/")),
        "{keys:?}"
    );
    assert_eq!(up.text(), "one\ntwo\nthree\n");
    assert_eq!(f.position().unwrap().offset, 14);
    assert_eq!(f.position().unwrap().pending, None);
}

#[tokio::test]
async fn rename_rotation_compressed_away_is_finished_through_the_open_handle() {
    let dir = Scratch::new("rename");
    let s = settings(&dir.0, 1 << 20);
    let log = s.files[0].0.clone();
    append(&log, "1\n2\n");
    let up = Fake::default();
    let mut f = follower(&s);
    f.pass(&up, &s, ID, true).await.unwrap();
    append(&log, "3\n4\n");
    // logrotate: rename, nginx reopens and writes the new file, the old one is compressed
    // (read) and deleted before the follower looks again.
    let rotated = dir.0.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&log, "5\n");
    std::fs::remove_file(&rotated).unwrap();
    f.pass(&up, &s, ID, true).await.unwrap();
    assert_eq!(up.text(), "1\n2\n3\n4\n5\n");
    assert_eq!(f.position().unwrap().generation, 1);
}

/// Followed through a symlink (the workaround when names do not fit): logrotate renames or
/// copies the real file in its own directory, and a follower started after the rotation finds
/// the rest there (issue 27: it reported the file "rotated away" and lost its last lines).
#[tokio::test]
async fn through_a_symlink_a_rotation_between_runs_loses_nothing() {
    for copytruncate in [false, true] {
        let dir = Scratch::new("symlink");
        std::fs::create_dir_all(dir.0.join("real")).unwrap();
        std::fs::create_dir_all(dir.0.join("site")).unwrap();
        let real = dir.0.join("real/shop.example.com.log");
        let link = dir.0.join("site/access.log");
        std::os::unix::fs::symlink("../real/shop.example.com.log", &link).unwrap();
        let s = Settings {
            files: vec![(link.clone(), LogKind::Access)],
            ..settings(&dir.0, 1 << 20)
        };
        append(&real, "1\n2\n");
        let up = Fake::default();
        follower(&s).pass(&up, &s, ID, true).await.unwrap();
        // Stopped; nginx writes on; the file is rotated; started again.
        append(&real, "3\n4\n");
        let rotated = dir.0.join("real/shop.example.com.log-20261205");
        if copytruncate {
            std::fs::copy(&real, &rotated).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&real)
                .unwrap()
                .set_len(0)
                .unwrap();
        } else {
            std::fs::rename(&real, &rotated).unwrap();
        }
        append(&real, "5\n");
        follower(&s).pass(&up, &s, ID, true).await.unwrap();
        assert_eq!(up.text(), "1\n2\n3\n4\n5\n", "copytruncate {copytruncate}");
    }
}

#[tokio::test]
async fn rename_rotation_between_runs_is_finished_through_the_rotated_name() {
    let dir = Scratch::new("rename-runs");
    let s = settings(&dir.0, 1 << 20);
    let log = s.files[0].0.clone();
    append(&log, "1\n2\n");
    let up = Fake::default();
    follower(&s).pass(&up, &s, ID, true).await.unwrap();
    append(&log, "3\n4");
    std::fs::rename(&log, dir.0.join("access.log-20261130")).unwrap();
    append(&log, "5\n");
    // A new process: no handle; the old inode is found under its rotated name, and its
    // partial last line is final since nginx writes the new file.
    let mut f = follower(&s);
    f.pass(&up, &s, ID, true).await.unwrap();
    assert_eq!(up.text(), "1\n2\n3\n45\n");
    // Nothing twice on the next run.
    let n = up.objects.lock().unwrap().len();
    follower(&s).pass(&up, &s, ID, true).await.unwrap();
    assert_eq!(up.objects.lock().unwrap().len(), n);
}

#[tokio::test]
async fn copytruncate_starts_again_at_zero_with_the_next_generation() {
    let dir = Scratch::new("truncate");
    let s = settings(&dir.0, 1 << 20);
    let log = s.files[0].0.clone();
    append(&log, "first\nsecond\n");
    let up = Fake::default();
    let mut f = follower(&s);
    f.pass(&up, &s, ID, true).await.unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "third\n");
    f.pass(&up, &s, ID, true).await.unwrap();
    assert_eq!(up.text(), "first\nsecond\nthird\n");
    let pos = f.position().unwrap();
    assert_eq!((pos.generation, pos.offset), (1, 6));
    // Same inode and offset 0 again, yet a different key: the generation tells them apart.
    let keys: Vec<String> = up.objects.lock().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().any(|k| k.contains(".g0-0-13.gz")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains(".g1-0-6.gz")), "{keys:?}");
}

#[tokio::test]
async fn truncated_and_rewritten_past_the_offset_is_caught_by_the_first_bytes() {
    let dir = Scratch::new("rewritten");
    let s = settings(&dir.0, 1 << 20);
    let log = s.files[0].0.clone();
    append(&log, "04:00 a\n");
    let up = Fake::default();
    follower(&s).pass(&up, &s, ID, true).await.unwrap();
    // copytruncate, then more than before is written before the next run looks.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "04:01 b\n04:01 c\n");
    follower(&s).pass(&up, &s, ID, true).await.unwrap();
    assert_eq!(up.text(), "04:00 a\n04:01 b\n04:01 c\n");
}

#[tokio::test]
async fn copytruncate_ships_the_unshipped_rest_from_the_copy() {
    let dir = Scratch::new("copy");
    let s = settings(&dir.0, 8);
    let log = s.files[0].0.clone();
    append(&log, "04:00 a\n");
    let up = Fake::default();
    let mut f = follower(&s);
    f.pass(&up, &s, ID, true).await.unwrap();
    append(&log, "04:00 b\n04:00 c\n");
    std::fs::copy(&log, dir.0.join("access.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "04:01 d\n");
    f.pass(&up, &s, ID, true).await.unwrap();
    assert_eq!(up.text(), "04:00 a\n04:00 b\n04:00 c\n04:01 d\n");
    // A stale copy from an older cycle does not match the fingerprint and is never read.
    append(&log, "04:02 e\n");
    std::fs::copy(&log, dir.0.join("access.log.1")).unwrap();
    std::fs::write(
        dir.0.join("access.log.2"),
        "03:00 old\n03:00 old\n03:00 old\n",
    )
    .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, "04:03 f\n");
    f.pass(&up, &s, ID, true).await.unwrap();
    assert_eq!(
        up.text(),
        "04:00 a\n04:00 b\n04:00 c\n04:01 d\n04:02 e\n04:03 f\n"
    );
}

#[tokio::test]
async fn one_follower_per_state_directory() {
    let dir = Scratch::new("lock");
    let s = settings(&dir.0, 1 << 20);
    let held = lock_state_dir(&s.state_dir).unwrap();
    let e = run(&s, &Fake::default(), ID).await.unwrap_err();
    assert!(e.contains("another ship is running"), "{e}");
    drop(held);
    assert!(run(&s, &Fake::default(), ID).await.is_ok());
}

/// A path that names nothing is named (issue 27: it was "nothing to ship", exit 0): with
/// `--once` the other files still ship and the exit status says one failed; a directory that
/// does not exist stops the run before anything is read.
#[tokio::test]
async fn a_path_that_names_nothing_is_named() {
    let dir = Scratch::new("missing");
    let s = settings(&dir.0, 1 << 20);
    append(&s.files[0].0, "one\n");
    let typo = dir.0.join("acess.log");
    let s = Settings {
        files: vec![s.files[0].clone(), (typo.clone(), LogKind::Access)],
        ..s
    };
    let up = Fake::default();
    assert_eq!(run(&s, &up, ID).await.unwrap(), ExitCode::FAILURE);
    assert_eq!(up.text(), "one\n");
    let f = follower(&Settings {
        files: vec![(typo.clone(), LogKind::Access)],
        ..s.clone()
    });
    assert_eq!(
        f.missing().map(|m| m.to_string()),
        Some(format!(
            "{}: no such file (nothing shipped from it): check the path",
            typo.display()
        ))
    );
    let no_dir = dir.0.join("ngnix/access.log");
    let e = run(
        &Settings {
            files: vec![(no_dir.clone(), LogKind::Access)],
            ..s.clone()
        },
        &up,
        ID,
    )
    .await
    .unwrap_err();
    assert!(
        e.contains(&format!(
            "{}: no such file, and no directory",
            no_dir.display()
        )),
        "{e}"
    );
    let link = dir.0.join("access-link.log");
    std::os::unix::fs::symlink(dir.0.join("gone.log"), &link).unwrap();
    let f = follower(&Settings {
        files: vec![(link, LogKind::Access)],
        ..s
    });
    assert!(matches!(f.missing(), Some(Missing::Dangling { .. })));
}

/// The `log_format` nginx's configuration names for a file goes up once as a content-addressed
/// format object, before the first segment, and every segment names it (issue 28).
#[tokio::test]
async fn segments_name_the_format_object_put_before_them() {
    let dir = Scratch::new("format");
    let mut s = settings(&dir.0, 1 << 20);
    let log = s.files[0].0.clone();
    let text = "escape=json '{\"uri\":\"$request_uri\",\"status\":$status}'".to_string();
    s.log_formats.insert(log.clone(), text.clone());
    append(&log, "{\"uri\":\"/a\",\"status\":200}\n");
    let up = Fake::default();
    // The format's put fails first: no segment goes without it.
    up.fail.store(true, Ordering::SeqCst);
    assert_eq!(run(&s, &up, ID).await.unwrap(), ExitCode::FAILURE);
    assert!(up.objects.lock().unwrap().is_empty());
    up.fail.store(false, Ordering::SeqCst);
    assert_eq!(run(&s, &up, ID).await.unwrap(), ExitCode::SUCCESS);
    append(&log, "{\"uri\":\"/b\",\"status\":404}\n");
    assert_eq!(run(&s, &up, ID).await.unwrap(), ExitCode::SUCCESS);
    let key = format_key("nginx/", ID, &text);
    assert!(
        key.starts_with(&format!("nginx/{ID}/formats/"))
            && key.len() == "nginx/".len() + ID.len() + 9 + 64,
        "{key}"
    );
    assert_eq!(
        *up.formats.lock().unwrap(),
        BTreeMap::from([(key.clone(), text)])
    );
    let named = up.named.lock().unwrap().clone();
    assert_eq!(named.len(), 2);
    assert!(
        named
            .values()
            .all(|k| *k == plan::ObjectFormats::One(key.clone())),
        "{named:?}"
    );
}

/// `Settings::new` reads exactly the variables of [`SHIP_VARS`] (so scripts/check-docs.py,
/// which finds them there, cannot miss one).
#[test]
fn ship_vars_are_what_settings_read() {
    let read = std::sync::Mutex::new(std::collections::BTreeSet::new());
    Settings::new(&ShipArgs::default(), |n| {
        read.lock().unwrap().insert(n.to_string());
        (n == "NGINX_LOG_BUCKET").then(|| "logs".to_string())
    })
    .unwrap();
    let listed: std::collections::BTreeSet<String> =
        SHIP_VARS.iter().map(|v| v.to_string()).collect();
    assert_eq!(read.into_inner().unwrap(), listed);
}

/// The messages `ship` exits 64 with, word for word as before the readers were shared.
#[test]
fn settings_errors_name_the_flag_or_variable_and_say_what_it_must_be() {
    let err = |args: ShipArgs, vars: &[(&str, &str)]| {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::new(&args, |n| {
            vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
        .unwrap_err()
        .to_string()
    };
    let bucket = [("NGINX_LOG_BUCKET", "logs")];
    let interval = ShipArgs {
        interval: Some("0".into()),
        ..ShipArgs::default()
    };
    assert_eq!(
        err(interval, &[("SHIP_INTERVAL", "5"), bucket[0]]),
        r#"--interval="0": must be a whole number of seconds from 1 to 86400"#
    );
    assert_eq!(
        err(
            ShipArgs::default(),
            &[("SHIP_MAX_SEGMENT", "16M"), bucket[0]]
        ),
        r#"SHIP_MAX_SEGMENT="16M": must be a number of bytes from 1 to 1073741824"#
    );
    assert_eq!(
        err(ShipArgs::default(), &[]),
        r#"NGINX_LOG_BUCKET="": not set: name the S3 bucket to upload to"#
    );
    assert_eq!(
        err(ShipArgs::default(), &[("NGINX_LOG_BUCKET", "s3://logs")]),
        r#"NGINX_LOG_BUCKET="s3://logs": must be a bucket name, not a URL or path"#
    );
    assert_eq!(
        err(
            ShipArgs::default(),
            &[("NGINX_LOG_KEY_LAYOUT", "role"), bucket[0]]
        ),
        r#"NGINX_LOG_KEY_LAYOUT="role": must be instance or userid"#
    );
    let layout = ShipArgs {
        key_layout: Some("aws:userid".into()),
        ..ShipArgs::default()
    };
    assert_eq!(
        err(layout, &[("NGINX_LOG_KEY_LAYOUT", "userid"), bucket[0]]),
        r#"--key-layout="aws:userid": must be instance or userid"#
    );
}

#[test]
fn settings_from_flags_and_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |n: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    };
    let args = ShipArgs {
        files: vec!["/var/log/nginx/access.log".into()],
        ..ShipArgs::default()
    };
    let s = Settings::new(&args, env(&[("NGINX_LOG_BUCKET", "logs")])).unwrap();
    assert_eq!(
        (
            s.interval,
            s.max_segment,
            s.prefix.as_str(),
            s.state_dir.clone()
        ),
        (
            DEFAULT_INTERVAL,
            DEFAULT_MAX_SEGMENT,
            "nginx/",
            PathBuf::from(DEFAULT_STATE_DIR)
        )
    );
    let s = Settings::new(
        &ShipArgs {
            interval: Some("5".into()),
            ..args.clone()
        },
        env(&[
            ("NGINX_LOG_BUCKET", "logs"),
            ("SHIP_INTERVAL", "9"),
            ("SHIP_MAX_SEGMENT", "1000"),
            ("NGINX_LOG_PREFIX", ""),
        ]),
    )
    .unwrap();
    assert_eq!(
        (s.interval, s.max_segment, s.prefix.as_str()),
        (Duration::from_secs(5), 1000, "")
    );
    // The key layout: instance unless set; the flag wins over the variable.
    assert_eq!(s.key_layout, plan::KeyLayout::Instance);
    let userid = env(&[
        ("NGINX_LOG_BUCKET", "logs"),
        ("NGINX_LOG_KEY_LAYOUT", "userid"),
    ]);
    let s = Settings::new(&args, userid).unwrap();
    assert_eq!(s.key_layout, plan::KeyLayout::Userid);
    let flag = ShipArgs {
        key_layout: Some("instance".into()),
        ..args.clone()
    };
    assert_eq!(
        Settings::new(&flag, userid).unwrap().key_layout,
        plan::KeyLayout::Instance
    );
    let defaults =
        Settings::new(&ShipArgs::default(), env(&[("NGINX_LOG_BUCKET", "logs")])).unwrap();
    assert_eq!(defaults.files.len(), 2);
    // A site-named file waits for nginx's configuration to say what it is: no error here.
    let site = Settings::new(
        &ShipArgs {
            files: vec!["/var/log/nginx/shop.example.com.log".into()],
            ..args.clone()
        },
        env(&[("NGINX_LOG_BUCKET", "logs")]),
    )
    .unwrap();
    assert_eq!(
        site.asked,
        vec![PathBuf::from("/var/log/nginx/shop.example.com.log")]
    );
    assert!(site.files.is_empty());
    for (args, vars, name) in [
        (args.clone(), &[][..], "NGINX_LOG_BUCKET"),
        (
            args.clone(),
            &[("NGINX_LOG_BUCKET", "s3://logs")][..],
            "NGINX_LOG_BUCKET",
        ),
        (
            ShipArgs {
                interval: Some("0".into()),
                ..args.clone()
            },
            &[("NGINX_LOG_BUCKET", "logs")][..],
            "--interval",
        ),
        (
            args.clone(),
            &[("NGINX_LOG_BUCKET", "logs"), ("SHIP_MAX_SEGMENT", "16M")][..],
            "SHIP_MAX_SEGMENT",
        ),
        (
            ShipArgs {
                files: vec!["/var/log/a.log".into(), "/var/log/./a.log".into()],
                ..args.clone()
            },
            &[("NGINX_LOG_BUCKET", "logs")][..],
            "FILE",
        ),
    ] {
        let vars: Vec<(&str, &str)> = vars.to_vec();
        let e = Settings::new(&args, |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
        .unwrap_err();
        assert_eq!(e.name, name, "{e}");
    }
}

// --- the files of one kind, together (issue 28) ----------------------------------------------

/// Site-named access logs in the scratch directory, followed as one kind.
fn sites(dir: &Path, names: &[&str]) -> Settings {
    Settings {
        asked: Vec::new(),
        files: names
            .iter()
            .map(|n| (dir.join(n), LogKind::Access))
            .collect(),
        ..settings(dir, 1 << 20)
    }
}

fn open_all(s: &Settings) -> Vec<Follower> {
    s.files
        .iter()
        .map(|(p, k)| Follower::open(p, *k, &s.state_dir).unwrap())
        .collect()
}

async fn pass_all(fs: &mut [Follower], up: &Fake, s: &Settings, due: bool) -> KindPass {
    let mut group: Vec<&mut Follower> = fs.iter_mut().collect();
    pass_kind(&mut group, up, s, ID, due).await
}

/// Appends `n` lines (`<file name> <i>`) to each file, numbered from `from`: what was written.
fn write_lines(s: &Settings, from: usize, n: usize) -> Vec<String> {
    let mut written = Vec::new();
    for (path, _) in &s.files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for i in from..from + n {
            let line = format!("{name} {i}");
            append(path, &format!("{line}\n"));
            written.push(line);
        }
    }
    written
}

/// Every written line shipped exactly once, and nothing else.
fn exactly_once(up: &Fake, written: &[String], what: &str) {
    let lines = up.lines();
    let twice: Vec<_> = lines.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{what}: shipped twice: {twice:?}");
    let mut want: Vec<&String> = written.iter().collect();
    want.sort();
    let got: Vec<&String> = lines.keys().collect();
    assert_eq!(got, want, "{what}");
}

const SITES: [&str; 5] = [
    "api.example.com.access.log",
    "blog.example.com.access.log",
    "cdn.example.com.access.log",
    "shop.example.com.access.log",
    "www.example.com.access.log",
];

/// 50 site logs made 50 objects an interval; the files of one kind now go together: one
/// object per pass, a bundle named after its first part, its sources in order; one file with
/// lines alone keeps the segment key it had before bundles.
#[tokio::test]
async fn the_files_of_one_kind_ship_as_one_object_per_pass() {
    let dir = Scratch::new("bundle");
    let s = sites(&dir.0, &SITES);
    let mut written = write_lines(&s, 0, 3);
    let up = Fake::default();
    let mut fs = open_all(&s);
    let pass = pass_all(&mut fs, &up, &s, true).await;
    assert!(pass.errors.is_empty(), "{:?}", pass.errors);
    assert_eq!(pass.shipped.segments, 1);
    let keys = up.keys();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].starts_with(&format!("nginx/{ID}/access/"))
            && keys[0].contains("/bundle-")
            && keys[0].contains("-api.example.com.access.log-"),
        "{keys:?}"
    );
    let sources = up.sources.lock().unwrap()[&keys[0]].clone();
    let paths: Vec<String> = SITES
        .iter()
        .map(|n| dir.0.join(n).display().to_string())
        .collect();
    let want: Vec<Range> = SITES
        .iter()
        .zip(paths)
        .map(|(n, p)| (p, 0, 3 * (n.len() as u64 + 3)))
        .collect();
    assert_eq!(sources, want);
    exactly_once(&up, &written, "first pass");
    assert!(fs.iter().all(|f| f.position().unwrap().pending.is_none()));

    // Not due and under a segment: nothing; due: the two files with lines, together.
    for n in [1, 3] {
        let line = format!("{} 3", SITES[n]);
        append(&s.files[n].0, &format!("{line}\n"));
        written.push(line);
    }
    let pass = pass_all(&mut fs, &up, &s, false).await;
    assert_eq!(pass.shipped.segments, 0);
    let pass = pass_all(&mut fs, &up, &s, true).await;
    assert_eq!(pass.shipped.segments, 1);
    assert_eq!(up.keys().len(), 2);
    exactly_once(&up, &written, "two files");

    // One file with lines alone: its segment key, as before bundles.
    let line = format!("{} 4", SITES[2]);
    append(&s.files[2].0, &format!("{line}\n"));
    written.push(line);
    let before = up.keys();
    assert_eq!(pass_all(&mut fs, &up, &s, true).await.shipped.segments, 1);
    let new: Vec<String> = up
        .keys()
        .into_iter()
        .filter(|k| !before.contains(k))
        .collect();
    let pos = fs[2].position().unwrap();
    let want = plan::segment_key(&SegmentName {
        prefix: "nginx/",
        instance_id: ID,
        kind: LogKind::Access,
        day: &jiff::Timestamp::now().strftime("%Y/%m/%d").to_string(),
        name: SITES[2],
        file: pos.file,
        generation: 0,
        start: pos.offset - (SITES[2].len() as u64 + 3),
        end: pos.offset,
    });
    assert_eq!(new, vec![want]);
    exactly_once(&up, &written, "one file");
}

/// Before the interval is up a bundle goes as soon as the kind has a segment's worth pending,
/// and no object is larger than a segment.
#[tokio::test]
async fn a_segments_worth_across_files_ships_before_the_interval() {
    let dir = Scratch::new("bundle-full");
    let s = Settings {
        max_segment: 100,
        ..sites(&dir.0, &SITES)
    };
    let up = Fake::default();
    let mut fs = open_all(&s);
    // 5 files × 2 lines of 30 bytes: 300 bytes pending, three segments' worth.
    let written = write_lines(&s, 100, 2);
    let pass = pass_all(&mut fs, &up, &s, false).await;
    assert!(pass.errors.is_empty(), "{:?}", pass.errors);
    assert_eq!(pass.shipped.segments, 3);
    for body in up.objects.lock().unwrap().values() {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.len() <= 100, "{text:?}");
    }
    // What is left (less than a segment) waits for the interval.
    assert!(up.lines().len() < written.len());
    assert_eq!(pass_all(&mut fs, &up, &s, true).await.shipped.segments, 1);
    exactly_once(&up, &written, "full segments, then the rest");
}

/// Where a run can stop while it ships a bundle of three files (a, b, c, in that order).
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// a's plan saved, b's not (nor c's).
    BetweenPlans,
    /// Every plan saved, the put failed: nothing in S3.
    PutFails,
    /// S3 stored the object; the answer never came back.
    AfterPut,
    /// Stored, a's position moved on, b's could not be saved (nor c's).
    BetweenAdvances,
}

/// A crash at any point of shipping a bundle neither loses nor repeats a line: the next run
/// sends each saved plan's key again from exactly the ranges planned under it (S3 says it is
/// there when it was put; otherwise those files' bytes are nowhere yet), then the rest.
#[tokio::test]
async fn a_crash_between_the_plans_the_put_and_the_positions_loses_and_repeats_nothing() {
    for (crash, objects) in [
        (Crash::BetweenPlans, 3),
        (Crash::PutFails, 2),
        (Crash::AfterPut, 2),
        (Crash::BetweenAdvances, 2),
    ] {
        let what = format!("{crash:?}");
        let dir = Scratch::new("bundle-crash");
        let s = sites(&dir.0, &SITES[..3]);
        let mut written = write_lines(&s, 0, 2);
        let up = Fake::default();
        let mut fs = open_all(&s);
        assert!(pass_all(&mut fs, &up, &s, true).await.errors.is_empty());
        written.extend(write_lines(&s, 2, 2));
        // A state file that cannot be saved: its temporary name is taken by a directory.
        let b_tmp = state_file(&s.state_dir, &s.files[1].0).with_extension("pos.tmp");
        match crash {
            Crash::BetweenPlans => std::fs::create_dir(&b_tmp).unwrap(),
            Crash::PutFails => up.fail.store(true, Ordering::SeqCst),
            Crash::AfterPut => up.lose_reply.store(true, Ordering::SeqCst),
            Crash::BetweenAdvances => {
                let dir = b_tmp.clone();
                *up.on_put.lock().unwrap() =
                    Some(Box::new(move || std::fs::create_dir(&dir).unwrap()));
            }
        }
        let pass = pass_all(&mut fs, &up, &s, true).await;
        assert!(!pass.errors.is_empty(), "{what}");
        // What the state files say now (a stopped run leaves exactly them).
        drop(fs);
        let pending: Vec<Option<String>> = open_all(&s)
            .iter()
            .map(|f| {
                f.position()
                    .unwrap()
                    .pending
                    .as_ref()
                    .map(|p| p.key.clone())
            })
            .collect();
        let in_s3 = up.keys().len();
        match crash {
            Crash::BetweenPlans => {
                assert!(pending[0].is_some() && pending[1..].iter().all(Option::is_none));
                assert_eq!(in_s3, 1, "{what}");
            }
            Crash::PutFails | Crash::AfterPut => {
                assert!(pending.iter().all(|p| p.is_some() && *p == pending[0]));
                assert_eq!(
                    in_s3,
                    if matches!(crash, Crash::AfterPut) {
                        2
                    } else {
                        1
                    }
                );
            }
            Crash::BetweenAdvances => {
                assert!(pending[0].is_none() && pending[1].is_some() && pending[1] == pending[2]);
                assert_eq!(in_s3, 2, "{what}");
            }
        }
        let _ = std::fs::remove_dir(&b_tmp);
        up.fail.store(false, Ordering::SeqCst);
        up.lose_reply.store(false, Ordering::SeqCst);
        // The next run.
        let mut fs = open_all(&s);
        let pass = pass_all(&mut fs, &up, &s, true).await;
        assert!(pass.errors.is_empty(), "{what}: {:?}", pass.errors);
        exactly_once(&up, &written, &what);
        assert_eq!(up.keys().len(), objects, "{what}: {:?}", up.keys());
        for f in &fs {
            let pos = f.position().unwrap();
            assert_eq!(pos.pending, None, "{what}");
            assert_eq!(
                pos.offset,
                std::fs::metadata(&f.path).unwrap().len(),
                "{what}"
            );
        }
        // And nothing again.
        assert_eq!(pass_all(&mut fs, &up, &s, true).await.shipped.segments, 0);
    }
}

/// One file of the bundle rotated by rename, another by copytruncate, between two passes:
/// every line once, the rotated files' rests included.
#[tokio::test]
async fn rotating_files_of_the_bundle_mid_run_loses_and_repeats_nothing() {
    let dir = Scratch::new("bundle-rotate");
    let s = sites(&dir.0, &SITES[..3]);
    let mut written = write_lines(&s, 0, 2);
    let up = Fake::default();
    let mut fs = open_all(&s);
    assert!(pass_all(&mut fs, &up, &s, true).await.errors.is_empty());
    written.extend(write_lines(&s, 2, 2));
    // a: renamed, nginx writes a new file; b: copied and truncated, then written again.
    let (a, b) = (&s.files[0].0, &s.files[1].0);
    std::fs::rename(a, a.with_extension("log.1")).unwrap();
    std::fs::copy(b, b.with_extension("log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(b)
        .unwrap()
        .set_len(0)
        .unwrap();
    written.extend(write_lines(&s, 4, 1));
    let pass = pass_all(&mut fs, &up, &s, true).await;
    assert!(pass.errors.is_empty(), "{:?}", pass.errors);
    exactly_once(&up, &written, "after the rotations");
    assert_eq!(fs[0].position().unwrap().generation, 1);
    assert_eq!(fs[1].position().unwrap().generation, 1);
    written.extend(write_lines(&s, 5, 1));
    let pass = pass_all(&mut fs, &up, &s, true).await;
    assert_eq!(pass.shipped.segments, 1);
    exactly_once(&up, &written, "the interval after");
}

/// Each run of lines names its file's candidate formats (newest first): files with the same
/// candidates are adjacent and one part; each format object is put once, before the first
/// object that names it; more than MAX_OBJECT_FORMATS formats split the bundle.
#[tokio::test]
async fn a_bundle_names_each_files_candidate_formats_and_splits_beyond_the_limit() {
    let dir = Scratch::new("bundle-formats");
    let s = sites(&dir.0, &SITES[..3]);
    let key = |x: &str| format!("nginx/{ID}/formats/{x}");
    let up = Fake::default();
    let mut fs = open_all(&s);
    // c is written by y now and was by x before; a and b by x. Sorted: a, b (x), c (y, x).
    for f in &mut fs[..2] {
        f.set_formats(vec![(key("x"), "'$x'".into())]);
    }
    fs[2].set_formats(vec![(key("y"), "'$y'".into()), (key("x"), "'$x'".into())]);
    let written = write_lines(&s, 0, 1);
    assert!(pass_all(&mut fs, &up, &s, true).await.errors.is_empty());
    exactly_once(&up, &written, "formats");
    let named: Vec<plan::ObjectFormats> = up.named.lock().unwrap().values().cloned().collect();
    let (la, lb) = (SITES[0].len() + 3, SITES[1].len() + 3);
    assert_eq!(
        named,
        vec![plan::ObjectFormats::Many {
            keys: vec![key("x"), key("y")],
            parts: Some(format!("{}:0 {}:1.0", la + lb, SITES[2].len() + 3)),
        }]
    );
    assert_eq!(up.formats.lock().unwrap().len(), 2);
    assert!(up.unnamed.lock().unwrap().is_empty());

    // Ten files, ten formats: two objects, each naming at most MAX_OBJECT_FORMATS.
    let names: Vec<String> = (0..10).map(|i| format!("site{i}.access.log")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let dir = Scratch::new("bundle-formats-10");
    let s = sites(&dir.0, &names);
    let up = Fake::default();
    let mut fs = open_all(&s);
    for (i, f) in fs.iter_mut().enumerate() {
        f.set_formats(vec![(key(&format!("f{i}")), format!("'$f{i}'"))]);
    }
    let written = write_lines(&s, 0, 2);
    let pass = pass_all(&mut fs, &up, &s, true).await;
    assert!(pass.errors.is_empty(), "{:?}", pass.errors);
    assert_eq!(pass.shipped.segments, 2);
    exactly_once(&up, &written, "ten formats");
    let counts: Vec<usize> = up
        .named
        .lock()
        .unwrap()
        .values()
        .map(|f| f.keys().len())
        .collect();
    assert!(
        counts.iter().all(|n| *n <= plan::MAX_OBJECT_FORMATS) && counts.iter().sum::<usize>() == 10,
        "{counts:?}"
    );
    assert!(up.unnamed.lock().unwrap().is_empty());
}

/// `run --once` takes each kind's files together: three access logs and an error log make
/// two objects.
#[tokio::test]
async fn run_ships_one_object_per_kind() {
    let dir = Scratch::new("bundle-run");
    let mut s = sites(&dir.0, &SITES[..3]);
    s.files
        .push((dir.0.join("shop.example.com.error.log"), LogKind::Error));
    let written = write_lines(&s, 0, 2);
    let up = Fake::default();
    assert_eq!(run(&s, &up, ID).await.unwrap(), ExitCode::SUCCESS);
    exactly_once(&up, &written, "run");
    let keys = up.keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.contains("/access/") && k.contains("/bundle-"))
    );
    assert!(
        keys.iter()
            .any(|k| k.contains("/error/") && !k.contains("/bundle-"))
    );
}

/// What a segment and a bundle say of themselves in their metadata.
#[test]
fn object_metadata_of_a_segment_and_a_bundle() {
    let seg = |sources: Vec<Source<'static>>, formats| Segment {
        key: "k",
        body: Vec::new(),
        sources,
        formats,
    };
    let one = Source {
        path: "/var/log/nginx/shop example.log",
        start: 10,
        end: 20,
    };
    let other = Source {
        path: "/var/log/nginx/b.log",
        start: 0,
        end: 5,
    };
    assert_eq!(
        object_metadata(&seg(
            vec![one.clone()],
            plan::ObjectFormats::One("p/i-1/formats/x y".into())
        )),
        vec![
            (META_LOG_FORMAT, "p/i-1/formats/x%20y".to_string()),
            (META_SOURCE, "/var/log/nginx/shop%20example.log".into()),
            (META_BYTES, "10-20".into()),
        ]
    );
    assert_eq!(
        object_metadata(&seg(
            vec![one, other],
            plan::ObjectFormats::Many {
                keys: vec!["p/x".into(), "p/y".into()],
                parts: Some("10:0 5:1.0".into()),
            }
        )),
        vec![
            (META_LOG_FORMATS, "p/x p/y".to_string()),
            (META_PARTS, "10:0 5:1.0".into()),
            (META_FILES, "2".into()),
        ]
    );
}

/// A run stops with a bundle planned (every plan saved, nothing put); before the next run one
/// of its files is rotated by copytruncate and written again: the next run reads that file's
/// planned bytes from the copy, under the planned key, and every line arrives once.
#[tokio::test]
async fn a_bundle_planned_before_a_copytruncate_is_sent_from_the_copy() {
    let dir = Scratch::new("bundle-plan-copy");
    let s = sites(&dir.0, &SITES[..3]);
    let mut written = write_lines(&s, 0, 2);
    let up = Fake::default();
    let mut fs = open_all(&s);
    assert!(pass_all(&mut fs, &up, &s, true).await.errors.is_empty());
    written.extend(write_lines(&s, 2, 2));
    up.fail.store(true, Ordering::SeqCst);
    assert!(!pass_all(&mut fs, &up, &s, true).await.errors.is_empty());
    drop(fs);
    let state = std::fs::read_to_string(state_file(&s.state_dir, &s.files[1].0)).unwrap();
    let planned = state
        .lines()
        .find_map(|l| l.strip_prefix("bundle "))
        .and_then(|v| v.split_once(' '))
        .map(|(_, key)| key.to_string())
        .unwrap_or_else(|| panic!("no bundle plan in {state}"));
    let b = &s.files[1].0;
    std::fs::copy(b, b.with_extension("log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(b)
        .unwrap()
        .set_len(0)
        .unwrap();
    let line = format!("{} after", SITES[1]);
    append(b, &format!("{line}\n"));
    written.push(line);
    up.fail.store(false, Ordering::SeqCst);
    let mut fs = open_all(&s);
    let pass = pass_all(&mut fs, &up, &s, true).await;
    assert!(pass.errors.is_empty(), "{:?}", pass.errors);
    exactly_once(&up, &written, "planned, then copytruncate");
    let sources = up.sources.lock().unwrap()[&planned].clone();
    assert_eq!(sources.len(), 3, "the planned bundle, whole: {sources:?}");
    assert_eq!(fs[1].position().unwrap().generation, 1);
}

/// What the follower writes of a bundle's formats is what the forwarder reads: the keys in
/// order, and for each file's lines its candidates, newest first (the forwarder's decoders).
#[test]
fn a_bundles_format_metadata_reads_back_through_the_forwarders_decoders() {
    use ncf_parse::object_format::{Candidate, candidates_at, decode_formats, decode_parts};
    let key = |text: &str| format_key("nginx/", ID, text);
    let (x, y) = (key("'$x'"), key("'$y'"));
    let none: Vec<String> = Vec::new();
    let files: [(u64, Vec<String>); 4] = [
        (100, vec![x.clone()]),
        (50, vec![x.clone()]),
        (70, vec![y.clone(), x.clone()]),
        (30, none),
    ];
    let runs: Vec<(u64, &[String])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    let formats = plan::object_formats(&runs);
    let meta: BTreeMap<&str, String> = format_metadata(&formats).into_iter().collect();
    let keys = decode_formats(&meta[META_LOG_FORMATS]).unwrap();
    assert_eq!(keys, vec![x.clone(), y.clone()]);
    let parts = decode_parts(&meta[META_PARTS], keys.len()).unwrap();
    let mut offset = 0;
    for (bytes, candidates) in &files {
        let want: Vec<Candidate> = if candidates.is_empty() {
            vec![Candidate::Default]
        } else {
            candidates
                .iter()
                .map(|k| Candidate::Named(keys.iter().position(|x| x == k).unwrap()))
                .collect()
        };
        for at in [offset, offset + bytes - 1] {
            assert_eq!(candidates_at(&parts, keys.len(), at), want, "at {at}");
        }
        offset += bytes;
    }
    assert_eq!(parts.last().map(|p| p.end), Some(offset));
    // One file with two candidates: no parts, every line takes both in order.
    let two = [y.clone(), x.clone()];
    let meta: BTreeMap<&str, String> =
        format_metadata(&plan::object_formats(&[(10, two.as_slice())]))
            .into_iter()
            .collect();
    assert_eq!(
        decode_formats(&meta[META_LOG_FORMATS]).unwrap(),
        two.to_vec()
    );
    assert!(!meta.contains_key(META_PARTS));
}
