//! Deciding how a RUN of a foreign platform runs: natively, through a binfmt_misc handler
//! the host registered with the F flag, or through an emulator kiln registers itself in a
//! private binfmt_misc instance of its sandbox's user namespace (Linux 6.7 and later).
//! When none of these can work, the error says so before anything runs.

use std::path::{Path, PathBuf};

use crate::SandboxError;
use crate::binfmt::{self, Arch, HostHandler};

/// The directory kiln's image keeps emulators in, searched by default:
/// `/kaniko/emulators/qemu-<arch>-static` (QEMU's architecture names: `aarch64`, `arm`,
/// `x86_64`, `ppc64le`, `s390x`, `riscv64`).
pub const DEFAULT_EMULATOR_DIR: &str = "/kaniko/emulators";

/// The emulators kiln may register for foreign-platform RUN steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulators {
    /// Emulator binaries given explicitly (`--emulator PATH`), tried first. Each file is
    /// named after the architecture it emulates, as QEMU's are: `qemu-<arch>` or
    /// `qemu-<arch>-static`.
    pub paths: Vec<PathBuf>,
    /// Directories searched next for `qemu-<arch>-static`; by default
    /// [`DEFAULT_EMULATOR_DIR`].
    pub dirs: Vec<PathBuf>,
}

impl Default for Emulators {
    fn default() -> Self {
        Emulators {
            paths: Vec::new(),
            dirs: vec![PathBuf::from(DEFAULT_EMULATOR_DIR)],
        }
    }
}

/// The architecture an emulator file emulates, from its name (`qemu-aarch64-static`).
fn emulated_arch(path: &Path) -> Option<Arch> {
    let name = path.file_name()?.to_str()?;
    let name = name.strip_prefix("qemu-")?;
    Arch::from_qemu(name.strip_suffix("-static").unwrap_or(name))
}

impl Emulators {
    /// Checks the explicit paths: each must be a file whose name says which architecture it
    /// emulates.
    pub fn check(&self) -> Result<(), SandboxError> {
        for path in &self.paths {
            let bad = |reason: String| SandboxError::BadEmulator {
                path: path.clone(),
                reason,
            };
            if emulated_arch(path).is_none() {
                let known: Vec<&str> = binfmt::ARCHES.iter().map(|a| a.qemu).collect();
                return Err(bad(format!(
                    "its name does not say which architecture it emulates; name it \
                     qemu-<arch>-static with <arch> one of {}",
                    known.join(", ")
                )));
            }
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(bad("it is not a regular file".into())),
                Err(e) => return Err(bad(e.to_string())),
            }
        }
        Ok(())
    }

    /// The emulator for `arch`: the first explicit path named for it, else
    /// `DIR/qemu-<arch>-static` in the first directory that has it.
    fn find(&self, arch: &Arch) -> Option<PathBuf> {
        let explicit = self
            .paths
            .iter()
            .find(|p| emulated_arch(p) == Some(*arch) && p.is_file());
        explicit.cloned().or_else(|| {
            self.dirs
                .iter()
                .map(|d| d.join(format!("qemu-{}-static", arch.qemu)))
                .find(|p| p.is_file())
        })
    }

    fn searched(&self, arch: &Arch) -> String {
        let mut places: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        places.extend(self.dirs.iter().map(|d| {
            d.join(format!("qemu-{}-static", arch.qemu))
                .display()
                .to_string()
        }));
        if places.is_empty() {
            "nowhere (no emulator given and no directory to search)".to_owned()
        } else {
            places.join(", ")
        }
    }
}

/// How a RUN step's binaries run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Emulation {
    /// The host CPU runs them.
    Native,
    /// The host's binfmt_misc handler (F flag) runs them.
    Host(HostHandler),
    /// kiln registers `emulator` for `arch` in its sandbox's own binfmt_misc instance.
    Register { arch: Arch, emulator: PathBuf },
}

impl Emulation {
    /// The binfmt_misc registration line to write in the sandbox, if any.
    pub(crate) fn registration(&self) -> Option<Vec<u8>> {
        match self {
            Emulation::Register { arch, emulator } => Some(arch.registration(emulator)),
            _ => None,
        }
    }
}

