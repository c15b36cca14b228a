//! Foreign-architecture fixtures made offline: Debian's busybox-static for arm64 (the
//! same Debian version as the host's amd64 busybox-static, fetched with `apt-get download
//! busybox-static:arm64` from the Debian archive and unpacked with `dpkg -x`), and the
//! emulators of Debian's qemu-user-static.
//!
//! The arm64 package is visible to apt only once the machine knows the architecture:
//! `.ci/install-deps` runs `dpkg --add-architecture arm64 && apt-get update` and installs
//! qemu-user-static. Without them these helpers panic naming the package and the step.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use crate::busybox::{BusyboxRootfs, Entry, entries_with_binary, tar_from_entries};
use crate::image::{FixtureImage, FixtureLayer, sha256_digest};
use crate::tools;

/// The Debian package the arm64 busybox comes from.
pub const ARM64_BUSYBOX_PACKAGE: &str = "busybox-static:arm64";

/// The ELF `e_machine` of aarch64, for checks of what a foreign build wrote.
pub const EM_AARCH64: u16 = 0xb7;
/// The ELF `e_machine` of x86-64.
pub const EM_X86_64: u16 = 0x3e;

/// The `e_machine` of an ELF file's contents (little-endian ELF only), `None` otherwise.
pub fn elf_machine(data: &[u8]) -> Option<u16> {
    (data.len() >= 20 && data[..4] == *b"\x7fELF" && data[5] == 1)
        .then(|| u16::from_le_bytes([data[18], data[19]]))
}

/// The arm64 `/bin/busybox` of Debian's busybox-static:arm64, downloaded and unpacked in a
/// temp dir that is removed again. Panics naming the package and what to run when apt
/// cannot get it.
pub fn arm64_busybox() -> Vec<u8> {
    let dir = tempfile::Builder::new()
        .prefix("kiln-arm64-busybox-")
        .tempdir()
        .expect("creating a temp dir for the arm64 busybox");
    let download = Command::new("apt-get")
        .args(["download", "-qq", ARM64_BUSYBOX_PACKAGE])
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("needs apt-get to fetch {ARM64_BUSYBOX_PACKAGE}: {e}"));
    assert!(
        download.status.success(),
        "needs the Debian package {ARM64_BUSYBOX_PACKAGE}, which apt-get download could not \
         fetch ({}: {}): run .ci/install-deps (it runs dpkg --add-architecture arm64 and \
         apt-get update)",
        download.status,
        String::from_utf8_lossy(&download.stderr).trim()
    );
    let deb = fs_err::read_dir(dir.path())
        .expect("listing the download dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("apt-get download {ARM64_BUSYBOX_PACKAGE} left no .deb"));
    let unpacked = dir.path().join("x");
    let status = Command::new("dpkg")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .expect("running dpkg -x");
    assert!(
        status.success(),
        "dpkg -x {} failed: {status}",
        deb.display()
    );
    let data = fs_err::read(unpacked.join("bin/busybox"))
        .unwrap_or_else(|e| panic!("{ARM64_BUSYBOX_PACKAGE} has no bin/busybox: {e}"));
    assert_eq!(
        elf_machine(&data),
        Some(EM_AARCH64),
        "{ARM64_BUSYBOX_PACKAGE}'s bin/busybox is not an aarch64 ELF file"
    );
    data
}

/// The entries of an arm64 busybox rootfs: the layout of [`crate::busybox`] with the arm64
/// binary.
pub fn arm64_entries() -> BTreeMap<String, Entry> {
    entries_with_binary(arm64_busybox())
}

/// An arm64 busybox rootfs directory (removed on drop); needs root, as
/// [`BusyboxRootfs::create`] does.
pub fn arm64_rootfs() -> BusyboxRootfs {
    BusyboxRootfs::create_from(arm64_entries())
}

/// The arm64 busybox rootfs as an uncompressed, deterministic tar.
pub fn arm64_rootfs_tar() -> Vec<u8> {
    tar_from_entries(&arm64_entries())
}

/// `/usr/bin/qemu-<qemu_arch>-static` from Debian's qemu-user-static (e.g. `aarch64`).
pub fn qemu_user_static(qemu_arch: &str) -> PathBuf {
    tools::require(&format!("/usr/bin/qemu-{qemu_arch}-static"))
}

/// The arm64 busybox as a one-layer OCI image (gzipped layer, `Cmd ["sh"]`) whose config
/// says `linux/arm64/v8`, like [`FixtureImage::busybox`] for the host.
pub fn arm64_busybox_image() -> FixtureImage {
    let base = FixtureImage::from_layers(
        vec![FixtureLayer::from_tar(&arm64_rootfs_tar(), true)],
        &["sh"],
    );
    let mut config: serde_json::Value =
        serde_json::from_slice(&base.config).expect("fixture config JSON");
    config["architecture"] = "arm64".into();
    config["variant"] = "v8".into();
    let config = serde_json::to_vec(&config).expect("config JSON");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&base.manifest).expect("fixture manifest JSON");
    manifest["config"]["digest"] = sha256_digest(&config).into();
    manifest["config"]["size"] = config.len().into();
    FixtureImage {
        manifest: serde_json::to_vec(&manifest).expect("manifest JSON"),
        config,
        layers: base.layers,
    }
}
