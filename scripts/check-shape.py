#!/usr/bin/env python3
"""Checks the shape of the Rust code (issue 30): no function over 80 lines outside tests; more
than 5 parameters means a struct; no two public types share a name; no two modules import each
other.

Scans src/**/*.rs and crates/*/src/**/*.rs, test code left out (files named tests.rs, files
under a tests/ directory, and every item marked `#[cfg(test)]`, such as `mod tests { .. }`), and
reports:

1. Long functions: every `fn` whose text, from the line with `fn` to the line with its closing
   brace, is over MAX_LINES lines.
2. Long parameter lists: every `fn` (trait declarations included) with more than MAX_PARAMS
   parameters, `self` not counted.
3. Shared public names: every name given to a `pub struct`, `pub enum`, `pub trait`,
   `pub type` or `pub union` (not `pub(crate)` and the like) in two places of the workspace.
4. Import cycles: within each crate, the graph of file modules (e.g. `forward::work` for
   crates/ncf-core/src/forward/work.rs, `crate` for lib.rs) with an edge from a module to each
   other module it names through a path: `crate::a::..`, `super::..`, `self::..`, or a path that
   starts with one of its child modules (`work::run` in forward/mod.rs), in `use` trees and in
   code alike. A path leads to the deepest file module it names (`crate::forward::work::run` →
   `forward::work`, `crate::forward::Shared` → `forward`), so a child naming its parent's items
   imports back up from it. Every group of two or more modules that reach each other (a
   strongly connected component) is a cycle, listed with the references that make it.

Rust text is read by a small lexer that knows comments (nested block comments too), strings,
byte and C strings, raw strings, and char literals versus lifetimes, so braces, `fn` and paths
inside them do not count.

Python 3 standard library only. Exit status 0 when everything holds, 1 with every finding
listed otherwise. Run from anywhere: paths are relative to the repository root.
"""

import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 80
MAX_PARAMS = 5

# --- reading Rust ---------------------------------------------------------------------------


def mask(text):
    """The text with comments and the insides of string and char literals replaced by spaces
    (newlines kept, so offsets and line numbers stay), leaving only code."""
    out = list(text)
    n = len(text)
    i = 0

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif c == "/" and text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "rbc" and (i == 0 or not is_ident(text[i - 1])) and raw_string_at(text, i):
            start, stop, end = raw_string_at(text, i)
            blank(start, stop)
            i = end
        elif c == '"' or (c in "bc" and text.startswith('"', i + 1) and (i == 0 or not is_ident(text[i - 1]))):
            j = text.index('"', i) + 1
            start = j
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(start, j)
            i = j + 1
        elif c == "'" or (c == "b" and text.startswith("'", i + 1) and (i == 0 or not is_ident(text[i - 1]))):
            q = text.index("'", i)
            end = char_literal_end(text, q)
            if end is None:  # a lifetime or a label: 'a, 'static
                i = q + 1
            else:
                blank(q + 1, end - 1)
                i = end
        else:
            i += 1
    return "".join(out)


def is_ident(c):
    return c.isalnum() or c == "_"


def raw_string_at(text, i):
    """(start of contents, end of contents, end after the closing quote) of a raw string (r"..", r#".."#, br..,
    cr..) starting at i, or None."""
    m = re.compile(r'(?:b|c)?r(#*)"').match(text, i)
    if not m:
        return None
    close = '"' + m.group(1)
    stop = text.find(close, m.end())
    stop = len(text) if stop < 0 else stop
    return m.end(), stop, min(len(text), stop + len(close))


