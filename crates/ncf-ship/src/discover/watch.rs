//! Following nginx's configuration while the follower runs: an operator edits a `log_format`
//! and reloads nginx, and the lines after the reload are written in the new format while the
//! lines before it stay in the old one, often in the same file and the same segment.
//!
//! [`ConfigWatch::poll`] runs every pass. It looks at what the last reading read (a `stat`
//! per file, a listing per include glob) and reads the configuration again only when
//! something changed. Each followed access log then has candidate formats, newest first: the
//! one the configuration names now, then the ones it named before ([`MAX_CANDIDATES`] in
//! all). The forwarder tries them in that order for each line.
//!
//! An old candidate is dropped when the file starts a new generation after the change was
//! noticed (rotation: nginx reopens its logs on USR1, and from then on every line is
//! written under the configuration it runs now) and that new file's first lines are all in
//! the newest format: an edit is seen when it is saved, and nginx writes the old format
//! until it reloads (or an old worker finishes a long request). The generation is taken one
//! pass after the change was noticed, so that a rotation that happened before the notice,
//! but was seen by the follower only after it, does not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::files::Sources;
use super::log_formats::{config_file, named_formats};
use super::reader::{NginxConfig, Reader};
use crate::nginx_conf::{Format, LogFile, Logs};
use ncf_core::route::LogKind;
use ncf_parse::format::LogFormat;

/// Formats a followed file may carry at once: the current one and three before it (the
/// shared contract's "at most 4 per file").
pub const MAX_CANDIDATES: usize = 4;

/// What the follower of one path is to name from now on: the formats (each as
/// `ACCESS_LOG_FORMAT` takes it), newest first; empty: none (ACCESS_LOG_FORMAT applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    pub formats: Vec<String>,
    /// A log file the configuration names now and did not before, to follow from now on (as
    /// this kind) when every log it names is followed (no FILE given).
    pub new: Option<LogKind>,
}

/// When the old candidates of a path may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Since {
    /// Only the newest is left (or nothing changed yet).
    Settled,
    /// Noticed in this poll: the generation is taken at the next one, after a pass.
    Noticed,
    /// The generation the file had after the change was noticed (`None`: not followed yet;
    /// the first one seen counts).
    At(Option<u64>),
}

#[derive(Debug, Clone)]
struct Candidates {
    formats: Vec<Format>,
    since: Since,
}

/// The configuration as last read, and each followed access log's candidate formats.
pub struct ConfigWatch {
    reader: Reader,
    sources: Sources,
    follow: Vec<(PathBuf, LogKind)>,
    /// Whether every log the configuration names is followed (no FILE was given).
    all: bool,
    /// The files the configuration names.
    named: BTreeSet<String>,
    /// The followed paths it names.
    followed_named: BTreeSet<PathBuf>,
    paths: BTreeMap<PathBuf, Candidates>,
    /// How many times it was read again (a change noticed).
    readings: u64,
    /// Files to follow from now on, not yet told.
    new: BTreeMap<PathBuf, LogKind>,
}

impl ConfigWatch {
    /// Starts from the configuration read at start, for the files followed (`all`: every log
    /// it names, no FILE given).
    pub fn new(
        reader: Reader,
        config: &NginxConfig,
        follow: &[(PathBuf, LogKind)],
        all: bool,
    ) -> Self {
        let (now, _) = named_formats(follow, &config.logs);
        let paths = follow
            .iter()
            .filter(|(_, k)| *k == LogKind::Access)
            .map(|(p, _)| {
                let formats = now.get(p).cloned().into_iter().collect();
                let c = Candidates {
                    formats,
                    since: Since::Settled,
                };
                (p.clone(), c)
            })
            .collect();
        ConfigWatch {
            reader,
            sources: config.sources.clone(),
            follow: follow.to_vec(),
            all,
            named: names(&config.logs),
            followed_named: followed_named(follow, &config.logs),
            paths,
            readings: 0,
            new: BTreeMap::new(),
        }
    }

