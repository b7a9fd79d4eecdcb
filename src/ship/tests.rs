//! The follower's loop against a fake uploader and real files in a scratch directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

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
    sources: Mutex<BTreeMap<String, Vec<(String, u64, u64)>>>,
    /// Objects that named a format object not put before them.
    unnamed: Mutex<Vec<String>>,
    /// A crash right after S3 stored the object: the put's answer never arrives.
    lose_reply: std::sync::atomic::AtomicBool,
    /// Run at each put, before anything else (a crash point set up by the test).
    on_put: Mutex<Option<Box<dyn FnMut() + Send>>>,
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
        if let Some(hook) = self.on_put.lock().unwrap().as_mut() {
            hook();
        }
        if self.fail.load(Ordering::SeqCst) {
            return Err(UploadError {
                bucket: "b".into(),
                key: seg.key.into(),
                detail: "injected".into(),
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
        imds_endpoint: DEFAULT_IMDS_ENDPOINT.into(),
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
