//! Chroot mode against a real busybox rootfs (needs root, as in CI).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Collected, argv, busybox_rootfs, processes_with_arg, sh, tree, tree_diff};
use kiln_sandbox::{
    Isolation, Mode, Mount, Network, RunSpec, Sandbox, SandboxError, SandboxOptions, Stream,
};

fn sandbox() -> Sandbox {
    common::require_root_and_busybox();
    let sb = Sandbox::new(&SandboxOptions {
        isolation: Isolation::Chroot,
        disposable_container: false,
        scratch_dir: None,
    })
    .expect("chroot mode must work as root here");
    assert_eq!(
        sb.mode(),
        Mode::Chroot {
            user_namespace: false
        }
    );
    sb
}

fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    busybox_rootfs(dir.path());
    dir
}

fn run(
    sb: &Sandbox,
    spec: &RunSpec,
) -> (Result<kiln_sandbox::RunOutcome, SandboxError>, Collected) {
    let mut out = Collected::default();
    let r = sb.run(spec, &mut out.sink());
    (r, out)
}

fn stdout_of(sb: &Sandbox, spec: &RunSpec) -> Vec<String> {
    let (r, out) = run(sb, spec);
    r.unwrap_or_else(|e| panic!("{e}; output: {:?}", out.lines));
    out.stdout().into_iter().map(str::to_owned).collect()
}

#[test]
fn auto_chooses_chroot_where_namespaces_work() {
    common::require_root_and_busybox();
    kiln_sandbox::probe_namespaces(None).expect("probe");
    let sb = Sandbox::new(&SandboxOptions::default()).unwrap();
    assert_eq!(
        sb.mode(),
        Mode::Chroot {
            user_namespace: false
        }
    );
    assert!(sb.reason().contains("namespaces"), "{}", sb.reason());
}

#[test]
fn echo_and_exit_codes() {
    let (sb, root) = (sandbox(), rootfs());
    assert_eq!(stdout_of(&sb, &sh(root.path(), "echo hello")), ["hello"]);
    let (r, _) = run(&sb, &sh(root.path(), "echo about to fail; exit 3"));
    let err = r.unwrap_err();
    assert_eq!(err.exit_code(), Some(3));
    let msg = err.to_string();
    assert!(
        msg.contains("/bin/sh -c echo about to fail; exit 3") && msg.contains('3'),
        "{msg}"
    );
    // The shell is pid 1 of its namespace and cannot be killed from inside; its child can.
    let (r, _) = run(&sb, &sh(root.path(), "sh -c 'kill -9 $$'; exit $?"));
    assert_eq!(r.unwrap_err().exit_code(), Some(137));
}

