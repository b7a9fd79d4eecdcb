//! Which files the follower follows, what kind each is and which `log_format` writes it: from
//! nginx's own configuration when it can be read, else from the file names (`access*`,
//! `error*`, as `ship-nginx-logs.sh` decides).
//!
//! The configuration is read from its files ([`files`]: the main file `nginx -V` names, or
//! `NGINX_CONF`, and every `include`), which needs read access only; `nginx -T` is the
//! fallback when they cannot be read (it needs to open every log and the pid file: root, and
//! a writable file system). Both give the same text to [`super::nginx_conf`]. While the
//! follower runs, [`ConfigWatch`] notices a change and reads it again (`nginx -s reload`).
//!
//! Fleets name their logs by site (`shop.example.com.access.log`, `api-access.log`,
//! `site/access.log`); the configuration says what each file is. A FILE that neither says is
//! refused on its own, with the reason: the others are still followed.

mod files;
mod watch;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use super::nginx_conf::{Defaults, Format, LogFile, Logs, Module, Writes, parse_dump};
use super::plan;
use ncf_core::route::LogKind;

pub use files::{MAX_FILES, ReadError, Sources, glob, read as read_files};
pub use watch::{Change, ConfigWatch, MAX_CANDIDATES};

/// How long `nginx -V` or `nginx -T` may take (it reads every configuration file and opens
/// every log; 11 ms for 50 sites here).
pub const NGINX_TIMEOUT: Duration = Duration::from_secs(10);
/// Where nginx's files are when it is not started with its built-in paths: [`CONF_VAR`] and
/// [`PREFIX_VAR`].
pub const NGINX_PATH_VARS: [&str; 2] = ["NGINX_CONF", "NGINX_PREFIX"];
/// nginx's main configuration file, as nginx is started with `-c` (default: `--conf-path`
/// from `nginx -V`).
pub const CONF_VAR: &str = NGINX_PATH_VARS[0];
/// nginx's prefix, as nginx is started with `-p` (default: `--prefix` from `nginx -V`).
pub const PREFIX_VAR: &str = NGINX_PATH_VARS[1];

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
    if let Ok(logs) = config
        && let Some(file) = config_file(path, logs)
    {
        return file
            .kind()
            .ok_or_else(|| "nginx writes both access and error lines to it".into());
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
    let (named, notes) = named_formats(follow, logs);
    let texts = named.into_iter().map(|(p, f)| (p, f.to_config())).collect();
    (texts, notes)
}

/// [`formats`] with each format whole (its name and place, for the log).
fn named_formats(
    follow: &[(PathBuf, LogKind)],
    logs: &Logs,
) -> (BTreeMap<PathBuf, Format>, Vec<String>) {
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
                formats.insert(path.clone(), format.clone());
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

/// Where nginx's files are when it is not started as it was built (`-c`, `-p`): the
/// [`CONF_VAR`] and [`PREFIX_VAR`] settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub conf: Option<String>,
    pub prefix: Option<String>,
}

impl Overrides {
    /// From the environment (an empty variable counts as unset).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        let var = |n: &str| env(n).filter(|v| !v.is_empty());
        // nginx takes a relative `-p` from its working directory; the follower's may differ,
        // so it is made absolute here (a relative `-c` is relative to the prefix: kept).
        let prefix =
            var(PREFIX_VAR).map(|p| std::path::absolute(&p).map_or(p, |a| a.display().to_string()));
        Overrides {
            conf: var(CONF_VAR),
            prefix,
        }
    }

    /// `defaults` as nginx runs with `-p` and `-c` set so.
    pub fn apply(&self, mut defaults: Defaults) -> Defaults {
        if let Some(p) = &self.prefix {
            defaults.prefix = format!("{}/", p.trim_end_matches('/'));
        }
        if let Some(c) = &self.conf {
            defaults.conf_path.clone_from(c);
        }
        defaults
    }

    /// The same as `nginx` flags, for `nginx -T`.
    fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(p) = &self.prefix {
            flags.extend(["-p".to_string(), format!("{}/", p.trim_end_matches('/'))]);
        }
        if let Some(c) = &self.conf {
            flags.extend(["-c".to_string(), c.clone()]);
        }
        flags
    }
}

