//! Paths as nginx makes them: relative names after a prefix, `include` globs as glob(3)
//! matches them, and one spelling per file.

/// `name` as nginx opens it (`ngx_get_full_name`): absolute as it is, else after `prefix`.
pub(super) fn full_name(prefix: &str, name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else if prefix.ends_with('/') {
        format!("{prefix}{name}")
    } else {
        format!("{prefix}/{name}")
    }
}

/// `path` with each `$name` or `${name}` replaced by `*`.
pub(super) fn variables_as_stars(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        out.push('*');
        let after = &rest[i + 1..];
        let name_end = |s: &str| {
            s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(s.len())
        };
        rest = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(close) => &braced[close + 1..],
                None => "",
            },
            None => &after[name_end(after)..],
        };
    }
    out.push_str(rest);
    out
}

/// The same file's path written one way: no empty or `.` components (`..` is kept: only the
/// filesystem knows where it leads through a symbolic link).
pub(super) fn tidy(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Whether `path` matches the `include` pattern as glob(3) (which nginx calls) matches it:
/// `*`, `?` and `[…]` stay within one path component and do not match a leading `.`.
pub(super) fn glob_match(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let name: Vec<&str> = path.split('/').collect();
    pat.len() == name.len()
        && pat.iter().zip(&name).all(|(p, n)| {
            let hidden = n.starts_with('.') && !p.starts_with('.');
            !hidden && fnmatch(p.as_bytes(), n.as_bytes())
        })
}

fn fnmatch(p: &[u8], n: &[u8]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some(b'*') => (0..=n.len()).any(|k| fnmatch(&p[1..], &n[k..])),
        Some(b'?') => !n.is_empty() && fnmatch(&p[1..], &n[1..]),
        Some(b'[') => match (class(&p[1..], n.first().copied()), n.is_empty()) {
            (Some((true, used)), false) => fnmatch(&p[1 + used..], &n[1..]),
            (Some(_), _) => false,
            // No closing `]`: a literal `[`.
            (None, _) => n.first() == Some(&b'[') && fnmatch(&p[1..], &n[1..]),
        },
        Some(b'\\') if p.len() > 1 => n.first() == Some(&p[1]) && fnmatch(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && fnmatch(&p[1..], &n[1..]),
    }
}

/// A `[…]` class after its `[`: whether `c` is in it and how many bytes it takes with its `]`.
fn class(p: &[u8], c: Option<u8>) -> Option<(bool, usize)> {
    let c = c.unwrap_or(0);
    let negate = matches!(p.first(), Some(b'!' | b'^'));
    let mut i = usize::from(negate);
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|h| *h != b']') {
            hit |= (lo..=p[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
}
