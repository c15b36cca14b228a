//! Shell glob patterns (`*`, `?`, escaped literals) as used by `${V#p}`,
//! `${V%p}` and `${V/p/r}`. No bracket expressions, as in BuildKit.
//!
//! Matching follows the leftmost-first semantics of the regular expressions
//! BuildKit builds from these patterns: `*` is lazy or greedy as asked, and
//! neither `*` nor `?` matches a newline.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

struct Memo {
    failed: Vec<bool>,
    width: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    toks: Vec<Tok>,
}

impl Pattern {
    /// Parses a pattern whose escapes are still raw (`\*`, `\?`, `\\`, and
    /// `\}`/`\/` whose backslash is dropped). Other escapes are errors.
    pub(crate) fn parse(src: &str) -> Result<Pattern, String> {
        let chars: Vec<char> = src.chars().collect();
        let mut toks = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => match chars.get(i + 1) {
                    Some('}') | Some('/') => {}
                    Some(&n @ ('*' | '?' | '\\')) => {
                        toks.push(Tok::Lit(n));
                        i += 1;
                    }
                    Some(n) => return Err(format!("invalid escape '\\{n}'")),
                    None => return Err("invalid escape at end of pattern".to_string()),
                },
                c => toks.push(Tok::Lit(c)),
            }
            i += 1;
        }
        Ok(Pattern { toks })
    }

    pub(crate) fn reversed(&self) -> Pattern {
        let mut toks = self.toks.clone();
        toks.reverse();
        Pattern { toks }
    }

    /// A failure memo for matching against `s`: whether the tokens from `ti`
    /// can match at `si` does not depend on where the match started, so one
    /// memo serves every start position (linear, not quadratic, per start).
    fn memo(&self, s: &[char]) -> Memo {
        let width = s.len() + 1;
        Memo {
            failed: vec![false; (self.toks.len() + 1) * width],
            width,
        }
    }

    /// End of the preferred match of the pattern starting at `start`:
    /// backtracking over `*` choices (longest first when greedy, shortest
    /// first otherwise), iterative so that no pattern can exhaust the stack.
    fn match_at(&self, s: &[char], start: usize, greedy: bool, memo: &mut Memo) -> Option<usize> {
        struct Choice {
            ti: usize,
            si: usize,
            next: usize,
            max: usize,
        }
        let n = self.toks.len();
        let mut stack: Vec<Choice> = Vec::new();
        let (mut ti, mut si) = (0, start);
        loop {
            // Advance until the pattern ends or a token fails.
            let failed_at = loop {
                if ti == n {
                    return Some(si);
                }
                let key = ti * memo.width + si;
                if memo.failed[key] {
                    break None;
                }
                match self.toks[ti] {
                    Tok::Lit(c) if s.get(si) == Some(&c) => {}
                    Tok::Any if s.get(si).is_some_and(|&c| c != '\n') => {}
                    Tok::Star => {
                        let mut max = si;
                        while max < s.len() && s[max] != '\n' {
                            max += 1;
                        }
                        let (first, next) = if greedy { (max, max) } else { (si, si) };
                        stack.push(Choice { ti, si, next, max });
                        ti += 1;
                        si = first;
                        continue;
                    }
                    _ => break Some(key),
                }
                ti += 1;
                si += 1;
            };
            if let Some(key) = failed_at {
                memo.failed[key] = true;
            }
            // Backtrack to the innermost `*` with an untried length.
            loop {
                let top = stack.last_mut()?;
                let more = if greedy {
                    (top.next > top.si).then(|| top.next - 1)
                } else {
                    (top.next < top.max).then(|| top.next + 1)
                };
                if let Some(k) = more {
                    top.next = k;
                    ti = top.ti + 1;
                    si = k;
                    break;
                }
                memo.failed[top.ti * memo.width + top.si] = true;
                stack.pop();
            }
        }
    }

    /// `${V#p}` / `${V##p}`: removes the matched prefix.
    pub(crate) fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let s: Vec<char> = value.chars().collect();
        let mut memo = self.memo(&s);
        match self.match_at(&s, 0, greedy, &mut memo) {
            Some(end) => s[end..].iter().collect(),
            None => value.to_string(),
        }
    }

    /// `${V%p}` / `${V%%p}`: removes the matched suffix (by matching the
    /// reversed pattern against the reversed value, as BuildKit does).
    pub(crate) fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let rev: Vec<char> = value.chars().rev().collect();
        let pat = self.reversed();
        let mut memo = pat.memo(&rev);
        match pat.match_at(&rev, 0, greedy, &mut memo) {
            Some(end) => rev[end..].iter().rev().collect(),
            None => value.to_string(),
        }
    }

    fn find(&self, s: &[char], from: usize, memo: &mut Memo) -> Option<(usize, usize)> {
        (from..=s.len()).find_map(|start| self.match_at(s, start, true, memo).map(|e| (start, e)))
    }

    /// `${V/p/r}` (first match) and `${V//p/r}` (all matches, with Go's rules
    /// for empty matches).
    pub(crate) fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let s: Vec<char> = value.chars().collect();
        let mut memo = self.memo(&s);
        if !all {
            return match self.find(&s, 0, &mut memo) {
                Some((a, b)) => {
                    let mut out: String = s[..a].iter().collect();
                    out.push_str(replacement);
                    out.extend(&s[b..]);
                    out
                }
                None => value.to_string(),
            };
        }
        let mut out = String::new();
        let mut last_end = 0usize;
        let mut search = 0usize;
        let mut first = true;
        while search <= s.len() {
            let Some((a, b)) = self.find(&s, search, &mut memo) else {
                break;
            };
            out.extend(&s[last_end..a]);
            if b > last_end || (a == 0 && first) {
                out.push_str(replacement);
            }
            first = false;
            last_end = b;
            search = if b > search { b } else { search + 1 };
        }
        out.extend(&s[last_end.min(s.len())..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn prefix_and_suffix() {
        assert_eq!(p("*x*y").trim_prefix("xxyy", false), "y");
        assert_eq!(p("*x").trim_prefix("xxyy", true), "yy");
        assert_eq!(p("\\**").trim_suffix("xx**", true), "xx");
        assert_eq!(p("\\**").trim_suffix("xx**", false), "xx*");
        assert_eq!(p("y*").trim_suffix("xxyy", false), "xxy");
        assert_eq!(p("y*").trim_suffix("xxyy", true), "xx");
    }

    #[test]
    fn replace_first_and_all() {
        assert_eq!(p("o").replace("foo", ".", false), "f.o");
        assert_eq!(p("o").replace("foo", ".", true), "f..");
        assert_eq!(p("/").replace("a/b/c", "\\/", true), "a\\/b\\/c");
        assert_eq!(p("").replace("abc", "", true), "abc");
        assert_eq!(p("?").replace("ab", "x", true), "xx");
    }

    #[test]
    fn invalid_escapes() {
        assert!(Pattern::parse("\\").is_err());
        assert!(Pattern::parse("\\x").is_err());
        assert!(Pattern::parse("\\\\\\").is_err());
        assert!(Pattern::parse("a\\}").is_ok());
    }
}
