#!/usr/bin/env python3
"""Checks the documentation against itself and against the code, so that neither can drift.

1. Links: every relative link in README.md, CHANGELOG.md and docs/*.md names a file or
   directory that exists, and every `#anchor` (in the same file or in another Markdown file)
   names a heading there, by GitHub's rules: the heading's text lower-cased, punctuation other
   than `-` and `_` removed, each space a `-`; a repeated heading gets `-1`, `-2`, ...
2. Environment variables: the tables of docs/configuration.md list exactly the variables the
   code reads: crates/ncf-core/src/config/'s FORWARDER_VARS, every `var("X")`, `var_os("X")`, `env("X")`,
   `set("X")` and `pick(.., "X")` in src/ and crates/*/src/ (tests excluded), every `const *_VARS: [&str; N]`
   list, the variables the Lambda runtime's tracing reads (LIBRARY_VARS below), and the
   variables scripts/ship-nginx-logs.sh documents in its header.
3. Template parameters: the parameter table of docs/configuration.md lists exactly the keys of
   template.yaml's `Parameters:` section.

Python 3 standard library only. Exit status 0 when everything holds, 1 with every problem
listed otherwise. Run from anywhere: paths are relative to the repository root.
"""

import glob
import os
import re
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DOC = "docs/configuration.md"

# Read through lambda_runtime::tracing (init_default_subscriber) and tracing's EnvFilter
# (cli::init_local_tracing), not through a var("...") call in src/.
LIBRARY_VARS = {"AWS_LAMBDA_LOG_LEVEL", "AWS_LAMBDA_LOG_FORMAT", "RUST_LOG"}

# The sections of docs/configuration.md whose tables list environment variables (first column),
# and the one whose table lists the template parameters.
ENV_SECTIONS = [
    "The function's environment",
    "The hosts' environment",
    "Read from the platform and for the AWS SDK",
]
SHELL_SHIPPER = "scripts/ship-nginx-logs.sh"
PARAMETER_SECTION = "Template parameters"


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


# --- Markdown ---------------------------------------------------------------------------------


def without_code_blocks(text):
    """The text with fenced code blocks blanked (line count kept)."""
    out, fence = [], None
    for line in text.split("\n"):
        stripped = line.lstrip()
        if fence is None and (stripped.startswith("```") or stripped.startswith("~~~")):
            fence = stripped[:3]
            out.append("")
        elif fence is not None:
            if stripped.startswith(fence):
                fence = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def rendered(heading):
    """A heading's text as GitHub renders it: code spans, links and emphasis reduced to text."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(\*\*|__|\*)", "", text)
    return text.strip()


def slug(heading):
    """GitHub's anchor for a heading (github-slugger): lower case, punctuation but `-` and `_`
    removed, each space a hyphen."""
    text = rendered(heading).lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_" or ch == " " or cat[0] in "LN" or cat == "Mn":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def headings(text):
    """(level, text) of every ATX heading outside code blocks."""
    out = []
    for line in without_code_blocks(text).split("\n"):
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            out.append((len(m.group(1)), m.group(2)))
    return out


def anchors(text):
    """Every anchor of a Markdown file, duplicates numbered as GitHub numbers them."""
    seen, out = {}, set()
    for _, h in headings(text):
        base = slug(h)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def links(text):
    """(line number, target) of every inline link outside code blocks and code spans."""
    body = without_code_blocks(text)
    body = re.sub(r"`[^`\n]*`", lambda m: "x" * len(m.group(0)), body)
    out = []
    for m in re.finditer(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", body):
        out.append((body.count("\n", 0, m.start()) + 1, m.group(1)))
    return out


def check_links(files):
    problems = []
    anchor_cache = {}

    def anchors_of(path):
        if path not in anchor_cache:
            anchor_cache[path] = anchors(read(path))
        return anchor_cache[path]

    for path in files:
        for line, target in links(read(path)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, file:
                continue
            file_part, _, anchor = target.partition("#")
            if file_part:
                dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                if not os.path.exists(os.path.join(ROOT, dest)):
                    problems.append(f"{path}:{line}: link to {target}: {dest} does not exist")
                    continue
            else:
                dest = path
            if anchor:
                if not dest.endswith(".md") or os.path.isdir(os.path.join(ROOT, dest)):
                    problems.append(f"{path}:{line}: link to {target}: an anchor into a file that is not Markdown")
                elif anchor not in anchors_of(dest):
                    problems.append(f"{path}:{line}: link to {target}: {dest} has no heading with the anchor #{anchor}")
    return problems


def section(text, title):
    """The lines under the `## title` heading, up to the next heading of level 1 or 2."""
    lines = text.split("\n")
    start = None
    for i, line in enumerate(lines):
        if line.strip() == f"## {title}":
            start = i + 1
        elif start is not None and re.match(r"^#{1,2} ", line):
            return lines[start:i]
    if start is None:
        return None
    return lines[start:]


def cells(row):
    """A table row's cells, split on `|` but not on `\\|`."""
    parts, cur, escaped = [], "", False
    for ch in row.strip():
        if ch == "|" and not escaped:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        escaped = ch == "\\"
    parts.append(cur)
    return [c.strip() for c in parts[1:-1]]


def table_rows(lines):
    """Body rows of the tables in some lines (header and separator rows left out)."""
    rows, in_table = [], False
    for line in lines:
        if line.startswith("|"):
            if not in_table:
                in_table = True  # the header row
                continue
            c = cells(line)
            if all(re.fullmatch(r":?-{3,}:?", x) for x in c if x):
                continue
            rows.append(c)
        else:
            in_table = False
    return rows


