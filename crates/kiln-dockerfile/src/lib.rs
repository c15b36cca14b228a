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
//!
//! # Example: the base images a build needs
//!
//! Parse a Dockerfile, plan it for a build (build args, target) and list the
//! images its stages start from, with their ARGs expanded:
//!
//! ```
//! use kiln_dockerfile::{Base, PlanOptions, parse};
//!
//! # fn main() -> Result<(), kiln_dockerfile::Diagnostics> {
//! let dockerfile = br#"
//! ARG DEBIAN=bookworm
//! FROM docker.io/library/debian:${DEBIAN}-slim AS build
//! RUN make
//! FROM docker.io/library/busybox:1.36 AS tools
//! FROM build AS test
//! RUN make test
//! FROM scratch
//! COPY --from=build /out/app /app
//! "#;
//! let parsed = parse("Dockerfile", dockerfile)?;
//!
//! let mut options = PlanOptions::default();
//! options.build_args.insert("DEBIAN".into(), "trixie".into());
//! let plan = parsed.plan(&options)?;
//!
//! // Only the stages the target (the last one) needs, dependencies first.
//! let bases: Vec<&str> = plan
//!     .stages
//!     .iter()
//!     .filter_map(|stage| match &stage.base {
//!         Base::Image(image) => Some(image.as_str()),
//!         Base::Scratch | Base::Stage(_) => None,
//!     })
//!     .collect();
//! assert_eq!(bases, ["docker.io/library/debian:trixie-slim"]);
//!
//! // Errors name the file, line and column.
//! let errors = parse("ci/Dockerfile", b"FROM busybox\nCOPY\n").unwrap_err();
//! assert!(errors.to_string().starts_with("ci/Dockerfile:2:1: "), "{errors}");
//! # Ok(()) }
//! ```
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
