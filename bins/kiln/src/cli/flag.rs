//! One row of a flag table: what the parser needs (name, short name, how
//! the value is stored) next to what `--help` shows (group, value
//! placeholder, default, description). Keeping both in one row means the
//! help cannot list a flag the parser does not take, or miss one it does.

use super::pflag::{Arity, FlagSpec};

/// How a flag's value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Str,
    Int,
    Duration,
    /// Repeatable; every occurrence is kept.
    Multi,
    /// Accepted for compatibility; has no effect in kiln.
    Ignored(Arity),
}

/// The default `--help` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// No default worth showing (an empty list, an unset path).
    Nothing,
    /// The value the parser itself starts from, exactly as it would be
    /// given on the command line.
    Value(&'static str),
    /// A default decided after parsing (from the environment, the other
    /// flags or the machine), described in words.
    Note(&'static str),
}

/// One accepted flag.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The long name, without dashes.
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    /// The help section, named as in docs/kaniko-compat.md.
    pub group: &'static str,
    /// What the value looks like (`PATH`, `KEY=VALUE`); empty for booleans.
    pub value: &'static str,
    pub default: Shown,
    /// One line, lower-case, no final full stop.
    pub help: &'static str,
    /// For an older spelling: the flag it is a deprecated alias of. It is
    /// shown on that flag's line, not on its own.
    pub alias_of: Option<&'static str>,
}

/// A flag that takes a value shaped like `value`.
pub const fn valued(
    name: &'static str,
    kind: Kind,
    value: &'static str,
    group: &'static str,
    help: &'static str,
) -> Flag {
    Flag {
        name,
        short: None,
        kind,
        group,
        value,
        default: Shown::Nothing,
        help,
        alias_of: None,
    }
}

/// A boolean flag; its default is `false` unless [`Flag::default`] says otherwise.
pub const fn boolean(name: &'static str, group: &'static str, help: &'static str) -> Flag {
    Flag {
        name,
        short: None,
        kind: Kind::Bool,
        group,
        value: "",
        default: Shown::Value("false"),
        help,
        alias_of: None,
    }
}

/// An older spelling of `of`: parsed like it, shown on its line.
pub const fn alias(name: &'static str, of: &'static str, kind: Kind, group: &'static str) -> Flag {
    Flag {
        name,
        short: None,
        kind,
        group,
        value: "",
        default: Shown::Nothing,
        help: "",
        alias_of: Some(of),
    }
}

impl Flag {
    pub const fn short(mut self, c: char) -> Flag {
        self.short = Some(c);
        self
    }

    pub const fn default(mut self, value: &'static str) -> Flag {
        self.default = Shown::Value(value);
        self
    }

    pub const fn default_note(mut self, note: &'static str) -> Flag {
        self.default = Shown::Note(note);
        self
    }

    /// Whether the flag takes a value.
    pub fn arity(&self) -> Arity {
        match self.kind {
            Kind::Bool => Arity::Bool,
            Kind::Ignored(arity) => arity,
            _ => Arity::Value,
        }
    }

    /// What the command-line splitter needs to know.
    pub fn spec(&self) -> FlagSpec {
        FlagSpec {
            name: self.name,
            short: self.short,
            arity: self.arity(),
        }
    }
}

/// Everything wrong with a flag table, one line per problem: rows without a
/// description or a known group, placeholders that do not match the arity,
/// aliases of nothing, names or short names used twice (or taken by help).
#[cfg(test)]
pub fn table_problems<'a>(
    rows: impl IntoIterator<Item = &'a Flag>,
    groups: &[&str],
) -> Vec<String> {
    let rows: Vec<&Flag> = rows.into_iter().collect();
    let mut problems = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let name = row.name;
        if !groups.contains(&row.group) {
            problems.push(format!(
                "--{name}: group {:?} is not one of {groups:?}",
                row.group
            ));
        }
        if row.name == "help" || row.short == Some('h') {
            problems.push(format!("--{name}: --help and -h are reserved for help"));
        }
        if rows[..i].iter().any(|r| r.name == name) {
            problems.push(format!("--{name}: listed twice"));
        }
        if let Some(c) = row.short
            && rows[..i].iter().any(|r| r.short == Some(c))
        {
            problems.push(format!("-{c}: used by two flags"));
        }
        match row.alias_of {
            None => {
                if row.help.is_empty() {
                    problems.push(format!("--{name}: no description"));
                }
                if row.value.is_empty() != (row.arity() == Arity::Bool) {
                    problems.push(format!(
                        "--{name}: value placeholder does not match its arity"
                    ));
                }
            }
            Some(of) => match rows.iter().find(|r| r.name == of) {
                Some(target) if target.alias_of.is_none() => {
                    if target.kind != row.kind || target.group != row.group {
                        problems.push(format!("--{name}: parsed or grouped unlike --{of}"));
                    }
                }
                _ => problems.push(format!("--{name}: alias of --{of}, which is not a flag")),
            },
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_problems_are_found() {
        const G: &str = "G";
        let rows = [
            boolean("a", G, "fine").short('a'),
            valued("b", Kind::Str, "", G, "no placeholder"),
            boolean("c", "Other", ""),
            alias("d", "nope", Kind::Str, G),
            boolean("a", G, "again").short('a'),
            boolean("help", G, "mine"),
        ];
        let problems = table_problems(&rows, &[G]);
        for expected in [
            "--b: value placeholder does not match its arity",
            "--c: group \"Other\" is not one of [\"G\"]",
            "--c: no description",
            "--d: alias of --nope, which is not a flag",
            "--a: listed twice",
            "-a: used by two flags",
            "--help: --help and -h are reserved for help",
        ] {
            assert!(
                problems.iter().any(|p| p == expected),
                "{expected}: {problems:?}"
            );
        }
        assert!(table_problems(&rows[..1], &[G]).is_empty());
    }
}
