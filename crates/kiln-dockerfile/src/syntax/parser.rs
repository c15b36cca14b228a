//! Physical lines -> logical instructions: directives, comments,
//! continuations, heredoc bodies; then per-instruction argument splitting.

use super::directives::DirectiveParser;
use super::heredoc::heredocs_from_line;
use super::split::{
    Json, NOT_STRINGS, parse_json, parse_name_val, parse_words, split_command, split_ws,
};
use super::{Node, SyntaxTree};
use crate::diagnostic::{Diagnostic, Diagnostics, Pos, Span};

/// BuildKit's scanner limit for one physical line.
const MAX_LINE: usize = 65535;

/// Parses `bytes` (invalid UTF-8 is replaced by U+FFFD) into instruction
/// nodes. Per-instruction errors do not stop parsing: every error is
/// returned. An unterminated heredoc or an over-long line ends parsing.
pub fn parse_syntax(file: &str, bytes: &[u8]) -> Result<SyntaxTree, Diagnostics> {
    let (tree, errors) = parse_syntax_collect(file, bytes);
    if errors.is_empty() {
        Ok(tree)
    } else {
        Err(errors)
    }
}

/// Like [`parse_syntax`] but returns what could be parsed next to the
/// errors, so that later layers can report their own errors too.
pub fn parse_syntax_collect(file: &str, bytes: &[u8]) -> (SyntaxTree, Diagnostics) {
    let text = String::from_utf8_lossy(bytes);
    let mut p = Parser {
        file,
        lines: split_lines(&text),
        next: 0,
        directives: DirectiveParser::default(),
        errors: Diagnostics::default(),
        warnings: Vec::new(),
    };
    let nodes = p.run();
    if p.errors.is_empty() && nodes.is_empty() {
        let line = p.lines.len().max(1) as u32;
        p.errors.push(Diagnostic::new(
            file,
            Pos::new(line, 1),
            "file with no instructions",
        ));
    }
    let tree = SyntaxTree {
        directives: p.directives.directives,
        nodes,
        warnings: p.warnings,
    };
    (tree, p.errors)
}

/// Lines with their terminator kept (heredoc bodies need it).
fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    trim_newline(line).trim_start().starts_with('#')
}

struct Parser<'a> {
    file: &'a str,
    lines: Vec<&'a str>,
    /// Index of the next physical line to read (0-based).
    next: usize,
    directives: DirectiveParser,
    errors: Diagnostics,
    warnings: Vec<Diagnostic>,
}

