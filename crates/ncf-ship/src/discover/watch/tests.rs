//! The watcher on a real configuration directory: each case edits it as an operator would and
//! says what the next look must do (read it again or not, which paths get which candidates).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::super::{Overrides, Reader};
use super::*;
use crate::nginx_conf::Defaults;

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ncf-watch-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["conf.d", "sites", "logs"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        let d = Dir(dir);
        d.write(
            "nginx.conf",
            "error_log logs/error.log;\nevents {}\nhttp {\n    include formats.conf;\n    \
             include conf.d/*.conf;\n    include sites/shop;\n}\n",
        );
        d.write(
            "formats.conf",
            "log_format a 'A $status';\nlog_format b 'B $status';\n",
        );
        d.write("sites/shop", "server { access_log logs/shop.log a; }\n");
        d.write("conf.d/10-x.conf", "server { access_log logs/x.log a; }\n");
        d
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Writes in place (same inode).
    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).unwrap_or_else(|e| panic!("write {rel}: {e}"));
    }

    /// Writes a new file and renames it over `rel`, as editors and `sed -i` do.
    fn replace(&self, rel: &str, text: &str) {
        let tmp = self.path(&format!("{rel}.tmp~"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.path(rel)).expect("rename");
    }

    fn reader(&self) -> Reader {
        Reader {
            nginx: "/nonexistent/nginx".into(),
            defaults: Defaults {
                prefix: format!("{}/", self.0.display()),
                conf_path: "nginx.conf".into(),
                ..Defaults::nginx()
            },
            overrides: Overrides::default(),
        }
    }

    fn follow(&self) -> Vec<(PathBuf, LogKind)> {
        vec![
            (self.path("logs/error.log"), LogKind::Error),
            (self.path("logs/shop.log"), LogKind::Access),
            (self.path("logs/x.log"), LogKind::Access),
        ]
    }

    fn watch(&self) -> ConfigWatch {
        let reader = self.reader();
        let config = reader.read().expect("the configuration reads");
        assert_eq!(config.how, super::super::How::Files);
        ConfigWatch::new(reader, &config, &self.follow(), true)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one look must do.
struct Look {
    /// The operator's edit before it.
    edit: fn(&Dir),
    /// Each path's generation at this look (by file name; absent: no position yet).
    generations: &'static [(&'static str, u64)],
    /// Whether the configuration is read again.
    reads: bool,
    /// The changes: file name → the candidates' first letters (the formats' text starts with
    /// its name in capitals), newest first; `+` before them: a new file to follow, `!` an
    /// error log.
    changes: &'static [(&'static str, &'static str)],
}

const NOTHING: fn(&Dir) = |_| {};

fn look(edit: fn(&Dir), reads: bool, changes: &'static [(&'static str, &'static str)]) -> Look {
    Look {
        edit,
        generations: &[("shop.log", 0), ("x.log", 0)],
        reads,
        changes,
    }
}

/// A look with no edit of the configuration: `log` writes the followed shop.log's new file
/// (what nginx wrote there since it was started), `generations` as in [`Look`].
fn at(
    log: fn(&Dir),
    generations: &'static [(&'static str, u64)],
    changes: &'static [(&'static str, &'static str)],
) -> Look {
    Look {
        edit: log,
        generations,
        reads: false,
        changes,
    }
}

/// shop.log's new file, written in `B` (the format the cases switch it to).
const IN_B: fn(&Dir) = |d| d.write("logs/shop.log", "B 200\nB 404\n");

/// Each candidate's text as its leading capital (`'A $status'` → `A`).
fn letters(formats: &[String]) -> String {
    formats
        .iter()
        .map(|f| {
            f.trim_start_matches(|c: char| c == '\'' || c.is_ascii_lowercase() || c == '=')
                .chars()
                .find(char::is_ascii_uppercase)
                .unwrap_or('?')
        })
        .collect()
}

