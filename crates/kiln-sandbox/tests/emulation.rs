//! RUN of a foreign platform (linux/arm64 on an x86-64 host) in an arm64 busybox rootfs made
//! from Debian's busybox-static:arm64, with Debian's qemu-aarch64-static.
//!
//! One binary with its own main, so the cases run one after the other: a handler registered
//! on the host is global and would change what the other cases see.
//!
//! 1. No emulator and no host handler: `SandboxError::NoEmulation` naming the platform, the
//!    command and both ways to enable it; the command never ran.
//! 2. kiln's own registration as root, nothing registered on the host: `uname -m` says
//!    aarch64, files keep their ids on disk (root 0, `USER 1000` 1000: the identity maps of
//!    the user namespace made for binfmt_misc), and the host's binfmt_misc is as it was.
//! 3. The same without root: the test re-executes itself as uid 65534 (setpriv), whose
//!    chroot mode is in a user namespace already: with only the caller mapped, then with
//!    a subordinate range of its own (`65534:1400000:65536` added to /etc/subuid and
//!    /etc/subgid and removed again), where `USER 1000` runs emulated and its file is
//!    1400999 on disk.
//! 4. A handler the test registers on the host (mounting binfmt_misc there if it is not,
//!    with Debian's magic and mask from /usr/share/binfmts/qemu-aarch64), no emulator given
//!    to kiln: the command runs through the host's handler. The entry is removed (and
//!    binfmt_misc unmounted if the test mounted it) afterwards, also on panic.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::Collected;
use kiln_sandbox::{
    Emulators, HOST_BINFMT_MISC, Mode, RunSpec, Sandbox, SandboxError, SandboxOptions,
};
use kiln_testkit::foreign::{arm64_rootfs, qemu_user_static};
use kiln_testkit::rootless::{SubidLine, command_as, give_tree, remove_subid_line};

const PLATFORM: &str = "linux/arm64";
const UID: u32 = 65534;
/// Start of the subordinate range the test gives UID (unused elsewhere; tests/rootless.rs
/// uses 1300000).
const SUB_START: u32 = 1_400_000;
/// The name of the entry case 4 registers on the host.
const HOST_ENTRY: &str = "kiln-test-aarch64";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--inner-rootless") => inner_rootless(Path::new(&args[2]), Path::new(&args[3])),
        Some("--inner-rootless-subids") => {
            inner_rootless_subids(Path::new(&args[2]), Path::new(&args[3]))
        }
        // `cargo test -- --list` and filters: this binary has one test, run whole.
        Some("--list") => println!("emulation: test"),
        _ => orchestrate(),
    }
}

fn orchestrate() {
    common::require_root_and_busybox();
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "this test emulates arm64 on an x86-64 host"
    );
    let qemu = qemu_user_static("aarch64");
    let before = host_binfmt_state();
    assert!(
        !before.iter().any(|(_, text)| is_aarch64_entry(text)),
        "the host already has a binfmt_misc handler for aarch64 ({before:?}); these tests need \
         a host without one"
    );
    let rootfs = arm64_rootfs();
    let root = rootfs.path();

    no_emulation_is_a_clear_error_and_nothing_runs(&root);
    eprintln!("emulation: without emulator or host handler, the clear error; nothing ran");

    own_registration_as_root(&root, &qemu);
    assert_eq!(
        host_binfmt_state(),
        before,
        "kiln's own registration changed the host's binfmt_misc"
    );
    eprintln!("emulation: kiln's own registration as root works; the host is unchanged");

    own_registration_without_root(&qemu);
    assert_eq!(host_binfmt_state(), before);
    eprintln!("emulation: kiln's own registration without root works; the host is unchanged");

    {
        let _handler = HostHandler::register(&qemu);
        host_handler_is_used(&root);
    }
    assert_eq!(
        host_binfmt_state(),
        before,
        "the test's host registration was not removed"
    );
    eprintln!("emulation: a handler registered on the host is used");
}

fn arm64(root: &Path, script: &str) -> RunSpec {
    let mut spec = common::sh(root, script);
    spec.platform = Some(PLATFORM.into());
    spec
}

fn no_emulators() -> Emulators {
    Emulators {
        paths: Vec::new(),
        dirs: Vec::new(),
    }
}

