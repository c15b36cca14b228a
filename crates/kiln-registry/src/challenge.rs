//! `WWW-Authenticate` challenge parsing (RFC 7235) and token scopes.
//!
//! A header may carry several challenges (`Basic realm="r", Bearer realm="…"`) and quoted
//! parameter values may contain commas (`scope="repository:a/b:pull,push"`), so the header
//! is tokenised, never split on commas.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The authentication scheme a registry asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthScheme {
    Basic,
    Bearer,
    /// Any other scheme, lower-cased (kiln cannot answer it).
    Other(String),
}

/// One challenge: a scheme and its parameters (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: AuthScheme,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// Scopes the challenge names (a `scope` value may list several, space separated).
    pub fn scopes(&self) -> Vec<Scope> {
        self.param("scope")
            .map(|s| s.split_whitespace().filter_map(Scope::parse).collect())
            .unwrap_or_default()
    }
}

/// Parses every challenge of one `WWW-Authenticate` header value.
/// Malformed trailing input is ignored; what was understood is returned.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_separators();
        let Some(scheme) = p.token() else { break };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "basic" => AuthScheme::Basic,
            "bearer" => AuthScheme::Bearer,
            other => AuthScheme::Other(other.to_string()),
        };
        let mut params = BTreeMap::new();
        loop {
            let save = p.pos;
            p.skip_separators();
            let Some(name) = p.token() else {
                p.pos = save;
                break;
            };
            p.skip_spaces();
            if !p.eat(b'=') {
                // Not a parameter: the start of the next challenge (or a token68).
                p.pos = save;
                break;
            }
            p.skip_spaces();
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.token().unwrap_or_default()
            };
            params.insert(name.to_ascii_lowercase(), value);
        }
        out.push(Challenge { scheme, params });
        // Skip anything unparseable up to the next separator so we cannot loop forever.
        while let Some(c) = p.peek() {
            if c == b',' || c == b' ' || c == b'\t' {
                break;
            }
            p.pos += 1;
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }
    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }
    fn token(&mut self) -> Option<String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            // RFC 7230 tchar, plus '/' and ':' which appear unquoted in the wild.
            if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&c) {
                self.pos += 1;
            } else {
                break;
            }
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }
    fn quoted(&mut self) -> String {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.pos += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// A token scope: `repository:NAME:pull,push` (or `registry:catalog:*`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scope {
    pub resource_type: String,
    pub name: String,
    pub actions: BTreeSet<String>,
}

impl Scope {
    pub fn repository(name: &str, actions: &[&str]) -> Scope {
        Scope {
            resource_type: "repository".to_string(),
            name: name.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Parses `type:name:actions`; the name may itself contain ':' (a registry port in
    /// some issuers' names), so type is the first field and actions the last.
    pub fn parse(s: &str) -> Option<Scope> {
        let (resource_type, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Scope {
            resource_type: resource_type.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(String::as_str).collect();
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            actions.join(",")
        )
    }
}

/// Merges scopes on the same resource (union of actions); the result is sorted, so it
/// doubles as a stable token-cache key.
pub fn merge_scopes<'a>(scopes: impl IntoIterator<Item = &'a Scope>) -> Vec<Scope> {
    let mut by_resource: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for s in scopes {
        by_resource
            .entry((s.resource_type.clone(), s.name.clone()))
            .or_default()
            .extend(s.actions.iter().cloned());
    }
    by_resource
        .into_iter()
        .map(|((resource_type, name), actions)| Scope {
            resource_type,
            name,
            actions,
        })
        .collect()
}

/// The cache key of a set of merged scopes.
pub fn scope_key(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(Scope::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_comma_in_quoted_scope() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, AuthScheme::Bearer);
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("service"), Some("registry.example"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(
            c[0].scopes(),
            vec![Scope::repository("a/b", &["pull", "push"])]
        );
    }

    #[test]
    fn several_challenges_and_escapes() {
        let c = parse_challenges(
            r#"Basic realm="Registry \"R\", eu", Bearer realm="https://t/x" , error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, AuthScheme::Basic);
        assert_eq!(c[0].param("realm"), Some(r#"Registry "R", eu"#));
        assert_eq!(c[1].scheme, AuthScheme::Bearer);
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn unquoted_values_case_and_unknown_scheme() {
        let c = parse_challenges("NEGOTIATE, basic Realm=simple");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, AuthScheme::Other("negotiate".into()));
        assert_eq!(c[1].scheme, AuthScheme::Basic);
        assert_eq!(c[1].param("realm"), Some("simple"));
        assert!(parse_challenges("").is_empty());
        // Unterminated quote: what was understood is kept.
        let c = parse_challenges(r#"Bearer realm="https://x"#);
        assert_eq!(c[0].param("realm"), Some("https://x"));
    }

    #[test]
    fn scopes_merge_into_stable_keys() {
        let a = Scope::repository("x/y", &["pull"]);
        let b = Scope::repository("x/y", &["push"]);
        let c = Scope::repository("base", &["pull"]);
        let merged = merge_scopes([&a, &c, &b]);
        assert_eq!(
            scope_key(&merged),
            "repository:base:pull repository:x/y:pull,push"
        );
        assert_eq!(
            Scope::parse("repository:h:5000/x:pull").unwrap().name,
            "h:5000/x"
        );
        assert_eq!(Scope::parse("nocolon"), None);
    }
}