fn cases() -> Vec<(&'static str, Vec<Look>)> {
    vec![
        (
            "nothing changed: nothing read, nothing told",
            vec![look(NOTHING, false, &[]), look(NOTHING, false, &[])],
        ),
        (
            "a format edited in place in an included file: both files it writes",
            vec![
                look(
                    |d| {
                        d.write(
                            "formats.conf",
                            "log_format a 'C $status $request_time';\nlog_format b 'B $status';\n",
                        )
                    },
                    true,
                    &[("shop.log", "CA"), ("x.log", "CA")],
                ),
                look(NOTHING, false, &[]),
            ],
        ),
        (
            "a site file replaced (rename over it) to name another format",
            vec![look(
                |d| d.replace("sites/shop", "server { access_log logs/shop.log b; }\n"),
                true,
                &[("shop.log", "BA")],
            )],
        ),
        (
            "a site file retargeted through a symlink",
            vec![look(
                |d| {
                    d.write("sites/shop-b", "server { access_log logs/shop.log b; }\n");
                    std::fs::remove_file(d.path("sites/shop")).expect("rm");
                    std::os::unix::fs::symlink(d.path("sites/shop-b"), d.path("sites/shop"))
                        .expect("ln -s");
                },
                true,
                &[("shop.log", "BA")],
            )],
        ),
        (
            "an include added, then the file it added edited",
            vec![
                look(
                    |d| {
                        d.write("late.conf", "log_format d 'D $status';\n");
                        d.replace(
                            "nginx.conf",
                            "error_log logs/error.log;\nevents {}\nhttp {\n    include formats.conf;\n    \
                             include late.conf;\n    include conf.d/*.conf;\n    include sites/shop;\n}\n",
                        );
                        d.write("sites/shop", "server { access_log logs/shop.log d; }\n");
                    },
                    true,
                    &[("shop.log", "DA")],
                ),
                look(
                    |d| d.write("late.conf", "log_format d 'E $status';\n"),
                    true,
                    &[("shop.log", "EDA")],
                ),
            ],
        ),
        (
            "a file added to an include glob is read; dot files and other names are not",
            vec![
                look(
                    |d| {
                        d.write("conf.d/.10-x.conf.swp", "not nginx syntax");
                        d.write("conf.d/10-x.conf.bak", "not nginx syntax");
                    },
                    false,
                    &[],
                ),
                look(
                    |d| d.write("conf.d/20-shop.conf", "log_format f 'F $status';\n"),
                    true,
                    &[],
                ),
                look(
                    |d| d.write("sites/shop", "server { access_log logs/shop.log f; }\n"),
                    true,
                    &[("shop.log", "FA")],
                ),
                look(
                    |d| d.write("conf.d/20-shop.conf", "log_format f 'G $status';\n"),
                    true,
                    &[("shop.log", "GFA")],
                ),
            ],
        ),
        (
            "a file removed from the glob: read again; the followed file keeps its formats",
            vec![look(
                |d| std::fs::remove_file(d.path("conf.d/10-x.conf")).expect("rm"),
                true,
                &[],
            )],
        ),
        (
            "a file that cannot be read: nothing changes until it can, and it is tried once",
            vec![
                look(
                    |d| {
                        std::fs::remove_file(d.path("sites/shop")).expect("rm");
                        std::os::unix::fs::symlink(d.path("sites/gone"), d.path("sites/shop"))
                            .expect("ln -s");
                    },
                    true,
                    &[],
                ),
                look(NOTHING, false, &[]),
                look(
                    |d| d.write("sites/gone", "server { access_log logs/shop.log b; }\n"),
                    true,
                    &[("shop.log", "BA")],
                ),
            ],
        ),
        (
            "a configuration half edited (nginx would refuse it) is not taken",
            vec![
                look(
                    |d| d.write("formats.conf", "log_format a 'C $status;\n"),
                    true,
                    &[],
                ),
                look(
                    |d| {
                        d.write(
                            "formats.conf",
                            "log_format a 'C $status';\nlog_format b 'B $status';\n",
                        )
                    },
                    true,
                    &[("shop.log", "CA"), ("x.log", "CA")],
                ),
            ],
        ),
        (
            "a new generation after the change: only the newest is named",
            vec![
                look(
                    |d| d.write("sites/shop", "server { access_log logs/shop.log b; }\n"),
                    true,
                    &[("shop.log", "BA")],
                ),
                // The pass after the notice: its generation is the one that counts.
                at(IN_B, &[("shop.log", 0), ("x.log", 0)], &[]),
                at(NOTHING, &[("shop.log", 0), ("x.log", 1)], &[]),
                at(
                    NOTHING,
                    &[("shop.log", 1), ("x.log", 1)],
                    &[("shop.log", "B")],
                ),
                at(NOTHING, &[("shop.log", 2), ("x.log", 1)], &[]),
            ],
        ),
        (
            "a rotation the follower sees in the first pass after the notice does not count",
            vec![
                look(
                    |d| d.write("sites/shop", "server { access_log logs/shop.log b; }\n"),
                    true,
                    &[("shop.log", "BA")],
                ),
                at(IN_B, &[("shop.log", 1), ("x.log", 0)], &[]),
                at(
                    NOTHING,
                    &[("shop.log", 2), ("x.log", 0)],
                    &[("shop.log", "B")],
                ),
            ],
        ),
        (
            "a file not followed yet when the change was noticed: its first generation counts",
            vec![
                Look {
                    edit: |d| d.write("sites/shop", "server { access_log logs/shop.log b; }\n"),
                    generations: &[],
                    reads: true,
                    changes: &[("shop.log", "BA")],
                },
                at(IN_B, &[], &[]),
                at(NOTHING, &[("shop.log", 0)], &[]),
                at(NOTHING, &[("shop.log", 1)], &[("shop.log", "B")]),
            ],
        ),
        (
            "a new file still in the old format (edited, not reloaded yet): the old one stays",
            vec![
                look(
                    |d| d.write("sites/shop", "server { access_log logs/shop.log b; }\n"),
                    true,
                    &[("shop.log", "BA")],
                ),
                at(NOTHING, &[("shop.log", 0)], &[]),
                at(
                    |d| d.write("logs/shop.log", "A 200\n"),
                    &[("shop.log", 1)],
                    &[],
                ),
                at(NOTHING, &[("shop.log", 1)], &[]),
                // nginx reloaded, the file rotated again: now all in the new one.
                at(IN_B, &[("shop.log", 2)], &[("shop.log", "B")]),
            ],
        ),
        (
            "a new file with no whole line yet: decided once it has one",
            vec![
                look(
                    |d| d.write("sites/shop", "server { access_log logs/shop.log b; }\n"),
                    true,
                    &[("shop.log", "BA")],
                ),
                at(NOTHING, &[("shop.log", 0)], &[]),
                at(|d| d.write("logs/shop.log", "B 2"), &[("shop.log", 1)], &[]),
                at(IN_B, &[("shop.log", 1)], &[("shop.log", "B")]),
            ],
        ),
        (
            "at most four candidates, newest first; a format named again moves to the front",
            vec![
                look(
                    |d| d.write("sites/shop", "server { access_log logs/shop.log b; }\n"),
                    true,
                    &[("shop.log", "BA")],
                ),
                look(
                    |d| {
                        d.write(
                            "formats.conf",
                            "log_format a 'A $status';\nlog_format b 'C $status';\n",
                        )
                    },
                    true,
                    &[("shop.log", "CBA")],
                ),
                look(
                    |d| {
                        d.write(
                            "formats.conf",
                            "log_format a 'A $status';\nlog_format b 'D $status';\n",
                        )
                    },
                    true,
                    &[("shop.log", "DCBA")],
                ),
                look(
                    |d| {
                        d.write(
                            "formats.conf",
                            "log_format a 'A $status';\nlog_format b 'E $status';\n",
                        )
                    },
                    true,
                    &[("shop.log", "EDCB")],
                ),
                look(
                    |d| {
                        d.write(
                            "formats.conf",
                            "log_format a 'A $status';\nlog_format b 'C $status';\n",
                        )
                    },
                    true,
                    &[("shop.log", "CEDB")],
                ),
            ],
        ),
        (
            "a new site with its own logs: followed from now on, in its format",
            vec![
                look(
                    |d| {
                        d.write(
                            "conf.d/20-blog.conf",
                            "server { access_log logs/blog.log b; error_log logs/blog.error.log; }\n",
                        );
                    },
                    true,
                    &[("blog.error.log", "+!"), ("blog.log", "+B")],
                ),
                look(
                    |d| {
                        d.write(
                            "formats.conf",
                            "log_format a 'A $status';\nlog_format b 'C $status';\n",
                        )
                    },
                    true,
                    &[("blog.log", "CB")],
                ),
            ],
        ),
        (
            "a file now written in two formats: none is named",
            vec![look(
                |d| {
                    d.write("conf.d/10-x.conf", "server { access_log logs/x.log a; }\nserver { access_log logs/x.log b; }\n")
                },
                true,
                &[("x.log", "")],
            )],
        ),
    ]
}

