//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The conformance data directory: `KILN_CONFORMANCE_DIR`, or
/// `<workspace root>/../shared/conformance`. Panics when it is missing.
pub fn conformance_dir() -> PathBuf {
    let dir = match std::env::var_os("KILN_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    };
    assert!(
        dir.join("buildkit").is_dir(),
        "needs the conformance data at {} (set KILN_CONFORMANCE_DIR)",
        dir.display()
    );
    dir
}

/// Files under `dir` (recursively) for which `keep` is true, sorted.
pub fn files_under(dir: &std::path::Path, keep: &dyn Fn(&std::path::Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if keep(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
