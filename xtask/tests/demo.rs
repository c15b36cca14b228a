//! The README's main job as a newcomer runs it: `xtask demo` with a PATH that
//! holds only the Rust toolchain (cargo's own directory, plus the C toolchain
//! rustc links with and kiln's C dependencies compile with: cc, as, ld, ar)
//! and an environment with nothing else but where cargo and rustup keep their
//! files (offline: the test bed has no internet), so no umoci, skopeo,
//! busybox, unshare or shell can be used. Run as root (as CI does), then as
//! uid 65534: first without a subordinate id range (one clear line), then
//! with its own /etc/subuid and /etc/subgid line (removed again, also on
//! panic), where the image must run as its user just the same.

use kiln_testkit::rootless::{SubidLine, command_as, give_tree};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNPRIVILEGED: u32 = 65534;
/// The subordinate range this test gives UNPRIVILEGED (other tests use others).
const SUBID_LINE: &str = "65534:1600000:65536";
/// Programs a newcomer may not have; none may be reachable through the PATH.
const ABSENT: [&str; 10] = [
    "umoci", "skopeo", "busybox", "unshare", "runc", "buildah", "docker", "sh", "bash", "tar",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .into()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `name` as the test's own PATH finds it.
fn on_path(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("this test needs {name} on PATH"))
}

/// cargo's own directory (the toolchain's bin, where rustc is too) and a
/// directory holding only the C toolchain.
fn toolchain_path(scratch: &Path) -> String {
    let cargo = PathBuf::from(std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").into()));
    let cargo = std::fs::canonicalize(cargo).unwrap();
    let toolchain = cargo.parent().unwrap().to_path_buf();
    assert!(
        toolchain.join("rustc").is_file(),
        "no rustc next to {}",
        cargo.display()
    );
    let linker = scratch.join("linker");
    std::fs::create_dir(&linker).unwrap();
    for tool in ["cc", "as", "ld", "ar"] {
        std::os::unix::fs::symlink(on_path(tool), linker.join(tool)).unwrap();
    }
    for dir in [&toolchain, &linker] {
        for absent in ABSENT {
            assert!(
                !dir.join(absent).exists(),
                "{absent} is in {}: the PATH would not prove anything",
                dir.display()
            );
        }
    }
    std::env::join_paths([toolchain, linker])
        .unwrap()
        .into_string()
        .unwrap()
}

/// `xtask demo` with only `PATH`, `HOME`, cargo's and rustup's homes and
/// target dir (when set) in its environment, offline.
fn demo(mut cmd: Command, path: &str, home: &Path, args: &[&Path]) -> Output {
    cmd.arg("demo").args(args).env_clear();
    for kept in ["CARGO_HOME", "RUSTUP_HOME", "CARGO_TARGET_DIR"] {
        if let Some(value) = std::env::var_os(kept) {
            cmd.env(kept, value);
        }
    }
    cmd.env("PATH", path)
        .env("HOME", home)
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .unwrap()
}

/// The line the demo ends with, derived from the fixture: the greeting
/// rendered with the Dockerfile's NAME default, the build arg VERSION=2.0 the
/// demo passes, and the user the image's RUN step adds.
fn expected_line(layout: &Path) -> String {
    let fixtures = workspace().join("fixtures/demo");
    let dockerfile = std::fs::read_to_string(fixtures.join("Dockerfile")).unwrap();
    let name = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG NAME="))
        .expect("the Dockerfile has ARG NAME=...");
    let greeting = std::fs::read_to_string(fixtures.join("greeting.txt"))
        .unwrap()
        .replace("{NAME}", name);
    format!(
        "the image at {} says: {} (version 2.0), running as demo (1000:1000) in /home/demo",
        layout.display(),
        greeting.trim()
    )
}

/// The built image's config says what the Dockerfile says.
fn check_config(layout: &Path) {
    let blob = |d: &serde_json::Value| -> serde_json::Value {
        let hex = d.as_str().unwrap().trim_start_matches("sha256:");
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = blob(&index["manifests"][0]["digest"]);
    let config = blob(&manifest["config"]["digest"]);
    let c = &config["config"];
    assert_eq!(c["User"], "demo", "{config}");
    assert_eq!(c["WorkingDir"], "/home/demo", "{config}");
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["/usr/local/bin/hello"]),
        "{config}"
    );
    assert_eq!(
        c["Labels"]["org.opencontainers.image.version"], "2.0",
        "{config}"
    );
    // the base layer (hello), the greeting from the build stage, the user
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        3,
        "{manifest}"
    );
}

#[test]
fn the_demo_needs_only_the_rust_toolchain_as_root_and_unprivileged() {
    // SAFETY: trivial getter.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root, to run the demo as root and to set up an unprivileged user (CI runs as root)"
    );
    let scratch = tempfile::tempdir().unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = toolchain_path(scratch.path());

    // as root: cargo builds kiln and hello, kiln builds, kiln's code runs it
    let out = scratch.path().join("root");
    let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
    let ran = demo(
        Command::new(env!("CARGO_BIN_EXE_xtask")),
        &path,
        &home,
        &[Path::new("--out"), &out],
    );
    let log = text(&ran);
    assert!(ran.status.success(), "{log}");
    let layout = out.join("image");
    assert!(
        String::from_utf8_lossy(&ran.stdout)
            .lines()
            .any(|l| l == expected_line(&layout)),
        "expected {:?} in:\n{log}",
        expected_line(&layout)
    );
    check_config(&layout);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rootfs-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the unpacked rootfs stayed: {leftovers:?}"
    );

    // unprivileged, with the binaries the root run built (no cargo as 65534)
    let home = scratch.path().join("nobody");
    std::fs::create_dir(&home).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let (kiln, hello, xtask) = (home.join("kiln"), home.join("hello"), home.join("xtask"));
    std::fs::copy(target.join("debug/kiln"), &kiln).unwrap();
    std::fs::copy(target.join("release/hello"), &hello).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_xtask"), &xtask).unwrap();
    give_tree(&home, UNPRIVILEGED);
    let out = home.join("out");
    let args = [
        Path::new("--out"),
        &out,
        Path::new("--kiln"),
        &kiln,
        Path::new("--hello"),
        &hello,
    ];

    kiln_testkit::rootless::remove_subid_line(SUBID_LINE);
    let has_range = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("65534:") || l.starts_with("nobody:"))
    };
    if !(has_range("/etc/subuid") || has_range("/etc/subgid")) {
        let refused = demo(command_as(UNPRIVILEGED, &xtask), &path, &home, &args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("xtask: as a non-root user the demo needs subordinate ids")
                && stderr.contains("/etc/subuid"),
            "{stderr}"
        );
        assert!(!out.exists(), "nothing is built before the refusal");
    }

    let _line = SubidLine::add(SUBID_LINE);
    let ran = demo(command_as(UNPRIVILEGED, &xtask), &path, &home, &args);
    let log = text(&ran);
    assert!(ran.status.success(), "{log}");
    let layout = out.join("image");
    assert!(
        String::from_utf8_lossy(&ran.stdout)
            .lines()
            .any(|l| l == expected_line(&layout)),
        "expected {:?} in:\n{log}",
        expected_line(&layout)
    );
    check_config(&layout);
}
