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

/// Debian's qemu-aarch64 binfmt_misc registration (/usr/share/binfmts/qemu-aarch64) with
/// the F and P flags, as text for `register`.
pub const AARCH64_REGISTRATION: &str = ":kiln-test-aarch64:M::\
\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\
\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:\
/usr/bin/qemu-aarch64-static:FP";

/// Runs `script` (sh) in a new user namespace with identity maps of every id and a new
/// mount namespace, where it may mount a private binfmt_misc instance (Linux 6.7 and
/// later): arm64 programs (buildah's RUN steps, kiln's) are emulated there with nothing registered on the
/// host. Insists that it succeeds.
pub fn in_private_binfmt_namespace(script: &str) {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    // SAFETY: trivial getter.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "a private binfmt_misc namespace is made as root (as in CI): it writes identity id maps"
    );
    let mut cmd = std::process::Command::new("sh");
    // The first shell waits until the maps are written, then execs the script, so that
    // the script starts as root of the new namespace with its capabilities.
    cmd.args(["-c", "read go && exec sh -c \"$0\"", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: unshare is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 4294967295\n").unwrap();
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails loudly when the host's binfmt_misc (`/proc/sys/fs/binfmt_misc`) has an enabled
/// handler for `qemu_arch` (`aarch64`): a test of kiln's own registration, or of the error
/// without any emulation, would then test the host's handler instead. Never removes it.
pub fn assert_no_host_handler(qemu_arch: &str) {
    let dir = std::path::Path::new("/proc/sys/fs/binfmt_misc");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return; // not mounted: no handler
    };
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !(text.starts_with("enabled") && text.contains(qemu_arch)),
            "the host has a binfmt_misc handler for {qemu_arch} ({}): this test cannot show \
             kiln's own emulator registration or the error without emulation while it is \
             registered; run it on a host without one (`echo -1 > {}` removes it, if it is \
             yours to remove)",
            entry.path().display(),
            entry.path().display()
        );
    }
}