    /// The candidates of `path` now, newest first (as `ACCESS_LOG_FORMAT` takes each).
    pub fn candidates(&self, path: &Path) -> Vec<String> {
        self.paths
            .get(path)
            .map(|c| c.formats.iter().map(Format::to_config).collect())
            .unwrap_or_default()
    }

    /// One look, every pass: the paths whose candidates changed. `generation` gives each
    /// followed path's current generation (`None`: no position yet).
    pub fn poll(&mut self, generation: impl Fn(&Path) -> Option<u64>) -> Vec<Change> {
        let mut changed = BTreeSet::new();
        self.settle(&generation, &mut changed);
        if let Some(what) = self.sources.changed() {
            self.readings += 1;
            match self.reader.read() {
                Ok(config) => {
                    tracing::info!(
                        "nginx's configuration changed ({what}): {}",
                        config.describe(&self.reader)
                    );
                    self.apply(&config, &mut changed);
                }
                Err(why) => {
                    tracing::warn!(
                        "nginx's configuration changed ({what}) but cannot be read: {why}; the formats stay as they were until it can"
                    );
                    self.sources = self.sources.as_now();
                }
            }
        }
        changed
            .into_iter()
            .map(|path| Change {
                formats: self.candidates(&path),
                new: self.new.remove(&path),
                path,
            })
            .collect()
    }

    /// Old candidates go once the file has started a new generation since the change.
    fn settle(
        &mut self,
        generation: &impl Fn(&Path) -> Option<u64>,
        changed: &mut BTreeSet<PathBuf>,
    ) {
        for (path, c) in &mut self.paths {
            let now = generation(path);
            c.since = match (c.since, now) {
                (Since::Noticed, g) => Since::At(g),
                (Since::At(None), Some(g)) => Since::At(Some(g)),
                (Since::At(Some(then)), Some(g)) if g > then && c.formats.len() <= 1 => {
                    Since::Settled
                }
                (Since::At(Some(then)), Some(g)) if g > then => {
                    let Some(newest) = c.formats.first().cloned() else {
                        continue;
                    };
                    match first_lines_in(path, &newest) {
                        // Nothing to tell by yet: look again at the next pass.
                        None => continue,
                        Some(false) => {
                            tracing::warn!(
                                "{}: a new file (generation {g}) since nginx's configuration changed, but its first lines are not all in log_format {}: nginx has not reloaded yet, or an old worker still writes; the older formats stay named until the next new file",
                                path.display(),
                                newest.name
                            );
                            Since::At(Some(g))
                        }
                        Some(true) => {
                            c.formats.truncate(1);
                            tracing::info!(
                                "{}: a new file (generation {g}) since nginx's configuration changed, its first lines in log_format {}: the older formats are no longer named",
                                path.display(),
                                newest.name
                            );
                            changed.insert(path.clone());
                            Since::Settled
                        }
                    }
                }
                (since, _) => since,
            };
        }
    }

    /// A configuration read again: each path's format now, and files named or no longer.
    fn apply(&mut self, config: &NginxConfig, changed: &mut BTreeSet<PathBuf>) {
        let (now, notes) = named_formats(&self.follow, &config.logs);
        for note in notes {
            tracing::warn!("{note}");
        }
        for (path, c) in &mut self.paths {
            match now.get(path) {
                Some(f) if c.formats.first().is_some_and(|b| b.same_lines(f)) => continue,
                Some(f) => {
                    let was = c.formats.first().map_or_else(
                        || "none".to_string(),
                        |b| format!("log_format {} {}", b.name, b.to_config()),
                    );
                    c.formats.retain(|b| !b.same_lines(f));
                    c.formats.insert(0, f.clone());
                    c.formats.truncate(MAX_CANDIDATES);
                    tracing::info!(
                        "{}: nginx now writes it in log_format {} {}{} (it was {was}); its segments name {} candidate format(s), this one first, until it starts a new file",
                        path.display(),
                        f.name,
                        f.to_config(),
                        f.at.as_ref()
                            .map(|a| format!(" (at {a})"))
                            .unwrap_or_default(),
                        c.formats.len()
                    );
                }
                // No longer named at all: what is still there was written in the old ones.
                None if c.formats.is_empty() || config_file(path, &config.logs).is_none() => {
                    continue;
                }
                None => {
                    tracing::warn!(
                        "{}: nginx's configuration names no one http log_format for it any more (it was {}): its segments name none from now on (ACCESS_LOG_FORMAT applies)",
                        path.display(),
                        c.formats.first().map_or("none", |f| f.name.as_str())
                    );
                    c.formats.clear();
                }
            }
            c.since = Since::Noticed;
            changed.insert(path.clone());
        }
        self.files_named(&config.logs, changed);
        self.sources = config.sources.clone();
    }

