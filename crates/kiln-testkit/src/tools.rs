//! Locating the external programs the testkit drives; missing ones panic loudly.

use std::path::{Path, PathBuf};

/// Returns the path of a required tool, or panics saying how to install it.
///
/// Tests must never skip silently when a real component is missing.
pub fn require(path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_file() {
        return p.to_path_buf();
    }
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(path);
    panic!("needs {name} ({path} not found): run .ci/install-deps");
}

/// Returns the path of `name` on `PATH` (tools installed by pip or npm), or
/// panics saying how `.ci/install-deps` installs it (`how`).
pub fn on_path(name: &str, how: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("needs {name} ({how}): run .ci/install-deps"))
}

/// `/usr/bin/docker-registry` (Debian's distribution 2.8).
pub fn docker_registry() -> PathBuf {
    require("/usr/bin/docker-registry")
}

/// `/usr/bin/skopeo`.
pub fn skopeo() -> PathBuf {
    require("/usr/bin/skopeo")
}

/// `/usr/bin/busybox` (busybox-static).
pub fn busybox() -> PathBuf {
    require("/usr/bin/busybox")
}

/// `/usr/bin/openssl` (used only to generate RSA keys, which ring cannot).
pub fn openssl() -> PathBuf {
    require("/usr/bin/openssl")
}

/// `/usr/sbin/dockerd` (Debian's docker.io 20.10, BuildKit 0.8 built in).
pub fn dockerd() -> PathBuf {
    require("/usr/sbin/dockerd")
}

/// Debian's Docker client, `/usr/bin/docker`. Never the `docker` first on PATH: that
/// may be a newer client without buildx (see ../shared/design/TESTBED.md).
pub fn docker_client() -> PathBuf {
    require("/usr/bin/docker")
}