/// How the configuration was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// From its files.
    Files,
    /// With `nginx -T`, because the files could not be read (why).
    NginxT { files_not_read: String },
}

/// nginx's configuration as read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub logs: Logs,
    /// What was read, to notice a change.
    pub sources: Sources,
    pub how: How,
}

impl Config {
    /// For the log: how many files, from where, and how.
    pub fn describe(&self, reader: &Reader) -> String {
        let n = self.sources.files().count();
        match &self.how {
            How::Files => format!(
                "read from {n} file(s) under {} directly",
                reader.defaults.main_file()
            ),
            How::NginxT { files_not_read } => format!(
                "read with {} -T ({n} file(s)): its files could not be read ({files_not_read})",
                reader.nginx
            ),
        }
    }
}

/// How to read nginx's configuration, again whenever it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// nginx's binary (for `nginx -T`).
    pub nginx: String,
    /// Where nginx runs: `nginx -V`'s compile-time paths with the [`Overrides`].
    pub defaults: Defaults,
    pub overrides: Overrides,
}

impl Reader {
    /// Asks `nginx -V` where its files are.
    pub fn new(nginx: &str, overrides: Overrides) -> Result<Self, String> {
        let version = run(nginx, &["-V".to_string()])?;
        Ok(Reader {
            nginx: nginx.to_string(),
            defaults: overrides.apply(Defaults::from_version_output(&version.stderr)),
            overrides,
        })
    }

    /// The configuration from its files, else from `nginx -T`; an error says why neither.
    pub fn read(&self) -> Result<Config, String> {
        let main = self.defaults.main_file();
        let direct =
            files::read_dump(&main)
                .map_err(|e| e.to_string())
                .and_then(|(dump, sources)| {
                    let logs = dump.logs(&self.defaults).map_err(|e| e.to_string())?;
                    Ok(Config {
                        logs,
                        sources,
                        how: How::Files,
                    })
                });
        let why = match direct {
            Ok(config) => return Ok(config),
            Err(why) => why,
        };
        self.nginx_t()
            .map(|(logs, sources)| Config {
                logs,
                sources,
                how: How::NginxT {
                    files_not_read: why.clone(),
                },
            })
            .map_err(|t| format!("{why}; and {t}"))
    }

    /// `nginx [-p …] [-c …] -T`, parsed.
    fn nginx_t(&self) -> Result<(Logs, Sources), String> {
        let nginx = &self.nginx;
        let mut flags = self.overrides.flags();
        flags.push("-T".to_string());
        let dump = run(nginx, &flags)?;
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
        let parsed = parse_dump(&dump.stdout).map_err(|e| format!("{nginx} -T: {e}"))?;
        let logs = parsed
            .logs(&self.defaults)
            .map_err(|e| format!("{nginx} -T: {e}"))?;
        Ok((logs, Sources::of_dump(&parsed)))
    }
}

/// nginx's log files under its configuration: `nginx -V` for the compiled-in paths, then the
/// files (or `nginx -T`). An error says why not (no nginx, not allowed to read it, …).
pub fn read_config(nginx: &str, overrides: Overrides) -> Result<(Reader, Config), String> {
    let reader = Reader::new(nginx, overrides)?;
    let config = reader.read()?;
    Ok((reader, config))
}

/// A running nginx master process and the main configuration file it was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub pid: u32,
    /// Its command line as it shows it (`nginx: master process /usr/sbin/nginx -c …`).
    pub command: String,
    /// Its main configuration file (its `-p` and `-c`, else `defaults`').
    pub main: String,
}

