//! `nginx -T` → the files nginx writes its logs to: for each, whether it is an access or an
//! error log and which `log_format` writes it. The host reads this instead of being told a
//! format (issue 28): the configuration nginx runs is the truth.
//!
//! Pure: the caller passes the text of `nginx -T`, or the same text made from the files it
//! read itself ([`dump_of`], [`includes_of`] says what a file includes), and `nginx -V`'s for
//! the compile-time defaults; nothing here reads a file. The steps:
//! 1. [`parse_dump`] cuts the dump at its `# configuration file PATH:` headers and tokenises
//!    each file as `ngx_conf_read_token` does (`;`, `{ }`, quotes and backslash escapes, `#`
//!    comments, `${var}`).
//! 2. [`Dump::logs`] walks the configuration from the main file, splicing each `include` where
//!    it stands, and applies nginx's rules: `log_format` (http and stream have their own),
//!    `access_log` inherited http → server → location (a level with any `access_log` replaces
//!    what it inherits, `off` there means none), the built-in default `access_log`, and
//!    `error_log` at every level.
//!
//! <https://nginx.org/en/docs/http/ngx_http_log_module.html>,
//! <https://nginx.org/en/docs/stream/ngx_stream_log_module.html>,
//! <https://nginx.org/en/docs/ngx_core_module.html#error_log>,
//! <https://nginx.org/en/docs/ngx_core_module.html#include>,
//! <https://nginx.org/en/docs/switches.html> (`-T`, `-p`, `-e`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use ncf_core::route::LogKind;
use ncf_parse::format::{COMBINED, Escape};

mod error;
mod paths;
mod syntax;

pub use error::{ConfError, FILE_HEADER, MAX_DEPTH, MAX_SPLICES, Origin};
use paths::{full_name, glob_match, tidy, variables_as_stars};
use syntax::{ConfFile, Directive, Lexer, split_dump};

/// nginx's own `--prefix` (`auto/options`) when `nginx -V` names none.
pub const NGINX_PREFIX: &str = "/usr/local/nginx/";
/// nginx's own `--http-log-path` (relative to the prefix) when `nginx -V` names none.
pub const NGINX_HTTP_LOG_PATH: &str = "logs/access.log";
/// nginx's own `--error-log-path` (relative to the prefix) when `nginx -V` names none.
pub const NGINX_ERROR_LOG_PATH: &str = "logs/error.log";
/// nginx's own `--conf-path` (relative to the prefix) when `nginx -V` names none.
pub const NGINX_CONF_PATH: &str = "conf/nginx.conf";

/// Where nginx puts relative paths and its default logs. These are compile-time values (read
/// them from `nginx -V` with [`Defaults::from_version_output`]) unless nginx runs with `-p`
/// (prefix) or `-e` (error log): then set those fields to what it runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// `--prefix` or `-p`: relative `access_log`/`error_log` paths start here (not in the
    /// configuration directory, which is where relative `include`s start). Debian:
    /// `/usr/share/nginx/`.
    pub prefix: String,
    /// `--http-log-path` (NGX_HTTP_LOG_PATH): written with `combined` by every server that
    /// inherits no `access_log` at all. Debian: `/var/log/nginx/access.log`.
    pub access_log: String,
    /// `--error-log-path` or `-e` (NGX_ERROR_LOG_PATH): used when the main level has no
    /// `error_log`. Debian 12: `stderr` (not a file).
    pub error_log: String,
    /// `--conf-path` or `-c` (NGX_CONF_PATH): the main configuration file, relative to the
    /// prefix unless absolute. Debian: `/etc/nginx/nginx.conf`.
    pub conf_path: String,
}

impl Defaults {
    /// nginx's own defaults, for a build that changed none of them.
    pub fn nginx() -> Self {
        Defaults {
            prefix: NGINX_PREFIX.to_string(),
            access_log: NGINX_HTTP_LOG_PATH.to_string(),
            error_log: NGINX_ERROR_LOG_PATH.to_string(),
            conf_path: NGINX_CONF_PATH.to_string(),
        }
    }

    /// Debian's and Ubuntu's packages (`nginx -V`: `--prefix=/usr/share/nginx
    /// --http-log-path=/var/log/nginx/access.log --error-log-path=stderr` on Debian 12).
    pub fn debian() -> Self {
        Defaults {
            prefix: "/usr/share/nginx/".to_string(),
            access_log: "/var/log/nginx/access.log".to_string(),
            error_log: "stderr".to_string(),
            conf_path: "/etc/nginx/nginx.conf".to_string(),
        }
    }