#[test]
fn exec_form_uses_path_and_reports_missing_programs() {
    let (sb, root) = (sandbox(), rootfs());
    let mut spec = RunSpec::new(root.path(), ["echo", "exec", "form"]);
    assert_eq!(stdout_of(&sb, &spec), ["exec form"]);
    spec.argv = argv(&["no-such-program"]);
    let err = run(&sb, &spec).0.unwrap_err().to_string();
    assert!(
        err.contains("no-such-program") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn env_path_and_home_defaults() {
    let (sb, root) = (sandbox(), rootfs());
    let mut spec = sh(root.path(), "echo \"$FOO|$PATH|$HOME\"");
    spec.env = vec![("FOO".into(), "bar baz".into())];
    assert_eq!(
        stdout_of(&sb, &spec),
        [format!("bar baz|{}|/root", kiln_sandbox::DEFAULT_PATH)]
    );
    spec.user = "user".into();
    assert_eq!(
        stdout_of(&sb, &spec),
        [format!("bar baz|{}|/home/user", kiln_sandbox::DEFAULT_PATH)]
    );
    spec.env.push(("PATH".into(), "/bin".into()));
    spec.env.push(("HOME".into(), "/elsewhere".into()));
    assert_eq!(stdout_of(&sb, &spec), ["bar baz|/bin|/elsewhere"]);
    spec.user = "4242".into();
    spec.env.truncate(1);
    assert_eq!(
        stdout_of(&sb, &spec),
        [format!("bar baz|{}|/", kiln_sandbox::DEFAULT_PATH)]
    );
}

#[test]
fn user_by_name_uid_uid_gid_and_missing() {
    let (sb, root) = (sandbox(), rootfs());
    let ids = |user: &str| {
        let mut spec = sh(root.path(), "echo $(id -u) $(id -g) $(id -G)");
        spec.user = user.into();
        stdout_of(&sb, &spec).join("\n")
    };
    assert_eq!(ids(""), "0 0 0");
    assert_eq!(ids("user"), "1000 1000 1000 10");
    assert_eq!(ids("1000"), "1000 1000 1000 10");
    assert_eq!(ids("4242"), "4242 0 0");
    assert_eq!(ids("1000:10"), "1000 10 10");
    assert_eq!(ids("user:wheel"), "1000 10 10");
    let mut spec = sh(root.path(), "true");
    spec.user = "ghost".into();
    let err = run(&sb, &spec).0.unwrap_err();
    assert!(
        matches!(err, SandboxError::User { .. }) && err.to_string().contains("ghost"),
        "{err}"
    );
}

#[test]
fn workdir_is_created_with_the_users_ownership() {
    let (sb, root) = (sandbox(), rootfs());
    let mut spec = sh(root.path(), "pwd; touch made-here");
    spec.user = "user".into();
    spec.cwd = PathBuf::from("/srv/app/../data/x");
    let (r, out) = run(&sb, &spec);
    let outcome = r.unwrap();
    assert_eq!(out.stdout(), ["/srv/data/x"]);
    assert_eq!(
        outcome.created_workdir,
        [
            PathBuf::from("/srv"),
            PathBuf::from("/srv/data"),
            PathBuf::from("/srv/data/x")
        ]
    );
    for d in ["srv", "srv/data", "srv/data/x"] {
        let m = std::fs::metadata(root.path().join(d)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (1000, 1000, 0o755),
            "{d}"
        );
    }
    assert_eq!(
        std::fs::metadata(root.path().join("srv/data/x/made-here"))
            .unwrap()
            .uid(),
        1000
    );
}

#[test]
fn output_is_streamed_live_in_order_per_stream() {
    let (sb, root) = (sandbox(), rootfs());
    let script =
        "i=1; while [ $i -le 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done; printf tail";
    let (r, out) = run(&sb, &sh(root.path(), script));
    r.unwrap();
    let want_out: Vec<String> = (1..=300)
        .map(|i| format!("out{i}"))
        .chain(["tail".to_owned()])
        .collect();
    let want_err: Vec<String> = (1..=300).map(|i| format!("err{i}")).collect();
    assert_eq!(out.stdout(), want_out);
    assert_eq!(out.stderr(), want_err);

    // Live: the command waits (bounded) until the sink has seen its first line.
    let go = root.path().join("tmp/go");
    let mut saw = Vec::new();
    let mut sink = |_: Stream, l: &[u8]| {
        if l == b"ready" {
            std::fs::write(&go, b"").unwrap();
        }
        saw.push(String::from_utf8_lossy(l).into_owned());
    };
    let script = "echo ready; i=0; while [ ! -e /tmp/go ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; [ -e /tmp/go ] && echo saw-go";
    sb.run(&sh(root.path(), script), &mut sink).unwrap();
    assert_eq!(saw, ["ready", "saw-go"]);
}

#[test]
fn processes_left_behind_are_killed() {
    let (sb, root) = (sandbox(), rootfs());
    let script = "sleep 97531 & setsid sleep 97532 & (sleep 97533 &) ; echo started";
    let (r, out) = run(&sb, &sh(root.path(), script));
    r.unwrap();
    assert_eq!(out.stdout(), ["started"]);
    for arg in ["97531", "97532", "97533"] {
        assert!(
            processes_with_arg(arg).is_empty(),
            "sleep {arg} survived the RUN step"
        );
    }
}

#[test]
fn the_host_filesystem_is_unreachable() {
    let (sb, root) = (sandbox(), rootfs());
    let outside = tempfile::NamedTempFile::new_in(std::env::temp_dir()).unwrap();
    std::fs::write(outside.path(), "host secret").unwrap();
    let host_path = outside.path().to_str().unwrap().to_owned();
    std::os::unix::fs::symlink(&host_path, root.path().join("link-out")).unwrap();
    let script = format!(
        "cat {host_path} /../../..{host_path} /link-out 2>/dev/null; echo rc=$?; \
         [ \"$(ls -a /..)\" = \"$(ls -a /)\" ] && echo dotdot-stays; \
         cat /proc/1/root{host_path} 2>/dev/null; echo done;          for p in /proc/[0-9]*; do [ -e $p/cmdline ] && echo proc; done | wc -l"
    );
    let lines = stdout_of(&sb, &sh(root.path(), &script));
    // Only the shell and the pipeline's processes are visible in /proc, none of the host's.
    let visible: u32 = lines.last().unwrap().trim().parse().unwrap();
    assert!(
        (1..=4).contains(&visible),
        "{visible} processes visible: host processes leak"
    );
    assert_eq!(
        &lines[..3],
        ["rc=1", "dotdot-stays", "done"],
        "the host file was readable: {lines:?}"
    );
    // Mounts cannot be undone to look underneath: CAP_SYS_ADMIN is dropped.
    let lines = stdout_of(
        &sb,
        &sh(
            root.path(),
            "umount /proc 2>/dev/null; echo rc=$?; grep CapBnd /proc/self/status",
        ),
    );
    assert_eq!(lines[0], "rc=1");
    let bnd = u64::from_str_radix(lines[1].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(
        bnd & (1 << kiln_sandbox::caps::CAP_SYS_ADMIN),
        0,
        "CAP_SYS_ADMIN still in the bounding set"
    );
    assert_eq!(
        bnd,
        kiln_sandbox::caps::default_mask() & !(1 << kiln_sandbox::caps::CAP_NET_RAW),
        "a root command sharing the host network keeps Docker's defaults minus CAP_NET_RAW"
    );
    // In its own network namespace the command keeps Docker's full default set.
    let mut spec = sh(root.path(), "grep CapBnd /proc/self/status");
    spec.network = Network::None;
    let lines = stdout_of(&sb, &spec);
    let bnd = u64::from_str_radix(lines[0].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(bnd, kiln_sandbox::caps::default_mask());
}

#[test]
fn device_nodes_the_command_creates_cannot_be_opened() {
    let (sb, root) = (sandbox(), rootfs());
    // A node for /dev/zero (char 1:5) made in the rootfs or in the sandbox's /dev cannot be
    // opened (the same node would be a host disk for 8:0); the provided /dev/zero works.
    let script = "mknod /z c 1 5 && echo made; head -c 4 /z 2>/dev/null | wc -c; \
                  mknod /dev/z c 1 5 && head -c 4 /dev/z 2>/dev/null | wc -c; head -c 4 /dev/zero | wc -c";
    assert_eq!(
        stdout_of(&sb, &sh(root.path(), script)),
        ["made", "0", "0", "4"]
    );
    let meta = std::fs::symlink_metadata(root.path().join("z")).unwrap();
    assert_eq!(
        meta.rdev(),
        libc::makedev(1, 5),
        "the node is part of what the command did"
    );
}

#[test]
fn proc_dev_and_sys_are_provided() {
    let (sb, root) = (sandbox(), rootfs());
    let script = "echo $$; ls /dev | sort | tr '\\n' ' '; echo; echo x > /dev/null && echo null-ok; \
                  head -c 4 /dev/zero | wc -c; touch /sys/x 2>/dev/null || echo sys-ro; \
                  grep -c . /etc/resolv.conf >/dev/null && echo resolv; echo y > /etc/hosts 2>/dev/null || echo hosts-ro";
    let lines = stdout_of(&sb, &sh(root.path(), script));
    assert_eq!(
        lines[0], "1",
        "the command is pid 1 of its own pid namespace"
    );
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin",
        "stdout", "stderr",
    ] {
        assert!(
            lines[1].split(' ').any(|d| d == dev),
            "/dev/{dev} missing: {}",
            lines[1]
        );
    }
    let expect_resolv = Path::new("/etc/resolv.conf")
        .metadata()
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    let mut want = vec!["null-ok", "4", "sys-ro"];
    if expect_resolv {
        want.push("resolv");
    }
    if Path::new("/etc/hosts").exists() {
        want.push("hosts-ro");
    }
    assert_eq!(&lines[2..], want.as_slice());
}

#[test]
fn network_none_has_only_loopback_up() {
    let (sb, root) = (sandbox(), rootfs());
    let mut spec = sh(
        root.path(),
        "ls /sys/class/net; cat /sys/class/net/lo/flags",
    );
    spec.network = Network::None;
    let lines = stdout_of(&sb, &spec);
    assert_eq!(lines[0], "lo");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(
        flags & libc::IFF_UP as u32,
        libc::IFF_UP as u32,
        "lo is not up"
    );
    assert_eq!(lines.len(), 2);
}

#[test]
fn hostname_is_set_in_its_own_uts_namespace() {
    let (sb, root) = (sandbox(), rootfs());
    let mut spec = sh(root.path(), "hostname");
    spec.hostname = Some("kiln-sandbox-test".into());
    assert_eq!(stdout_of(&sb, &spec), ["kiln-sandbox-test"]);
    assert_ne!(nix::unistd::gethostname().unwrap(), "kiln-sandbox-test");
}

#[test]
fn extra_bind_and_tmpfs_mounts() {
    let (sb, root) = (sandbox(), rootfs());
    let before = tree(root.path());
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("ro")).unwrap();
    std::fs::write(host.path().join("ro/data"), "read only data").unwrap();
    std::fs::create_dir(host.path().join("cache")).unwrap();
    std::fs::write(host.path().join("token"), "s3cr3t").unwrap();
    let mut spec = sh(
        root.path(),
        "cat /mnt/ro/data; echo; echo no > /mnt/ro/data 2>/dev/null || echo ro-refused; \
         echo cached > /var/cache/k/file; cat /run/secrets/token; echo; \
         stat -c %a /scratch; echo temp > /scratch/t; echo done",
    );
    spec.mounts = vec![
        Mount::Bind {
            source: host.path().join("ro"),
            target: "/mnt/ro".into(),
            readonly: true,
        },
        Mount::Bind {
            source: host.path().join("cache"),
            target: "/var/cache/k".into(),
            readonly: false,
        },
        Mount::Bind {
            source: host.path().join("token"),
            target: "/run/secrets/token".into(),
            readonly: true,
        },
        Mount::Tmpfs {
            target: "/scratch".into(),
            size: Some(1 << 20),
            mode: 0o1777,
        },
    ];
    let (r, out) = run(&sb, &spec);
    let outcome = r.unwrap_or_else(|e| panic!("{e}: {:?}", out.lines));
    assert_eq!(
        out.stdout(),
        ["read only data", "ro-refused", "s3cr3t", "1777", "done"]
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("cache/file")).unwrap(),
        "cached\n"
    );
    for created in [
        "/mnt",
        "/mnt/ro",
        "/var",
        "/var/cache",
        "/var/cache/k",
        "/run",
        "/run/secrets",
        "/run/secrets/token",
        "/scratch",
    ] {
        assert!(
            outcome
                .created_mount_targets
                .contains(&PathBuf::from(created)),
            "{created} not reported: {outcome:?}"
        );
    }
    assert!(outcome.kept_mount_targets.is_empty());
    for parent in ["/", "/etc"] {
        assert!(
            outcome.restored_parents.contains(&PathBuf::from(parent)),
            "{parent}: {outcome:?}"
        );
    }
    assert_eq!(
        tree_diff(&before, &tree(root.path()), true),
        Vec::<String>::new(),
        "the rootfs changed although the command only wrote to mounts"
    );
}

#[test]
fn the_rootfs_is_unchanged_apart_from_what_the_command_did() {
    let (sb, root) = (sandbox(), rootfs());
    let before = tree(root.path());
    let (r, _) = run(&sb, &sh(root.path(), "true"));
    let outcome = r.unwrap();
    for created in ["/proc", "/dev", "/sys", "/etc/resolv.conf", "/etc/hosts"] {
        let expected = !created.starts_with("/etc") || Path::new(created).exists();
        assert_eq!(
            outcome
                .created_mount_targets
                .contains(&PathBuf::from(created)),
            expected,
            "{created}: {outcome:?}"
        );
    }
    assert_eq!(
        tree_diff(&before, &tree(root.path()), true),
        Vec::<String>::new(),
        "a no-op RUN changed the rootfs (including mtimes)"
    );

    run(&sb, &sh(root.path(), "echo x > /tmp/f; rm /etc/motd"))
        .0
        .unwrap();
    let after = tree(root.path());
    let changed: Vec<&PathBuf> = after
        .keys()
        .chain(before.keys())
        .filter(|k| after.get(*k) != before.get(*k))
        .collect();
    let mut changed: Vec<String> = changed.iter().map(|p| p.display().to_string()).collect();
    changed.sort();
    changed.dedup();
    assert_eq!(changed, ["etc", "etc/motd", "tmp", "tmp/f"]);
}

#[test]
fn symlinked_mount_targets_stay_inside_the_root() {
    let (sb, root) = (sandbox(), rootfs());
    let outside = tempfile::tempdir().unwrap();
    // A hostile image: /etc/hosts points at a host path, /mnt at a host directory.
    let hosts_target = outside.path().join("hosts");
    std::os::unix::fs::symlink(&hosts_target, root.path().join("etc/hosts")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("mnt")).unwrap();
    run(&sb, &sh(root.path(), "true")).0.unwrap();
    let mut spec = sh(root.path(), "true");
    spec.mounts = vec![Mount::Tmpfs {
        target: "/mnt/x".into(),
        size: None,
        mode: 0o755,
    }];
    let err = run(&sb, &spec).0.unwrap_err().to_string();
    assert!(err.contains("/mnt") && err.contains("symlink"), "{err}");
    assert!(
        !hosts_target.exists(),
        "a file was created outside the rootfs"
    );
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "the host directory was written to"
    );

    // A symlink to an absolute path that exists inside the root is followed inside it.
    std::fs::remove_file(root.path().join("mnt")).unwrap();
    std::os::unix::fs::symlink("/tmp", root.path().join("mnt")).unwrap();
    let name = format!("kiln-sandbox-test-{}", std::process::id());
    let mut spec = sh(
        root.path(),
        &format!("grep -q ' /tmp/{name} tmpfs' /proc/mounts && echo mounted-inside"),
    );
    spec.mounts = vec![Mount::Tmpfs {
        target: format!("/mnt/{name}").into(),
        size: None,
        mode: 0o755,
    }];
    let (r, out) = run(&sb, &spec);
    r.unwrap_or_else(|e| panic!("{e}: {:?}", out.lines));
    assert_eq!(out.stdout(), ["mounted-inside"]);
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "the target was created on the host"
    );
    assert!(
        !root.path().join("tmp").join(&name).exists(),
        "the created target was not removed"
    );
}

