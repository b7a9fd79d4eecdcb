//! The follower's pure core: the saved position and its text encoding, segment keys, where a
//! segment is cut, and what to do next given the position and what the filesystem shows.
//! No I/O here; `ship::run` does the reading, the uploads and the saves.

use ncf_core::route::LogKind;

/// A file's identity: device and inode (what survives a rename, unlike the path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A segment planned and about to be uploaded (written before the PUT, so that a restart
/// re-sends exactly the same bytes under the same key instead of a different cut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSegment {
    /// Offset one past the segment's last byte (it starts at [`Position::offset`]).
    pub end: u64,
    pub key: String,
    /// The object is a bundle: other files' plans may name the same key. Saved as `bundle`
    /// instead of `pending`, so that a follower from before bundles refuses the state file
    /// (and says so) rather than send the key for this file alone, which would make the other
    /// files' plans find it there and skip their lines.
    pub bundle: bool,
}

/// Where a followed path stands: every byte of `file` before `offset` is in S3.
///
/// `generation` counts the files (and truncations) this path has gone through; it never goes
/// back, so `(generation, offset)` names a byte of this path's history uniquely even when
/// `copytruncate` restarts a file at 0 or an inode number is reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub file: FileId,
    pub generation: u64,
    pub offset: u64,
    pub pending: Option<PendingSegment>,
    /// The file's first bytes as shipped: if they change, the file was truncated and written
    /// again (`copytruncate`) even when it has grown past the offset since.
    pub head: Option<Head>,
}

/// A fingerprint of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: u64,
    pub hash: u64,
}

/// How many of a file's first bytes the fingerprint covers (an access line's time is in them).
pub const HEAD_BYTES: u64 = 256;

impl Head {
    /// FNV-1a, 64 bit: stable across builds and platforms, unlike std's hasher.
    pub fn of(bytes: &[u8]) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self {
            len: bytes.len() as u64,
            hash,
        }
    }
}

/// First line of a state file; the number is the format version.
pub const STATE_MAGIC: &str = "ncf-ship-position 1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("not a position file (first line is not {STATE_MAGIC:?})")]
    Magic,
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("field {0:?} is missing")]
    Missing(&'static str),
    #[error("pending segment ends at {end}, before the offset {offset}")]
    PendingBeforeOffset { end: u64, offset: u64 },
}

impl Position {
    /// A fresh file: nothing of it shipped.
    pub fn start(file: FileId, generation: u64) -> Self {
        Self {
            file,
            generation,
            offset: 0,
            pending: None,
            head: None,
        }
    }

    /// The state file's text; `path` goes into a comment for people reading it.
    pub fn encode(&self, path: &str) -> String {
        let mut s = format!(
            "{STATE_MAGIC}\n# position of {path:?}: bytes before offset are in S3\ndev {}\nino {}\ngeneration {}\noffset {}\n",
            self.file.dev, self.file.ino, self.generation, self.offset
        );
        if let Some(h) = &self.head {
            s.push_str(&format!("head {} {:016x}\n", h.len, h.hash));
        }
        if let Some(p) = &self.pending {
            let field = if p.bundle { "bundle" } else { "pending" };
            s.push_str(&format!("{field} {} {}\n", p.end, p.key));
        }
        s
    }