    /// The main configuration file as nginx names it (`ngx_process_options`: the conf path
    /// after the prefix); its directory is where relative `include`s start.
    pub fn main_file(&self) -> String {
        full_name(&self.prefix, &self.conf_path)
    }

    /// Reads `--prefix`, `--conf-path`, `--http-log-path` and `--error-log-path` from the `configure
    /// arguments:` line that `nginx -V` prints (to stderr); what it does not name keeps nginx's
    /// default.
    pub fn from_version_output(text: &str) -> Self {
        let mut d = Self::nginx();
        let args = text
            .lines()
            .find_map(|l| l.strip_prefix("configure arguments:"))
            .unwrap_or_default();
        for word in shell_words(args) {
            if let Some(v) = word.strip_prefix("--prefix=") {
                d.prefix = format!("{}/", v.trim_end_matches('/'));
            } else if let Some(v) = word.strip_prefix("--http-log-path=") {
                d.access_log = v.to_string();
            } else if let Some(v) = word.strip_prefix("--error-log-path=") {
                d.error_log = v.to_string();
            } else if let Some(v) = word.strip_prefix("--conf-path=") {
                d.conf_path = v.to_string();
            }
        }
        d
    }
}

/// Splits a shell command line into words (`'…'` and `"…"` quoting, as `configure` arguments
/// are printed).
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => words.extend(cur.take()),
            (None, c) => cur.get_or_insert_default().push(c),
        }
    }
    words.extend(cur);
    words
}

/// A `log_format` (or the built-in `combined`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub name: String,
    pub escape: Escape,
    /// The format's strings concatenated, as nginx compiles them (quotes and escapes of the
    /// configuration syntax removed: the text `LogFormat::compile` takes).
    pub text: String,
    /// Where it is defined; `None` for the built-in `combined`.
    pub at: Option<Origin>,
}

impl Format {
    /// nginx's predefined `combined` (http only; stream has no predefined format).
    pub fn combined() -> Self {
        Format {
            name: "combined".to_string(),
            escape: Escape::Default,
            text: COMBINED.to_string(),
            at: None,
        }
    }

    /// Whether lines of both formats read the same (names and places aside).
    pub fn same_lines(&self, other: &Format) -> bool {
        self.escape == other.escape && self.text == other.text
    }

    /// The format as `ACCESS_LOG_FORMAT` (and `LogFormat::parse_config`) take it: `escape=…`
    /// unless it is the default, then the text as one single-quoted nginx string.
    pub fn to_config(&self) -> String {
        let escape = match self.escape {
            Escape::Default => "",
            Escape::Json => "escape=json ",
            Escape::None => "escape=none ",
        };
        let quoted = self.text.replace('\\', "\\\\").replace('\'', "\\'");
        format!("{escape}'{quoted}'")
    }
}

/// Which nginx module logs: http and stream have separate `log_format` names and variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// `http {}`: ngx_http_log_module.
    Http,
    /// `stream {}`: ngx_stream_log_module (TCP/UDP sessions, its own variables).
    Stream,
}

/// What one writer puts into a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writes {
    /// Access lines in `format`; with `gzip` the file holds gzip members, not text.
    Access {
        module: Module,
        format: Format,
        gzip: bool,
    },
    /// Error lines (one format for every module).
    Error,
}

impl Writes {
    /// Access or error.
    pub fn kind(&self) -> LogKind {
        match self {
            Writes::Access { .. } => LogKind::Access,
            Writes::Error => LogKind::Error,
        }
    }

    /// Whether both write lines that read the same.
    fn same_lines(&self, other: &Writes) -> bool {
        match (self, other) {
            (Writes::Error, Writes::Error) => true,
            (
                Writes::Access {
                    module: m1,
                    format: f1,
                    gzip: g1,
                },
                Writes::Access {
                    module: m2,
                    format: f2,
                    gzip: g2,
                },
            ) => m1 == m2 && g1 == g2 && f1.same_lines(f2),
            _ => false,
        }
    }
}

/// One way a file is written and every directive that writes it so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub writes: Writes,
    /// The `access_log`/`error_log` directives (for nginx's built-in default, the `http`
    /// block or the main file's first line).
    pub at: Vec<Origin>,
    /// Written because no level names a log (nginx's compiled-in default path).
    pub default: bool,
}