#[test]
fn each_change_is_noticed_read_and_told() {
    for (name, looks) in cases() {
        let d = Dir::new("case");
        let mut w = d.watch();
        assert_eq!(
            letters(&w.candidates(&d.path("logs/shop.log"))),
            "A",
            "{name}"
        );
        for (i, l) in looks.iter().enumerate() {
            (l.edit)(&d);
            let generations: BTreeMap<PathBuf, u64> = l
                .generations
                .iter()
                .map(|(f, g)| (d.path(&format!("logs/{f}")), *g))
                .collect();
            let before = w.readings;
            let changes = w.poll(|p: &Path| generations.get(p).copied());
            let got: Vec<(String, String)> = changes
                .iter()
                .map(|c| {
                    let file = c.path.file_name().expect("a name").to_string_lossy();
                    let new = match c.new {
                        Some(LogKind::Access) => "+",
                        Some(LogKind::Error) => "+!",
                        None => "",
                    };
                    (file.into_owned(), format!("{new}{}", letters(&c.formats)))
                })
                .collect();
            let want: Vec<(String, String)> = l
                .changes
                .iter()
                .map(|(f, l)| ((*f).to_string(), (*l).to_string()))
                .collect();
            assert_eq!(got, want, "{name}, look {i}: the changes told");
            assert_eq!(w.readings > before, l.reads, "{name}, look {i}: read again");
            for c in &changes {
                assert_eq!(c.formats, w.candidates(&c.path), "{name}, look {i}");
            }
        }
    }
}

/// The candidates are the texts the format objects hold (`ACCESS_LOG_FORMAT`'s syntax).
#[test]
fn candidates_are_the_formats_as_the_forwarder_takes_them() {
    let d = Dir::new("texts");
    let mut w = d.watch();
    d.write(
        "formats.conf",
        "log_format a escape=json '{\"s\":$status,' '\"rt\":$request_time}';\nlog_format b 'B';\n",
    );
    let changes = w.poll(|_: &Path| Some(0));
    assert_eq!(
        changes[0].formats,
        vec![
            r#"escape=json '{"s":$status,"rt":$request_time}'"#.to_string(),
            "'A $status'".to_string()
        ]
    );
}
