//! Small helpers shared by the xtask commands.
//!
//! Every external program xtask starts goes through [`run`] or [`output`], so
//! a program that is not installed is always the same one line,
//! `xtask: <tool> not found; install <package> (...)` (a [`MissingTool`]
//! error, which `main` prints alone), never an OS error or a backtrace.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (the parent of xtask/).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command from the workspace root, echoing it, and fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    cmd.current_dir(workspace_root());
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().map_err(|e| spawn_error(cmd, e))?;
    anyhow::ensure!(status.success(), "{cmd:?} failed with {status}");
    Ok(())
}

/// Runs a command to completion, capturing its output; the exit status is the
/// caller's to judge.
pub fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.output().map_err(|e| spawn_error(cmd, e))
}

/// Runs a command to completion with inherited output; the exit status is
/// the caller's to judge.
pub fn status(cmd: &mut Command) -> anyhow::Result<std::process::ExitStatus> {
    cmd.status().map_err(|e| spawn_error(cmd, e))
}

/// Fails with a [`MissingTool`] unless `tool` (a name looked up in `PATH`,
/// or a path) exists: for programs xtask starts through a wrapper such as
/// `timeout`, whose own "not found" would be a different message.
pub fn require(tool: &str) -> anyhow::Result<()> {
    let found = if tool.contains('/') {
        Path::new(tool).is_file()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
    };
    anyhow::ensure!(found, MissingTool { tool: tool.into() });
    Ok(())
}

/// An external program that is not installed.
#[derive(Debug)]
pub struct MissingTool {
    /// The program as xtask called it.
    pub tool: String,
}

impl std::fmt::Display for MissingTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = Path::new(&self.tool)
            .file_name()
            .map_or(self.tool.clone(), |n| n.to_string_lossy().into_owned());
        let (package, how) = provider(&name);
        write!(
            f,
            "xtask: {} not found; install {package} ({how})",
            self.tool
        )
    }
}

impl std::error::Error for MissingTool {}

/// The package that provides `tool`, and how to get it.
fn provider(tool: &str) -> (&'static str, &'static str) {
    const TEST_TOOL: &str =
        "a Debian package; `bash .ci/install-deps` installs every tool the tests use";
    match tool {
        "cargo" | "rustc" => ("a Rust toolchain", "https://rustup.rs"),
        "bash" => ("bash", "every Linux distribution packages it"),
        "ldd" => (
            "glibc's ldd",
            "package libc-bin on Debian, glibc-common on Fedora",
        ),
        "unshare" | "setpriv" => ("util-linux", "every Linux distribution packages it"),
        "timeout" | "cp" => ("coreutils", "every Linux distribution packages it"),
        "sh" => ("a POSIX shell", "every Linux distribution packages one"),
        "dockerd" => ("docker.io", TEST_TOOL),
        "umoci" => ("umoci", TEST_TOOL),
        "skopeo" => ("skopeo", TEST_TOOL),
        "buildah" => ("buildah", TEST_TOOL),
        "busybox" => ("busybox-static", TEST_TOOL),
        t if t.starts_with("qemu-") && t.ends_with("-static") => ("qemu-user-static", TEST_TOOL),
        "docker-registry" => ("docker-registry", TEST_TOOL),
        _ => ("the package that provides it", "see .ci/install-deps"),
    }
}

/// Why `cmd` could not be started: a missing program is a [`MissingTool`].
fn spawn_error(cmd: &Command, error: std::io::Error) -> anyhow::Error {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let dir_missing = cmd.get_current_dir().is_some_and(|d| !d.is_dir());
    if error.kind() == std::io::ErrorKind::NotFound && !dir_missing {
        return MissingTool { tool: program }.into();
    }
    anyhow::Error::new(error).context(format!("starting {cmd:?}"))
}

/// Fails unless `binary` is a statically linked x86-64/aarch64-style ELF64
/// program (no `PT_INTERP` program header): it goes into images with no libc.
pub fn ensure_static(binary: &Path) -> anyhow::Result<()> {
    const PT_INTERP: u32 = 3;
    let elf = fs_err::read(binary)?;
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let header = (|| {
        let b = elf.get(0x20..0x28)?;
        let phoff = usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok()?;
        Some((
            phoff,
            usize::from(u16_at(0x36)?),
            usize::from(u16_at(0x38)?),
        ))
    })();
    let Some((phoff, phentsize, phnum)) = header.filter(|_| elf.starts_with(b"\x7fELF\x02\x01"))
    else {
        anyhow::bail!(
            "{} is not a 64-bit little-endian ELF program",
            binary.display()
        );
    };
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let kind = elf
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| anyhow::anyhow!("{}: truncated program headers", binary.display()))?;
        anyhow::ensure!(
            kind != PT_INTERP,
            "{} is dynamically linked (it names an ELF interpreter), but it goes into an \
             image with no libc: link it with `-C target-feature=+crt-static`",
            binary.display()
        );
    }
    Ok(())
}

/// `cargo`, as the running cargo would call it.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, or `target/` in the workspace).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_is_one_line_naming_it_and_its_package() {
        let err = output(&mut Command::new("umoci-not-installed-anywhere")).unwrap_err();
        assert!(err.downcast_ref::<MissingTool>().is_some(), "{err:?}");
        assert_eq!(
            err.to_string(),
            "xtask: umoci-not-installed-anywhere not found; install the package that \
             provides it (see .ci/install-deps)"
        );
        let mut umoci = Command::new("umoci");
        umoci.env("PATH", "/nonexistent");
        let err = output(&mut umoci).unwrap_err().to_string();
        assert!(
            err.starts_with("xtask: umoci not found; install umoci ("),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn only_a_program_without_an_elf_interpreter_is_static() {
        // This test binary is linked like any cargo test: dynamically.
        let me = std::env::current_exe().unwrap();
        let err = ensure_static(&me).unwrap_err().to_string();
        assert!(err.contains("is dynamically linked"), "{err}");
        let not_elf = workspace_root().join("Cargo.toml");
        let err = ensure_static(&not_elf).unwrap_err().to_string();
        assert!(
            err.contains("is not a 64-bit little-endian ELF program"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_working_directory_is_not_a_missing_program() {
        let mut true_in_nowhere = Command::new("true");
        true_in_nowhere.current_dir("/nonexistent/xtask-test");
        let err = output(&mut true_in_nowhere).unwrap_err();
        assert!(err.downcast_ref::<MissingTool>().is_none(), "{err:?}");
    }
}
