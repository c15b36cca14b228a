//! Chroot mode without root: a user namespace maps the caller to root, plus the caller's
//! /etc/subuid and /etc/subgid ranges when it has some.
//!
//! The test (run as root, as in CI) builds a busybox rootfs owned by an unprivileged uid and
//! re-executes itself as that uid with `setpriv`, twice:
//! * with no subordinate range for that uid, the inner run checks what a laptop user gets:
//!   chroot mode chosen automatically, root inside mapped to the caller, /proc, /dev,
//!   read-only /sys, network none, leftovers killed, the host unreachable, and a clear error
//!   for a USER the namespace cannot map;
//! * with a line of its own (`65534:START:65536`) appended to /etc/subuid and /etc/subgid
//!   (and removed afterwards, even on panic), a non-root USER works through newuidmap/
//!   newgidmap: its uid, gid and supplementary groups inside, and on disk its files owned
//!   by START + uid - 1, while root inside is still the caller.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{Collected, busybox_rootfs, processes_with_arg, sh};
use kiln_sandbox::{Mode, Network, Sandbox, SandboxError, SandboxOptions};
use kiln_testkit::rootless::{SUBID_FILES, SubidLine, command_as, give_tree, remove_subid_line};

const UID: u32 = 65534;
/// Start of the subordinate range the test gives UID (an otherwise unused range).
const SUB_START: u32 = 1_300_000;
const SUB_COUNT: u32 = 65536;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--inner") => inner(Path::new(&args[2]), Path::new(&args[3])),
        Some("--inner-subids") => inner_subids(Path::new(&args[2])),
        Some("--inner-broken-subids") => inner_broken_subids(Path::new(&args[2])),
        _ => orchestrate(),
    }
}

/// The line this test adds to /etc/subuid and /etc/subgid.
fn subid_line() -> String {
    format!("{UID}:{SUB_START}:{SUB_COUNT}")
}

/// A line the kernel refuses: its range overlaps the caller's own id, already mapped to root.
fn broken_subid_line() -> String {
    format!("{UID}:{}:10", UID - 4)
}

/// Panics if /etc/subuid or /etc/subgid already gives UID a range (the fallback could not be
/// tested).
fn require_no_subids_for_uid() {
    for file in SUBID_FILES {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines() {
            let owner = line.split(':').next().unwrap_or("");
            assert!(
                owner != UID.to_string() && owner != "nobody",
                "{file} already gives uid {UID} a range ({line}); this test needs it to have none at first"
            );
        }
    }
}

fn run_as_uid(exe: &Path, args: &[&Path]) {
    let out = command_as(UID, exe).args(args).output().unwrap();
    eprint!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the rootless run {args:?} failed: {}",
        out.status
    );
}

fn owner(path: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    (m.uid(), m.gid())
}