#[test]
fn in_place_mode_is_refused_outside_kilns_container() {
    common::require_root_and_busybox();
    if Path::new(kiln_sandbox::KILN_CONTAINER_MARKER).exists() {
        panic!(
            "this test must not run inside kiln's container image ({} exists)",
            kiln_sandbox::KILN_CONTAINER_MARKER
        );
    }
    let err = Sandbox::new(&SandboxOptions {
        isolation: Isolation::InPlace,
        disposable_container: false,
        scratch_dir: None,
    })
    .unwrap_err();
    assert!(matches!(err, SandboxError::InPlaceRefused(_)), "{err}");
    assert!(
        err.to_string()
            .contains(kiln_sandbox::KILN_CONTAINER_MARKER),
        "{err}"
    );
}

#[test]
fn many_runs_in_parallel_threads_leak_no_descriptors() {
    let sb = sandbox();
    let roots: Vec<tempfile::TempDir> = (0..4).map(|_| rootfs()).collect();
    std::thread::scope(|s| {
        for (i, root) in roots.iter().enumerate() {
            let sb = &sb;
            s.spawn(move || {
                for j in 0..5 {
                    // Other threads hold pipes and directories open meanwhile; the command
                    // gets stdin, stdout and stderr only (3 is ls reading the directory).
                    let script = format!("echo {i}-{j}; ls /proc/self/fd | tr '\\n' ' '");
                    let lines = stdout_of(sb, &sh(root.path(), &script));
                    assert_eq!(lines, [format!("{i}-{j}"), "0 1 2 3 ".to_owned()]);
                }
            });
        }
    });
}

