//! nginx's configuration read from its files, as nginx reads them, without running nginx: the
//! main file, then each `include` where it stands (globs expanded as glob(3) expands them,
//! relative names in the main file's directory), each file once. The result is the text
//! `nginx -T` would print, so that one parser ([`parse_dump`]) reads both.
//!
//! `nginx -T` tests the configuration before it prints it: it opens every log for writing and
//! the pid file, which needs root and fails under a read-only file system (the unit's
//! `ProtectSystem=strict`). Reading the files needs only read access to them.
//!
//! [`Sources`] remembers what was read (each file's identity, size and times; each glob's
//! matches), so that a change is noticed with a `stat` per file and a listing per glob.
//!
//! <https://nginx.org/en/docs/ngx_core_module.html#include>; nginx's src/core/ngx_conf_file.c
//! (`ngx_conf_include`, `ngx_conf_full_name`) and src/core/nginx.c (`ngx_process_options`).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::super::nginx_conf::{
    ConfError, Dump, MAX_DEPTH, dump_of, glob_component_matches, includes_of, parse_dump,
};

/// Files read in all, against configurations that include without end (nginx would never
/// finish reading them either).
pub const MAX_FILES: usize = 10_000;

/// What `stat` says of a configuration file: it changed when any of these did (an editor that
/// writes a new file and renames it changes the inode; one that writes in place, the size or
/// the times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// The file at `path` now (through symbolic links, as nginx opens it); `None` when it
    /// cannot be looked at.
    fn now(path: &str) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self::of(&m))
    }
}

/// What one reading of the configuration read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Each file, with its stamp when it was read.
    files: Vec<(String, Option<Stamp>)>,
    /// Each include glob (absolute pattern), with the files it matched.
    globs: Vec<(String, Vec<String>)>,
}

impl Sources {
    /// The sources of a dump (from `nginx -T`, which does not say what it saw): each file as it
    /// is now, each glob's matches now.
    pub fn of_dump(dump: &Dump) -> Self {
        let files = dump
            .paths()
            .map(|p| (p.to_string(), Stamp::now(p)))
            .collect();
        let mut globs: Vec<(String, Vec<String>)> = Vec::new();
        for inc in dump.includes().unwrap_or_default() {
            if inc.glob && !globs.iter().any(|(p, _)| *p == inc.pattern) {
                let hits = glob(&inc.pattern).unwrap_or_default();
                globs.push((inc.pattern, hits));
            }
        }
        Sources { files, globs }
    }

    /// The files read.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|(p, _)| p.as_str())
    }

    /// What changed since they were read, said for the log; `None` when nothing did. A `stat`
    /// per file and a directory listing per glob.
    pub fn changed(&self) -> Option<String> {
        for (path, stamp) in &self.files {
            let now = Stamp::now(path);
            if now != *stamp {
                return Some(match (stamp, now) {
                    (Some(_), None) => format!("{path} is gone"),
                    (None, Some(_)) => format!("{path} is back"),
                    (Some(a), Some(b)) if (a.dev, a.ino) != (b.dev, b.ino) => {
                        format!("{path} was replaced")
                    }
                    _ => format!("{path} was modified"),
                });
            }
        }
        for (pattern, hits) in &self.globs {
            let now = glob(pattern).unwrap_or_default();
            if now != *hits {
                let added: Vec<&str> = now
                    .iter()
                    .filter(|p| !hits.contains(p))
                    .map(String::as_str)
                    .collect();
                let removed: Vec<&str> = hits
                    .iter()
                    .filter(|p| !now.contains(p))
                    .map(String::as_str)
                    .collect();
                return Some(format!(
                    "include {pattern}: {} added, {} removed",
                    list(&added),
                    list(&removed)
                ));
            }
        }
        None
    }

    /// The same files and globs as they are now: a change that could not be read is not
    /// reported again until the next one.
    pub fn as_now(&self) -> Self {
        Sources {
            files: self
                .files
                .iter()
                .map(|(p, _)| (p.clone(), Stamp::now(p)))
                .collect(),
            globs: self
                .globs
                .iter()
                .map(|(p, _)| (p.clone(), glob(p).unwrap_or_default()))
                .collect(),
        }
    }
}

fn list(paths: &[&str]) -> String {
    if paths.is_empty() {
        "none".to_string()
    } else {
        paths.join(", ")
    }
}

/// Why the files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read it: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("include {pattern}: cannot list {dir}: {source}")]
    List {
        pattern: String,
        dir: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error("more than {MAX_FILES} configuration files read (includes that multiply?)")]
    TooMany,
}