/// A file nginx writes logs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Absolute, as nginx opens it: relative paths joined to the prefix, `.` and empty
    /// components dropped; symbolic links and `..` are left for the caller to resolve.
    pub path: String,
    /// Each distinct way the file is written, in configuration order.
    pub writers: Vec<Writer>,
}

impl LogFile {
    /// The one way this file is written, or the writers to report: nginx interleaves the
    /// lines of all of them, so no single format reads the file.
    pub fn writer(&self) -> Result<&Writer, Conflict<'_>> {
        match self.writers.as_slice() {
            [one] => Ok(one),
            _ => Err(Conflict(self)),
        }
    }

    /// Access or error, when every writer agrees.
    pub fn kind(&self) -> Option<LogKind> {
        let first = self.writers.first()?.writes.kind();
        self.writers
            .iter()
            .all(|w| w.writes.kind() == first)
            .then_some(first)
    }
}

/// A file written in more than one way (two formats, or access and error lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict<'a>(pub &'a LogFile);

impl fmt::Display for Conflict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is written in {} ways, which no one format reads:",
            self.0.path,
            self.0.writers.len()
        )?;
        for w in &self.0.writers {
            match &w.writes {
                Writes::Access { format, .. } => write!(f, " log_format {}", format.name)?,
                Writes::Error => write!(f, " error_log")?,
            }
            let at: Vec<String> = w.at.iter().map(Origin::to_string).collect();
            write!(f, " ({});", at.join(", "))?;
        }
        Ok(())
    }
}

/// Why a log target is not a file the follower can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfollowable {
    /// `syslog:…`: nginx sends the lines over the network.
    Syslog,
    /// `error_log stderr`.
    Stderr,
    /// `error_log memory:…` (a debugging ring buffer).
    Memory,
    /// A path with variables: nginx opens a file per request, named by its values.
    Variables,
}

impl fmt::Display for Unfollowable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unfollowable::Syslog => "syslog target: nginx sends these lines over the network",
            Unfollowable::Stderr => "standard error, not a file",
            Unfollowable::Memory => "a memory buffer, not a file",
            Unfollowable::Variables => {
                "the path contains variables: nginx names a file per request"
            }
        })
    }
}

/// A log target that is not followed, with the reason (to report, not to hide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFollowed {
    /// As written in the directive.
    pub target: String,
    /// What it would hold (the format, for an access log).
    pub writes: Writes,
    pub reason: Unfollowable,
    /// For a path with variables: the files it can name, as an absolute glob(3) pattern with
    /// `*` for each variable (a value with a `/` in it, such as `$uri`'s, is not matched).
    pub glob: Option<String>,
    pub at: Origin,
}

/// Every log nginx writes under a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logs {
    /// Sorted by path.
    pub files: Vec<LogFile>,
    pub not_followed: Vec<NotFollowed>,
}

impl Logs {
    /// The file at `path` (absolute, as [`LogFile::path`] writes it).
    pub fn file(&self, path: &str) -> Option<&LogFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// The files of an `nginx -T` dump, tokenised (the main configuration file first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    files: Vec<ConfFile>,
}

/// Reads the standard output of `nginx -T`.
///
/// nginx prints each file it read as `# configuration file PATH:`, the file's bytes and a
/// newline: the main file first, then every included file once, in the order it read them.
/// A header is recognised only with an absolute path, at the start of a line; a comment in a
/// configuration file that looks exactly like one would still cut that file in two.
///
/// Pass standard output only: nginx writes "syntax is ok" and its warnings to standard error,
/// and prints no dump at all when the test fails (it opens every log file and the pid file
/// first, so unprivileged it fails on Debian's `/run/nginx.pid` and `/var/log/nginx`).
/// Directives given with `-g` are not in the dump.
pub fn parse_dump(text: &str) -> Result<Dump, ConfError> {
    let files = split_dump(text)?
        .into_iter()
        .map(|(path, body)| {
            let body = Lexer::new(&path, body).file()?;
            Ok(ConfFile { path, body })
        })
        .collect::<Result<Vec<_>, ConfError>>()?;
    Ok(Dump { files })
}

