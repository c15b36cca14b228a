//! Instruction flags (`--name`, `--name=value`), checked against the flags
//! an instruction accepts (BuildKit's `BFlags`).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--x=value`, at most once.
    Str,
    /// `--x`, `--x=true`, `--x=false`.
    Bool,
    /// `--x=value`, repeatable.
    List,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Str(String),
    Bool(bool),
    List(Vec<String>),
}

/// The flags given to one instruction.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: BTreeMap<&'static str, Value>,
}

impl Flags {
    /// Parses `words` (each `--name[=value]`) against `spec`; collects one
    /// message per bad flag.
    pub(crate) fn parse(
        words: &[String],
        spec: &[(&'static str, Kind)],
        errors: &mut Vec<String>,
    ) -> Flags {
        let mut flags = Flags::default();
        for w in words {
            let Some(arg) = w.strip_prefix("--") else {
                errors.push(format!("arguments must begin with '--': {w}"));
                continue;
            };
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let Some(&(key, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                errors.push(format!("unknown flag: --{name}"));
                continue;
            };
            match kind {
                Kind::Bool => {
                    let b = match value.map(str::to_ascii_lowercase).as_deref() {
                        None | Some("true") => true,
                        Some("false") => false,
                        Some(_) => {
                            errors.push(format!(
                                "expecting boolean value for flag --{name}, not: {}",
                                value.unwrap_or_default()
                            ));
                            continue;
                        }
                    };
                    if flags.values.contains_key(key) {
                        errors.push(format!("duplicate flag specified: --{name}"));
                        continue;
                    }
                    flags.values.insert(key, Value::Bool(b));
                }
                Kind::Str => {
                    let Some(v) = value else {
                        errors.push(format!("missing a value on flag: --{name}"));
                        continue;
                    };
                    if flags.values.contains_key(key) {
                        errors.push(format!("duplicate flag specified: --{name}"));
                        continue;
                    }
                    flags.values.insert(key, Value::Str(v.to_string()));
                }
                Kind::List => {
                    let Some(v) = value else {
                        errors.push(format!("missing a value on flag: --{name}"));
                        continue;
                    };
                    if let Value::List(l) = flags
                        .values
                        .entry(key)
                        .or_insert_with(|| Value::List(Vec::new()))
                    {
                        l.push(v.to_string());
                    }
                }
            }
        }
        flags
    }

    pub(crate) fn str(&self, name: &str) -> Option<String> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s.clone()),
            _ => None,
        }
    }

    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(Value::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[(&str, Kind)] = &[
        ("str1", Kind::Str),
        ("bool1", Kind::Bool),
        ("l", Kind::List),
    ];

    fn parse(words: &[&str]) -> (Flags, Vec<String>) {
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        let mut errors = Vec::new();
        let f = Flags::parse(&words, SPEC, &mut errors);
        (f, errors)
    }

    #[test]
    fn parses_values() {
        let (f, e) = parse(&["--str1=a", "--bool1", "--l=x", "--l=y"]);
        assert!(e.is_empty());
        assert_eq!(f.str("str1").as_deref(), Some("a"));
        assert_eq!(f.bool("bool1"), Some(true));
        assert_eq!(f.list("l"), ["x", "y"]);
        let (f, e) = parse(&["--bool1=false"]);
        assert!(e.is_empty());
        assert_eq!(f.bool("bool1"), Some(false));
    }

    #[test]
    fn reports_errors() {
        let (_, e) = parse(&["--boo", "--str1", "--bool1=maybe", "--str1=a", "--str1=b"]);
        assert_eq!(
            e,
            [
                "unknown flag: --boo",
                "missing a value on flag: --str1",
                "expecting boolean value for flag --bool1, not: maybe",
                "duplicate flag specified: --str1",
            ]
        );
    }
}
