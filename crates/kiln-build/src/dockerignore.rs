//! `.dockerignore` with moby's `patternmatcher` rules.
//!
//! Patterns are anchored at the context root and cleaned (`./a/../b` is `b`,
//! a leading `/` is dropped). `*` and `?` never cross `/`, `**` crosses any
//! number of directories, `[...]` is a class, `\` escapes. Patterns apply in
//! order; a `!` pattern re-includes what earlier ones excluded, also inside an
//! excluded directory. A path is excluded when it or one of its parent
//! directories matches.

use std::path::Path;

use crate::error::BuildError;
use crate::glob;

/// A compiled list of ignore patterns.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern text, without `!`.
    text: String,
    exclusion: bool,
    kind: MatchKind,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchKind {
    Exact,
    Prefix,
    Suffix,
    Pattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `*`: any run of non-`/`.
    Star,
    /// `?`: one non-`/`.
    Any,
    /// `**/` or inner `**`: `(.*/)?`.
    DirsOpt,
    /// trailing `**`: `.*`.
    Rest,
    /// `[...]`: the class text without brackets, passed to the glob class matcher.
    Class(String),
}

impl IgnoreMatcher {
    /// Parses the contents of a `.dockerignore` file (as moby's `ignorefile.ReadAll`
    /// then `patternmatcher.New`). `path` only names the file in errors.
    pub fn parse(contents: &str, path: &Path) -> Result<Self, BuildError> {
        let mut patterns = Vec::new();
        for (index, raw) in contents.lines().enumerate() {
            let line = if index == 0 {
                raw.trim_start_matches('\u{feff}')
            } else {
                raw
            };
            if line.starts_with('#') {
                continue;
            }
            let mut text = line.trim();
            if text.is_empty() {
                continue;
            }
            let exclusion = text.starts_with('!');
            if exclusion {
                text = text[1..].trim();
            }
            let err = |reason: &str| BuildError::Dockerignore {
                path: path.to_path_buf(),
                line: index + 1,
                pattern: raw.to_string(),
                reason: reason.to_string(),
            };
            if exclusion && text.is_empty() {
                return Err(err("`!` needs a pattern after it"));
            }
            let mut cleaned = clean(text);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            glob::validate(&cleaned).map_err(|e| err(&e.to_string()))?;
            let (kind, tokens) = compile(&cleaned);
            patterns.push(Pattern {
                text: cleaned,
                exclusion,
                kind,
                tokens,
            });
        }
        Ok(IgnoreMatcher { patterns })
    }