fn orchestrate() {
    common::require_root_and_busybox();
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    assert_ne!(
        max.trim(),
        "0",
        "needs user namespaces (user.max_user_namespaces is 0)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    busybox_rootfs(&root);
    // A copy of this binary the unprivileged user can execute wherever the target dir is.
    let exe = dir.path().join("rootless-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let secret = dir.path().join("host-secret");
    std::fs::write(&secret, "host secret").unwrap();
    give_tree(dir.path(), UID);

    remove_subid_line(&subid_line());
    remove_subid_line(&broken_subid_line());
    require_no_subids_for_uid();
    run_as_uid(&exe, &[Path::new("--inner"), &root, &secret]);

    let made = std::fs::metadata(root.join("made-by-rootless"))
        .expect("the file written as root inside is missing");
    assert_eq!(
        (made.uid(), made.gid()),
        (UID, UID),
        "root inside must be the caller outside"
    );
    for gone in ["proc", "dev", "sys", "etc/resolv.conf", "etc/hosts"] {
        assert!(
            !root.join(gone).exists(),
            "created mount target {gone} left in the rootfs"
        );
    }
    eprintln!("rootless: chroot mode with a user namespace works");

    {
        let _line = SubidLine::add(subid_line());
        run_as_uid(&exe, &[Path::new("--inner-subids"), &root]);
    }
    {
        let _line = SubidLine::add(broken_subid_line());
        run_as_uid(&exe, &[Path::new("--inner-broken-subids"), &root]);
    }
    for file in SUBID_FILES {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in [subid_line(), broken_subid_line()] {
            assert!(
                !text.lines().any(|l| l.trim() == line),
                "{file} still holds the test's line {line}"
            );
        }
    }
    let sub = |inside: u32| SUB_START + inside - 1;
    assert_eq!(
        owner(&root.join("data/by-1000")),
        (sub(1000), sub(1000)),
        "uid/gid 1000 inside must be subuid start + 999 outside"
    );
    assert_eq!(owner(&root.join("data/by-user")), (sub(1000), sub(1000)));
    assert_eq!(owner(&root.join("home/user/new")), (sub(1000), sub(1000)));
    assert_eq!(
        owner(&root.join("made-by-root-with-subids")),
        (UID, UID),
        "root inside must still be the caller outside"
    );
    eprintln!("rootless: a non-root USER works with /etc/subuid and /etc/subgid ranges");
}

fn stdout_of(sb: &Sandbox, spec: &kiln_sandbox::RunSpec) -> Vec<String> {
    let mut out = Collected::default();
    let r = sb.run(spec, &mut out.sink());
    r.unwrap_or_else(|e| panic!("{e}; output: {:?}", out.lines));
    out.stdout().into_iter().map(str::to_owned).collect()
}

fn inner(root: &Path, secret: &Path) {
    // SAFETY: trivial getter.
    assert_eq!(unsafe { libc::geteuid() }, UID);
    let sb = Sandbox::new(&SandboxOptions::default()).expect("chroot mode with a user namespace");
    assert_eq!(
        sb.mode(),
        Mode::Chroot {
            user_namespace: true
        },
        "{}",
        sb.reason()
    );

    let script = format!(
        "id -u; id -g; tr -s ' ' < /proc/self/uid_map; echo hi > /made-by-rootless; \
         echo x > /dev/null && echo null-ok; touch /sys/x 2>/dev/null || echo sys-ro; \
         cat {} 2>/dev/null || echo unreachable; sleep 97551 & echo started",
        secret.display()
    );
    let lines = stdout_of(&sb, &sh(root, &script));
    assert_eq!(
        lines,
        [
            "0",
            "0",
            &format!(" 0 {UID} 1"),
            "null-ok",
            "sys-ro",
            "unreachable",
            "started"
        ]
    );
    assert!(
        processes_with_arg("97551").is_empty(),
        "a leftover process survived"
    );

    let mut spec = sh(root, "ls /sys/class/net");
    spec.network = Network::None;
    assert_eq!(stdout_of(&sb, &spec), ["lo"]);

    let msg = user_error(&sb, root, "user");
    assert!(
        msg.contains("uid 1000")
            && msg.contains("maps only root")
            && msg.contains("/etc/subuid has no range for nobody")
            && msg.contains("nobody:100000:65536"),
        "{msg}"
    );
}

/// The message of the `SandboxError::User` that running as `user` gives.
fn user_error(sb: &Sandbox, root: &Path, user: &str) -> String {
    let mut spec = sh(root, "true");
    spec.user = user.into();
    let err = sb
        .run(&spec, &mut |_: kiln_sandbox::Stream, _: &[u8]| {})
        .unwrap_err();
    assert!(matches!(err, SandboxError::User { .. }), "{err}");
    err.to_string()
}

fn run_as(sb: &Sandbox, root: &Path, user: &str, cwd: &str, script: &str) -> Vec<String> {
    let mut spec = sh(root, script);
    spec.user = user.into();
    spec.cwd = cwd.into();
    stdout_of(sb, &spec)
}

fn inner_subids(root: &Path) {
    // SAFETY: trivial getter.
    assert_eq!(unsafe { libc::geteuid() }, UID);
    let sb = Sandbox::new(&SandboxOptions::default()).expect("chroot mode with a user namespace");
    assert_eq!(
        sb.mode(),
        Mode::Chroot {
            user_namespace: true
        },
        "{}",
        sb.reason()
    );
    let lines = run_as(
        &sb,
        root,
        "",
        "/",
        "id -u; tr -s ' ' < /proc/self/uid_map; tr -s ' ' < /proc/self/gid_map; \
         mkdir /data && chown 1000:1000 /data /home/user && echo hi > /made-by-root-with-subids",
    );
    let (start, count) = (SUB_START, SUB_COUNT);
    let maps = sb.id_maps().expect("a rootless sandbox has id maps");
    assert_eq!(maps.uid_outside(1000), Some(start + 999));
    assert_eq!(maps.gid_inside(start + 999), Some(1000));
    assert_eq!(maps.uid_inside(UID), Some(0));
    assert_eq!(
        lines,
        [
            "0",
            &format!(" 0 {UID} 1"),
            &format!(" 1 {start} {count}"),
            &format!(" 0 {UID} 1"),
            &format!(" 1 {start} {count}"),
        ]
    );
    assert_eq!(
        run_as(
            &sb,
            root,
            "1000:1000",
            "/",
            "id -u; id -g; id -G; echo x > /data/by-1000"
        ),
        ["1000", "1000", "1000"]
    );
    // `user` (uid 1000) is also in group wheel (10) in the rootfs's /etc/group; WORKDIR is
    // created for it.
    assert_eq!(
        run_as(
            &sb,
            root,
            "user",
            "/home/user/new",
            "id -u; id -G; stat -c %u:%g .; echo x > /data/by-user"
        ),
        ["1000", "1000 10", "1000:1000"]
    );
    let msg = user_error(&sb, root, "70000");
    assert!(
        msg.contains("uid 70000") && msg.contains("0-65536") && msg.contains("/etc/subuid"),
        "{msg}"
    );
}

/// newuidmap fails on the ranges (the kernel refuses them): kiln falls back to the caller-only
/// map, and a non-root USER's error says why.
fn inner_broken_subids(root: &Path) {
    let sb = Sandbox::new(&SandboxOptions::default()).expect("chroot mode with a user namespace");
    assert_eq!(
        run_as(&sb, root, "", "/", "tr -s ' ' < /proc/self/uid_map"),
        [format!(" 0 {UID} 1")]
    );
    let maps = sb.id_maps().expect("a rootless sandbox has id maps");
    assert_eq!((maps.uid_inside(UID), maps.uid_outside(1)), (Some(0), None));
    let msg = user_error(&sb, root, "1000");
    assert!(
        msg.contains("uid 1000")
            && msg.contains("maps only root")
            && msg.contains("the subordinate ranges failed")
            && msg.contains("newuidmap"),
        "{msg}"
    );
}
