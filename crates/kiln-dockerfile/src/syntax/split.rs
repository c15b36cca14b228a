//! How a logical line is cut into keyword, flags and argument nodes
//! (BuildKit's `splitCommand`, `extractBuilderFlags` and line parsers).

/// `[\t\v\f\r ]`, the separator of BuildKit's `reWhitespace`.
pub(crate) fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Splits on runs of `[\t\v\f\r ]`.
pub(crate) fn split_ws(s: &str) -> Vec<String> {
    s.split(is_ws)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits once at the first whitespace run (`reWhitespace.Split(s, 2)`).
pub(crate) fn split_ws_once(s: &str) -> (&str, Option<&str>) {
    match s.find(is_ws) {
        None => (s, None),
        Some(i) => {
            let rest = s[i..].trim_start_matches(is_ws);
            (&s[..i], Some(rest))
        }
    }
}

/// Splits `line` into keyword, flags and the trimmed rest.
pub(crate) fn split_command(line: &str) -> (String, Vec<String>, String) {
    let trimmed = line.trim();
    let (keyword, rest) = split_ws_once(trimmed);
    match rest {
        None => (keyword.to_string(), Vec::new(), String::new()),
        Some(rest) => {
            let (rest, flags) = extract_flags(rest);
            (keyword.to_string(), flags, rest.trim().to_string())
        }
    }
}

/// Leading `--flag` words, with quotes removed and `\x` giving `x`; stops at
/// the first word not starting with `--`, or after a bare `--`.
fn extract_flags(line: &str) -> (&str, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut it = line.char_indices().peekable();
    while let Some((pos, ch)) = it.next() {
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    continue;
                }
                if ch != '-' || !line[pos + 1..].starts_with('-') {
                    return (&line[pos..], words);
                }
                phase = Phase::Word;
                word.push(ch);
            }
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (&line[pos..], words);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                    continue;
                }
                if ch == '\\' {
                    match it.next() {
                        None => continue,
                        Some((_, n)) => word.push(n),
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                    continue;
                }
                if ch == '\\' {
                    match it.next() {
                        None => {
                            phase = Phase::Word;
                            continue;
                        }
                        Some((_, n)) => word.push(n),
                    }
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    ("", words)
}

/// Quote-aware word split that keeps quotes and escapes (ARG, ENV, LABEL).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut it = rest.chars().peekable();
    while let Some(ch) = it.next() {
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Spaces => {}
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    match it.next() {
                        None => continue,
                        Some(n) => {
                            word.push(ch);
                            word.push(n);
                        }
                    }
                    continue;
                }
                word.push(ch);
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                }
                if ch == escape && q != '\'' {
                    match it.next() {
                        None => {
                            phase = Phase::Word;
                            continue;
                        }
                        Some(n) => {
                            word.push(ch);
                            word.push(n);
                        }
                    }
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Result of trying the JSON (exec) form.
pub(crate) enum Json {
    Strings(Vec<String>),
    Invalid,
    NotStrings,
}

pub(crate) const NOT_STRINGS: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

pub(crate) fn parse_json(rest: &str) -> Json {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Json::Invalid;
    }
    match serde_json::from_str::<serde_json::Value>(rest) {
        Ok(serde_json::Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NotStrings,
                }
            }
            Json::Strings(out)
        }
        _ => Json::Invalid,
    }
}

/// ENV/LABEL arguments: legacy `KEY value...` or `k=v k2=v2` triples.
pub(crate) fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let (k, v) = split_ws_once(rest);
        return match v {
            Some(v) => Ok(vec![k.to_string(), v.to_string(), String::new()]),
            None => Err(format!("{key} must have two arguments")),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for w in &words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        out.push(k.to_string());
        out.push(v.to_string());
        out.push("=".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        assert_eq!(
            parse_words("foo bar 'abc xyz'", '\\'),
            ["foo", "bar", "'abc xyz'"]
        );
        assert_eq!(parse_words("foo\\ bar", '\\'), ["foo\\ bar"]);
    }

    #[test]
    fn flags() {
        assert_eq!(
            split_command("COPY --doit=true -- foo /tmp/"),
            (
                "COPY".into(),
                vec!["--doit=true".into()],
                "foo /tmp/".into()
            )
        );
        assert_eq!(
            split_command("RUN --mount=type=cache,target=\"/a b\" echo"),
            (
                "RUN".into(),
                vec!["--mount=type=cache,target=/a b".into()],
                "echo".into()
            )
        );
        assert_eq!(
            split_command("COPY --link"),
            ("COPY".into(), vec!["--link".into()], "".into())
        );
    }

    #[test]
    fn name_val() {
        assert_eq!(
            parse_name_val("foo bar", "LABEL", '\\').unwrap(),
            ["foo", "bar", ""]
        );
        assert_eq!(
            parse_name_val("foo=bar thing=star", "LABEL", '\\').unwrap(),
            ["foo", "bar", "=", "thing", "star", "="]
        );
        assert!(parse_name_val("foo", "ENV", '\\').is_err());
        assert!(parse_name_val("a=b c", "ENV", '\\').is_err());
    }

    #[test]
    fn json() {
        for ok in [
            "[]",
            "[\"\"]",
            "[\"a\"]",
            "[\"a\",\"b\"]",
            "[ \"a\" ,\t\"b\" ]",
            "[\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000\"]",
        ] {
            assert!(matches!(parse_json(ok), Json::Strings(_)), "{ok}");
        }
        for bad in [
            "[1]",
            "[1.5]",
            "[{}]",
            "[[]]",
            "[true]",
            "[false]",
            "[null]",
            "[\"a\", 1]",
        ] {
            assert!(matches!(parse_json(bad), Json::NotStrings), "{bad}");
        }
        for not in ["['a']", "[\"a\"", "[\"a]", "[\"a\"] x", "echo"] {
            assert!(matches!(parse_json(not), Json::Invalid), "{not}");
        }
    }
}
