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
//! * [`instructions`]: nodes -> typed [`Instruction`]s with every flag
//!   checked; values BuildKit expands at build time stay raw.
//! * [`model`]: [`parse`] -> [`Dockerfile`] (global ARGs + stages), and
//!   [`Dockerfile::plan`] -> [`Plan`] for one build: global ARG values, base
//!   images expanded, the target and exactly the stages it needs, each with a
//!   [`StageEnv`] that expands instructions step by step.
//!
//! Errors are [`Diagnostics`]: every problem in the file, each at
//! `file:line:column`. Nothing here prints or panics on any input.
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod diagnostic;
pub mod instructions;
pub mod model;
pub mod shell;
pub mod syntax;

pub use diagnostic::{Diagnostic, Diagnostics, Pos, Span};

pub use instructions::{Command, Instruction};
pub use model::{
    Base, Dockerfile, GlobalArg, Plan, PlanOptions, PlannedStage, Platform, Stage, StageEnv, parse,
};
