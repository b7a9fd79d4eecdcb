//! CloudWatch Logs' JSON filter patterns (`{ $.status >= 500 && $.size > 0 }`), the subset the
//! template uses, evaluated on a message the way CloudWatch documents it: selectors `$.a.b`
//! (and `[n]`), `=` / `!=` on strings (quoted or bare, `*` a wildcard) and numbers, `<`, `>`,
//! `<=`, `>=` on numbers only (a string field never matches them), `&&`, `||` and parentheses.
//! moto accepts metric filters but evaluates no JSON pattern, so the template's patterns are
//! checked with this, itself checked against AWS's documented examples.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html>

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    Cmp {
        path: Vec<Step>,
        op: Op,
        value: Literal,
    },
    And(Box<Pattern>, Box<Pattern>),
    Or(Box<Pattern>, Box<Pattern>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
}

/// Parses `{ … }`.
pub fn parse(pattern: &str) -> Result<Pattern, String> {
    let inner = pattern
        .trim()
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .ok_or_else(|| format!("{pattern:?}: a JSON pattern is enclosed in braces"))?;
    let tokens = tokenize(inner)?;
    let mut pos = 0;
    let p = or(&tokens, &mut pos)?;
    if pos != tokens.len() {
        return Err(format!("{pattern:?}: unexpected {:?}", tokens[pos]));
    }
    Ok(p)
}

/// The value of a selector such as `$.body_bytes_sent` in `message`, if present.
pub fn select<'v>(message: &'v Value, selector: &str) -> Option<&'v Value> {
    let path = selector_steps(selector).ok()?;
    walk(message, &path)
}

impl Pattern {
    pub fn matches(&self, message: &Value) -> bool {
        match self {
            Self::And(a, b) => a.matches(message) && b.matches(message),
            Self::Or(a, b) => a.matches(message) || b.matches(message),
            Self::Cmp { path, op, value } => {
                let Some(field) = walk(message, path) else {
                    return false;
                };
                match (value, field) {
                    (Literal::Number(n), Value::Number(f)) => {
                        let f = f.as_f64().unwrap_or(f64::NAN);
                        match op {
                            Op::Eq => f == *n,
                            Op::Ne => f != *n,
                            Op::Lt => f < *n,
                            Op::Gt => f > *n,
                            Op::Le => f <= *n,
                            Op::Ge => f >= *n,
                        }
                    }
                    (Literal::Text(t), Value::String(s)) => match op {
                        Op::Eq => wildcard(t, s),
                        Op::Ne => !wildcard(t, s),
                        _ => false,
                    },
                    _ => false,
                }
            }
        }
    }
}

fn walk<'v>(mut v: &'v Value, path: &[Step]) -> Option<&'v Value> {
    for step in path {
        v = match step {
            Step::Key(k) => v.get(k)?,
            Step::Index(i) => v.get(i)?,
        };
    }
    Some(v)
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || !s[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Selector(String),
    Op(Op),
    And,
    Or,
    Open,
    Close,
    Word(String),
    Quoted(String),
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        let two = s.get(i..i + 2).unwrap_or("");
        if c.is_whitespace() {
            i += 1;
        } else if two == "&&" {
            out.push(Token::And);
            i += 2;
        } else if two == "||" {
            out.push(Token::Or);
            i += 2;
        } else if let Some(op) = match two {
            "!=" => Some(Op::Ne),
            "<=" => Some(Op::Le),
            ">=" => Some(Op::Ge),
            _ => None,
        } {
            out.push(Token::Op(op));
            i += 2;
        } else if let Some(op) = match c {
            '=' => Some(Op::Eq),
            '<' => Some(Op::Lt),
            '>' => Some(Op::Gt),
            _ => None,
        } {
            out.push(Token::Op(op));
            i += 1;
        } else if c == '(' {
            out.push(Token::Open);
            i += 1;
        } else if c == ')' {
            out.push(Token::Close);
            i += 1;
        } else if c == '"' {
            let end = s[i + 1..]
                .find('"')
                .ok_or_else(|| format!("unclosed quote in {s:?}"))?;
            out.push(Token::Quoted(s[i + 1..i + 1 + end].to_string()));
            i += end + 2;
        } else {
            let end = s[i..]
                .find(|ch: char| ch.is_whitespace() || "()=!<>&|\"".contains(ch))
                .map_or(s.len(), |e| i + e);
            let word = &s[i..end];
            out.push(if word.starts_with('$') {
                Token::Selector(word.to_string())
            } else {
                Token::Word(word.to_string())
            });
            i = end;
        }
    }
    Ok(out)
}

fn or(t: &[Token], pos: &mut usize) -> Result<Pattern, String> {
    let mut left = and(t, pos)?;
    while t.get(*pos) == Some(&Token::Or) {
        *pos += 1;
        left = Pattern::Or(Box::new(left), Box::new(and(t, pos)?));
    }
    Ok(left)
}

fn and(t: &[Token], pos: &mut usize) -> Result<Pattern, String> {
    let mut left = atom(t, pos)?;
    while t.get(*pos) == Some(&Token::And) {
        *pos += 1;
        left = Pattern::And(Box::new(left), Box::new(atom(t, pos)?));
    }
    Ok(left)
}

fn atom(t: &[Token], pos: &mut usize) -> Result<Pattern, String> {
    match t.get(*pos) {
        Some(Token::Open) => {
            *pos += 1;
            let p = or(t, pos)?;
            if t.get(*pos) != Some(&Token::Close) {
                return Err("missing )".into());
            }
            *pos += 1;
            Ok(p)
        }
        Some(Token::Selector(sel)) => {
            let path = selector_steps(sel)?;
            let Some(Token::Op(op)) = t.get(*pos + 1).cloned() else {
                return Err(format!(
                    "{sel}: an operator must follow (IS NULL, EXISTS … are not in this subset)"
                ));
            };
            let value = match t.get(*pos + 2) {
                Some(Token::Quoted(q)) => Literal::Text(q.clone()),
                Some(Token::Word(w)) => w
                    .parse::<f64>()
                    .map(Literal::Number)
                    .unwrap_or_else(|_| Literal::Text(w.clone())),
                other => return Err(format!("{sel}: a value must follow, not {other:?}")),
            };
            if matches!(value, Literal::Text(_)) && !matches!(op, Op::Eq | Op::Ne) {
                return Err(format!("{sel}: only = and != compare strings"));
            }
            *pos += 3;
            Ok(Pattern::Cmp { path, op, value })
        }
        other => Err(format!("expected a selector or (, not {other:?}")),
    }
}

fn selector_steps(sel: &str) -> Result<Vec<Step>, String> {
    let rest = sel
        .strip_prefix("$.")
        .ok_or_else(|| format!("{sel}: selectors start with $."))?;
    let mut steps = Vec::new();
    for part in rest.split('.') {
        let (key, indexes) = part.split_once('[').map_or((part, ""), |(k, i)| (k, i));
        if !key.is_empty() {
            steps.push(Step::Key(key.to_string()));
        }
        for idx in indexes.split('[').filter(|x| !x.is_empty()) {
            let n = idx
                .trim_end_matches(']')
                .parse::<usize>()
                .map_err(|_| format!("{sel}: bad index"))?;
            steps.push(Step::Index(n));
        }
    }
    Ok(steps)
}