/// The main configuration file of a master whose process title is `title` (nginx sets it to
/// `nginx: master process ` and its command line, `-p`/`-c` given apart or joined to their
/// value); `cwd`, its working directory, for a relative `-p`. `None` for any other process.
pub fn master_main(title: &str, cwd: Option<&Path>, defaults: &Defaults) -> Option<String> {
    let args = title.trim().strip_prefix("nginx: master process ")?;
    let mut d = defaults.clone();
    // The binary first, then its flags.
    let mut words = args.split_whitespace().skip(1);
    while let Some(w) = words.next() {
        let flag = w.get(..2).unwrap_or_default();
        if flag != "-c" && flag != "-p" {
            continue;
        }
        let Some(value) = (if w.len() == 2 {
            words.next()
        } else {
            w.get(2..)
        }) else {
            break;
        };
        if flag == "-c" {
            d.conf_path = value.to_string();
        } else {
            let prefix = match cwd {
                Some(cwd) if !value.starts_with('/') => cwd.join(value).display().to_string(),
                _ => value.to_string(),
            };
            d.prefix = format!("{}/", prefix.trim_end_matches('/'));
        }
    }
    Some(d.main_file())
}

/// The nginx master processes running on this host (from /proc; none where it cannot be
/// read).
pub fn running_masters(defaults: &Defaults) -> Vec<Master> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut masters: Vec<Master> = entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let raw = std::fs::read(e.path().join("cmdline")).ok()?;
            let command = String::from_utf8_lossy(&raw).replace('\0', " ");
            let cwd = std::fs::read_link(e.path().join("cwd")).ok();
            let main = master_main(&command, cwd.as_deref(), defaults)?;
            Some(Master {
                pid,
                command: command.trim().to_string(),
                main,
            })
        })
        .collect();
    masters.sort_by_key(|m| m.pid);
    masters
}

