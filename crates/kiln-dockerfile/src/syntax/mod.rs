//! The syntax layer: bytes -> a list of instruction [`Node`]s, exactly as
//! BuildKit's `parser` package splits them (no expansion, no validation of
//! instruction names or flags), plus the BuildKit dump format.

mod directives;
mod dump;
mod heredoc;
mod parser;
mod split;

pub use directives::Directives;
pub use dump::{dump, go_quote};
pub use heredoc::{Heredoc, chomp_heredoc, parse_heredoc_word};
pub use parser::{parse_syntax, parse_syntax_collect};

use crate::diagnostic::{Diagnostic, Span};

/// One instruction as the parser sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    /// The keyword as written (`RUN`, `run`, `HealthCheck`, `FOO`).
    pub keyword: String,
    /// Leading `--flag[=value]` words, quotes removed.
    pub flags: Vec<String>,
    /// Argument nodes in BuildKit's layout (ENV/LABEL as key, value, sep
    /// triples; HEALTHCHECK type first). Empty for ONBUILD.
    pub args: Vec<String>,
    /// The nested instruction of ONBUILD.
    pub nested: Option<Box<Node>>,
    /// Whether the arguments came from a JSON (exec form) array.
    pub json: bool,
    /// Heredoc bodies that follow the instruction line, in order.
    pub heredocs: Vec<Heredoc>,
    /// The logical line (continuations joined), as BuildKit's `Original`.
    pub original: String,
    /// The text after the keyword and flags, trimmed.
    pub rest: String,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
    pub span: Span,
}

impl Node {
    pub fn keyword_lower(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }
}

/// A parsed file: its directives and instructions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyntaxTree {
    pub directives: Directives,
    pub nodes: Vec<Node>,
    /// Non-fatal findings (empty continuation lines).
    pub warnings: Vec<Diagnostic>,
}