/// The log files `conf` names, read as Debian's `/etc/nginx/nginx.conf` with nothing included,
/// as `nginx -T` would print it: for the tests of what reads those answers (`discover` here, the
/// binary's `nginx-logs` command through the `test-util` feature).
#[cfg(any(test, feature = "test-util"))]
pub fn debian_conf_logs(conf: &str) -> Result<Logs, ConfError> {
    parse_dump(&format!("{FILE_HEADER}/etc/nginx/nginx.conf:\n{conf}\n"))
        .and_then(|d| d.logs(&Defaults::debian()))
}

/// The text [`parse_dump`] reads, made from files read directly: each as `nginx -T` prints it
/// (`# configuration file PATH:`, its bytes, a newline), the main file first.
pub fn dump_of<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (path, text) in files {
        out.push_str(FILE_HEADER);
        out.push_str(path);
        out.push_str(":\n");
        out.push_str(text);
        out.push('\n');
    }
    out
}

/// One `include` directive: the path or glob(3) pattern it reads, as nginx opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// Absolute: a relative pattern starts in the main file's directory (`ngx_conf_include`
    /// calls `ngx_conf_full_name` with the configuration prefix, for every file).
    pub pattern: String,
    /// Whether nginx reads it as a glob (it has `*`, `?` or `[`): no match is no error then.
    pub glob: bool,
    pub at: Origin,
}

/// The `include`s of one configuration file, in the order nginx reads them, at every level
/// (`types {}` and `map {}` read theirs too); `main` is the main file's path.
pub fn includes_of(main: &str, path: &str, text: &str) -> Result<Vec<Include>, ConfError> {
    let body = Lexer::new(path, text).file()?;
    let mut out = Vec::new();
    collect_includes(&conf_prefix(main), path, &body, &mut out)?;
    Ok(out)
}