    /// Whether any pattern is a `!` re-include (then excluded directories must
    /// still be walked).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether the context-relative path (`/`-separated, no leading `/`) is ignored:
    /// it or one of its parents matches, after the last applicable pattern.
    pub fn is_ignored(&self, rel: &str) -> bool {
        let file = clean(rel);
        let parent = match file.rfind('/') {
            Some(i) => &file[..i],
            None => ".",
        };
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(&file);
            if !hit && parent != "." {
                for i in 0..parent_dirs.len() {
                    if pattern.matches(&parent_dirs[..=i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            MatchKind::Exact => path == self.text,
            MatchKind::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            MatchKind::Suffix => {
                let suffix = &self.text[2..];
                if path.starts_with(suffix) {
                    return true;
                }
                path.ends_with(suffix.get(1..).unwrap_or(""))
            }
            MatchKind::Pattern => {
                let chars: Vec<char> = path.chars().collect();
                match_tokens(&self.tokens, &chars)
            }
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|p| *p != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// moby's pattern compiler, producing tokens instead of a regexp string.
fn compile(pattern: &str) -> (MatchKind, Vec<Token>) {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut kind = MatchKind::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == MatchKind::Exact {
                        kind = MatchKind::Prefix;
                    } else {
                        tokens.push(Token::Rest);
                        kind = MatchKind::Pattern;
                    }
                } else {
                    tokens.push(Token::DirsOpt);
                    kind = MatchKind::Pattern;
                }
                if first {
                    kind = MatchKind::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                kind = MatchKind::Pattern;
            }
            '?' => {
                tokens.push(Token::Any);
                kind = MatchKind::Pattern;
            }
            '\\' => match chars.get(i) {
                Some(&next) => {
                    tokens.push(Token::Lit(next));
                    i += 1;
                }
                None => tokens.push(Token::Lit('\\')),
            },
            '[' => {
                let start = i;
                while i < chars.len() && !(chars[i] == ']' && i > start) {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                tokens.push(Token::Class(
                    chars[start..i.min(chars.len())].iter().collect(),
                ));
                i += 1;
                kind = MatchKind::Pattern;
            }
            c => tokens.push(Token::Lit(c)),
        }
        first = false;
    }
    (kind, tokens)
}

fn match_tokens(tokens: &[Token], s: &[char]) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match token {
        Token::Lit(c) => s.first() == Some(c) && match_tokens(rest, &s[1..]),
        Token::Any => s.first().is_some_and(|c| *c != '/') && match_tokens(rest, &s[1..]),
        Token::Class(class) => {
            s.first().is_some_and(|c| {
                let pattern = format!("[{class}]");
                glob::glob_match(&pattern, &c.to_string()).unwrap_or(false)
            }) && match_tokens(rest, &s[1..])
        }
        Token::Star => {
            let mut n = 0;
            loop {
                if match_tokens(rest, &s[n..]) {
                    return true;
                }
                if n >= s.len() || s[n] == '/' {
                    return false;
                }
                n += 1;
            }
        }
        Token::Rest => true,
        Token::DirsOpt => {
            if match_tokens(rest, s) {
                return true;
            }
            // (.*/) : any prefix ending in '/'.
            (0..s.len()).any(|i| s[i] == '/' && match_tokens(rest, &s[i + 1..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(text: &str) -> IgnoreMatcher {
        IgnoreMatcher::parse(text, Path::new(".dockerignore")).unwrap()
    }

    #[test]
    fn kaniko_corpus_dockerignore_keeps_only_ignore_foo() {
        let dir = crate::test_support::kaniko_integration_dir();
        let text = fs_err::read_to_string(dir.join(".dockerignore")).unwrap();
        let m = matcher(&text);
        assert!(m.is_ignored("ignore/bar"));
        assert!(m.is_ignored("ignore/baz"));
        assert!(!m.is_ignored("ignore/foo"));
        assert!(!m.is_ignored("ignore"));
        assert!(!m.is_ignored("ignore_relative/bar"));
        assert!(!m.is_ignored("context/foo"));
        let relative = fs_err::read_to_string(
            dir.join("dockerfiles/Dockerfile_dockerignore_relative.dockerignore"),
        )
        .unwrap();
        let m = matcher(&relative);
        assert!(m.is_ignored("ignore_relative/bar"));
        assert!(!m.is_ignored("ignore_relative/foo"));
    }

    #[test]
    fn moby_matching_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("fileutils.go", "fileutils.go", true),
            ("*.go", "fileutils.go", true),
            ("*.go", "sub/fileutils.go", false),
            ("**/*.go", "sub/fileutils.go", true),
            ("**/*.go", "fileutils.go", true),
            ("docs", "docs/README.md", true),
            ("/docs", "docs/README.md", true),
            ("./docs/../docs", "docs/a", true),
            ("a/*/c", "a/b/c", true),
            ("a/*/c", "a/b/x/c", false),
            ("a/**/c", "a/b/x/c", true),
            ("a/**/c", "a/c", true),
            ("a/**", "a/b/c", true),
            ("a/**", "b/a", false),
            ("**", "anything/at/all", true),
            ("**/foo", "x/y/foo", true),
            ("fo?", "foo", true),
            ("fo?", "fo/", false),
            ("[a-c]x", "bx", true),
            ("[!a]x", "!x", true),
            ("[^a]x", "bx", true),
            // moby quirk, kept: an escape alone leaves the pattern an exact
            // match against its own text, backslash included.
            ("a\\*b", "a*b", false),
            ("a\\*b", "a\\*b", true),
            ("a\\*b?", "a*bc", true),
            ("a\\*b", "axb", false),
            ("*", "a/b", true), // parent `a` matches `*`
        ];
        for (pattern, path, want) in cases {
            assert_eq!(
                matcher(pattern).is_ignored(path),
                *want,
                "{pattern} vs {path}"
            );
        }
    }

    #[test]
    fn reinclusion_order_and_comments() {
        let m = matcher("# comment\n\n*.md\n!README.md\nREADME.md.bak\n");
        assert!(m.is_ignored("a.md"));
        assert!(!m.is_ignored("README.md"));
        let m = matcher("*.md\n!README.md\n*.md\n");
        assert!(m.is_ignored("README.md"), "a later pattern wins");
        let m = matcher("dir\n!dir/keep\n");
        assert!(m.is_ignored("dir/other"));
        assert!(!m.is_ignored("dir/keep"));
        assert!(!m.is_ignored("dir/keep/inner"));
        assert!(m.has_exclusions());
    }

    #[test]
    fn bad_patterns_name_the_line() {
        let err = IgnoreMatcher::parse("ok\n[\n", Path::new("ctx/.dockerignore")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ctx/.dockerignore: line 2"), "{text}");
        assert!(IgnoreMatcher::parse("!\n", Path::new("x")).is_err());
    }

    #[test]
    fn clean_matches_go() {
        assert_eq!(clean("./a/../b/"), "b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a//b/./c"), "a/b/c");
    }
}
