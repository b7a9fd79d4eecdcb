//! template.yaml read as text, the way the template tests need it: the resources of one type,
//! a property of one, the two values of a `!If [FluentdNames, …]`, a log group's field indexes;
//! and the messages `parse` writes, which the template's filters, queries and rules read. No YAML
//! parser: the template's own layout (two-space resource names, properties below them) is what
//! is read, and a resource this cannot read fails the test that asked for it.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_nginx-cloudwatch-forwarder");

/// template.yaml's text.
pub fn text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml"))
        .expect("read template.yaml")
}

/// One resource of template.yaml: its logical name and its lines, from its `Type:` line to the
/// next line indented two spaces or less (the next resource, a comment above it, or the end).
#[derive(Debug)]
pub struct Resource<'t> {
    pub name: String,
    pub lines: Vec<&'t str>,
}

/// The resources of type `kind` (`AWS::Logs::MetricFilter`), in template order.
pub fn resources<'t>(template: &'t str, kind: &str) -> Vec<Resource<'t>> {
    let lines: Vec<&str> = template.lines().collect();
    let type_line = format!("Type: {kind}");
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if lines.get(i + 1).map(|l| l.trim()) != Some(type_line.as_str()) {
            continue;
        }
        let body = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || indent(l) > 2)
            .copied()
            .collect();
        out.push(Resource {
            name: line.trim().trim_end_matches(':').to_string(),
            lines: body,
        });
    }
    out
}

pub fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

impl Resource<'_> {
    /// What follows the first `name:` (e.g. `"FilterPattern:"`) among its lines.
    pub fn field(&self, name: &str) -> String {
        self.lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("{}: no {name}", self.name))
            .trim()
            .to_string()
    }

    /// The index of the first line starting with `name` (after its indentation).
    pub fn line_of(&self, name: &str) -> usize {
        self.lines
            .iter()
            .position(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{}: no {name}", self.name))
    }
}

/// `!If [FluentdNames, A, B]` → (B, A), the values for `FieldNames=nginx` and `fluentd`; any
/// other value `A` → (A, A). Values may be quoted (`'…'` or `"…"`, containing no `', '`) or
/// bare words.
pub fn either(text: &str) -> (String, String) {
    let text = text.trim();
    let unquote = |s: &str| s.trim().trim_matches(['\'', '"']).to_string();
    match text
        .strip_prefix("!If [FluentdNames,")
        .and_then(|r| r.strip_suffix(']'))
    {
        Some(pair) => {
            let sep = match pair.trim_start().starts_with(['\'', '"']) {
                true => pair
                    .find("', '")
                    .or_else(|| pair.find("\", \""))
                    .map(|s| s + 1),
                false => pair.trim_end().rfind(','),
            }
            .unwrap_or_else(|| panic!("two values: {text}"));
            let (fluentd, nginx) = (unquote(&pair[..sep]), unquote(&pair[sep + 1..]));
            (nginx, fluentd)
        }
        None => (unquote(text), unquote(text)),
    }
}

/// The `FieldIndexPolicies` of the log group resource `group` (`AccessLogGroup`): the indexed
/// fields for `FieldNames=nginx` and `fluentd`, from its one
/// `- Fields: !If [FluentdNames, [a, b], [c, d]]`.
pub fn index_fields(template: &str, group: &str) -> (Vec<String>, Vec<String>) {
    let r = resources(template, "AWS::Logs::LogGroup")
        .into_iter()
        .find(|r| r.name == group)
        .unwrap_or_else(|| panic!("no log group {group}"));
    let at = r.line_of("FieldIndexPolicies:");
    let line = r.lines[at..]
        .iter()
        .find_map(|l| l.trim().strip_prefix("- - Fields: !If [FluentdNames,"))
        .unwrap_or_else(|| panic!("{group}: no `- - Fields: !If [FluentdNames, …]`"));
    let lists: Vec<Vec<String>> = line
        .split('[')
        .skip(1)
        .map(|l| {
            l.split(']')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|f| f.trim().to_string())
                .collect()
        })
        .collect();
    let [fluentd, nginx] = &lists[..] else {
        panic!("{group}: two field lists: {line}");
    };
    (nginx.clone(), fluentd.clone())
}

/// The messages `parse --kind kind` prints for `text`, under `env` (`FIELD_NAMES`,
/// `OUTPUT_FORMAT`, `ACCESS_LOG_FORMAT`; unset ones take their defaults).
pub fn parsed(kind: &str, text: &str, env: &[(&str, &str)]) -> Vec<String> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let file = std::env::temp_dir().join(format!(
        "ncf-template-parse-{}-{n}-{kind}.log",
        std::process::id()
    ));
    std::fs::write(&file, text).expect("write the log");
    let out = Command::new(BIN)
        .args(["parse", "--kind", kind])
        .arg(&file)
        .env_remove("OUTPUT_FORMAT")
        .env_remove("FIELD_NAMES")
        .env_remove("ACCESS_LOG_FORMAT")
        .envs(env.iter().copied())
        .output()
        .expect("run parse");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    super::moto::printed_events(&out.stdout)
        .into_iter()
        .map(|(_, message)| message)
        .collect()
}
