//! Parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of a
//! file.

/// The directives found at the top of a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Directives {
    /// The escape character: `\` unless `# escape=`` ` `` chose a backtick.
    pub escape: char,
    pub syntax: Option<String>,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
            check: None,
        }
    }
}

/// The directive scanner; it stops for good at the first line that is not a
/// directive.
#[derive(Debug, Default)]
pub(crate) struct DirectiveParser {
    pub(crate) directives: Directives,
    done: bool,
    seen_escape: bool,
}

impl DirectiveParser {
    /// Looks at a (left-trimmed) line. Returns an error message for a
    /// repeated directive or an invalid escape.
    pub(crate) fn line(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = match_directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        let slot_seen = match key.as_str() {
            "escape" => self.seen_escape,
            "syntax" => self.directives.syntax.is_some(),
            "check" => self.directives.check.is_some(),
            _ => {
                self.done = true;
                return Ok(());
            }
        };
        if slot_seen {
            return Err(format!("only one {key} parser directive can be used"));
        }
        match key.as_str() {
            "escape" => {
                self.seen_escape = true;
                self.directives.escape = match value {
                    "`" => '`',
                    "\\" => '\\',
                    other => {
                        return Err(format!(
                            "invalid escape token '{other}' does not match ` or \\"
                        ));
                    }
                };
            }
            "syntax" => self.directives.syntax = Some(value.to_string()),
            _ => self.directives.check = Some(value.to_string()),
        }
        Ok(())
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?;
    let rest = rest.trim_start_matches(is_re_space);
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| {
            if i == 0 {
                !c.is_ascii_alphabetic()
            } else {
                !c.is_ascii_alphanumeric()
            }
        })
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    if key_len == 0 {
        return None;
    }
    let key = &rest[..key_len];
    let rest = rest[key_len..].trim_start_matches(is_re_space);
    let rest = rest.strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

/// Go regexp `\s`: `[\t\n\f\r ]`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_directives() {
        assert_eq!(match_directive("#escape=\\"), Some(("escape", "\\")));
        assert_eq!(match_directive("# EScape=\\"), Some(("EScape", "\\")));
        assert_eq!(match_directive("# key = FOO bar"), Some(("key", "FOO bar")));
        assert_eq!(
            match_directive("#check = skip=all"),
            Some(("check", "skip=all"))
        );
        assert_eq!(match_directive("# syntax"), None);
        assert_eq!(match_directive("#"), None);
    }

    #[test]
    fn unknown_key_ends_directives() {
        let mut p = DirectiveParser::default();
        p.line("# key = FOO bar").unwrap();
        p.line("# escape=`").unwrap();
        assert_eq!(p.directives.escape, '\\');
    }

    #[test]
    fn duplicate_and_invalid() {
        let mut p = DirectiveParser::default();
        p.line("# escape=`").unwrap();
        assert!(p.line("# escape=\\").is_err());
        let mut p = DirectiveParser::default();
        assert!(p.line("# escape=x").is_err());
    }
}