    pub fn decode(text: &str) -> Result<Self, StateError> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l)) if l == STATE_MAGIC => {}
            _ => return Err(StateError::Magic),
        }
        let (mut dev, mut ino, mut generation, mut offset, mut pending, mut head) =
            (None, None, None, None, None, None);
        for (i, line) in lines {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| StateError::Line { line: i + 1, why };
            let (field, value) = line
                .split_once(' ')
                .ok_or_else(|| bad(format!("{line:?} has no value")))?;
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{field}: {v:?} is not a whole number")))
            };
            match field {
                "dev" => dev = Some(number(value)?),
                "ino" => ino = Some(number(value)?),
                "generation" => generation = Some(number(value)?),
                "offset" => offset = Some(number(value)?),
                "head" => {
                    let (len, hash) = value
                        .split_once(' ')
                        .ok_or_else(|| bad("head needs a length and a hash".into()))?;
                    head = Some(Head {
                        len: number(len)?,
                        hash: u64::from_str_radix(hash, 16)
                            .map_err(|_| bad(format!("head: {hash:?} is not a hex hash")))?,
                    });
                }
                "pending" | "bundle" => {
                    let (end, key) = value
                        .split_once(' ')
                        .ok_or_else(|| bad(format!("{field} needs an end offset and a key")))?;
                    if key.is_empty() {
                        return Err(bad(format!("{field} has an empty key")));
                    }
                    pending = Some(PendingSegment {
                        end: number(end)?,
                        key: key.to_string(),
                        bundle: field == "bundle",
                    });
                }
                other => return Err(bad(format!("unknown field {other:?}"))),
            }
        }
        let pos = Position {
            file: FileId {
                dev: dev.ok_or(StateError::Missing("dev"))?,
                ino: ino.ok_or(StateError::Missing("ino"))?,
            },
            generation: generation.ok_or(StateError::Missing("generation"))?,
            offset: offset.ok_or(StateError::Missing("offset"))?,
            pending,
            head,
        };
        if let Some(p) = &pos.pending
            && p.end < pos.offset
        {
            return Err(StateError::PendingBeforeOffset {
                end: p.end,
                offset: pos.offset,
            });
        }
        Ok(pos)
    }
}

/// The log type of a followed file, from its name as `ship-nginx-logs.sh` decides it:
/// `access*` → access, `error*` → error, anything else is not followed.
pub fn kind_of(name: &str) -> Option<LogKind> {
    if name.starts_with("access") {
        Some(LogKind::Access)
    } else if name.starts_with("error") {
        Some(LogKind::Error)
    } else {
        None
    }
}

/// `NGINX_LOG_PREFIX` as the shell shipper normalises it: default `nginx/`, leading and
/// trailing slashes dropped, one `/` appended unless empty (set but empty: no prefix).
pub fn normalise_prefix(raw: Option<&str>) -> String {
    let p = raw.unwrap_or("nginx/").trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

/// Which segment follows the prefix in every key this host writes (`NGINX_LOG_KEY_LAYOUT`,
/// `ship --key-layout`; the same values in scripts/ship-nginx-logs.sh). The forwarder's default
/// `KEY_PATTERN` routes both to the instance's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyLayout {
    /// `<prefix><instance-id>/…`: as before the layouts.
    #[default]
    Instance,
    /// `<prefix><role-id>:<instance-id>/…`: the caller's `aws:userid`, under which the stack's
    /// host policy (the `HostUploadPolicyArn` output) lets each instance write and nothing else.
    Userid,
}

impl KeyLayout {
    /// `instance` or `userid` (spaces around ignored).
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        match value.trim() {
            "instance" => Ok(Self::Instance),
            "userid" => Ok(Self::Userid),
            _ => Err("must be instance or userid"),
        }
    }
}

/// What an upload denied under [`KeyLayout::Instance`] says besides S3's answer: the likely
/// cause is the host policy, which allows only the `userid` layout.
pub const INSTANCE_LAYOUT_DENIED_HINT: &str = "access denied under the instance key layout: a host whose role has the stack's host policy (the HostUploadPolicyArn output) may write only under <prefix><its aws:userid>/, so set NGINX_LOG_KEY_LAYOUT=userid (ship --key-layout userid)";

/// `UserId` (what STS GetCallerIdentity answered) is not the `aws:userid` of this instance's
/// profile credentials: other credentials (a user's keys, an assumed role, a profile) would
/// write under a prefix the host policy does not give this instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not running with this instance's profile credentials: UserId is {user_id:?}, not AROA…:{instance_id} (NGINX_LOG_KEY_LAYOUT=userid keys objects by the instance profile's aws:userid; leave AWS_ACCESS_KEY_ID, AWS_PROFILE and the like unset on the host)"
)]
pub struct NotInstanceProfile {
    pub user_id: String,
    pub instance_id: String,
}

