//! Reading nginx's configuration: from its files ([`super::files`]), else with `nginx -T`,
//! where `nginx -V` and the [`Overrides`] say nginx runs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::files::{self, Sources};
use crate::nginx_conf::{Defaults, Logs, parse_dump};

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
    pub(super) fn flags(&self) -> Vec<String> {
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
pub struct NginxConfig {
    pub logs: Logs,
    /// What was read, to notice a change.
    pub sources: Sources,
    pub how: How,
}

impl NginxConfig {
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
    pub fn read(&self) -> Result<NginxConfig, String> {
        let main = self.defaults.main_file();
        let direct =
            files::read_dump(&main)
                .map_err(|e| e.to_string())
                .and_then(|(dump, sources)| {
                    let logs = dump.logs(&self.defaults).map_err(|e| e.to_string())?;
                    Ok(NginxConfig {
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
            .map(|(logs, sources)| NginxConfig {
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
pub fn read_config(nginx: &str, overrides: Overrides) -> Result<(Reader, NginxConfig), String> {
    let reader = Reader::new(nginx, overrides)?;
    let config = reader.read()?;
    Ok((reader, config))
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