/// What the platform of a step means for this host. `platform` is OCI's `os/arch[/variant]`;
/// `host_binfmt` the host's binfmt_misc directory; `can_register`: the sandbox can make a
/// user namespace with its own binfmt_misc (chroot mode).
pub(crate) fn decide(
    platform: &str,
    command: &str,
    emulators: &Emulators,
    host_binfmt: &Path,
    can_register: bool,
) -> Result<Emulation, SandboxError> {
    let mut parts = platform.split('/');
    let (os, arch) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if os != "linux" || arch.is_empty() {
        return Err(SandboxError::InvalidSpec(format!(
            "platform {platform:?}: RUN needs a linux/<arch>[/<variant>] platform"
        )));
    }
    if binfmt::runs_natively(arch) {
        return Ok(Emulation::Native);
    }
    let error = |reason: String| SandboxError::NoEmulation {
        command: command.to_owned(),
        platform: platform.to_owned(),
        host: format!("linux/{}", binfmt::host_oci_arch()),
        reason,
    };
    let Some(arch) = Arch::from_oci(arch) else {
        let known: Vec<&str> = binfmt::ARCHES.iter().map(|a| a.oci).collect();
        return Err(error(format!(
            "kiln knows how to emulate only {}",
            known.join(", ")
        )));
    };
    let host = binfmt::host_handler(host_binfmt, &arch);
    if let Some(h) = host.as_ref().filter(|h| h.fix_binary) {
        return Ok(Emulation::Host(h.clone()));
    }
    let host_note = match &host {
        Some(h) => format!(
            "the host's handler {} ({}) was registered without the F flag, so it cannot work \
             inside the build's root",
            h.path.display(),
            h.interpreter
        ),
        None => format!(
            "the host has no binfmt_misc handler for {} ({} not mounted or no matching entry)",
            arch.qemu,
            host_binfmt.display()
        ),
    };
    if !can_register {
        return Err(error(format!(
            "{host_note}, and in-place mode cannot create the user namespace kiln registers \
             its own emulator in"
        )));
    }
    match emulators.find(&arch) {
        Some(emulator) => Ok(Emulation::Register { arch, emulator }),
        None => Err(error(format!(
            "{host_note}, and no emulator for {} was found (looked at {})",
            arch.qemu,
            emulators.searched(&arch)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreign() -> &'static str {
        if binfmt::host_oci_arch() == "arm64" {
            "linux/amd64"
        } else {
            "linux/arm64"
        }
    }

    fn foreign_arch() -> Arch {
        Arch::from_oci(&foreign()[6..]).unwrap()
    }

    fn no_dirs() -> Emulators {
        Emulators {
            paths: Vec::new(),
            dirs: Vec::new(),
        }
    }

    #[test]
    fn the_host_platform_runs_natively() {
        let host = format!("linux/{}", binfmt::host_oci_arch());
        let e = decide(&host, "true", &no_dirs(), Path::new("/nonexistent"), false).unwrap();
        assert_eq!(e, Emulation::Native);
        let err = decide("windows/amd64", "true", &no_dirs(), Path::new("/x"), true).unwrap_err();
        assert!(err.to_string().contains("windows/amd64"), "{err}");
    }

    #[test]
    fn an_emulator_is_found_by_name_explicit_paths_first() {
        let dir = tempfile::tempdir().unwrap();
        let arch = foreign_arch();
        let in_dir = dir.path().join(format!("qemu-{}-static", arch.qemu));
        let explicit = dir.path().join(format!("given/qemu-{}", arch.qemu));
        std::fs::write(&in_dir, "").unwrap();
        let mut emulators = Emulators {
            paths: Vec::new(),
            dirs: vec![dir.path().join("missing"), dir.path().to_path_buf()],
        };
        let e = decide(foreign(), "true", &emulators, Path::new("/x"), true).unwrap();
        assert_eq!(
            e,
            Emulation::Register {
                arch,
                emulator: in_dir.clone()
            }
        );
        emulators.paths.push(explicit.clone());
        let err = emulators.check().unwrap_err().to_string();
        assert!(err.contains(&explicit.display().to_string()), "{err}");
        std::fs::create_dir(dir.path().join("given")).unwrap();
        std::fs::write(&explicit, "").unwrap();
        emulators.check().unwrap();
        let e = decide(foreign(), "true", &emulators, Path::new("/x"), true).unwrap();
        assert_eq!(
            e,
            Emulation::Register {
                arch,
                emulator: explicit
            }
        );
        let line = String::from_utf8(e.registration().unwrap()).unwrap();
        assert!(
            line.ends_with(&format!("/given/qemu-{}:FP", arch.qemu)),
            "{line}"
        );

        let odd = Emulators {
            paths: vec![dir.path().join("emulator")],
            dirs: Vec::new(),
        };
        let err = odd.check().unwrap_err().to_string();
        assert!(err.contains("qemu-<arch>-static"), "{err}");
    }

    #[test]
    fn without_emulator_or_handler_the_error_names_platform_command_and_both_ways() {
        let err = decide(foreign(), "make all", &no_dirs(), Path::new("/x"), true).unwrap_err();
        let msg = err.to_string();
        for needle in [
            foreign(),
            "make all",
            "F flag",
            "--emulator",
            DEFAULT_EMULATOR_DIR,
            "user namespaces",
        ] {
            assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
        }
        let err = decide(
            foreign(),
            "true",
            &Emulators::default(),
            Path::new("/x"),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("in-place mode"), "{err}");
    }

    #[test]
    fn a_host_handler_with_the_f_flag_is_used_and_one_without_it_is_named() {
        let arch = foreign_arch();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let entry = |flags: &str| {
            format!(
                "enabled\ninterpreter /usr/bin/qemu-{q}-static\nflags: {flags}\noffset 0\nmagic {}\nmask {}\n",
                hex(&arch.magic),
                hex(&arch.mask),
                q = arch.qemu
            )
        };
        let file = dir.path().join(format!("qemu-{}", arch.qemu));
        std::fs::write(&file, entry("OC")).unwrap();
        let err = decide(foreign(), "true", &no_dirs(), dir.path(), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("without the F flag"), "{err}");
        std::fs::write(&file, entry("OCF")).unwrap();
        let e = decide(foreign(), "true", &no_dirs(), dir.path(), false).unwrap();
        assert!(
            matches!(e, Emulation::Host(ref h) if h.path == file),
            "{e:?}"
        );
        assert_eq!(e.registration(), None);
    }
}