fn stdout_of(sb: &Sandbox, spec: &RunSpec) -> Vec<String> {
    let mut out = Collected::default();
    let r = sb.run(spec, &mut out.sink());
    r.unwrap_or_else(|e| panic!("{e}; output: {:?}", out.lines));
    if !out.stderr().is_empty() {
        eprintln!("stderr of {:?}: {:?}", spec.argv, out.stderr());
    }
    out.stdout().into_iter().map(str::to_owned).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn no_emulation_is_a_clear_error_and_nothing_runs(root: &Path) {
    // An empty directory as the emulator dir: whatever /kaniko/emulators holds here.
    let empty = tempfile::tempdir().unwrap();
    let emulators = Emulators {
        paths: Vec::new(),
        dirs: vec![empty.path().to_path_buf()],
    };
    let sb = Sandbox::new(&SandboxOptions::default())
        .unwrap()
        .with_emulators(emulators)
        .unwrap();
    let before = names(root);
    let mut out = Collected::default();
    let err = sb
        .run(&arm64(root, "echo ran > /ran"), &mut out.sink())
        .unwrap_err();
    assert!(matches!(err, SandboxError::NoEmulation { .. }), "{err}");
    let msg = err.to_string();
    for needle in [
        PLATFORM,
        "echo ran > /ran",
        "F flag",
        "--emulator",
        "/kaniko/emulators",
        "user namespaces",
        &empty
            .path()
            .join("qemu-aarch64-static")
            .display()
            .to_string(),
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    assert!(out.lines.is_empty(), "output from a step that must not run");
    assert!(!root.join("ran").exists(), "the command ran");
    assert_eq!(names(root), before, "the rootfs changed");

    // A native step in the same sandbox is unaffected.
    let mut spec = common::sh(root, "echo native");
    spec.platform = Some("linux/amd64".into());
    let err = sb.run(&spec, &mut |_: kiln_sandbox::Stream, _: &[u8]| {});
    // The rootfs holds arm64 binaries, so running them natively fails to exec: proof that
    // no emulation was set up for the host's own platform.
    assert!(
        matches!(err, Err(SandboxError::Setup { ref step, .. }) if step.contains("exec")),
        "{err:?}"
    );
}

fn own_registration_as_root(root: &Path, qemu: &Path) {
    let sb = Sandbox::new(&SandboxOptions::default())
        .unwrap()
        .with_emulators(Emulators {
            paths: vec![qemu.to_path_buf()],
            dirs: Vec::new(),
        })
        .unwrap();
    assert_eq!(
        sb.mode(),
        Mode::Chroot {
            user_namespace: false
        }
    );
    let lines = stdout_of(
        &sb,
        &arm64(
            root,
            "uname -m; id -u; tr -s ' ' < /proc/self/uid_map; echo hi > /made-by-root; \
             cp /bin/busybox /copied-by-arm64",
        ),
    );
    assert_eq!(lines, ["aarch64", "0", " 0 0 4294967295"]);
    let made = std::fs::metadata(root.join("made-by-root")).unwrap();
    assert_eq!((made.uid(), made.gid()), (0, 0));
    let copied = std::fs::read(root.join("copied-by-arm64")).unwrap();
    assert_eq!(
        kiln_testkit::foreign::elf_machine(&copied),
        Some(kiln_testkit::foreign::EM_AARCH64)
    );

    let mut spec = arm64(root, "uname -m; id -u; id -g; echo x > /home/user/by-user");
    spec.user = "user".into();
    spec.cwd = "/home/user".into();
    assert_eq!(stdout_of(&sb, &spec), ["aarch64", "1000", "1000"]);
    let by_user = std::fs::metadata(root.join("home/user/by-user")).unwrap();
    assert_eq!(
        (by_user.uid(), by_user.gid()),
        (1000, 1000),
        "ids on disk must be the image's ids, as in a root run without emulation"
    );
    for gone in ["etc/resolv.conf", "etc/hosts"] {
        assert!(!root.join(gone).exists(), "{gone} left in the rootfs");
    }
}

fn own_registration_without_root(qemu: &Path) {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    assert_ne!(
        max.trim(),
        "0",
        "needs user namespaces (user.max_user_namespaces is 0)"
    );
    // A rootfs and a copy of this binary the unprivileged user owns.
    let rootfs = arm64_rootfs();
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("emulation-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    give_tree(dir.path(), UID);
    give_tree(&rootfs.path(), UID);
    // The rootfs's temp dir itself must be traversable.
    std::fs::set_permissions(
        rootfs.path().parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = command_as(UID, &exe)
        .arg("--inner-rootless")
        .arg(rootfs.path())
        .arg(qemu)
        .output()
        .unwrap();
    eprint!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the rootless run failed: {}",
        out.status
    );
    let made = std::fs::metadata(rootfs.path().join("made-by-rootless")).unwrap();
    assert_eq!(
        (made.uid(), made.gid()),
        (UID, UID),
        "root inside must be the caller outside"
    );

    // With subordinate ranges (newuidmap/newgidmap write the maps, then the supervisor
    // registers the emulator): a non-root USER runs emulated too.
    remove_subid_line(&subid_line());
    {
        let _line = SubidLine::add(subid_line());
        let out = command_as(UID, &exe)
            .arg("--inner-rootless-subids")
            .arg(rootfs.path())
            .arg(qemu)
            .output()
            .unwrap();
        eprint!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "the rootless run with subordinate ranges failed: {}",
            out.status
        );
    }
    let by_user = std::fs::metadata(rootfs.path().join("home/user/by-user")).unwrap();
    assert_eq!(
        (by_user.uid(), by_user.gid()),
        (SUB_START + 999, SUB_START + 999),
        "USER 1000 inside must be subuid start + 999 outside"
    );
}

/// The line this test adds to /etc/subuid and /etc/subgid for its subordinate-range case.
fn subid_line() -> String {
    format!("{UID}:{SUB_START}:65536")
}

fn inner_rootless_subids(root: &Path, qemu: &Path) {
    // SAFETY: trivial getter.
    assert_eq!(unsafe { libc::geteuid() }, UID);
    let sb = Sandbox::new(&SandboxOptions::default())
        .expect("chroot mode with a user namespace")
        .with_emulators(Emulators {
            paths: vec![qemu.to_path_buf()],
            dirs: Vec::new(),
        })
        .unwrap();
    let maps = sb.id_maps().expect("a rootless sandbox has id maps");
    assert_eq!(
        maps.uid_outside(1000),
        Some(SUB_START + 999),
        "the subordinate range is not in use"
    );
    assert_eq!(
        stdout_of(&sb, &arm64(root, "chown 1000:1000 /home/user && uname -m")),
        ["aarch64"]
    );
    let mut spec = arm64(root, "uname -m; id -u; echo x > /home/user/by-user");
    spec.user = "user".into();
    spec.cwd = "/home/user".into();
    assert_eq!(stdout_of(&sb, &spec), ["aarch64", "1000"]);
}

fn inner_rootless(root: &Path, qemu: &Path) {
    // SAFETY: trivial getter.
    assert_eq!(unsafe { libc::geteuid() }, UID);
    let sb = Sandbox::new(&SandboxOptions::default())
        .expect("chroot mode with a user namespace")
        .with_emulators(Emulators {
            paths: vec![qemu.to_path_buf()],
            dirs: Vec::new(),
        })
        .unwrap();
    assert_eq!(
        sb.mode(),
        Mode::Chroot {
            user_namespace: true
        },
        "{}",
        sb.reason()
    );
    let lines = stdout_of(
        &sb,
        &arm64(root, "uname -m; id -u; echo hi > /made-by-rootless"),
    );
    assert_eq!(lines, ["aarch64", "0"]);
}

fn host_handler_is_used(root: &Path) {
    let sb = Sandbox::new(&SandboxOptions::default())
        .unwrap()
        .with_emulators(no_emulators())
        .unwrap();
    let lines = stdout_of(
        &sb,
        &arm64(root, "uname -m; tr -s ' ' < /proc/self/uid_map"),
    );
    // No user namespace was made: the host's handler needs none.
    assert_eq!(lines, ["aarch64", " 0 0 4294967295"]);
}

/// The host's binfmt_misc as (entry name, content), empty when it is not mounted.
fn host_binfmt_state() -> Vec<(String, String)> {
    let dir = Path::new(HOST_BINFMT_MISC);
    if !dir.join("status").exists() {
        return Vec::new();
    }
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "register")
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    v.sort();
    v
}

/// Whether an entry's text is a handler for aarch64 ELF files (machine 0xb7).
fn is_aarch64_entry(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("magic 7f454c4602") && l.ends_with("b700"))
}

