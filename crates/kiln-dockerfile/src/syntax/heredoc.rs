//! Heredoc markers (`<<EOF`, `<<-EOF`, `3<<'EOF'`) found on RUN/COPY/ADD
//! lines.

use crate::shell::{Lexer, lexer_no_vars};

/// One heredoc: its marker and its raw body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Heredoc {
    /// The terminator word, quotes removed.
    pub name: String,
    /// The body lines exactly as read, each with its line ending.
    pub content: String,
    /// False when any part of the marker was quoted: no expansion of the body.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body when it is used.
    pub chomp: bool,
    /// The file descriptor before `<<` (0 when absent).
    pub file_descriptor: u32,
}

/// Removes leading tabs from every line (the `<<-` rule, applied at use time).
pub fn chomp_heredoc(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    for line in content.split_inclusive('\n') {
        out.push_str(line.trim_start_matches('\t'));
    }
    out
}

/// Classifies one word: `Ok(None)` when it is not a heredoc marker.
/// The word must match `^(\d*)<<(-?)\s*([^<]*)$` and its tail must lex to
/// exactly one shell word.
pub fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\x0c', '\r', ' ']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let words = lex
        .process_words(rest, &lexer_no_vars())
        .map_err(|e| e.reason)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex
        .process_words(rest, &lexer_no_vars())
        .map_err(|e| e.reason)?;
    if raw.len() != 1 {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(Heredoc {
        expand: quotes(&words[0]) == quotes(&raw[0]),
        name: words.into_iter().next().unwrap_or_default(),
        content: String::new(),
        chomp,
        file_descriptor: fd,
    }))
}

/// The heredoc markers on a whole instruction line, in order.
pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    lex.heredoc_words = true;
    let words = lex
        .process_words(line, &lexer_no_vars())
        .unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc_word(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(w: &str) -> Option<String> {
        parse_heredoc_word(w).unwrap().map(|h| h.name)
    }

    #[test]
    fn words_that_name_eof() {
        for w in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
            "<<EO\"F\"",
            "<< EOF",
            "<<- EOF",
        ] {
            assert_eq!(name(w).as_deref(), Some("EOF"), "{w}");
        }
    }

    #[test]
    fn unterminated_quotes_are_errors() {
        for w in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc_word(w).is_err(), "{w}");
        }
    }

    #[test]
    fn not_heredocs() {
        for w in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
            assert_eq!(name(w), None, "{w}");
        }
    }

    #[test]
    fn expand_flag_and_names() {
        let h = |w: &str| parse_heredoc_word(w).unwrap().unwrap();
        assert!(!h("<<-'NOEXPAND'").expand);
        assert_eq!(
            (h("<<eo'f'").name, h("<<eo'f'").expand),
            ("eof".into(), false)
        );
        assert_eq!(
            (h("<<'e'o\\'f").name, h("<<'e'o\\'f").expand),
            ("eo'f".into(), false)
        );
        assert_eq!(
            (h("<<'one two'").name, h("<<'one two'").expand),
            ("one two".into(), false)
        );
        assert_eq!(
            (h("<<eo\\'f").name, h("<<eo\\'f").expand),
            ("eo'f".into(), true)
        );
        assert_eq!(h("<<$EOF").name, "$EOF");
        assert_eq!(h("3<<EOF").file_descriptor, 3);
        assert!(h("<<-EOF").chomp);
    }

    #[test]
    fn names_from_lines() {
        let names = |l: &str| -> Vec<String> {
            heredocs_from_line(l)
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<-EOF"), ["EOF"]);
        assert_eq!(names("RUN <<- EOF"), ["EOF"]);
        assert_eq!(names("RUN << -EOF"), ["-EOF"]);
        assert_eq!(names("RUN <<'EOF'"), ["EOF"]);
        assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
        assert_eq!(names("RUN <<  EOF  > foo"), ["EOF"]);
    }

    #[test]
    fn chomp() {
        assert_eq!(chomp_heredoc("\thello\n\tworld\n"), "hello\nworld\n");
    }
}
