//! Which files the follower follows and what kind each is: from nginx's own configuration
//! (`nginx -T`, read by [`super::nginx_conf`]) when it can be read, else from the file names
//! (`access*`, `error*`, as `ship-nginx-logs.sh` decides).
//!
//! Fleets name their logs by site (`shop.example.com.access.log`, `api-access.log`,
//! `site/access.log`); the configuration says what each file is. A FILE that neither says is
//! refused on its own, with the reason: the others are still followed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use super::nginx_conf::{Defaults, LogFile, Logs, Module, Writes, parse_dump};
use super::plan;
use crate::route::LogKind;

/// How long `nginx -V` or `nginx -T` may take (it reads every configuration file and opens
/// every log; 11 ms for 50 sites here).
pub const NGINX_TIMEOUT: Duration = Duration::from_secs(10);

/// What the follower follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chosen {
    pub follow: Vec<(PathBuf, LogKind)>,
    /// FILEs not followed, each with the reason.
    pub refused: Vec<(PathBuf, String)>,
}

/// Decides for each FILE asked for (none: every file the configuration names, or the default
/// files without one). `config` is nginx's configuration, or why it could not be read.
pub fn choose(asked: &[PathBuf], defaults: &[&str], config: &Result<Logs, String>) -> Chosen {
    let mut chosen = Chosen::default();
    if asked.is_empty() {
        if let Ok(logs) = config {
            for file in &logs.files {
                match file.kind() {
                    Some(kind) => chosen.follow.push((PathBuf::from(&file.path), kind)),
                    None => chosen.refused.push((
                        PathBuf::from(&file.path),
                        "nginx writes both access and error lines to it".into(),
                    )),
                }
            }
            return chosen;
        }
        for d in defaults {
            let path = PathBuf::from(d);
            match kind_by_name(&path) {
                Some(kind) => chosen.follow.push((path, kind)),
                None => chosen
                    .refused
                    .push((path, "neither an access nor an error log".into())),
            }
        }
        return chosen;
    }
    for path in asked {
        match kind_of(path, config) {
            Ok(kind) => chosen.follow.push((path.clone(), kind)),
            Err(why) => chosen.refused.push((path.clone(), why)),
        }
    }
    chosen
}

/// The kind of one FILE: what the configuration says of it (the path, or the file it leads
/// to), else what its name says.
fn kind_of(path: &Path, config: &Result<Logs, String>) -> Result<LogKind, String> {
    if let Ok(logs) = config {
        if let Some(file) = config_file(path, logs) {
            return file
                .kind()
                .ok_or_else(|| "nginx writes both access and error lines to it".into());
        }
    }
    kind_by_name(path).ok_or_else(|| match config {
        Ok(_) => "neither its name (access… or error…) nor nginx's configuration says whether it is an access or an error log: nginx writes no log there".to_string(),
        Err(why) => format!(
            "its name does not say whether it is an access or an error log (access… or error…), and nginx's configuration could not be read ({why})"
        ),
    })
}

fn kind_by_name(path: &Path) -> Option<LogKind> {
    plan::kind_of(&path.file_name()?.to_string_lossy())
}

/// The `log_format` (as `ACCESS_LOG_FORMAT` takes it) of each followed access log that the
/// configuration says one http `log_format` writes; and what to report of the others (two
/// formats in one file, gzip'd logs, stream logs), which are shipped without one.
pub fn formats(
    follow: &[(PathBuf, LogKind)],
    logs: &Logs,
) -> (BTreeMap<PathBuf, String>, Vec<String>) {
    let mut formats = BTreeMap::new();
    let mut notes = Vec::new();
    for (path, kind) in follow {
        if *kind != LogKind::Access {
            continue;
        }
        let Some(file) = config_file(path, logs) else {
            continue;
        };
        match file.writer().map(|w| &w.writes) {
            Ok(Writes::Access {
                module: Module::Http,
                format,
                gzip: false,
            }) => {
                formats.insert(path.clone(), format.to_config());
            }
            Ok(Writes::Access { gzip: true, .. }) => notes.push(format!(
                "{}: nginx writes it gzip'd (access_log … gzip): its segments are not lines, and no format is named",
                path.display()
            )),
            Ok(_) => notes.push(format!(
                "{}: written by nginx's stream module: no format is named (ACCESS_LOG_FORMAT applies)",
                path.display()
            )),
            Err(conflict) => notes.push(format!(
                "{conflict}: no format is named (ACCESS_LOG_FORMAT applies)"
            )),
        }
    }
    (formats, notes)
}

/// The configuration's entry for a followed path (the path, or the file it leads to).
fn config_file<'l>(path: &Path, logs: &'l Logs) -> Option<&'l LogFile> {
    let real = std::fs::canonicalize(path).ok();
    [Some(path.to_path_buf()), real]
        .into_iter()
        .flatten()
        .find_map(|p| logs.file(&p.to_string_lossy()))
}