def names_in(cell, pattern):
    return set(re.findall(r"`(" + pattern + r")`", cell))


# --- the code ---------------------------------------------------------------------------------


def code_vars():
    """Environment variable names the code (src/ and crates/*/src/) reads, with where each was found."""
    found = {}
    patterns = [
        r"\b(?:var|var_os|env|set)\(\s*\"([A-Z][A-Z0-9_]*)\"\s*\)",
        r"\bpick\([^;]*?\"([A-Z][A-Z0-9_]*)\"\s*\)",
    ]
    sources = glob.glob(os.path.join(ROOT, "src", "**", "*.rs"), recursive=True)
    sources += glob.glob(os.path.join(ROOT, "crates", "*", "src", "**", "*.rs"), recursive=True)
    for path in sorted(sources):
        rel = os.path.relpath(path, ROOT)
        if os.path.basename(path) == "tests.rs" or f"{os.sep}tests{os.sep}" in rel:
            continue
        text = read(rel)
        # Leave out #[cfg(test)] modules at the end of a file.
        cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests", text, re.M)
        if cut:
            text = text[: cut.start()]
        for p in patterns:
            for m in re.finditer(p, text):
                found.setdefault(m.group(1), rel)
        for m in re.finditer(r"const\s+(\w*_VARS)\s*:\s*\[&str;\s*\d+\]\s*=\s*\[(.*?)\];", text, re.S):
            for name in re.findall(r"\"([A-Z][A-Z0-9_]*)\"", m.group(2)):
                found.setdefault(name, f"{rel} ({m.group(1)})")
    if "KEY_PATTERN" not in found:
        sys.exit("check-docs: crates/ncf-core/src/config/'s FORWARDER_VARS not found: update scripts/check-docs.py")
    return found


def shell_shipper_vars():
    """The variables scripts/ship-nginx-logs.sh documents under `# Configuration (environment`."""
    text = read(SHELL_SHIPPER)
    m = re.search(r"^# Configuration \(environment.*?\n((?:#.*\n)*?)#\s*\n", text, re.M)
    if not m:
        sys.exit(f"check-docs: no '# Configuration (environment' block in {SHELL_SHIPPER}")
    return set(re.findall(r"^#   ([A-Z][A-Z0-9_]*)\s", m.group(1), re.M))


def template_parameters():
    text = read("template.yaml")
    m = re.search(r"^Parameters:\n(.*?)^\S", text, re.M | re.S)
    if not m:
        sys.exit("check-docs: no Parameters: section in template.yaml")
    return set(re.findall(r"^  ([A-Za-z0-9]+):\s*$", m.group(1), re.M))


def check_reference():
    doc = read(CONFIG_DOC)
    problems = []
    documented, by_shell = {}, set()
    for title in ENV_SECTIONS:
        lines = section(doc, title)
        if lines is None:
            problems.append(f"{CONFIG_DOC}: no section '## {title}'")
            continue
        for row in table_rows(lines):
            for name in names_in(row[0], r"[A-Z][A-Z0-9_]*"):
                documented.setdefault(name, title)
                if SHELL_SHIPPER.split("/")[-1] in " ".join(row[1:2]):
                    by_shell.add(name)
    code = code_vars()
    shell = shell_shipper_vars()
    expected = set(code) | LIBRARY_VARS | shell
    for name in sorted(expected - set(documented)):
        where = code.get(name) or ("the Lambda runtime's tracing" if name in LIBRARY_VARS else SHELL_SHIPPER)
        problems.append(f"{CONFIG_DOC}: missing the environment variable {name} (read by {where})")
    for name in sorted(set(documented) - expected):
        problems.append(
            f"{CONFIG_DOC}: lists the environment variable {name} (section '{documented[name]}'), which nothing reads"
        )
    for name in sorted(shell - by_shell):
        if name in documented:
            problems.append(f"{CONFIG_DOC}: {name} is read by {SHELL_SHIPPER}, but its row does not say so")
    for name in sorted(by_shell - shell):
        problems.append(f"{CONFIG_DOC}: {name}'s row says {SHELL_SHIPPER} reads it; its header does not list it")

    lines = section(doc, PARAMETER_SECTION)
    if lines is None:
        problems.append(f"{CONFIG_DOC}: no section '## {PARAMETER_SECTION}'")
    else:
        listed = set()
        for row in table_rows(lines):
            listed |= names_in(row[0], r"[A-Z][A-Za-z0-9]*")
        params = template_parameters()
        for p in sorted(params - listed):
            problems.append(f"{CONFIG_DOC}: missing the template parameter {p} (template.yaml)")
        for p in sorted(listed - params):
            problems.append(f"{CONFIG_DOC}: lists the template parameter {p}, which template.yaml does not have")
    return problems


def main():
    files = ["README.md", "CHANGELOG.md"] + sorted(
        os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))
    )
    problems = [f"{f}: missing" for f in files[:2] if not os.path.exists(os.path.join(ROOT, f))]
    files = [f for f in files if os.path.exists(os.path.join(ROOT, f))]
    problems += check_links(files)
    problems += check_reference()
    if problems:
        print(f"check-docs: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"check-docs: {len(files)} files, links, anchors, environment variables and template parameters agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