def char_literal_end(text, q):
    """The index after a char literal whose opening quote is at q, or None when the quote
    starts a lifetime or a label."""
    if text.startswith("\\", q + 1):
        j = q + 2
        if text.startswith("u{", j):
            j = text.index("}", j) + 1
        elif text.startswith("x", j):
            j += 3
        else:
            j += 1
        return j + 1 if text.startswith("'", j) else None
    # One character (maybe outside the BMP, which Python counts as one), then the quote.
    if q + 2 < len(text) and text[q + 2] == "'" and text[q + 1] != "\n":
        return q + 3
    return None


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def matching(code, open_at):
    """The index of the bracket closing the one at open_at (code is masked)."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    stack = []
    for j in range(open_at, len(code)):
        c = code[j]
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")}]":
            if not stack or stack.pop() != c:
                raise ValueError(f"unbalanced {c!r} at offset {j}")
            if not stack:
                return j
    raise ValueError(f"unclosed bracket at offset {open_at}")


def item_end(code, start):
    """The end (exclusive) of the item starting at start: through its `;` or its block."""
    depth = 0
    for j in range(start, len(code)):
        c = code[j]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "{" and depth == 0:
            return matching(code, j) + 1
        elif c == ";" and depth == 0:
            return j + 1
    return len(code)


def without_tests(code):
    """The masked code with every item marked `#[cfg(test)]` blanked."""
    out = list(code)
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        end = item_end(code, m.end())
        for k in range(m.start(), end):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out)


def is_test_file(rel):
    parts = rel.split("/")
    return parts[-1] == "tests.rs" or "tests" in parts[:-1]


def rust_files():
    files = glob.glob(os.path.join(ROOT, "src", "**", "*.rs"), recursive=True)
    files += glob.glob(os.path.join(ROOT, "crates", "*", "src", "**", "*.rs"), recursive=True)
    rels = sorted(os.path.relpath(f, ROOT).replace(os.sep, "/") for f in files)
    return [r for r in rels if not is_test_file(r)]


def read_code(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return without_tests(mask(f.read()))


# --- functions ------------------------------------------------------------------------------

FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def generics_end(code, j):
    """The index after a `<..>` generic list starting at j (`->` inside it is not a bracket)."""
    depth = 0
    while j < len(code):
        c = code[j]
        if c == "<":
            depth += 1
        elif c == ">" and code[j - 1] != "-":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return j


def split_top(text):
    """text split at the commas outside any bracket (`->` is not one)."""
    parts, depth, start = [], 0, 0
    for j, c in enumerate(text):
        if c in "([{<":
            depth += 1
        elif c in ")]}" or (c == ">" and (j == 0 or text[j - 1] != "-")):
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:j])
            start = j + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


SELF = re.compile(r"^(&\s*('[A-Za-z_]\w*\s+)?)?(mut\s+)?self\b")


def functions(code):
    """(name, offset of `fn`, parameter count, offset of the body's closing brace or None)."""
    found = []
    for m in FN.finditer(code):
        j = m.end()
        while j < len(code) and code[j].isspace():
            j += 1
        if code.startswith("<", j):
            j = generics_end(code, j)
            while code[j].isspace():
                j += 1
        if not code.startswith("(", j):
            continue
        close = matching(code, j)
        params = [p for p in split_top(code[j + 1 : close]) if not SELF.match(p)]
        # The body: the first `{` after the signature, unless a `;` ends a declaration first.
        k, depth, body_end = close + 1, 0, None
        while k < len(code):
            c = code[k]
            if c in "([":
                depth += 1
            elif c in ")]":
                depth -= 1
            elif c == ";" and depth == 0:
                break
            elif c == "{" and depth == 0:
                body_end = matching(code, k)
                break
            k += 1
        found.append((m.group(1), m.start(), len(params), body_end))
    return found


def check_functions(files, codes):
    long_fns, many_params = [], []
    for rel in files:
        code = codes[rel]
        for name, at, params, body_end in functions(code):
            first = line_of(code, at)
            if body_end is not None:
                length = line_of(code, body_end) - first + 1
                if length > MAX_LINES:
                    long_fns.append(f"{rel}:{first}: fn {name} is {length} lines (max {MAX_LINES})")
            if params > MAX_PARAMS:
                many_params.append(f"{rel}:{first}: fn {name} takes {params} parameters (max {MAX_PARAMS})")
    return long_fns, many_params


# --- public names ---------------------------------------------------------------------------

PUB_TYPE = re.compile(r"(?m)^[ \t]*pub[ \t]+(struct|enum|trait|type|union)[ \t]+([A-Za-z_][A-Za-z0-9_]*)")


def check_public_names(files, codes):
    places = {}
    for rel in files:
        code = codes[rel]
        for m in PUB_TYPE.finditer(code):
            places.setdefault(m.group(2), []).append(f"{rel}:{line_of(code, m.start())} ({m.group(1)})")
    return [f"pub {name} is defined {len(at)} times: {', '.join(at)}" for name, at in sorted(places.items()) if len(at) > 1]


# --- module imports -------------------------------------------------------------------------


def crates():
    """The source directory of the package (src/) and of each crate (crates/*/src/)."""
    roots = ["src"] + sorted(os.path.relpath(d, ROOT).replace(os.sep, "/") for d in glob.glob(os.path.join(ROOT, "crates", "*", "src")))
    return roots


def module_of(src, rel):
    """The file module of rel under the crate's src directory: a tuple of names, () for the root."""
    inner = rel[len(src) + 1 : -len(".rs")].split("/")
    if inner[-1] == "mod" or (len(inner) == 1 and inner[0] in ("lib", "main")):
        inner = inner[:-1]
    return tuple(inner)


def show(module):
    return "::".join(module) if module else "crate"


USE = re.compile(r"\buse\b")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\*")


def use_paths(tree):
    """Every path a use tree names, as lists of segments: `a::{self, b, c::d}` → a, a::b, a::c::d
    (renames `x as y` already removed)."""

    def expand(prefix, text):
        out = []
        for part in split_top(text):
            if part.endswith("}") and "{" in part:
                head, inner = part[: part.index("{")], part[part.index("{") + 1 : -1]
                out += expand(prefix + [s for s in head.split("::") if s], inner)
            else:
                segs = [s for s in part.split("::") if s]
                out.append(prefix + (segs[:-1] if segs and segs[-1] == "self" else segs))
        return out

    return expand([], re.sub(r"\s+", "", tree))


def paths_in(code, children):
    """(offset, segments) of every path in code that starts at crate, super, self or a child."""
    found = []
    for m in USE.finditer(code):
        end = code.find(";", m.end())
        tree = code[m.end() : end]
        # `x as y` → `x`: rename targets do not name modules.
        tree = re.sub(r"\s+as\s+[A-Za-z_][A-Za-z0-9_]*", "", tree)
        for segs in use_paths(tree):
            segs = [s for s in segs if s]
            if segs and (segs[0] in ("crate", "super", "self") or segs[0] in children):
                found.append((m.start(), segs))
    starts = "|".join(["crate", "super", "self"] + sorted(children))
    path = re.compile(r"(?<![\w:$])(?:" + starts + r")(?:\s*::\s*[A-Za-z_][A-Za-z0-9_]*)+")
    in_use = [(m.start(), code.find(";", m.end())) for m in USE.finditer(code)]
    for m in path.finditer(code):
        if any(a <= m.start() < b for a, b in in_use):
            continue
        segs = [s.strip() for s in m.group(0).split("::")]
        found.append((m.start(), segs))
    return found


def resolve(module, segs, modules):
    """The file module a path names from module, or None when it leaves the crate."""
    at = list(module)
    rest = list(segs)
    if rest[0] == "crate":
        at, rest = [], rest[1:]
    else:
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                if not at:
                    return None
                at = at[:-1]
            rest = rest[1:]
    target = tuple(at)
    for seg in rest:
        if target + (seg,) in modules:
            target = target + (seg,)
        else:
            break
    return target


def sccs(nodes, edges):
    """Tarjan's strongly connected components of the graph."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def check_cycles(files, codes):
    problems = []
    for src in crates():
        # src/main.rs is a crate of its own (the binary) with no modules: no cycle there.
        own = [f for f in files if f.startswith(src + "/") and f != "src/main.rs"]
        modules = {module_of(src, f): f for f in own}
        edges = {}
        for module, rel in modules.items():
            code = codes[rel]
            children = {m[-1] for m in modules if len(m) == len(module) + 1 and m[:-1] == module}
            for at, segs in paths_in(code, children):
                target = resolve(module, segs, modules)
                if target is None or target == module:
                    continue
                edges.setdefault(module, {}).setdefault(target, f"{rel}:{line_of(code, at)} {'::'.join(segs)}")
        for comp in sccs(modules, edges):
            if len(comp) < 2:
                continue
            refs = [f"{show(a)} → {show(b)} ({edges[a][b]})" for a in comp for b in comp if b in edges.get(a, {})]
            problems.append(f"{src}: import cycle between {', '.join(show(m) for m in comp)}:\n    " + "\n    ".join(refs))
    return problems


def main():
    files = rust_files()
    codes = {rel: read_code(rel) for rel in files}
    long_fns, many_params = check_functions(files, codes)
    names = check_public_names(files, codes)
    cycles = check_cycles(files, codes)
    sections = [
        (f"functions over {MAX_LINES} lines", long_fns),
        (f"functions with more than {MAX_PARAMS} parameters", many_params),
        ("public type names defined twice", names),
        ("module import cycles", cycles),
    ]
    total = sum(len(found) for _, found in sections)
    if total:
        print(f"check-shape: {total} finding(s):", file=sys.stderr)
        for title, found in sections:
            if found:
                print(f"{title} ({len(found)}):", file=sys.stderr)
                for f in found:
                    print(f"  {f}", file=sys.stderr)
        return 1
    print(
        f"check-shape: {len(files)} files: no function over {MAX_LINES} lines or over {MAX_PARAMS} parameters, "
        "no public type name twice, no module import cycle"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
