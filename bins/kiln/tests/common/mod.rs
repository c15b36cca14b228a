//! What the command-line tests share: running the kiln binary (under any
//! name) with a clean log environment, and reading what it printed.
#![allow(dead_code)] // each test binary uses a subset

use std::path::Path;
use std::process::{Command, Output};

/// The kiln binary cargo built for the tests.
pub fn kiln() -> &'static str {
    env!("CARGO_BIN_EXE_kiln")
}

/// Runs `program` (kiln, or a link to it under another name) with `args`,
/// without `RUST_LOG` so that the flags alone decide the log level.
pub fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running kiln")
}

/// Standard output then standard error, as text.
pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}
