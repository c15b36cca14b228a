//! In-place mode gives the same trees as chroot mode.
//!
//! The same RUN steps run (1) in chroot mode on one copy of a busybox rootfs and (2) in
//! in-place mode on another copy, from inside a "default container" this test makes: the
//! test binary re-executes itself under `unshare --mount --pid --fork`, pivots into the
//! copy and drops every capability Docker does not grant by default (CAP_SYS_ADMIN among
//! them), then uses in-place mode with `/` as the root. The resulting trees must be equal
//! (type, mode, owner, content, symlink target, link count). Needs root, as in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{busybox_rootfs, run_scenario, sh, tree, tree_diff};
use kiln_sandbox::{Isolation, Mode, Mount, Sandbox, SandboxError, SandboxOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--inner") {
        inner(Path::new(&args[2]));
    } else {
        orchestrate();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {} failed",
        from.display(),
        to.display()
    );
}

fn orchestrate() {
    common::require_root_and_busybox();
    let unshare = Path::new("/usr/bin/unshare");
    assert!(
        unshare.exists(),
        "needs {} (util-linux): install with .ci/install-deps",
        unshare.display()
    );
    let base = tempfile::tempdir().unwrap();
    busybox_rootfs(base.path());
    for d in ["proc", "dev", "sys"] {
        std::fs::create_dir(base.path().join(d)).unwrap();
    }
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    copy_tree(base.path(), a.path());
    copy_tree(base.path(), b.path());

    let chroot = Sandbox::new(&SandboxOptions {
        isolation: Isolation::Chroot,
        disposable_container: false,
        scratch_dir: None,
    })
    .unwrap();
    let chroot_lines = run_scenario(&chroot, a.path());

    let exe = std::env::current_exe().unwrap();
    let out = Command::new(unshare)
        .args(["--mount", "--pid", "--fork", "--propagation", "private"])
        .arg(&exe)
        .arg("--inner")
        .arg(b.path())
        .output()
        .unwrap();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the in-place run inside the test container failed: {}",
        out.status
    );
    let in_place_lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("LINE ").map(str::to_owned))
        .collect();

    // The scenario did what it says (so that equal trees are not equally broken).
    let ta = tree(a.path());
    let entry = |p: &str| {
        ta.get(&PathBuf::from(p))
            .unwrap_or_else(|| panic!("{p} missing in the chroot-mode tree"))
    };
    assert_eq!(entry("root/b.txt").content, b"hello\n");
    assert_eq!(entry("root/b.txt").nlink, 2);
    assert!(!ta.contains_key(&PathBuf::from("etc/motd")));
    assert_eq!(
        (entry("opt/x").mode, entry("opt/x").uid, entry("opt/x").gid),
        (0o750, 1000, 10)
    );
    assert_eq!(
        (entry("home/user/work").uid, entry("home/user/work").gid),
        (1000, 1000)
    );
    assert_eq!(
        (
            entry("tmp/d/e/f").mode,
            entry("tmp/d/e/f").uid,
            entry("tmp/d/e/f").gid
        ),
        (0o4755, 1000, 10)
    );
    assert_eq!(entry("tmp/umask.txt").content, b"0022\n");
    assert_eq!(entry("srv/pwd.txt").content, b"/srv/new\n");
    assert_eq!(entry("srv/fifo").kind, "other");
    assert!(
        !ta.contains_key(&PathBuf::from("etc/resolv.conf"))
            && !ta.contains_key(&PathBuf::from("etc/hosts"))
    );

    assert_eq!(
        chroot_lines, in_place_lines,
        "the steps printed different output in the two modes"
    );
    let diff = tree_diff(&ta, &tree(b.path()), false);
    assert!(
        diff.is_empty(),
        "chroot mode and in-place mode left different trees:\n{}",
        diff.join("\n")
    );
    eprintln!(
        "in_place: chroot and in-place trees are equal ({} entries)",
        ta.len()
    );
}

/// Makes this process (pid 1 of new pid + mount namespaces) a default
/// Docker-like container rooted at `root` (kiln-testkit's emulation).
fn enter_container(root: &Path) {
    kiln_testkit::container::enter(&kiln_testkit::container::ContainerSetup {
        rootfs: root.to_path_buf(),
        ..Default::default()
    })
    .expect("entering the emulated container");
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    let bnd = u64::from_str_radix(bnd, 16).unwrap();
    assert_eq!(
        bnd & (1 << kiln_sandbox::caps::CAP_SYS_ADMIN),
        0,
        "CAP_SYS_ADMIN still present"
    );
}