fn collect_includes(
    conf_prefix: &str,
    path: &str,
    body: &[Directive],
    out: &mut Vec<Include>,
) -> Result<(), ConfError> {
    for d in body {
        let at = || Origin {
            file: path.to_string(),
            line: d.line,
        };
        match (&d.block, d.name.as_str(), d.args.as_slice()) {
            (Some(inner), ..) => collect_includes(conf_prefix, path, inner, out)?,
            (None, "include", [pattern]) => {
                let pattern = full_name(conf_prefix, pattern);
                out.push(Include {
                    glob: pattern.contains(['*', '?', '[']),
                    pattern,
                    at: at(),
                });
            }
            (None, "include", _) => {
                return Err(ConfError::Arguments {
                    at: at(),
                    directive: d.name.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a directory entry `name` matches one `/`-free component of an include glob, as
/// glob(3) matches it (a leading `.` only by a leading `.`).
pub fn glob_component_matches(pattern: &str, name: &str) -> bool {
    glob_match(pattern, name) && !pattern.contains('/') && !name.contains('/')
}

/// A directive and the file it is written in.
#[derive(Clone, Copy)]
struct Item<'d> {
    d: &'d Directive,
    file: usize,
}

/// The `access_log` directives of one level (http, server, location, stream, stream server).
#[derive(Debug, Clone, Default)]
struct Level {
    /// Any `access_log` here (`off` included): then nothing is inherited.
    set: bool,
    off: bool,
    logs: Vec<AccessLog>,
}

#[derive(Debug, Clone)]
struct AccessLog {
    target: String,
    writes: Writes,
    at: Origin,
    default: bool,
}

impl Dump {
    /// The files read, as nginx named them (the main file first).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.path.as_str())
    }

    /// Every `include` of every file (see [`includes_of`]).
    pub fn includes(&self) -> Result<Vec<Include>, ConfError> {
        let prefix = conf_prefix(&self.files[0].path);
        let mut out = Vec::new();
        for f in &self.files {
            collect_includes(&prefix, &f.path, &f.body, &mut out)?;
        }
        Ok(out)
    }

    /// Every log file nginx writes under this configuration, and the targets that are not
    /// files. `defaults` are the prefix and default logs nginx runs with (see [`Defaults`]);
    /// relative `include`s start in the main file's directory, as nginx's do.
    ///
    /// A file counts when a server or location (http) or a stream server writes it after
    /// inheritance; `access_log` files that every level below overrides are opened by nginx
    /// but stay empty and are not listed. Every `error_log` file counts, and the default
    /// error log when the main level has none. `mail {}` is read for `error_log` only.
    pub fn logs(&self, defaults: &Defaults) -> Result<Logs, ConfError> {
        let mut walk = Walk {
            dump: self,
            defaults,
            conf_prefix: conf_prefix(&self.files[0].path),
            http_formats: vec![Format::combined()],
            stream_formats: Vec::new(),
            files: BTreeMap::new(),
            not_followed: Vec::new(),
            spliced: Cell::new(0),
            // Reversed: the first file of a path wins, as a search from the start finds it.
            by_path: (0..self.files.len())
                .rev()
                .map(|i| (self.files[i].path.as_str(), i))
                .collect(),
            globs: RefCell::new(HashMap::new()),
        };
        walk.main()?;
        Ok(Logs {
            files: walk
                .files
                .into_iter()
                .map(|(path, writers)| LogFile { path, writers })
                .collect(),
            not_followed: walk.not_followed,
        })
    }
}

/// The directory of the main file, with its `/` (nginx's `conf_prefix`).
fn conf_prefix(main: &str) -> String {
    match main.rfind('/') {
        Some(i) => main[..=i].to_string(),
        None => "/".to_string(),
    }
}

struct Walk<'d> {
    dump: &'d Dump,
    defaults: &'d Defaults,
    conf_prefix: String,
    http_formats: Vec<Format>,
    stream_formats: Vec<Format>,
    files: BTreeMap<String, Vec<Writer>>,
    not_followed: Vec<NotFollowed>,
    /// Included files read so far (against [`MAX_SPLICES`]).
    spliced: Cell<usize>,
    /// Each dumped file by its path.
    by_path: HashMap<&'d str, usize>,
    /// Each glob's files, once matched.
    globs: RefCell<HashMap<String, Vec<usize>>>,
}

impl<'d> Walk<'d> {
    fn origin(&self, it: Item<'_>) -> Origin {
        Origin {
            file: self.dump.files[it.file].path.clone(),
            line: it.d.line,
        }
    }

    /// A block's directives with its `include`s spliced in where they stand.
    fn level(
        &self,
        body: &'d [Directive],
        file: usize,
        depth: usize,
    ) -> Result<Vec<Item<'d>>, ConfError> {
        let mut out = Vec::new();
        self.splice(body, file, depth, &mut out)?;
        Ok(out)
    }

    fn splice(
        &self,
        body: &'d [Directive],
        file: usize,
        depth: usize,
        out: &mut Vec<Item<'d>>,
    ) -> Result<(), ConfError> {
        for d in body {
            let it = Item { d, file };
            if d.name != "include" || d.block.is_some() {
                out.push(it);
                continue;
            }
            if depth >= MAX_DEPTH {
                return Err(ConfError::TooDeep {
                    at: self.origin(it),
                });
            }
            for f in self.included(it)? {
                self.spliced.set(self.spliced.get() + 1);
                if self.spliced.get() > MAX_SPLICES {
                    return Err(ConfError::TooMany {
                        at: self.origin(it),
                    });
                }
                self.splice(&self.dump.files[f].body, f, depth + 1, out)?;
            }
        }
        Ok(())
    }

    /// The dumped files an `include` reads, in the order nginx reads them (glob(3) sorts).
    fn included(&self, it: Item<'_>) -> Result<Vec<usize>, ConfError> {
        let [pattern] = it.d.args.as_slice() else {
            return Err(self.arguments(it));
        };
        let full = full_name(&self.conf_prefix, pattern);
        let files = &self.dump.files;
        if !full.contains(['*', '?', '[']) {
            return match self.by_path.get(full.as_str()) {
                Some(&i) => Ok(vec![i]),
                None => Err(ConfError::MissingInclude {
                    at: self.origin(it),
                    pattern: pattern.clone(),
                    path: full,
                }),
            };
        }
        if let Some(hits) = self.globs.borrow().get(&full) {
            return Ok(hits.clone());
        }
        let mut hits: Vec<usize> = (0..files.len())
            .filter(|&i| glob_match(&full, &files[i].path))
            .collect();
        hits.sort_by(|&a, &b| files[a].path.as_bytes().cmp(files[b].path.as_bytes()));
        self.globs.borrow_mut().insert(full, hits.clone());
        Ok(hits)
    }

    fn arguments(&self, it: Item<'_>) -> ConfError {
        ConfError::Arguments {
            at: self.origin(it),
            directive: it.d.name.clone(),
        }
    }

    fn main(&mut self) -> Result<(), ConfError> {
        let items = self.level(&self.dump.files[0].body, 0, 0)?;
        let mut error_log = false;
        for it in items {
            match (it.d.name.as_str(), &it.d.block) {
                ("error_log", None) => {
                    error_log = true;
                    self.error_log(it)?;
                }
                ("http", Some(body)) => self.http(it, body, 1)?,
                ("stream", Some(body)) => self.stream(it, body, 1)?,
                ("mail", Some(body)) => self.error_logs_below(it, body, 1)?,
                _ => {}
            }
        }
        if !error_log {
            let at = Origin {
                file: self.dump.files[0].path.clone(),
                line: 1,
            };
            let target = self.defaults.error_log.clone();
            self.write(&target, LogKind::Error, Writes::Error, at, true);
        }
        Ok(())
    }

    fn http(&mut self, it: Item<'d>, body: &'d [Directive], depth: usize) -> Result<(), ConfError> {
        let items = self.level(body, it.file, depth)?;
        // nginx wants a format defined before an access_log names it; in a configuration it
        // accepted, defining them all first resolves every name the same way.
        for f in items.iter().filter(|f| f.d.name == "log_format") {
            self.define(Module::Http, *f)?;
        }
        let mut level = self.own(Module::Http, &items)?;
        if !level.set {
            level.logs.push(AccessLog {
                target: self.defaults.access_log.clone(),
                writes: Writes::Access {
                    module: Module::Http,
                    format: Format::combined(),
                    gzip: false,
                },
                at: self.origin(it),
                default: true,
            });
        }
        for it in items {
            match (it.d.name.as_str(), &it.d.block) {
                ("error_log", None) => self.error_log(it)?,
                ("server", Some(body)) => self.http_level(it, body, &level, depth + 1)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// A server, location, `if` or `limit_except`: what it writes, then its inner levels.
    fn http_level(
        &mut self,
        it: Item<'d>,
        body: &'d [Directive],
        inherited: &Level,
        depth: usize,
    ) -> Result<(), ConfError> {
        let items = self.level(body, it.file, depth)?;
        let own = self.own(Module::Http, &items)?;
        let level = if own.set { &own } else { inherited };
        self.write_level(level);
        for it in items {
            match (it.d.name.as_str(), &it.d.block) {
                ("error_log", None) => self.error_log(it)?,
                ("location" | "if" | "limit_except", Some(body)) => {
                    self.http_level(it, body, level, depth + 1)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// stream {}: its own formats (none predefined) and no default access log.
    fn stream(
        &mut self,
        it: Item<'d>,
        body: &'d [Directive],
        depth: usize,
    ) -> Result<(), ConfError> {
        let items = self.level(body, it.file, depth)?;
        for f in items.iter().filter(|f| f.d.name == "log_format") {
            self.define(Module::Stream, *f)?;
        }
        let level = self.own(Module::Stream, &items)?;
        for it in items {
            match (it.d.name.as_str(), &it.d.block) {
                ("error_log", None) => self.error_log(it)?,
                ("server", Some(body)) => {
                    let inner = self.level(body, it.file, depth + 1)?;
                    let own = self.own(Module::Stream, &inner)?;
                    self.write_level(if own.set { &own } else { &level });
                    self.error_logs_below(it, body, depth + 1)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every `error_log` in a block and the blocks inside it.
    fn error_logs_below(
        &mut self,
        it: Item<'d>,
        body: &'d [Directive],
        depth: usize,
    ) -> Result<(), ConfError> {
        for inner in self.level(body, it.file, depth)? {
            match (inner.d.name.as_str(), &inner.d.block) {
                ("error_log", None) => self.error_log(inner)?,
                (_, Some(body)) => self.error_logs_below(inner, body, depth + 1)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// `log_format NAME [escape=default|json|none] STRING...;`
    fn define(&mut self, module: Module, it: Item<'_>) -> Result<(), ConfError> {
        let [name, rest @ ..] = it.d.args.as_slice() else {
            return Err(self.arguments(it));
        };
        if rest.is_empty() {
            return Err(self.arguments(it));
        }
        let at = self.origin(it);
        let formats = match module {
            Module::Http => &mut self.http_formats,
            Module::Stream => &mut self.stream_formats,
        };
        // nginx compares names case-sensitively here, case-insensitively in access_log.
        if formats.iter().any(|f| f.name == *name) {
            return Err(ConfError::Directive {
                at,
                what: format!("duplicate \"log_format\" name \"{name}\""),
            });
        }
        let (escape, strings) = match rest[0].strip_prefix("escape=") {
            Some("default") => (Escape::Default, &rest[1..]),
            Some("json") => (Escape::Json, &rest[1..]),
            Some("none") => (Escape::None, &rest[1..]),
            Some(other) => {
                return Err(ConfError::Directive {
                    at,
                    what: format!("unknown log format escaping \"{other}\""),
                });
            }
            None => (Escape::Default, rest),
        };
        formats.push(Format {
            name: name.clone(),
            escape,
            text: strings.concat(),
            at: Some(at),
        });
        Ok(())
    }

    /// The `access_log` directives of one level.
    fn own(&self, module: Module, items: &[Item<'_>]) -> Result<Level, ConfError> {
        let mut level = Level::default();
        for &it in items.iter().filter(|it| it.d.name == "access_log") {
            level.set = true;
            let args = &it.d.args;
            match args.first().map(String::as_str) {
                None => return Err(self.arguments(it)),
                Some("off") if args.len() == 1 => level.off = true,
                Some("off") => {
                    return Err(ConfError::Directive {
                        at: self.origin(it),
                        what: format!("invalid parameter \"{}\"", args[1]),
                    });
                }
                Some(target) => level.logs.push(AccessLog {
                    target: target.to_string(),
                    writes: Writes::Access {
                        module,
                        format: self.format(module, it)?,
                        gzip: args
                            .iter()
                            .skip(2)
                            .any(|a| a == "gzip" || a.starts_with("gzip=")),
                    },
                    at: self.origin(it),
                    default: false,
                }),
            }
        }
        Ok(level)
    }

    /// The format an `access_log` names (its second argument; http's default is `combined`).
    fn format(&self, module: Module, it: Item<'_>) -> Result<Format, ConfError> {
        let (formats, name) = match (module, it.d.args.get(1)) {
            (Module::Http, name) => (&self.http_formats, name.map_or("combined", String::as_str)),
            (Module::Stream, Some(name)) => (&self.stream_formats, name.as_str()),
            (Module::Stream, None) => {
                return Err(ConfError::Directive {
                    at: self.origin(it),
                    what: "log format is not specified".to_string(),
                });
            }
        };
        formats
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .cloned()
            .ok_or_else(|| ConfError::UnknownFormat {
                at: self.origin(it),
                name: name.to_string(),
            })
    }

    fn write_level(&mut self, level: &Level) {
        if level.off {
            return;
        }
        for log in &level.logs {
            let (target, writes) = (log.target.clone(), log.writes.clone());
            self.write(
                &target,
                LogKind::Access,
                writes,
                log.at.clone(),
                log.default,
            );
        }
    }

    /// `error_log FILE [LEVEL];` (`stderr`, `memory:` and `syslog:` are not files).
    fn error_log(&mut self, it: Item<'_>) -> Result<(), ConfError> {
        let Some(target) = it.d.args.first() else {
            return Err(self.arguments(it));
        };
        let at = self.origin(it);
        self.write(target, LogKind::Error, Writes::Error, at, false);
        Ok(())
    }

    /// Records that `target` is written so, as a file or as a target not followed.
    fn write(&mut self, target: &str, kind: LogKind, writes: Writes, at: Origin, default: bool) {
        let reason = if target.starts_with("syslog:") {
            Some(Unfollowable::Syslog)
        } else if kind == LogKind::Error && target == "stderr" {
            Some(Unfollowable::Stderr)
        } else if kind == LogKind::Error && target.starts_with("memory:") {
            Some(Unfollowable::Memory)
        } else if kind == LogKind::Access && target.contains('$') {
            // ngx_http_script_variables_count: any `$` makes the path a script.
            Some(Unfollowable::Variables)
        } else {
            None
        };
        if let Some(reason) = reason {
            let glob = (reason == Unfollowable::Variables).then(|| {
                tidy(&full_name(
                    &self.defaults.prefix,
                    &variables_as_stars(target),
                ))
            });
            let nf = NotFollowed {
                target: target.to_string(),
                writes,
                reason,
                glob,
                at,
            };
            if !self.not_followed.contains(&nf) {
                self.not_followed.push(nf);
            }
            return;
        }
        let path = tidy(&full_name(&self.defaults.prefix, target));
        let writers = self.files.entry(path).or_default();
        match writers.iter_mut().find(|w| w.writes.same_lines(&writes)) {
            Some(w) if !w.at.contains(&at) => w.at.push(at),
            Some(_) => {}
            None => writers.push(Writer {
                writes,
                at: vec![at],
                default,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
