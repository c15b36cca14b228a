//! Chroot mode without root: a user namespace maps the caller to root.
//!
//! The test (run as root, as in CI) builds a busybox rootfs owned by an unprivileged uid and
//! re-executes itself as that uid with `setpriv`; the inner run checks what a laptop user
//! gets: chroot mode chosen automatically, root inside mapped to the caller, /proc, /dev,
//! read-only /sys, network none, leftovers killed, the host unreachable, and a clear
//! error for a USER the namespace cannot map.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use common::{Collected, busybox_rootfs, processes_with_arg, sh};
use kiln_sandbox::{Mode, Network, Sandbox, SandboxError, SandboxOptions};

const UID: u32 = 65534;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--inner") {
        inner(Path::new(&args[2]), Path::new(&args[3]));
    } else {
        orchestrate();
    }
}

fn orchestrate() {
    common::require_root_and_busybox();
    let setpriv = Path::new("/usr/bin/setpriv");
    assert!(
        setpriv.exists(),
        "needs {} (util-linux): install with .ci/install-deps",
        setpriv.display()
    );
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
    let status = Command::new("chown")
        .args(["-R", &format!("{UID}:{UID}")])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "chown -R failed");

    let out = Command::new(setpriv)
        .args([
            "--reuid",
            &UID.to_string(),
            "--regid",
            &UID.to_string(),
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&exe)
        .arg("--inner")
        .arg(&root)
        .arg(&secret)
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

    let mut spec = sh(root, "true");
    spec.user = "user".into();
    let err = sb
        .run(&spec, &mut |_: kiln_sandbox::Stream, _: &[u8]| {})
        .unwrap_err();
    assert!(
        matches!(err, SandboxError::User { .. }) && err.to_string().contains("maps only root"),
        "{err}"
    );
}
