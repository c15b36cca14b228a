//! Helpers shared by this crate's unit tests.

use std::path::PathBuf;

/// The kaniko integration corpus directory (`KILN_CONFORMANCE_DIR` or
/// `<workspace>/../shared/conformance`), panicking loudly when absent.
pub fn kaniko_integration_dir() -> PathBuf {
    let base = std::env::var_os("KILN_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        });
    let dir = base.join("kaniko-dockerfiles/integration");
    assert!(
        dir.is_dir(),
        "needs the conformance data at {}: set KILN_CONFORMANCE_DIR",
        dir.display()
    );
    dir
}