/// The key segment of [`KeyLayout::Userid`]: `user_id` itself when it is
/// `AROA<1 to 124 of 0-9 A-Z>:<instance_id>`, the form IAM gives an instance profile's session
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html#principaltable>);
/// the forwarder's default `KEY_PATTERN` reads the same form.
pub fn userid_segment(user_id: &str, instance_id: &str) -> Result<String, NotInstanceProfile> {
    let role_id = user_id
        .strip_suffix(instance_id)
        .and_then(|r| r.strip_suffix(':'));
    match role_id {
        Some(r) if ncf_core::route::is_role_id(r) => Ok(user_id.to_string()),
        _ => Err(NotInstanceProfile {
            user_id: user_id.to_string(),
            instance_id: instance_id.to_string(),
        }),
    }
}

/// What a segment's key is made of. Everything in it is fixed once the segment is planned, and
/// the pair (generation, start) is unique for a path, so one key never names two contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentName<'a> {
    /// Normalised, see [`normalise_prefix`].
    pub prefix: &'a str,
    /// The segment after the prefix: the instance ID, or `<role-id>:<instance-id>` under
    /// [`KeyLayout::Userid`].
    pub instance_id: &'a str,
    pub kind: LogKind,
    /// UTC day the segment was planned, `YYYY/MM/DD`.
    pub day: &'a str,
    /// File name of the followed path, e.g. `access.log`.
    pub name: &'a str,
    pub file: FileId,
    pub generation: u64,
    pub start: u64,
    pub end: u64,
}

/// `PREFIX<instance-id>/<access|error>/YYYY/MM/DD/<name>-<dev hex>.<inode>.g<generation>-<start>-<end>.gz`,
/// e.g. `nginx/i-0123456789abcdef0/access/2026/11/30/access.log-803.1311.g2-0-52817.gz`:
/// the default `KEY_PATTERN` routes it like the shell shipper's keys.
pub fn segment_key(n: &SegmentName<'_>) -> String {
    format!("{}{}", day_folder(n), part_name(n))
}

/// `PREFIX<instance-id>/<access|error>/YYYY/MM/DD/`: where `n`'s objects go.
fn day_folder(n: &SegmentName<'_>) -> String {
    format!(
        "{}{}/{}/{}/",
        n.prefix,
        n.instance_id,
        kind_dir(n.kind),
        n.day
    )
}

/// `<name>-<dev hex>.<inode>.g<generation>-<start>-<end>.gz`: one file's byte range, named once.
fn part_name(n: &SegmentName<'_>) -> String {
    format!(
        "{}-{:x}.{}.g{}-{}-{}.gz",
        n.name, n.file.dev, n.file.ino, n.generation, n.start, n.end
    )
}

/// `PREFIX<instance-id>/<access|error>/YYYY/MM/DD/bundle-<planned, Unix ms>-<first part's segment name>`,
/// e.g. `nginx/i-0123456789abcdef0/access/2026/12/05/bundle-1764903600123-shop.example.com.access.log-803.1311.g0-0-5120.gz`:
/// the key of an object holding the lines of several files of one kind (a *bundle*), named
/// after its first part (`n`: that file's name, identity, generation and byte range) and the
/// time it was planned. The first part alone is unique (a file's range ships once); the time
/// keeps a plan that had to be dropped (its bytes could not be read again) from ever naming
/// what a later plan holds. The default `KEY_PATTERN` routes it like a segment.
pub fn bundle_key(n: &SegmentName<'_>, planned_ms: i64) -> String {
    format!("{}bundle-{planned_ms}-{}", day_folder(n), part_name(n))
}

fn kind_dir(kind: LogKind) -> &'static str {
    match kind {
        LogKind::Access => "access",
        LogKind::Error => "error",
    }
}

/// At most this many format objects are named by one object (`ncf-log-formats`): the
/// forwarder reads at most as many. A bundle whose files name more is split into several
/// objects.
pub use ncf_parse::object_format::MAX_OBJECT_FORMATS;