/// The configuration under `main`, read from its files: the dump text and what was read.
pub fn read(main: &str) -> Result<(String, Sources), ReadError> {
    let mut r = Reader {
        main,
        texts: Vec::new(),
        seen: HashSet::new(),
        globs: Vec::new(),
    };
    r.visit(main, 0)?;
    let dump = dump_of(r.texts.iter().map(|(p, t, _)| (p.as_str(), t.as_str())));
    let sources = Sources {
        files: r.texts.into_iter().map(|(p, _, s)| (p, s)).collect(),
        globs: r.globs,
    };
    Ok((dump, sources))
}

/// [`read`], parsed.
pub fn read_dump(main: &str) -> Result<(Dump, Sources), ReadError> {
    let (text, sources) = read(main)?;
    Ok((parse_dump(&text)?, sources))
}

struct Reader<'m> {
    main: &'m str,
    /// (path, text, stamp before reading), in the order nginx opens them.
    texts: Vec<(String, String, Option<Stamp>)>,
    seen: HashSet<String>,
    globs: Vec<(String, Vec<String>)>,
}

impl Reader<'_> {
    /// One file, then its includes in order (nginx dumps a file when it opens it, before the
    /// files it includes). A file read before is not read again: its includes are read.
    fn visit(&mut self, path: &str, depth: usize) -> Result<(), ReadError> {
        if !self.seen.insert(path.to_string()) {
            return Ok(());
        }
        if self.texts.len() >= MAX_FILES || depth > MAX_DEPTH {
            return Err(ReadError::TooMany);
        }
        let io = |source| ReadError::Io {
            path: path.to_string(),
            source,
        };
        // The stamp first: a write after it is seen as a change at the next look.
        let stamp = std::fs::metadata(path).map_err(io)?;
        let bytes = std::fs::read(path).map_err(io)?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let includes = includes_of(self.main, path, &text)?;
        self.texts
            .push((path.to_string(), text, Some(Stamp::of(&stamp))));
        for inc in includes {
            let files = if inc.glob {
                let hits = glob(&inc.pattern)?;
                if !self.globs.iter().any(|(p, _)| *p == inc.pattern) {
                    self.globs.push((inc.pattern.clone(), hits.clone()));
                }
                hits
            } else {
                vec![inc.pattern.clone()]
            };
            for f in files {
                self.visit(&f, depth + 1)?;
            }
        }
        Ok(())
    }
}

/// The paths an absolute glob(3) pattern matches, sorted by bytes as glob(3) sorts them in the
/// C locale nginx runs in. Components without `*`, `?` or `[` are taken as written (a
/// backslash protects the next character); a missing directory matches nothing, as glob(3)
/// says; one that cannot be listed is an error (nginx, as root, might read it).
pub fn glob(pattern: &str) -> Result<Vec<String>, ReadError> {
    let mut found = vec![String::new()];
    let parts: Vec<&str> = pattern.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if i == 0 {
            // Before the leading `/`.
            found = vec![(*part).to_string()];
            continue;
        }
        let mut next = Vec::new();
        if !part.contains(['*', '?', '[']) {
            let literal = unescape(part);
            for base in &found {
                let p = format!("{base}/{literal}");
                // glob(3) checks that the path exists (lstat) and, before the end, that it is
                // a directory.
                let ok = if last {
                    std::fs::symlink_metadata(&p).is_ok()
                } else {
                    Path::new(&p).is_dir()
                };
                if ok || part.is_empty() {
                    next.push(p);
                }
            }
        } else {
            for base in &found {
                let dir = if base.is_empty() { "/" } else { base.as_str() };
                let entries = match std::fs::read_dir(dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
                    Err(source) => {
                        return Err(ReadError::List {
                            pattern: pattern.to_string(),
                            dir: dir.to_string(),
                            source,
                        });
                    }
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !glob_component_matches(part, &name) {
                        continue;
                    }
                    let p = format!("{base}/{name}");
                    if last || Path::new(&p).is_dir() {
                        next.push(p);
                    }
                }
            }
        }
        found = next;
    }
    found.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    found.dedup();
    Ok(found)
}