#[test]
fn errors_name_what_failed_and_where() {
    let (sb, root) = (sandbox(), rootfs());
    let missing = root.path().join("no-such-rootfs");
    let err = run(&sb, &sh(&missing, "true")).0.unwrap_err().to_string();
    assert!(
        err.contains("rootfs") && err.contains(missing.to_str().unwrap()),
        "{err}"
    );

    let mut spec = sh(root.path(), "true");
    let source = root.path().join("no-such-source");
    spec.mounts = vec![Mount::Bind {
        source: source.clone(),
        target: "/x".into(),
        readonly: true,
    }];
    let err = run(&sb, &spec).0.unwrap_err().to_string();
    assert!(
        err.contains("bind mount source") && err.contains(source.to_str().unwrap()),
        "{err}"
    );

    let mut spec = sh(root.path(), "true");
    spec.cwd = "relative/dir".into();
    let err = run(&sb, &spec).0.unwrap_err().to_string();
    assert!(
        err.contains("relative/dir") && err.contains("not absolute"),
        "{err}"
    );

    // A file where WORKDIR needs a directory.
    let mut spec = sh(root.path(), "true");
    spec.cwd = "/etc/motd/sub".into();
    let err = run(&sb, &spec).0.unwrap_err().to_string();
    assert!(
        err.contains("working directory") && err.contains("/etc/motd"),
        "{err}"
    );
}

/// kiln's image has no /tmp: the probe makes its scratch dir where it is told
/// (kiln's work dir), and says so when it cannot.
#[test]
fn probe_uses_the_given_scratch_parent() {
    let parent = tempfile::tempdir().expect("tempdir");
    kiln_sandbox::probe_namespaces(Some(parent.path())).expect("probe in a given dir");
    assert_eq!(
        std::fs::read_dir(parent.path()).unwrap().count(),
        0,
        "the probe cleans up after itself"
    );
    let err = kiln_sandbox::probe_namespaces(Some(std::path::Path::new("/nonexistent/kiln")))
        .expect_err("no such parent");
    assert!(err.contains("scratch directory"), "{err}");
}
