//! Command-line parsing: a pflag-compatible splitter and the tables of
//! kaniko-compatible flags built on it.

pub mod executor_flags;
pub mod pflag;