/// Which `log_format`s wrote an object's lines, as its metadata says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectFormats {
    /// No line's format is known (the deployment's `ACCESS_LOG_FORMAT` applies): no metadata.
    Unknown,
    /// Every line was written by this one format (`ncf-log-format`, as before bundles).
    One(String),
    /// `ncf-log-formats`: the format-object keys, in order of first use; `ncf-parts` when the
    /// lines do not all take every key as candidates, in order.
    Many {
        keys: Vec<String>,
        parts: Option<String>,
    },
}

impl ObjectFormats {
    /// The format-object keys named.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Self::Unknown => Vec::new(),
            Self::One(k) => vec![k.as_str()],
            Self::Many { keys, .. } => keys.iter().map(String::as_str).collect(),
        }
    }
}

/// What the metadata of an object made of `parts` says of its formats: each part is a run of
/// whole lines (`bytes`, the candidate format keys of the file it came from, newest first), in
/// body order. Adjacent parts with the same candidates are one part of `ncf-parts`
/// (`<bytes>:<i>.<j>` with indexes into the keys, `-` for none known).
pub fn object_formats(parts: &[(u64, &[String])]) -> ObjectFormats {
    let mut runs: Vec<(u64, &[String])> = Vec::new();
    for &(bytes, candidates) in parts {
        match runs.last_mut() {
            Some((b, c)) if *c == candidates => *b += bytes,
            _ => runs.push((bytes, candidates)),
        }
    }
    let mut keys: Vec<String> = Vec::new();
    for (_, candidates) in &runs {
        for k in candidates.iter() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    match runs.as_slice() {
        _ if keys.is_empty() => ObjectFormats::Unknown,
        [(_, only)] if only.len() == 1 => ObjectFormats::One(keys.remove(0)),
        [(_, only)] if *only == keys.as_slice() => ObjectFormats::Many { keys, parts: None },
        _ => {
            let text: Vec<String> = runs
                .iter()
                .map(|(bytes, candidates)| {
                    let idx: Vec<String> = candidates
                        .iter()
                        .filter_map(|k| keys.iter().position(|x| x == k))
                        .map(|i| i.to_string())
                        .collect();
                    if idx.is_empty() {
                        format!("{bytes}:-")
                    } else {
                        format!("{bytes}:{}", idx.join("."))
                    }
                })
                .collect();
            ObjectFormats::Many {
                keys,
                parts: Some(text.join(" ")),
            }
        }
    }
}

/// How many bytes of `buf` (read from the position on, at most a segment's worth) go into the
/// next segment: up to and including the last newline, so that a partial last line waits.
/// `finished` (the file will not grow: rotated away and nginx writes elsewhere) ships the rest
/// too; `full` (`buf` is a whole segment) ships a line longer than a segment in pieces rather
/// than waiting for ever.
pub fn cut(buf: &[u8], finished: bool, full: bool) -> usize {
    if finished {
        return buf.len();
    }
    match memchr::memrchr(b'\n', buf) {
        Some(i) => i + 1,
        None if full => buf.len(),
        None => 0,
    }
}

/// A file as seen: its identity and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub id: FileId,
    pub size: u64,
}

/// What to do next for one followed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No position yet: follow the file at the path from byte 0, generation 0.
    Start { file: FileId },
    /// Bytes `from..to` of the followed file are not shipped yet. `finished`: the file was
    /// rotated away and nginx writes to a new one, so a partial last line is final.
    Read { from: u64, to: u64, finished: bool },
    /// The followed file is smaller than the position: truncated in place (`copytruncate`).
    /// Start it again at 0 with the next generation; `lost` bytes (known to have been written
    /// after the position but not shipped) were copied elsewhere by the rotation.
    Truncated { lost: Option<u64> },
    /// The followed file is done (shipped to its end, or gone): follow `to` from 0 with the next
    /// generation. `gone` when the old file could not be reached any more (compressed or
    /// deleted), with the bytes known to be unshipped when known.
    Switch { to: FileId, gone: Option<Gone> },
    /// Nothing to do now.
    Idle,
}

/// The followed file could not be found any more before it was shipped to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone {
    /// Where shipping stopped.
    pub offset: u64,
    /// Bytes known to have been in it past the offset (its size when last seen), if known.
    pub unshipped: Option<u64>,
}

