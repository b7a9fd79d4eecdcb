//! `nginx-logs`: what nginx's configuration says about its log files, in a form a shell script
//! reads safely. It is how `scripts/ship-nginx-logs.sh` tells site-named rotated logs
//! (`shop.example.com.access.log-20261124.gz`) by what nginx writes to them, and which
//! `log_format` wrote them, exactly as the follower (`ship`) decides: the same reading of the
//! configuration ([`discover::read_config`]), the same choice ([`discover::choose`]) and the same
//! format text ([`discover::formats`]), so both shippers name one format object.
//!
//! One line per log file: `KIND<TAB>FORMAT<TAB>PATH`.
//! - `KIND`: `access`, `error`, or `mixed` (nginx writes access and error lines to it: no one
//!   parser reads it, and `ship` refuses it too).
//! - `FORMAT`: for an access log that one http `log_format` writes, the SHA-256 (lower-case hex)
//!   of the format's text as `ACCESS_LOG_FORMAT` takes it, which is also the name of its format
//!   object (`<prefix><instance-id>/formats/<sha256>`); `-` for every other file (error logs;
//!   stream or gzip'd access logs and files written in two formats, which `ACCESS_LOG_FORMAT`
//!   reads).
//! - `PATH`: the file as nginx opens it, last on the line (so tabs in it survive). A file that
//!   nginx reaches through a symbolic link has a second line with its resolved path. A path
//!   with a newline in it cannot be a line: it is left out, with a warning.
//!
//! A format text may hold quotes, tabs and newlines, so it is never printed on these lines:
//! `--formats-dir DIR` writes each one to `DIR/<sha256>`, byte for byte the format object's
//! body. `--json` prints one JSON object per file instead, the text included, for people and
//! for tools that read JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::parse::object_format::sha256_hex;
use crate::route::LogKind;
use crate::ship::discover;
use crate::ship::host;
use crate::ship::nginx_conf::Logs;

/// The command line of `nginx-logs`.
#[derive(Debug, Default, Clone, PartialEq, Eq, clap::Args)]
pub struct NginxLogsArgs {
    /// Writes each format's text to DIR/<sha256> (created if missing): the body of its format
    /// object.
    #[arg(long, value_name = "DIR")]
    pub formats_dir: Option<PathBuf>,
    /// One JSON object per file ({"path", "kind", "log_format", "format_sha256"}) instead of
    /// the tab-separated lines.
    #[arg(long)]
    pub json: bool,
}

/// What nginx writes to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    /// `None`: access and error lines both.
    pub kind: Option<LogKind>,
    /// The `log_format` as `ACCESS_LOG_FORMAT` takes it, when one http format writes the file.
    pub format: Option<String>,
}

impl Entry {
    fn kind_name(&self) -> &'static str {
        match self.kind {
            Some(LogKind::Access) => "access",
            Some(LogKind::Error) => "error",
            None => "mixed",
        }
    }

    /// The tab-separated line (without its newline); `None` for a path a line cannot hold.
    pub fn line(&self) -> Option<String> {
        if self.path.contains(['\n', '\r']) {
            return None;
        }
        let sha = self
            .format
            .as_deref()
            .map_or_else(|| "-".to_string(), |f| sha256_hex(f.as_bytes()));
        Some(format!("{}\t{sha}\t{}", self.kind_name(), self.path))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "kind": self.kind_name(),
            "log_format": self.format,
            "format_sha256": self.format.as_deref().map(|f| sha256_hex(f.as_bytes())),
        })
    }
}

/// Every file the configuration names, sorted by path, with what is worth reporting of the
/// formats (stream or gzip'd logs, two formats in one file); `resolve` gives a path's target
/// when it leads elsewhere (a symbolic link), which is listed too.
pub fn entries(logs: &Logs, resolve: impl Fn(&str) -> Option<String>) -> (Vec<Entry>, Vec<String>) {
    let config = Ok(logs.clone());
    let chosen = discover::choose(&[], &[], &config);
    let (formats, notes) = discover::formats(&chosen.follow, logs);
    let mut by_path: BTreeMap<String, Entry> = BTreeMap::new();
    let listed = chosen
        .follow
        .iter()
        .map(|(p, k)| (p, Some(*k)))
        .chain(chosen.refused.iter().map(|(p, _)| (p, None)));
    for (path, kind) in listed {
        let entry = Entry {
            path: path.to_string_lossy().into_owned(),
            kind,
            format: formats.get(path).cloned(),
        };
        if let Some(target) = resolve(&entry.path).filter(|t| *t != entry.path) {
            by_path.entry(target.clone()).or_insert(Entry {
                path: target,
                ..entry.clone()
            });
        }
        by_path.insert(entry.path.clone(), entry);
    }
    (by_path.into_values().collect(), notes)
}