fn host_binfmt_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(HOST_BINFMT_MISC))
}

/// A handler registered on the host for the length of a test, with Debian's magic and
/// mask and its flags (F, and P as Debian's `preserve yes`); removed on drop (binfmt_misc unmounted again if the test mounted it).
struct HostHandler {
    mounted_here: bool,
}

impl HostHandler {
    fn register(qemu: &Path) -> HostHandler {
        let mounted_here = !host_binfmt_mounted();
        if mounted_here {
            let status = std::process::Command::new("mount")
                .args(["-t", "binfmt_misc", "binfmt_misc", HOST_BINFMT_MISC])
                .status()
                .unwrap();
            assert!(status.success(), "mount binfmt_misc on the host: {status}");
        }
        let guard = HostHandler { mounted_here };
        let debian = std::fs::read_to_string("/usr/share/binfmts/qemu-aarch64").expect(
            "needs /usr/share/binfmts/qemu-aarch64 (qemu-user-static): run .ci/install-deps",
        );
        let field = |name: &str| -> String {
            debian
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in /usr/share/binfmts/qemu-aarch64"))
                .trim()
                .to_owned()
        };
        let line = format!(
            ":{HOST_ENTRY}:M::{}:{}:{}:FP",
            field("magic "),
            field("mask "),
            qemu.display()
        );
        std::fs::write(Path::new(HOST_BINFMT_MISC).join("register"), line)
            .expect("register the handler on the host");
        guard
    }

    fn entry() -> PathBuf {
        Path::new(HOST_BINFMT_MISC).join(HOST_ENTRY)
    }
}

impl Drop for HostHandler {
    fn drop(&mut self) {
        if Self::entry().exists()
            && let Err(e) = std::fs::write(Self::entry(), "-1")
        {
            eprintln!("could not remove the host's binfmt_misc entry {HOST_ENTRY}: {e}");
        }
        if self.mounted_here {
            let status = std::process::Command::new("umount")
                .arg(HOST_BINFMT_MISC)
                .status();
            if !matches!(status, Ok(s) if s.success()) {
                eprintln!("could not unmount {HOST_BINFMT_MISC}: {status:?}");
            }
        }
    }
}
