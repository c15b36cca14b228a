//! buildah's own artifacts, listed in ../shared/design/TESTBED.md: what buildah
//! leaves in an image that Docker does not. These, and only these, are
//! filtered out of buildah's side before comparing.

use super::tree::{Kind, Node};

/// buildah bind-mounts these over the rootfs during RUN and leaves empty
/// regular files behind when the image had none.
const RUN_MOUNT_FILES: &[&str] = &["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

/// buildah creates these mount-point directories for RUN and keeps them.
const RUN_MOUNT_DIRS: &[&str] = &["/dev", "/proc", "/sys", "/run"];

/// buildah's build-tool label, set on every image it commits.
pub const BUILDAH_LABEL: &str = "io.buildah.version";

/// Whether an entry that only buildah's image has is one of buildah's artifacts.
/// (`org.opencontainers.image.base.*` are manifest annotations, which the
/// comparison never reads, so they need no filter.)
pub fn is_buildah_only_artifact(path: &str, node: &Node) -> bool {
    let empty_file = node.kind == Kind::File && node.size == 0;
    (RUN_MOUNT_FILES.contains(&path) && empty_file)
        || (RUN_MOUNT_DIRS.contains(&path) && node.kind == Kind::Dir)
}