fn inner(root: &Path) {
    // SAFETY: trivial getter.
    assert_eq!(
        unsafe { libc::getpid() },
        1,
        "the inner test must be pid 1 of its own namespace"
    );
    enter_container(root);

    // Without CAP_SYS_ADMIN namespaces are out: chroot mode is refused, auto needs the
    // container to be known as disposable, and then picks in-place mode.
    let probe = kiln_sandbox::probe_namespaces(None);
    assert!(
        probe.is_err(),
        "namespaces unexpectedly work without CAP_SYS_ADMIN"
    );
    let chroot = Sandbox::new(&SandboxOptions {
        isolation: Isolation::Chroot,
        disposable_container: false,
        scratch_dir: None,
    });
    assert!(
        matches!(chroot, Err(SandboxError::NoIsolation(_))),
        "{chroot:?}"
    );
    let auto = Sandbox::new(&SandboxOptions {
        isolation: Isolation::Auto,
        disposable_container: false,
        scratch_dir: None,
    });
    let err = auto.unwrap_err().to_string();
    assert!(err.contains(kiln_sandbox::KILN_CONTAINER_MARKER), "{err}");
    let sb = Sandbox::new(&SandboxOptions {
        isolation: Isolation::Auto,
        disposable_container: true,
        scratch_dir: None,
    })
    .unwrap();
    assert_eq!(sb.mode(), Mode::InPlace);
    assert!(
        sb.reason().contains("disposable") && sb.reason().contains("namespaces"),
        "{}",
        sb.reason()
    );

    for line in run_scenario(&sb, Path::new("/")) {
        println!("LINE {line}");
    }

    // In-place specifics: leftovers (even in their own session) are killed, signals are
    // reported, mounts are refused.
    let mut out = common::Collected::default();
    sb.run(
        &sh(
            Path::new("/"),
            "setsid sleep 97541 & (sleep 97542 &); sleep 97543 & echo started",
        ),
        &mut out.sink(),
    )
    .unwrap();
    assert_eq!(out.stdout(), ["started"]);
    for arg in ["97541", "97542", "97543"] {
        assert!(
            common::processes_with_arg(arg).is_empty(),
            "sleep {arg} survived an in-place RUN"
        );
    }
    let killed = sb.run(
        &sh(Path::new("/"), "kill -9 $$"),
        &mut |_: kiln_sandbox::Stream, _: &[u8]| {},
    );
    assert!(
        matches!(killed, Err(SandboxError::CommandKilled { signal: 9, .. })),
        "{killed:?}"
    );
    let failed = sb.run(
        &sh(Path::new("/"), "exit 42"),
        &mut |_: kiln_sandbox::Stream, _: &[u8]| {},
    );
    assert_eq!(failed.unwrap_err().exit_code(), Some(42));
    let mut spec = sh(Path::new("/"), "true");
    spec.mounts = vec![Mount::Tmpfs {
        target: "/x".into(),
        size: None,
        mode: 0o755,
    }];
    let refused = sb.run(&spec, &mut |_: kiln_sandbox::Stream, _: &[u8]| {});
    assert!(
        matches!(refused, Err(SandboxError::InvalidSpec(_))),
        "{refused:?}"
    );

    killed_kiln_leaves_no_run_process(&sb);
}

/// kiln SIGKILLed during an in-place RUN: nothing of the RUN may live on. A forked
/// child of this process stands for kiln and runs a RUN whose sleeps are the shell's
/// children (`; true` keeps the shell from exec'ing the last one), one in a session of
/// its own; it is SIGKILLed while they sleep. Orphans would be adopted by this process
/// (pid 1 of the test container) and live on; the supervisor's parent-death handler
/// must kill them. Before, the supervisor died by SIGKILL too and they survived.
fn killed_kiln_leaves_no_run_process(sb: &Sandbox) {
    use std::time::{Duration, Instant};
    let args = ["97561", "97562", "97563"];
    // SAFETY: the child only runs the sandbox and exits; this test is single-threaded
    // here (every earlier run has ended and joined its threads).
    let kiln = unsafe { libc::fork() };
    assert!(kiln >= 0, "fork: {}", std::io::Error::last_os_error());
    if kiln == 0 {
        let _ = sb.run(
            &sh(
                Path::new("/"),
                "sleep 97561 & setsid sleep 97562 & sleep 97563; true",
            ),
            &mut |_: kiln_sandbox::Stream, _: &[u8]| {},
        );
        // SAFETY: leaving the forked child without running the test's teardown.
        unsafe { libc::_exit(0) };
    }
    let until = Instant::now() + Duration::from_secs(30);
    while args
        .iter()
        .any(|a| common::processes_with_arg(a).is_empty())
    {
        assert!(Instant::now() < until, "the RUN's sleeps never all started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: killing and reaping our own child.
    unsafe {
        libc::kill(kiln, libc::SIGKILL);
        libc::waitpid(kiln, std::ptr::null_mut(), 0);
    }
    // Orphans come to this process (pid 1 here): reap them while waiting for them to go.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        // SAFETY: reaping any exited child without blocking.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        let alive: Vec<&str> = args
            .iter()
            .copied()
            .filter(|a| !common::processes_with_arg(a).is_empty())
            .collect();
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "RUN processes outlived a SIGKILLed kiln: sleep {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("in_place: a SIGKILLed kiln left no RUN process behind");
}