/// nginx's log files under its configuration: `nginx -V` for the compiled-in prefix and default
/// logs, then `nginx -T`. An error says why not (no nginx, not allowed to read it, …).
pub fn read_config(nginx: &str) -> Result<Logs, String> {
    let version = run(nginx, "-V")?;
    let defaults = Defaults::from_version_output(&version.stderr);
    let dump = run(nginx, "-T")?;
    if !dump.ok {
        let why = dump
            .stderr
            .lines()
            .rfind(|l| l.contains("[emerg]") || l.contains("failed"))
            .unwrap_or("it exited with an error")
            .trim()
            .to_string();
        return Err(format!("{nginx} -T: {why}"));
    }
    parse_dump(&dump.stdout)
        .and_then(|d| d.logs(&defaults))
        .map_err(|e| format!("{nginx} -T: {e}"))
}

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `nginx FLAG`, within [`NGINX_TIMEOUT`] (killed after it).
fn run(nginx: &str, flag: &str) -> Result<Ran, String> {
    let mut child = Command::new(nginx)
        .arg(flag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {nginx} {flag}: {e}"))?;
    // Read both pipes on their own threads: a dump can be larger than a pipe's buffer.
    let out = child.stdout.take().map(read_all);
    let err = child.stderr.take().map(read_all);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < NGINX_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5)); // poll for exit
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{nginx} {flag} did not finish within {} s",
                    NGINX_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("{nginx} {flag}: {e}")),
        }
    };
    let text = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Ran {
        ok: status.success(),
        stdout: text(out),
        stderr: text(err),
    })
}

fn read_all(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::super::nginx_conf::{Defaults, parse_dump};
    use super::*;

    fn logs(conf: &str) -> Logs {
        let dump = format!("# configuration file /etc/nginx/nginx.conf:\n{conf}\n");
        parse_dump(&dump)
            .and_then(|d| d.logs(&Defaults::debian()))
            .expect("a configuration")
    }

    const SITES: &str = "error_log /var/log/nginx/error.log;
        http {
            log_format timing '$remote_addr $request_time \"$request\"';
            access_log /var/log/nginx/access.log;
            server { access_log /var/log/nginx/shop.example.com.access.log timing; }
            server { access_log /var/log/nginx/api-access.log; error_log /var/log/nginx/api.err; }
            server { access_log /var/log/nginx/mixed.log; error_log /var/log/nginx/mixed.log; }
        }";

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn the_configuration_says_what_each_file_is() {
        let config = Ok(logs(SITES));
        let defaults = ["/var/log/nginx/access.log", "/var/log/nginx/error.log"];
        // No FILE: every file nginx writes, whatever its name (http's access.log is not one:
        // every server names its own, so nginx opens it and never writes it).
        let all = choose(&[], &defaults, &config);
        assert_eq!(
            all.follow,
            vec![
                (p("/var/log/nginx/api-access.log"), LogKind::Access),
                (p("/var/log/nginx/api.err"), LogKind::Error),
                (p("/var/log/nginx/error.log"), LogKind::Error),
                (
                    p("/var/log/nginx/shop.example.com.access.log"),
                    LogKind::Access
                ),
            ]
        );
        assert_eq!(all.refused.len(), 1, "{:?}", all.refused);
        assert_eq!(all.refused[0].0, p("/var/log/nginx/mixed.log"));
        // The format each access log is written in, as ACCESS_LOG_FORMAT takes it.
        let (named, notes) = formats(&all.follow, config.as_ref().expect("read"));
        assert_eq!(
            named,
            BTreeMap::from([
                (
                    p("/var/log/nginx/api-access.log"),
                    super::super::nginx_conf::Format::combined().to_config()
                ),
                (
                    p("/var/log/nginx/shop.example.com.access.log"),
                    r#"'$remote_addr $request_time "$request"'"#.to_string()
                ),
            ])
        );
        assert!(notes.is_empty(), "{notes:?}");
        // FILEs: the configuration first, names second, and a refusal refuses one file only.
        let asked = [
            p("/var/log/nginx/api.err"),
            p("/var/log/other/access_2.log"),
            p("/var/log/other/site.log"),
        ];
        let some = choose(&asked, &defaults, &config);
        assert_eq!(
            some.follow,
            vec![
                (p("/var/log/nginx/api.err"), LogKind::Error),
                (p("/var/log/other/access_2.log"), LogKind::Access),
            ]
        );
        assert_eq!(some.refused.len(), 1);
        assert!(some.refused[0].1.contains("nginx writes no log there"));
    }

    #[test]
    fn without_the_configuration_names_decide() {
        let config = Err("cannot run nginx -V: No such file or directory".to_string());
        let defaults = ["/var/log/nginx/access.log", "/var/log/nginx/error.log"];
        let all = choose(&[], &defaults, &config);
        assert_eq!(
            all.follow,
            vec![
                (p("/var/log/nginx/access.log"), LogKind::Access),
                (p("/var/log/nginx/error.log"), LogKind::Error),
            ]
        );
        let some = choose(&[p("/x/shop.log"), p("/x/error.log.1")], &defaults, &config);
        assert_eq!(some.follow, vec![(p("/x/error.log.1"), LogKind::Error)]);
        assert!(
            some.refused[0]
                .1
                .contains("could not be read (cannot run nginx -V"),
            "{:?}",
            some.refused
        );
    }
}
