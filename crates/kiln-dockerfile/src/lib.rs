//! Dockerfile front end: parser, typed instructions, shell-word expansion,
//! stages and ARG scoping. No I/O: every entry point takes bytes or strings.
//!
//! The crate mirrors the layers of BuildKit's Dockerfile frontend:
//!
//! * [`syntax`]: bytes -> instruction nodes (directives, comments,
//!   continuations, heredocs, JSON vs shell form, flags), with spans, and the
//!   BuildKit dump format used by the golden tests.
//! * [`shell`]: BuildKit's word lexer (quotes, escapes, `${V...}` operators,
//!   word splitting).
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod diagnostic;
pub mod shell;
pub mod syntax;

pub use diagnostic::{Diagnostic, Diagnostics, Pos, Span};