/// The next step for a path.
/// - `current`: the file the path names now (None: no file there);
/// - `followed`: the followed file (`pos.file`) if it can still be read (through a kept handle,
///   the path, or a rotated name), with its size;
/// - `last_seen`: the followed file's size when last looked at, in this process;
/// - `rewritten`: the followed file's first bytes no longer match [`Position::head`].
pub fn next_step(
    pos: Option<&Position>,
    current: Option<Seen>,
    followed: Option<Seen>,
    last_seen: Option<u64>,
    rewritten: bool,
) -> Step {
    let Some(pos) = pos else {
        return match current {
            Some(c) => Step::Start { file: c.id },
            None => Step::Idle,
        };
    };
    let moved_on = current.filter(|c| c.id != pos.file);
    match followed {
        Some(f) if f.size < pos.offset || rewritten => Step::Truncated {
            lost: last_seen
                .filter(|s| *s > pos.offset)
                .map(|s| s - pos.offset),
        },
        Some(f) if f.size > pos.offset => Step::Read {
            from: pos.offset,
            to: f.size,
            // nginx writes to the new file: it has reopened its logs.
            finished: moved_on.is_some_and(|c| c.size > 0),
        },
        // Shipped to its end; a new file with data means nginx will not write here again.
        Some(_) => match moved_on {
            Some(c) if c.size > 0 => Step::Switch {
                to: c.id,
                gone: None,
            },
            _ => Step::Idle,
        },
        None => match moved_on {
            Some(c) => Step::Switch {
                to: c.id,
                gone: Some(Gone {
                    offset: pos.offset,
                    unshipped: last_seen
                        .filter(|s| *s > pos.offset)
                        .map(|s| s - pos.offset),
                }),
            },
            None => Step::Idle,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: FileId = FileId { dev: 2049, ino: 11 };
    const B: FileId = FileId { dev: 2049, ino: 12 };

    fn pos(offset: u64) -> Position {
        Position {
            file: A,
            generation: 3,
            offset,
            pending: None,
            head: None,
        }
    }

    fn seen(id: FileId, size: u64) -> Option<Seen> {
        Some(Seen { id, size })
    }

    #[test]
    fn key_layouts() {
        let rows: [(&str, Result<KeyLayout, &str>); 6] = [
            ("instance", Ok(KeyLayout::Instance)),
            ("userid", Ok(KeyLayout::Userid)),
            (" userid ", Ok(KeyLayout::Userid)),
            ("UserId", Err("must be instance or userid")),
            ("aws:userid", Err("must be instance or userid")),
            ("role", Err("must be instance or userid")),
        ];
        for (value, want) in rows {
            assert_eq!(KeyLayout::parse(value), want, "{value:?}");
        }
        assert_eq!(KeyLayout::default(), KeyLayout::Instance);
    }

    /// What STS may answer on a host (`UserId`), and whether it is the instance profile's
    /// `aws:userid` for instance `i-0123456789abcdef0` (or `i-01234567`).
    #[test]
    fn userid_segments() {
        let long = format!("AROA{}:i-0123456789abcdef0", "Z".repeat(124));
        let too_long = format!("AROA{}:i-0123456789abcdef0", "Z".repeat(125));
        let rows: [(&str, &str, bool); 14] = [
            (
                "AROA3XFRBF535EXAMPLE1:i-0123456789abcdef0",
                "i-0123456789abcdef0",
                true,
            ),
            ("AROAX:i-01234567", "i-01234567", true),
            (&long, "i-0123456789abcdef0", true),
            (&too_long, "i-0123456789abcdef0", false),
            // Another instance's session (a role assumed with another instance's ID as name).
            (
                "AROA3XFRBF535EXAMPLE1:i-0fedcba987654321f",
                "i-0123456789abcdef0",
                false,
            ),
            // An assumed role with another session name; an IAM user; the root user.
            (
                "AROA3XFRBF535EXAMPLE1:operator",
                "i-0123456789abcdef0",
                false,
            ),
            ("AIDAJ4W5SF5AANMKCKRVW", "i-0123456789abcdef0", false),
            ("123456789012", "i-0123456789abcdef0", false),
            // A federated user; not a role ID; no role ID; lower case; extra text.
            (
                "123456789012:i-0123456789abcdef0",
                "i-0123456789abcdef0",
                false,
            ),
            ("AIDAX:i-0123456789abcdef0", "i-0123456789abcdef0", false),
            ("AROA:i-0123456789abcdef0", "i-0123456789abcdef0", false),
            ("AROAabc:i-0123456789abcdef0", "i-0123456789abcdef0", false),
            ("AROAX:i-0123456789abcdef0 ", "i-0123456789abcdef0", false),
            ("AROAX:xi-0123456789abcdef0", "i-0123456789abcdef0", false),
        ];
        for (user_id, instance, ok) in rows {
            let got = userid_segment(user_id, instance);
            assert_eq!(got.is_ok(), ok, "{user_id:?} for {instance}: {got:?}");
            if ok {
                assert_eq!(got.as_deref(), Ok(user_id));
            } else {
                let e = got.unwrap_err().to_string();
                assert!(
                    e.starts_with(
                        "not running with this instance's profile credentials: UserId is "
                    ) && e.contains(instance),
                    "{e}"
                );
            }
        }
    }

    /// what, position, file at the path, followed file, last seen size, expected step.
    type Row<'a> = (
        &'a str,
        Option<&'a Position>,
        Option<Seen>,
        Option<Seen>,
        Option<u64>,
        Step,
    );

    #[test]
    fn steps() {
        let p = pos(100);
        #[rustfmt::skip]
        let table: Vec<Row<'_>> = vec![
            ("fresh, file there", None, seen(A, 5), None, None, Step::Start { file: A }),
            ("fresh, no file yet", None, None, None, None, Step::Idle),
            ("up to date", Some(&p), seen(A, 100), seen(A, 100), None, Step::Idle),
            ("grew", Some(&p), seen(A, 150), seen(A, 150), None,
                Step::Read { from: 100, to: 150, finished: false }),
            ("copytruncate, nothing known lost", Some(&p), seen(A, 10), seen(A, 10), Some(100),
                Step::Truncated { lost: None }),
            ("copytruncate after growth we saw", Some(&p), seen(A, 0), seen(A, 0), Some(130),
                Step::Truncated { lost: Some(30) }),
            ("renamed, nginx not reopened yet: old still read, not finished", Some(&p), seen(B, 0), seen(A, 120), None,
                Step::Read { from: 100, to: 120, finished: false }),
            ("renamed, nginx writes the new file: old finished", Some(&p), seen(B, 7), seen(A, 120), None,
                Step::Read { from: 100, to: 120, finished: true }),
            ("renamed, old shipped to its end, new has data", Some(&p), seen(B, 7), seen(A, 100), None,
                Step::Switch { to: B, gone: None }),
            ("renamed, old shipped, new still empty: wait", Some(&p), seen(B, 0), seen(A, 100), None, Step::Idle),
            ("renamed and compressed away", Some(&p), seen(B, 7), None, Some(160),
                Step::Switch { to: B, gone: Some(Gone { offset: 100, unshipped: Some(60) }) }),
            ("renamed and gone, size unknown", Some(&p), seen(B, 0), None, None,
                Step::Switch { to: B, gone: Some(Gone { offset: 100, unshipped: None }) }),
            ("path removed, old still open", Some(&p), None, seen(A, 130), None,
                Step::Read { from: 100, to: 130, finished: false }),
            ("path removed, nothing to read", Some(&p), None, None, None, Step::Idle),
        ];
        for (what, p, current, followed, last_seen, want) in table {
            assert_eq!(
                next_step(p, current, followed, last_seen, false),
                want,
                "{what}"
            );
        }
        // Truncated and written past the offset again: only the first bytes tell.
        assert_eq!(
            next_step(Some(&p), seen(A, 500), seen(A, 500), Some(100), true),
            Step::Truncated { lost: None }
        );
    }

    #[test]
    fn cuts_at_the_last_newline() {
        #[rustfmt::skip]
        let table: [(&[u8], bool, bool, usize); 8] = [
            (b"", false, false, 0),
            (b"a\nb\n", false, false, 4),
            (b"a\nb\npart", false, false, 4),
            (b"partial", false, false, 0),
            (b"partial", true, false, 7),
            (b"a\npart", true, false, 6),
            (b"longer than a segment", false, true, 21),
            (b"a\nlonger than", false, true, 2),
        ];
        for (buf, finished, full, want) in table {
            assert_eq!(
                cut(buf, finished, full),
                want,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn position_round_trips_and_rejects_damage() {
        let mut p = pos(4096);
        assert_eq!(
            Position::decode(&p.encode("/var/log/nginx/access.log")),
            Ok(p.clone())
        );
        p.pending = Some(PendingSegment {
            end: 8192,
            key: "nginx/i-0123abcd/access/2026/11/30/access log-801.11.g3-4096-8192.gz".into(),
            bundle: false,
        });
        assert_eq!(Position::decode(&p.encode("/x")), Ok(p.clone()));
        // A bundle's plan: its own field, which a follower from before bundles refuses.
        let mut b = p.clone();
        b.pending = Some(PendingSegment {
            end: 8192,
            key: "nginx/i-0123abcd/access/2026/11/30/bundle-1764903600123-a.log-801.11.g3-4096-8192.gz"
                .into(),
            bundle: true,
        });
        let text = b.encode("/x");
        assert!(
            text.contains("\nbundle 8192 nginx/") && !text.contains("pending"),
            "{text}"
        );
        assert_eq!(Position::decode(&text), Ok(b));
        p.head = Some(Head::of(b"10.0.0.1 - - [30/Nov/2026:04:00:00 +0000]"));
        assert_eq!(Position::decode(&p.encode("/x")), Ok(p.clone()));
        assert_eq!(Head::of(b"").hash, 0xcbf2_9ce4_8422_2325);
        assert_eq!(Head::of(b"a").hash, 0xaf63_dc4c_8601_ec8c);
        let good = p.encode("/x");
        #[rustfmt::skip]
        let bad: Vec<(String, StateError)> = vec![
            (String::new(), StateError::Magic),
            ("ncf-ship-position 2\n".into(), StateError::Magic),
            (good.replace("offset 4096", "offset -1"),
                StateError::Line { line: 6, why: "offset: \"-1\" is not a whole number".into() }),
            (good.replace("ino 11\n", ""), StateError::Missing("ino")),
            (good.replace("dev 2049", "colour blue"),
                StateError::Line { line: 3, why: "unknown field \"colour\"".into() }),
            (good.replace("offset 4096", "offset 9000"),
                StateError::PendingBeforeOffset { end: 8192, offset: 9000 }),
            (good.replace("generation 3", "generation"),
                StateError::Line { line: 5, why: "\"generation\" has no value".into() }),
        ];
        for (text, want) in bad {
            assert_eq!(Position::decode(&text), Err(want), "{text}");
        }
    }

    #[test]
    fn keys_and_kinds() {
        let key = segment_key(&SegmentName {
            prefix: &normalise_prefix(None),
            instance_id: "i-0123456789abcdef0",
            kind: LogKind::Access,
            day: "2026/11/30",
            name: "access.log",
            file: FileId {
                dev: 0x803,
                ino: 1311,
            },
            generation: 2,
            start: 0,
            end: 52817,
        });
        assert_eq!(
            key,
            "nginx/i-0123456789abcdef0/access/2026/11/30/access.log-803.1311.g2-0-52817.gz"
        );
        for (raw, want) in [
            (None, "nginx/"),
            (Some(""), ""),
            (Some("/"), ""),
            (Some("/prod/eu/"), "prod/eu/"),
            (Some("logs"), "logs/"),
        ] {
            assert_eq!(normalise_prefix(raw), want, "{raw:?}");
        }
        for (name, want) in [
            ("access.log", Some(LogKind::Access)),
            ("access_ssl.log", Some(LogKind::Access)),
            ("error.log", Some(LogKind::Error)),
            ("other.log", None),
            ("my-access.log", None),
        ] {
            assert_eq!(kind_of(name), want, "{name}");
        }
    }

    /// Bytes of lines and their candidate formats.
    type Run<'a> = (u64, &'a [String]);

    #[test]
    fn object_formats_name_each_run_of_lines() {
        let k = |s: &str| s.to_string();
        let (x, y, z) = (
            k("p/i-1/formats/x"),
            k("p/i-1/formats/y"),
            k("p/i-1/formats/z"),
        );
        let only_x = [x.clone()];
        let y_then_x = [y.clone(), x.clone()];
        let only_z = [z.clone()];
        let none: [String; 0] = [];
        #[rustfmt::skip]
        let table: Vec<(&str, Vec<Run<'_>>, ObjectFormats)> = vec![
            ("nothing known", vec![(10, &none), (5, &none)], ObjectFormats::Unknown),
            ("one format, one file: as before bundles", vec![(10, &only_x)], ObjectFormats::One(x.clone())),
            ("one format, several files", vec![(10, &only_x), (7, &only_x)], ObjectFormats::One(x.clone())),
            ("one file, two candidates: no parts needed", vec![(10, &y_then_x)],
                ObjectFormats::Many { keys: vec![y.clone(), x.clone()], parts: None }),
            ("adjacent equal lists merge", vec![(10, &only_x), (5, &only_x), (4, &y_then_x), (1, &none)],
                ObjectFormats::Many { keys: vec![x.clone(), y.clone()], parts: Some("15:0 4:1.0 1:-".into()) }),
            ("a file with no format beside one with", vec![(3, &none), (9, &only_z)],
                ObjectFormats::Many { keys: vec![z.clone()], parts: Some("3:- 9:0".into()) }),
        ];
        for (what, parts, want) in table {
            assert_eq!(object_formats(&parts), want, "{what}");
        }
    }

    #[test]
    fn bundle_keys_route_like_segments_and_name_their_first_part() {
        let config = ncf_core::config::Config::from_lookup(|_| None).unwrap();
        let name = SegmentName {
            prefix: "nginx/",
            instance_id: "i-0123456789abcdef0",
            kind: LogKind::Error,
            day: "2026/12/05",
            name: "shop.example.com.error.log",
            file: FileId {
                dev: 0x803,
                ino: 1311,
            },
            generation: 2,
            start: 100,
            end: 5120,
        };
        let key = bundle_key(&name, 1_764_903_600_123);
        assert_eq!(
            key,
            "nginx/i-0123456789abcdef0/error/2026/12/05/bundle-1764903600123-shop.example.com.error.log-803.1311.g2-100-5120.gz"
        );
        assert_ne!(key, segment_key(&name));
        let route = config.route.route(&key).unwrap();
        assert_eq!(
            (
                route.kind,
                route.log_group.as_str(),
                route.log_stream.as_str()
            ),
            (LogKind::Error, "nginx-error", "i-0123456789abcdef0")
        );
    }

    /// The forwarder's default routing takes the follower's keys to the right group and stream.
    #[test]
    fn default_key_pattern_routes_segment_keys() {
        let config = ncf_core::config::Config::from_lookup(|_| None).unwrap();
        for (kind, group) in [
            (LogKind::Access, "nginx-access"),
            (LogKind::Error, "nginx-error"),
        ] {
            for prefix in ["nginx/", "", "prod/eu/"] {
                for id in ["i-0123456789abcdef0", "i-0123abcd"] {
                    let key = segment_key(&SegmentName {
                        prefix,
                        instance_id: id,
                        kind,
                        day: "2026/11/30",
                        name: if kind == LogKind::Access {
                            "access.log"
                        } else {
                            "error.log"
                        },
                        file: A,
                        generation: 0,
                        start: 10,
                        end: 20,
                    });
                    let route = config.route.route(&key).unwrap();
                    assert_eq!(
                        (
                            route.kind,
                            route.log_group.as_str(),
                            route.log_stream.as_str()
                        ),
                        (kind, group, id),
                        "{key}"
                    );
                }
            }
        }
    }
}
