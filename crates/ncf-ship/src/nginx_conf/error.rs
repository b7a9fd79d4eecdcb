//! Why a dump cannot be read ([`ConfError`]) and where in it ([`Origin`]), with the header
//! and the limits those errors name.

use std::fmt;

/// What `nginx -T` prints before each file it read (`ngx_conf_dump` in src/core/nginx.c),
/// followed by the file's full path and `:`.
pub const FILE_HEADER: &str = "# configuration file ";
/// Blocks and includes nested deeper than this are refused (nginx has no limit, but it would
/// never finish an include loop; real configurations nest a handful of levels).
pub const MAX_DEPTH: usize = 64;
/// Included files read in all (a file included from several places counts each time). Files
/// that each include several others multiply; nginx would read them all too, but never
/// finish, so a real dump stays far below this.
pub const MAX_SPLICES: usize = 100_000;

/// Where a directive is written: the file as `nginx -T` names it and the 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Why a dump cannot be read. nginx itself refuses such a configuration, so these mean the
/// text is not the complete output of a successful `nginx -T` (or nginx changed its syntax).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfError {
    #[error("not the output of `nginx -T`: it does not start with \"{FILE_HEADER}/PATH:\"")]
    NotADump,
    #[error("{at}: {what}")]
    Syntax { at: Origin, what: String },
    #[error("{at}: invalid number of arguments in \"{directive}\"")]
    Arguments { at: Origin, directive: String },
    #[error("{at}: {what}")]
    Directive { at: Origin, what: String },
    #[error("{at}: unknown log format \"{name}\"")]
    UnknownFormat { at: Origin, name: String },
    #[error("{at}: include \"{pattern}\" names {path}, which the dump does not contain")]
    MissingInclude {
        at: Origin,
        pattern: String,
        path: String,
    },
    #[error("{at}: blocks and includes nested deeper than {MAX_DEPTH} (an include loop?)")]
    TooDeep { at: Origin },
    #[error("{at}: more than {MAX_SPLICES} included files read (includes that multiply)")]
    TooMany { at: Origin },
}