/// A warning when nginx runs, but none of its masters with the configuration the follower
/// reads (started with `-c`/`-p` that `NGINX_CONF`/`NGINX_PREFIX` do not say).
pub fn other_configuration(reader: &Reader, masters: &[Master]) -> Option<String> {
    let ours = reader.defaults.main_file();
    if masters.is_empty() || masters.iter().any(|m| m.main == ours) {
        return None;
    }
    let theirs: Vec<String> = masters
        .iter()
        .map(|m| format!("{} (pid {}: {})", m.main, m.pid, m.command))
        .collect();
    Some(format!(
        "the follower reads nginx's configuration from {ours}, but nginx runs with {}: set NGINX_CONF (and NGINX_PREFIX) to what nginx is started with (-c, -p)",
        theirs.join(", ")
    ))
}

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// `nginx FLAGS`, within [`NGINX_TIMEOUT`] (killed after it).
fn run(nginx: &str, flags: &[String]) -> Result<Ran, String> {
    let flag = flags.join(" ");
    let mut child = Command::new(nginx)
        .args(flags)
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

    /// The log files of `conf`, as `nginx -T` would print it from /etc/nginx/nginx.conf.
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

    #[test]
    fn overrides_are_nginx_s_p_and_c() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        /// (variables, prefix, main file, `nginx -T`'s flags)
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
            &'static [&'static str],
        );
        let cases: [Case; 4] = [
            (&[], "/usr/share/nginx/", "/etc/nginx/nginx.conf", &[]),
            (
                &[(CONF_VAR, "/opt/site/nginx.conf")],
                "/usr/share/nginx/",
                "/opt/site/nginx.conf",
                &["-c", "/opt/site/nginx.conf"],
            ),
            // A relative -c is under the prefix, as nginx takes it.
            (
                &[(PREFIX_VAR, "/srv/ngx"), (CONF_VAR, "conf/site.conf")],
                "/srv/ngx/",
                "/srv/ngx/conf/site.conf",
                &["-p", "/srv/ngx/", "-c", "conf/site.conf"],
            ),
            // Empty: unset.
            (
                &[(PREFIX_VAR, ""), (CONF_VAR, "")],
                "/usr/share/nginx/",
                "/etc/nginx/nginx.conf",
                &[],
            ),
        ];
        for (vars, prefix, main, flags) in cases {
            let o = Overrides::from_env(env(vars));
            let d = o.apply(Defaults::debian());
            assert_eq!(d.prefix, prefix, "{vars:?}");
            assert_eq!(d.main_file(), main, "{vars:?}");
            assert_eq!(o.flags(), flags, "{vars:?}");
        }
    }

    /// The files first; `nginx -T` when they cannot be read (saying why not); both reasons
    /// when neither works. A stand-in nginx answers -V and -T.
    #[test]
    fn the_files_first_then_nginx_t_then_why_neither() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ncf-reader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let d = dir.display();
        let nginx = dir.join("nginx");
        let fake = |t_ok: bool| {
            let t = if t_ok {
                format!(
                    "printf '# configuration file {d}/nginx.conf:\\nerror_log stderr; http {{ server {{ access_log /x/by-t.log; }} }}\\n\\n'"
                )
            } else {
                "echo 'nginx: [emerg] open() \"/run/nginx.pid\" failed (13: Permission denied)' >&2; exit 1"
                    .to_string()
            };
            let script = format!(
                "#!/bin/sh\ncase \"$*\" in\n*-V*) echo 'configure arguments: --prefix={d} --conf-path={d}/nginx.conf' >&2 ;;\n*-T*) {t} ;;\nesac\n"
            );
            std::fs::write(&nginx, script).expect("write");
            std::fs::set_permissions(&nginx, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        };
        fake(true);
        let r = Reader::new(&nginx.display().to_string(), Overrides::default()).expect("-V");
        assert_eq!(r.defaults.main_file(), format!("{d}/nginx.conf"));

        let c = r.read().expect("by nginx -T");
        let files: Vec<&str> = c.logs.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(files, ["/x/by-t.log"]);
        let How::NginxT { files_not_read } = &c.how else {
            panic!("{:?}", c.how);
        };
        assert!(
            files_not_read.starts_with(&format!("{d}/nginx.conf: cannot read it")),
            "{files_not_read}"
        );

        std::fs::write(
            dir.join("nginx.conf"),
            "error_log stderr; http { server { access_log /x/direct.log; } }\n",
        )
        .expect("write");
        let c = r.read().expect("from the files");
        assert_eq!(c.how, How::Files);
        assert_eq!(c.logs.files[0].path, "/x/direct.log");

        std::fs::remove_file(dir.join("nginx.conf")).expect("rm");
        fake(false);
        let e = r.read().expect_err("neither");
        assert!(
            e.contains("nginx.conf: cannot read it") && e.contains("-T: nginx: [emerg] open()"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_masters_configuration_from_its_title() {
        let d = Defaults::debian();
        let cwd = Path::new("/srv");
        let cases = [
            (
                "nginx: master process /usr/sbin/nginx -g daemon on; master_process on;",
                Some("/etc/nginx/nginx.conf"),
            ),
            (
                "nginx: master process /usr/sbin/nginx -p /tmp/x/ -c /tmp/x/nginx.conf -g daemon on; ",
                Some("/tmp/x/nginx.conf"),
            ),
            // Joined values; a relative -c under the prefix; a relative -p in its directory.
            (
                "nginx: master process nginx -psite -cconf/n.conf",
                Some("/srv/site/conf/n.conf"),
            ),
            (
                "nginx: master process /usr/sbin/nginx -c",
                Some("/etc/nginx/nginx.conf"),
            ),
            ("nginx: worker process", None),
            ("/usr/bin/python3 -c nginx: master process", None),
        ];
        for (title, want) in cases {
            assert_eq!(
                master_main(title, Some(cwd), &d).as_deref(),
                want,
                "{title}"
            );
        }
        let reader = Reader {
            nginx: "nginx".into(),
            defaults: d,
            overrides: Overrides::default(),
        };
        let master = |main: &str| Master {
            pid: 7,
            command: "nginx: master process nginx".into(),
            main: main.into(),
        };
        assert_eq!(other_configuration(&reader, &[]), None);
        assert_eq!(
            other_configuration(&reader, &[master("/etc/nginx/nginx.conf")]),
            None
        );
        let w = other_configuration(&reader, &[master("/opt/n.conf")]).expect("a warning");
        assert!(
            w.contains("from /etc/nginx/nginx.conf, but nginx runs with /opt/n.conf (pid 7"),
            "{w}"
        );
    }
}
