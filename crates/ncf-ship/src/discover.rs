//! Which files the follower follows, what kind each is and which `log_format` writes it: from
//! nginx's own configuration when it can be read, else from the file names (`access*`,
//! `error*`, as `ship-nginx-logs.sh` decides).
//!
//! The configuration is read from its files (`files`: the main file `nginx -V` names, or
//! `NGINX_CONF`, and every `include`), which needs read access only; `nginx -T` is the
//! fallback when they cannot be read (it needs to open every log and the pid file: root, and
//! a writable file system). Both give the same text to [`super::nginx_conf`]. While the
//! follower runs, [`ConfigWatch`] notices a change and reads it again (`nginx -s reload`).
//!
//! Fleets name their logs by site (`shop.example.com.access.log`, `api-access.log`,
//! `site/access.log`); the configuration says what each file is. A FILE that neither says is
//! refused on its own, with the reason: the others are still followed.

mod files;
mod log_formats;
mod reader;
mod watch;

use std::path::{Path, PathBuf};

use super::nginx_conf::{Defaults, Logs};
use super::plan;
use ncf_core::route::LogKind;

pub use files::{MAX_FILES, ReadError, Sources, glob, read as read_files};
use log_formats::config_file;
pub use log_formats::{formats, named_formats};
pub use reader::{
    CONF_VAR, How, NGINX_PATH_VARS, NGINX_TIMEOUT, NginxConfig, Overrides, PREFIX_VAR, Reader,
    read_config,
};
pub use watch::{Change, ConfigWatch, MAX_CANDIDATES};

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::nginx_conf::debian_conf_logs;
    use super::*;

    fn logs(conf: &str) -> Logs {
        debian_conf_logs(conf).expect("a configuration")
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
