//! `kiln parse`: prints a Dockerfile's parse tree or its errors.

use std::process::ExitCode;

pub fn run(_args: &[String]) -> ExitCode {
    eprintln!("kiln parse: not built yet");
    ExitCode::from(2)
}
