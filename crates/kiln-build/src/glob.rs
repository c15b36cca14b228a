//! Go `filepath.Match` globs, as used for COPY/ADD sources.
//!
//! `*` matches any run of non-`/` characters, `?` one non-`/` character,
//! `[...]` a class (`^` negates, `a-z` ranges, `\` escapes), `\x` the literal `x`.
//! A malformed pattern (unclosed class, trailing `\` in a class) is an error,
//! as in Go.

/// Why a glob is malformed (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error in pattern {0:?}")]
pub struct BadPattern(pub String);

/// Whether `name` matches the whole of `pattern` (Go `filepath.Match`).
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let bad = || BadPattern(pattern.to_string());
    match_from(&p, &n).map_err(|()| bad())
}

/// Whether the pattern contains glob meta characters at all.
pub fn has_meta(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '\\'])
}

/// Checks the pattern's syntax without matching anything useful.
pub fn validate(pattern: &str) -> Result<(), BadPattern> {
    // Go validates the rest of the pattern even after a mismatch; walking every
    // class once is equivalent.
    let p: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(BadPattern(pattern.to_string()));
                }
                i += 2;
            }
            '[' => {
                let (_, next) =
                    match_class(&p, i + 1, '\0').map_err(|()| BadPattern(pattern.to_string()))?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn match_from(p: &[char], n: &[char]) -> Result<bool, ()> {
    let (mut pi, mut ni) = (0usize, 0usize);
    // Backtracking point for the last `*`: (pattern index after star, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() => {
                    let (ok, next) = match_class(p, pi + 1, n[ni])?;
                    if ok {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' => {
                    if pi + 1 >= p.len() {
                        return Err(());
                    }
                    if ni < n.len() && n[ni] == p[pi + 1] {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c if c != '?' && c != '[' && ni < n.len() && n[ni] == c => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        // Mismatch: let the last star eat one more non-separator character.
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => {
                // Go still reports a syntax error in the rest of the pattern.
                let rest: String = p[pi.min(p.len())..].iter().collect();
                validate(&rest).map_err(|_| ())?;
                return Ok(false);
            }
        }
    }
}

/// Matches `c` against the class starting at `p[start]` (just after `[`).
/// Returns whether it matched and the index just after the closing `]`.
fn match_class(p: &[char], start: usize, c: char) -> Result<(bool, usize), ()> {
    let mut i = start;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let Some(&ch) = p.get(i) else { return Err(()) };
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let (lo, next) = class_char(p, i)?;
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            let (h, next) = class_char(p, i + 1)?;
            hi = h;
            i = next;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Ok((matched != negated, i))
}

fn class_char(p: &[char], i: usize) -> Result<(char, usize), ()> {
    match p.get(i) {
        None | Some('-') | Some(']') => Err(()),
        Some('\\') => p.get(i + 1).map(|&c| (c, i + 2)).ok_or(()),
        Some(&c) => Ok((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, n: &str) -> bool {
        glob_match(p, n).unwrap()
    }

    #[test]
    fn go_filepath_match_table() {
        // Cases from Go's documented semantics.
        assert!(m("abc", "abc"));
        assert!(m("*", "abc"));
        assert!(m("*c", "abc"));
        assert!(!m("a*", "ab/c"));
        assert!(m("a*/b", "abc/b"));
        assert!(!m("a*/b", "a/c/b"));
        assert!(m("a*b*c*d*e*/f", "axbxcxdxe/f"));
        assert!(m("a*b*c*d*e*/f", "axbxcxdxexxx/f"));
        assert!(!m("a*b*c*d*e*/f", "axbxcxdxe/xxx/f"));
        assert!(!m("a*b?c*x", "abxbbxdbxebxczzy"));
        assert!(m("ab[c]", "abc"));
        assert!(m("ab[b-d]", "abc"));
        assert!(!m("ab[e-g]", "abc"));
        assert!(!m("ab[^c]", "abc"));
        assert!(m("ab[^e-g]", "abc"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "ab"));
        assert!(m("a?b", "a☺b"));
        assert!(!m("a?b", "a/b"));
        assert!(m("[\\]a]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(m("[x\\-]", "x"));
        assert!(!m("*x", "xxx/"));
        assert!(m("context/arr[[]0].txt", "context/arr[0].txt"));
        assert!(m("context/fo?", "context/foo"));
        assert!(m("context/bar/b*", "context/bar/bat"));
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for p in ["[", "[^", "[-]", "[x-]", "\\", "[a-b-c]", "[]", "a[", "*x["] {
            assert!(glob_match(p, "a").is_err(), "{p} should be malformed");
            assert!(validate(p).is_err(), "{p} should not validate");
        }
        assert!(validate("a[bc]*?\\x").is_ok());
    }
}