/// The command: exits 0 with the list, 1 when nginx's configuration cannot be read (the reason
/// on standard error) or a format cannot be written.
pub fn command(args: &NginxLogsArgs) -> Result<ExitCode, String> {
    let path_var = std::env::var("PATH").ok();
    let nginx_bin = std::env::var("NGINX_BIN").ok();
    let logs = host::nginx_binary(nginx_bin.as_deref(), path_var.as_deref())
        .ok_or_else(|| "no nginx found (set NGINX_BIN)".to_string())
        .and_then(|bin| {
            let overrides = discover::Overrides::from_env(|n| std::env::var(n).ok());
            discover::read_config(&bin, overrides).map(|(_, config)| config.logs)
        })
        .map_err(|why| format!("nginx's configuration could not be read: {why}"))?;
    let (entries, notes) = entries(&logs, |p| {
        std::fs::canonicalize(p)
            .ok()
            .map(|r| r.to_string_lossy().into_owned())
    });
    for note in notes {
        eprintln!("note: {note}");
    }
    if let Some(dir) = &args.formats_dir {
        write_formats(dir, &entries)?;
    }
    let mut out = String::new();
    for e in &entries {
        if args.json {
            out.push_str(&e.json().to_string());
        } else if let Some(line) = e.line() {
            out.push_str(&line);
        } else {
            eprintln!(
                "warning: not listed: {:?} (a newline in a path cannot be a line; see --json)",
                e.path
            );
            continue;
        }
        out.push('\n');
    }
    use std::io::Write;
    std::io::stdout()
        .write_all(out.as_bytes())
        .map_err(|e| format!("cannot write the list: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Each distinct format's text as `DIR/<sha256>`.
fn write_formats(dir: &Path, entries: &[Entry]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    for text in entries.iter().filter_map(|e| e.format.as_deref()) {
        let file = dir.join(sha256_hex(text.as_bytes()));
        std::fs::write(&file, text)
            .map_err(|e| format!("{}: cannot write: {e}", file.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::nginx_conf::{Format, debian_conf_logs};

    fn logs(conf: &str) -> Logs {
        debian_conf_logs(conf).expect("a configuration")
    }

    /// Site-named logs, a format with a tab, quotes and a backslash, a stream log, a mixed file.
    const SITES: &str = "error_log /var/log/nginx/error.log;
        http {
            log_format timing '$remote_addr\t$request_time \"$request\" \\\\ \\'q\\'';
            log_format j escape=json '{\"s\":\"$status\"}';
            access_log /var/log/nginx/access.log;
            server { access_log /var/log/nginx/shop.example.com.access.log timing;
                     error_log /var/log/nginx/shop.example.com.error.log; }
            server { access_log /var/log/nginx/api-access.log j; }
            server { access_log /var/log/nginx/site/access.log; }
            server { access_log /var/log/nginx/mixed.log; error_log /var/log/nginx/mixed.log; }
        }
        stream { log_format tcp '$remote_addr $status';
                 server { listen 9000; access_log /var/log/nginx/tcp.log tcp; } }";

    #[test]
    fn one_line_per_file_with_its_kind_and_its_formats_hash() {
        let logs = logs(SITES);
        let (entries, notes) = entries(&logs, |_| None);
        let timing = "'$remote_addr\t$request_time \"$request\" \\\\ \\'q\\''";
        let json = "escape=json '{\"s\":\"$status\"}'";
        let combined = Format::combined().to_config();
        let lines: Vec<String> = entries.iter().filter_map(Entry::line).collect();
        let sha = |t: &str| sha256_hex(t.as_bytes());
        assert_eq!(
            lines,
            [
                format!("access\t{}\t/var/log/nginx/api-access.log", sha(json)),
                "error\t-\t/var/log/nginx/error.log".to_string(),
                "mixed\t-\t/var/log/nginx/mixed.log".to_string(),
                format!(
                    "access\t{}\t/var/log/nginx/shop.example.com.access.log",
                    sha(timing)
                ),
                "error\t-\t/var/log/nginx/shop.example.com.error.log".to_string(),
                format!("access\t{}\t/var/log/nginx/site/access.log", sha(&combined)),
                "access\t-\t/var/log/nginx/tcp.log".to_string(),
            ]
        );
        // The text is the follower's, so both shippers name one object.
        let (follower, _) = discover::formats(
            &[(
                PathBuf::from("/var/log/nginx/shop.example.com.access.log"),
                LogKind::Access,
            )],
            &logs,
        );
        assert_eq!(
            follower.values().next().map(String::as_str),
            Some(timing),
            "{follower:?}"
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("tcp.log"), "{notes:?}");
        let shop = &entries[3];
        assert_eq!(
            shop.json(),
            serde_json::json!({
                "path": "/var/log/nginx/shop.example.com.access.log",
                "kind": "access",
                "log_format": timing,
                "format_sha256": sha(timing),
            })
        );
    }

    #[test]
    fn a_linked_file_is_listed_under_both_paths_and_a_newline_is_never_a_line() {
        let logs = logs(
            "http { server { access_log /var/log/nginx/access.log; }
                    server { access_log \"/var/log/nginx/a\nb.log\"; } }",
        );
        let (entries, _) = entries(&logs, |p| {
            (p == "/var/log/nginx/access.log").then(|| "/srv/logs/access.log".to_string())
        });
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/srv/logs/access.log",
                "/var/log/nginx/a\nb.log",
                "/var/log/nginx/access.log"
            ]
        );
        assert_eq!(entries[0].format, entries[2].format);
        assert!(entries[0].format.is_some());
        assert_eq!(entries[1].line(), None);
        assert_eq!(entries[1].json()["path"], "/var/log/nginx/a\nb.log");
    }

    #[test]
    fn formats_are_written_as_their_objects_bodies() {
        let dir = std::env::temp_dir().join(format!("ncf-nginx-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (entries, _) = entries(&logs(SITES), |_| None);
        write_formats(&dir.join("formats"), &entries).expect("written");
        let mut names: Vec<String> = std::fs::read_dir(dir.join("formats"))
            .expect("listed")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        for name in names {
            let body = std::fs::read(dir.join("formats").join(&name)).expect("read");
            assert_eq!(sha256_hex(&body), name);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