impl<'a> Parser<'a> {
    fn read(&mut self) -> Option<&'a str> {
        let l = self.lines.get(self.next).copied();
        if l.is_some() {
            self.next += 1;
        }
        l
    }

    fn err(&mut self, pos: Pos, msg: impl Into<String>) {
        self.errors.push(Diagnostic::new(self.file, pos, msg));
    }

    /// Checks the line-length limit; false means parsing must stop.
    fn check_len(&mut self, raw: &str) -> bool {
        if trim_newline(raw).len() > MAX_LINE {
            self.err(
                Pos::new(self.next as u32, 1),
                format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
            );
            return false;
        }
        true
    }

    /// Processes one physical line: strips the newline, optionally left
    /// whitespace, drops comments, feeds the directive scanner.
    fn process_line(&mut self, raw: &'a str, strip_left: bool) -> &'a str {
        let mut token = trim_newline(raw);
        if self.next == 1 {
            token = token.strip_prefix('\u{feff}').unwrap_or(token);
        }
        if strip_left {
            token = token.trim_start();
        }
        if let Err(e) = self.directives.line(token) {
            self.err(Pos::new(self.next as u32, 1), e);
        }
        if token.trim_start().starts_with('#') {
            ""
        } else {
            token
        }
    }

    fn escape(&self) -> char {
        self.directives.directives.escape
    }

    /// BuildKit's continuation regex `([^E])E[ \t]*$|^E[ \t]*$`.
    fn trim_continuation(&self, line: &str) -> (String, bool) {
        let e = self.escape();
        let body = line.trim_end_matches([' ', '\t']);
        if let Some(before) = body.strip_suffix(e) {
            match before.chars().next_back() {
                None => return (String::new(), false),
                Some(c) if c != e => return (before.to_string(), false),
                Some(_) => {}
            }
        }
        (line.to_string(), true)
    }

    fn run(&mut self) -> Vec<Node> {
        let mut nodes = Vec::new();
        let mut comments: Vec<String> = Vec::new();
        while let Some(raw) = self.read() {
            if !self.check_len(raw) {
                return nodes;
            }
            let first = if self.next == 1 {
                raw.strip_prefix('\u{feff}').unwrap_or(raw)
            } else {
                raw
            };
            if is_comment(first) {
                let c = trim_newline(first).trim_start()[1..].trim();
                if c.is_empty() {
                    comments.clear();
                } else {
                    comments.push(c.to_string());
                }
            }
            let start_line = self.next as u32;
            let indent = trim_newline(first)
                .chars()
                .take_while(|c| c.is_whitespace())
                .count() as u32;
            let token = self.process_line(raw, true);
            let (mut line, mut end) = self.trim_continuation(token);
            if end && line.is_empty() {
                continue;
            }
            let mut empty_continuation = false;
            while !end {
                let Some(raw) = self.read() else { break };
                if !self.check_len(raw) {
                    return nodes;
                }
                let token = self.process_line(raw, false);
                if is_comment(raw) {
                    continue;
                }
                if token.trim_start().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (cont, e) = self.trim_continuation(token);
                line.push_str(&cont);
                end = e;
            }
            let start = Pos::new(start_line, indent + 1);
            if empty_continuation {
                self.warnings.push(Diagnostic::new(
                    self.file,
                    start,
                    format!("Empty continuation line found in: {line}"),
                ));
            }
            let node = match self.node_from_line(&line, start) {
                Ok(n) => n,
                Err(msg) => {
                    self.err(start, msg);
                    None
                }
            };
            let Some(mut node) = node else {
                comments.clear();
                continue;
            };
            if can_contain_heredoc(&node) && line.contains("<<") {
                match heredocs_from_line(&line) {
                    Err(msg) => self.err(start, msg),
                    Ok(docs) => {
                        for mut doc in docs {
                            let mut terminated = false;
                            while let Some(raw) = self.read() {
                                if !self.check_len(raw) {
                                    return nodes;
                                }
                                let mut candidate = trim_newline(raw);
                                if doc.chomp {
                                    candidate = candidate.trim_start_matches('\t');
                                }
                                if candidate == doc.name {
                                    terminated = true;
                                    break;
                                }
                                doc.content.push_str(raw);
                            }
                            if !terminated {
                                self.err(start, "unterminated heredoc");
                                return nodes;
                            }
                            node.heredocs.push(doc);
                        }
                    }
                }
            }
            node.span = Span::new(start, self.next as u32);
            node.comments = std::mem::take(&mut comments);
            nodes.push(node);
        }
        nodes
    }

    /// Builds a node from a logical line; `Ok(None)` never happens for a
    /// non-empty line but keeps error recovery simple.
    fn node_from_line(&self, line: &str, start: Pos) -> Result<Option<Node>, String> {
        let (keyword, flags, rest) = split_command(line);
        if keyword.is_empty() {
            return Ok(None);
        }
        let lower = keyword.to_ascii_lowercase();
        let mut node = Node {
            keyword,
            flags,
            args: Vec::new(),
            nested: None,
            json: false,
            heredocs: Vec::new(),
            original: line.to_string(),
            rest: rest.clone(),
            comments: Vec::new(),
            span: Span::new(start, start.line),
        };
        let escape = self.escape();
        match lower.as_str() {
            "add" | "copy" | "volume" => match parse_json(&rest) {
                Json::Strings(v) => {
                    node.args = v;
                    node.json = true;
                }
                Json::NotStrings => return Err(NOT_STRINGS.to_string()),
                Json::Invalid => node.args = split_ws(&rest),
            },
            "run" | "cmd" | "entrypoint" | "shell" => {
                let (args, json) = maybe_json(&rest)?;
                node.args = args;
                node.json = json;
            }
            "from" | "expose" => node.args = split_ws(&rest),
            "maintainer" | "user" | "workdir" | "stopsignal" => {
                if !rest.is_empty() {
                    node.args = vec![rest];
                }
            }
            "arg" => node.args = parse_words(&rest, escape),
            "env" => node.args = parse_name_val(&rest, "ENV", escape)?,
            "label" => node.args = parse_name_val(&rest, "LABEL", escape)?,
            "healthcheck" => {
                let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
                if sep > 0 {
                    let typ = rest[..sep].to_string();
                    let cmd = rest[sep..].trim_start();
                    let (mut args, json) = maybe_json(cmd)?;
                    args.insert(0, typ);
                    node.args = args;
                    node.json = json;
                }
            }
            "onbuild" => {
                if !rest.is_empty() {
                    let child = self.node_from_line(&rest, start)?;
                    node.nested = child.map(Box::new);
                }
            }
            _ => node.args = vec![String::new()],
        }
        Ok(Some(node))
    }
}

/// RUN/CMD/ENTRYPOINT/SHELL: a JSON array, or the whole rest as one string.
fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        Json::Strings(v) => Ok((v, true)),
        Json::NotStrings => Err(NOT_STRINGS.to_string()),
        Json::Invalid => Ok((vec![rest.to_string()], false)),
    }
}

fn can_contain_heredoc(node: &Node) -> bool {
    let mut n = node;
    if n.keyword.eq_ignore_ascii_case("onbuild") {
        match &n.nested {
            Some(child) => n = child,
            None => return false,
        }
    }
    let k = n.keyword.to_ascii_lowercase();
    matches!(k.as_str(), "run" | "copy" | "add") && !n.json
}
