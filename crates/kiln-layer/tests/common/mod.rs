//! Shared helpers of the kiln-layer integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use kiln_layer::{LayerPath, Metadata, Timestamp};

/// A `LayerPath` from a test literal.
pub fn p(s: impl AsRef<[u8]>) -> LayerPath {
    LayerPath::new(s).expect("valid test path")
}

/// Metadata with mode, owner and a fixed mtime.
pub fn meta(mode: u32, uid: u64, gid: u64) -> Metadata {
    Metadata {
        mode,
        uid,
        gid,
        mtime: Timestamp::from_secs(1_700_000_000),
        ..Metadata::default()
    }
}

/// Runs an external tool, panicking loudly when it is missing.
pub fn run(program: &str, args: &[&str], dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("needs `{program}` ({e}): install with .ci/install-deps"))
}

/// Runs a tool and asserts it succeeded, returning stdout.
pub fn run_ok(program: &str, args: &[&str], dir: Option<&Path>) -> String {
    let out = run(program, args, dir);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