/// A literal glob component as a file name: `\x` is `x`.
fn unescape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    let mut chars = part.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Tree(PathBuf);

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A tree of its own per test (`tag`): tests run at once.
    fn tree(tag: &str) -> Tree {
        let root = std::env::temp_dir().join(format!("ncf-glob-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for f in [
            "conf.d/b.conf",
            "conf.d/a.conf",
            "conf.d/B.conf",
            "conf.d/.a.conf",
            "conf.d/a.conf.bak",
            "conf.d/star*.conf",
            "sites/one/x.conf",
            "sites/two/x.conf",
            "sites/three/y.conf",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&p, "").expect("write");
        }
        std::fs::create_dir_all(root.join("conf.d/dir.conf")).expect("mkdir");
        std::os::unix::fs::symlink("one", root.join("sites/link")).expect("ln -s");
        Tree(root)
    }

    #[test]
    fn globs_expand_as_glob3() {
        let t = tree("glob");
        let r = t.0.display().to_string();
        let cases: [(&str, &[&str]); 10] = [
            // Byte order (C locale): capitals first; dot files only by a leading dot;
            // a directory matches in the last component as glob(3) lists it.
            (
                "conf.d/*.conf",
                &[
                    "conf.d/B.conf",
                    "conf.d/a.conf",
                    "conf.d/b.conf",
                    "conf.d/dir.conf",
                    "conf.d/star*.conf",
                ],
            ),
            ("conf.d/.*.conf", &["conf.d/.a.conf"]),
            ("conf.d/[ab].conf", &["conf.d/a.conf", "conf.d/b.conf"]),
            (
                "conf.d/?.conf",
                &["conf.d/B.conf", "conf.d/a.conf", "conf.d/b.conf"],
            ),
            // A wildcard component in the middle: directories only, symlinks followed.
            (
                "sites/*/x.conf",
                &["sites/link/x.conf", "sites/one/x.conf", "sites/two/x.conf"],
            ),
            ("sites/t*/*", &["sites/three/y.conf", "sites/two/x.conf"]),
            // A backslash protects the next character.
            ("conf.d/star\\*.conf", &["conf.d/star*.conf"]),
            // Nothing there: no match, no error.
            ("missing.d/*.conf", &[]),
            ("conf.d/*.none", &[]),
            ("conf.d/a.conf/*", &[]),
        ];
        for (pattern, want) in cases {
            let got = glob(&format!("{r}/{pattern}")).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            let want: Vec<String> = want.iter().map(|w| format!("{r}/{w}")).collect();
            assert_eq!(got, want, "{pattern}");
        }
    }

    #[test]
    fn a_change_is_said_and_a_read_error_names_the_file() {
        let t = tree("change");
        let r = t.0.display().to_string();
        std::fs::write(
            t.0.join("nginx.conf"),
            "http { include conf.d/[ab].conf; include sites/one/x.conf; }\n",
        )
        .expect("write");
        let (text, sources) = read(&format!("{r}/nginx.conf")).expect("read");
        assert_eq!(
            text,
            format!(
                "# configuration file {r}/nginx.conf:\nhttp {{ include conf.d/[ab].conf; include sites/one/x.conf; }}\n\n\
                 # configuration file {r}/conf.d/a.conf:\n\n# configuration file {r}/conf.d/b.conf:\n\n\
                 # configuration file {r}/sites/one/x.conf:\n\n"
            )
        );
        assert_eq!(sources.changed(), None);
        std::fs::write(t.0.join("conf.d/a.conf"), "# edited\n").expect("write");
        assert_eq!(
            sources.changed(),
            Some(format!("{r}/conf.d/a.conf was modified"))
        );
        let sources = sources.as_now();
        std::fs::remove_file(t.0.join("conf.d/b.conf")).expect("rm");
        assert_eq!(
            sources.changed(),
            Some(format!("{r}/conf.d/b.conf is gone"))
        );
        let sources = sources.as_now();
        std::fs::write(t.0.join("conf.d/b.conf"), "").expect("write");
        std::fs::rename(t.0.join("conf.d/b.conf"), t.0.join("conf.d/bb.conf")).expect("mv");
        std::fs::write(t.0.join("conf.d/b.conf"), "").expect("write");
        assert_eq!(
            sources.changed(),
            Some(format!("{r}/conf.d/b.conf is back"))
        );
        // An include that names nothing fails the read, naming the file.
        std::fs::remove_file(t.0.join("sites/one/x.conf")).expect("rm");
        let e = read(&format!("{r}/nginx.conf")).expect_err("a missing include");
        assert!(
            e.to_string()
                .starts_with(&format!("{r}/sites/one/x.conf: cannot read it")),
            "{e}"
        );
    }
}
