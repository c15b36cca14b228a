//! Shell-word processing with BuildKit's lexer semantics: quotes, escapes,
//! `$VAR` / `${VAR...}` expansion and word splitting.
//!
//! [`Lexer`] is configured once (escape character and the raw/skip options
//! BuildKit uses in its various call sites) and then applied to words with a
//! [`Vars`] lookup. It never panics on any input.

mod lexer;
mod pattern;

pub use lexer::{ExpandError, Expansion, Lexer, Vars};

/// An empty variable set (for lexing without expansion).
pub(crate) fn lexer_no_vars() -> lexer::NoVars {
    lexer::NoVars
}