    /// Follows the log files the configuration names now that it did not (when every one is
    /// followed; else says so), and says which followed files it no longer names (they stay
    /// followed: nginx may still write there until its old workers are done).
    fn files_named(&mut self, logs: &Logs, changed: &mut BTreeSet<PathBuf>) {
        let named = names(logs);
        let followed_files: BTreeSet<String> = self
            .follow
            .iter()
            .filter_map(|(p, _)| config_file(p, logs).map(|f| f.path.clone()))
            .collect();
        for added in named.difference(&self.named) {
            if followed_files.contains(added) {
                continue;
            }
            let kind = logs.file(added).and_then(LogFile::kind);
            match kind {
                Some(kind) if self.all => {
                    let path = PathBuf::from(added);
                    let as_kind = match kind {
                        LogKind::Access => "an access",
                        LogKind::Error => "an error",
                    };
                    tracing::info!(
                        "nginx's configuration now names {added}: following it from now on (from its first line) as {as_kind} log"
                    );
                    self.follow.push((path.clone(), kind));
                    if kind == LogKind::Access {
                        let (now, _) = named_formats(&[(path.clone(), kind)], logs);
                        let c = Candidates {
                            formats: now.get(&path).cloned().into_iter().collect(),
                            since: Since::Settled,
                        };
                        self.paths.insert(path.clone(), c);
                    }
                    self.new.insert(path.clone(), kind);
                    changed.insert(path);
                }
                None if self.all => tracing::warn!(
                    "nginx's configuration now names {added}: not followed (nginx writes both access and error lines to it)"
                ),
                _ => tracing::info!(
                    "nginx's configuration now names {added}, which is not among the FILEs followed"
                ),
            }
        }
        let followed = followed_named(&self.follow, logs);
        for gone in self.followed_named.difference(&followed) {
            tracing::warn!(
                "{}: nginx's configuration no longer names it: still followed (what nginx still writes there ships, with the formats it had); restart the follower to stop following it",
                gone.display()
            );
        }
        self.named = named;
        self.followed_named = followed;
    }
}

/// The followed paths the configuration names.
fn followed_named(follow: &[(PathBuf, LogKind)], logs: &Logs) -> BTreeSet<PathBuf> {
    follow
        .iter()
        .filter(|(p, _)| config_file(p, logs).is_some())
        .map(|(p, _)| p.clone())
        .collect()
}

/// Bytes of a new file's start read to check its lines.
const CHECK_BYTES: u64 = 64 * 1024;
/// Lines of a new file's start checked.
const CHECK_LINES: usize = 20;

/// Whether the first whole lines of the file at `path` are all written in `format` (each
/// matches it to its end, as the forwarder takes a line's first candidate); `None` while it
/// holds no whole line (or cannot be read).
fn first_lines_in(path: &Path, format: &Format) -> Option<bool> {
    use std::io::Read;
    let compiled = LogFormat::parse_config(&format.to_config()).ok()?;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(CHECK_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    let whole = &head[..head.iter().rposition(|b| *b == b'\n')? + 1];
    let mut fields = Vec::new();
    Some(
        String::from_utf8_lossy(whole)
            .lines()
            .take(CHECK_LINES)
            .all(|line| compiled.split(line, &mut fields).is_ok_and(str::is_empty)),
    )
}

fn names(logs: &Logs) -> BTreeSet<String> {
    logs.files.iter().map(|f| f.path.clone()).collect()
}

#[cfg(test)]
mod tests;
