//! A program xtask needs and cannot find is one line on stderr naming it and
//! the package that provides it, exit code 1, no backtrace (even with
//! RUST_BACKTRACE=1), whichever command needed it.

use std::process::Command;

/// Runs `xtask ARGS` with an empty directory as its whole PATH.
fn with_empty_path(args: &[&str]) -> (Option<i32>, Vec<String>) {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_clear()
        .env("PATH", empty.path())
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = stderr
        .lines()
        // the command echo of util::run, printed before starting it
        .filter(|l| !l.starts_with("xtask: running "))
        .map(str::to_owned)
        .collect();
    (out.status.code(), lines)
}

#[test]
fn cargo_missing_for_the_demo_is_one_line() {
    let (code, lines) = with_empty_path(&["demo"]);
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(
        lines,
        ["xtask: cargo not found; install a Rust toolchain (https://rustup.rs)"]
    );
}

#[test]
fn bash_missing_for_the_tests_is_one_line() {
    let (code, lines) = with_empty_path(&["test"]);
    assert_eq!(code, Some(1), "{lines:?}");
    assert_eq!(
        lines,
        ["xtask: bash not found; install bash (every Linux distribution packages it)"]
    );
}

#[test]
fn skopeo_missing_for_conformance_is_one_line() {
    for args in [
        &["conformance"][..],
        &["conformance", "--reference", "docker"][..],
    ] {
        let (code, lines) = with_empty_path(args);
        assert_eq!(code, Some(1), "{args:?}: {lines:?}");
        assert_eq!(
            lines,
            [
                "xtask: skopeo not found; install skopeo (a Debian package; `bash .ci/install-deps` \
              installs every tool the tests use)"
            ],
            "{args:?}"
        );
    }
}
