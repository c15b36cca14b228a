//! Command-line parsing and help: a pflag-compatible splitter, the tables of
//! flags (each row says how a flag is parsed and what `--help` says about
//! it) and the help pages rendered from them.

pub mod attestations_flags;
pub mod executor_flags;
pub mod flag;
pub mod help;
pub mod manifest_flags;
pub mod parse_flags;
pub mod pflag;
pub mod warmer_flags;
