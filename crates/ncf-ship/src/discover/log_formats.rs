//! Which `log_format` writes each followed access log, as nginx's configuration says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::nginx_conf::{Format, LogFile, Logs, Module, Writes};
use ncf_core::route::LogKind;

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

/// [`formats`] with each format whole (its name and place, for the log and `ship --check`).
pub fn named_formats(
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
pub(super) fn config_file<'l>(path: &Path, logs: &'l Logs) -> Option<&'l LogFile> {
    let real = std::fs::canonicalize(path).ok();
    [Some(path.to_path_buf()), real]
        .into_iter()
        .flatten()
        .find_map(|p| logs.file(&p.to_string_lossy()))
}
