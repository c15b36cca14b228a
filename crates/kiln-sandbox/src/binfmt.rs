//! binfmt_misc as data: the ELF magic and mask of each architecture kiln can emulate, the
//! registration line for an emulator, and the handlers the host has registered.
//!
//! The magic/mask pairs are those Debian's qemu-user-static installs in
//! `/usr/share/binfmts/qemu-*` (x86_64, which Debian leaves out on x86-64 hosts, as QEMU's
//! `qemu-binfmt-conf.sh` has it): the ELF identification bytes and `e_type`/`e_machine`
//! with the OS ABI byte and the low bit of `e_type` masked, so executables and shared
//! objects of any ABI version match.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Where the kernel shows the host's binfmt_misc handlers (when it is mounted).
pub const HOST_BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// An architecture a foreign RUN may need, with its binfmt_misc match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    /// The OCI (Go) name: `arm64`, `amd64`, ...
    pub oci: &'static str,
    /// QEMU's name, as in `qemu-<qemu>-static`.
    pub qemu: &'static str,
    /// The first 20 bytes of an ELF executable of this architecture.
    pub magic: [u8; 20],
    /// Which bits of `magic` matter.
    pub mask: [u8; 20],
}

/// Mask of the little-endian 64-bit entries (aarch64, riscv64; x86_64 differs).
const MASK_COMMON: [u8; 20] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xfe, 0xff, 0xff, 0xff,
];

/// The ELF identification of a class (1: 32-bit, 2: 64-bit), data encoding (1: little,
/// 2: big endian) and machine, for an executable (`e_type` 2).
const fn elf(class: u8, data: u8, machine: u16) -> [u8; 20] {
    let m = if data == 1 {
        machine.to_le_bytes()
    } else {
        machine.to_be_bytes()
    };
    let t: [u8; 2] = if data == 1 { [2, 0] } else { [0, 2] };
    [
        0x7f, b'E', b'L', b'F', class, data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, t[0], t[1], m[0], m[1],
    ]
}

/// Every architecture kiln knows how to register, by OCI name.
pub const ARCHES: [Arch; 6] = [
    Arch {
        oci: "arm64",
        qemu: "aarch64",
        magic: elf(2, 1, 0xb7),
        mask: MASK_COMMON,
    },
    Arch {
        oci: "arm",
        qemu: "arm",
        magic: elf(1, 1, 0x28),
        mask: MASK_COMMON,
    },
    Arch {
        oci: "amd64",
        qemu: "x86_64",
        magic: elf(2, 1, 0x3e),
        mask: [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfe, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xfe, 0xff, 0xff, 0xff,
        ],
    },
    Arch {
        oci: "ppc64le",
        qemu: "ppc64le",
        magic: elf(2, 1, 0x15),
        mask: [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xfe, 0xff, 0xff, 0x00,
        ],
    },
    Arch {
        oci: "s390x",
        qemu: "s390x",
        magic: elf(2, 2, 0x16),
        mask: [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xfe, 0xff, 0xff,
        ],
    },
    Arch {
        oci: "riscv64",
        qemu: "riscv64",
        magic: elf(2, 1, 0xf3),
        mask: MASK_COMMON,
    },
];

impl Arch {
    /// The architecture of an OCI name (`arm64`, `arm`, ...).
    pub fn from_oci(name: &str) -> Option<Arch> {
        ARCHES.into_iter().find(|a| a.oci == name)
    }

    /// The architecture QEMU calls `name` (`aarch64`, `x86_64`, ...).
    pub fn from_qemu(name: &str) -> Option<Arch> {
        ARCHES.into_iter().find(|a| a.qemu == name)
    }

    /// The binfmt_misc registration of `interpreter` for this architecture, in one line:
    /// `:name:M::magic:mask:interpreter:FP`. F: the kernel opens the interpreter now, so it
    /// works inside any chroot. P: the program's own `argv[0]` is kept (QEMU learns it from
    /// the `AT_FLAGS` auxiliary vector); without it a multi-call binary such as busybox,
    /// which re-executes itself as `/proc/self/exe` with the applet's name, runs the wrong
    /// applet.
    pub fn registration(&self, interpreter: &Path) -> Vec<u8> {
        let hex = |bytes: &[u8]| {
            bytes.iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "\\x{b:02x}");
                s
            })
        };
        let mut line = format!(
            ":kiln-{}:M::{}:{}:",
            self.qemu,
            hex(&self.magic),
            hex(&self.mask)
        )
        .into_bytes();
        line.extend_from_slice(std::os::unix::ffi::OsStrExt::as_bytes(
            interpreter.as_os_str(),
        ));
        line.extend_from_slice(b":FP");
        line
    }
}

/// The OCI name of the architecture kiln itself runs on (Rust's name mapped to Go's).
pub fn host_oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "arm" => "arm",
        other => other,
    }
}

/// Whether the host CPU runs binaries of OCI architecture `arch` natively (its own
/// architecture, and 32-bit x86 on x86-64).
pub fn runs_natively(arch: &str) -> bool {
    let host = host_oci_arch();
    arch == host || (host == "amd64" && arch == "386")
}

/// One handler the host registered, as `/proc/sys/fs/binfmt_misc/NAME` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostHandler {
    /// The entry file.
    pub path: PathBuf,
    /// The interpreter.
    pub interpreter: String,
    /// Registered with the F flag (works inside a chroot without the interpreter there).
    pub fix_binary: bool,
}

/// The fields of an entry file that say what it matches and how it runs.
struct EntryFields {
    enabled: bool,
    interpreter: String,
    flags: String,
    offset: u64,
    magic: Vec<u8>,
    mask: Option<Vec<u8>>,
}

/// An entry file's fields; `None` for an extension (`E`) entry or an unreadable one.
fn parse_entry(text: &str) -> Option<EntryFields> {
    let mut enabled = false;
    let (mut interpreter, mut flags, mut offset) = (String::new(), String::new(), 0);
    let (mut magic, mut mask) = (None, None);
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "enabled" => enabled = true,
            "interpreter" => interpreter = value.to_owned(),
            "flags:" => flags = value.to_owned(),
            "offset" => offset = value.trim().parse().ok()?,
            "magic" => magic = Some(unhex(value.trim())?),
            "mask" => mask = Some(unhex(value.trim())?),
            _ => {}
        }
    }
    Some(EntryFields {
        enabled,
        interpreter,
        flags,
        offset,
        magic: magic?,
        mask,
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether a registered magic (at `offset`, with `mask`) matches an ELF header of `arch`.
fn matches(arch: &Arch, offset: u64, magic: &[u8], mask: Option<&[u8]>) -> bool {
    offset == 0
        && !magic.is_empty()
        && magic.len() <= arch.magic.len()
        && magic.iter().enumerate().all(|(i, m)| {
            let k = mask.and_then(|k| k.get(i)).copied().unwrap_or(0xff);
            arch.magic[i] & k == *m & k
        })
}

/// The enabled handler in `dir` (the host's binfmt_misc, see [`HOST_BINFMT_MISC`]) that
/// runs ELF binaries of `arch`, preferring one with the F flag. `None` when binfmt_misc is
/// not mounted there, is disabled, or has none.
pub fn host_handler(dir: &Path, arch: &Arch) -> Option<HostHandler> {
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    if status.trim() != "enabled" {
        return None;
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            !matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("register" | "status")
            )
        })
        .collect();
    entries.sort();
    let mut found: Vec<HostHandler> = entries
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let e = parse_entry(&text)?;
            (e.enabled && matches(arch, e.offset, &e.magic, e.mask.as_deref())).then(|| {
                HostHandler {
                    path,
                    interpreter: e.interpreter,
                    fix_binary: e.flags.contains('F'),
                }
            })
        })
        .collect();
    found.sort_by_key(|h| !h.fix_binary);
    found.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values Debian's qemu-user-static ships in /usr/share/binfmts/qemu-aarch64.
    const DEBIAN_AARCH64: &str = ":kiln-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/e/qemu-aarch64-static:FP";

    #[test]
    fn the_registration_line_carries_magic_mask_interpreter_and_the_f_and_p_flags() {
        let arm64 = Arch::from_oci("arm64").unwrap();
        let line = arm64.registration(Path::new("/e/qemu-aarch64-static"));
        assert_eq!(String::from_utf8(line).unwrap(), DEBIAN_AARCH64);
    }

    #[test]
    fn big_endian_machines_put_type_and_machine_big_endian() {
        let s390x = Arch::from_oci("s390x").unwrap();
        assert_eq!(&s390x.magic[16..], &[0x00, 0x02, 0x00, 0x16]);
        assert_eq!(Arch::from_qemu("aarch64").unwrap().oci, "arm64");
        assert!(Arch::from_oci("mips").is_none());
    }

    #[test]
    fn a_host_entry_matches_its_architecture_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        std::fs::write(dir.path().join("register"), "").unwrap();
        std::fs::write(
            dir.path().join("qemu-aarch64"),
            "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\noffset 0\n\
             magic 7f454c460201010000000000000000000200b700\n\
             mask ffffffffffffff00fffffffffffffffffeffffff\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("qemu-riscv64"),
            "disabled\ninterpreter /usr/bin/qemu-riscv64-static\nflags: F\noffset 0\n\
             magic 7f454c460201010000000000000000000200f300\n\
             mask ffffffffffffff00fffffffffffffffffeffffff\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("jar"),
            "enabled\ninterpreter /usr/bin/jexec\nflags: \noffset 0\nmagic 504b0304\n",
        )
        .unwrap();
        let arm64 = Arch::from_oci("arm64").unwrap();
        let h = host_handler(dir.path(), &arm64).unwrap();
        assert_eq!(h.interpreter, "/usr/bin/qemu-aarch64-static");
        assert!(h.fix_binary);
        let riscv = Arch::from_oci("riscv64").unwrap();
        assert_eq!(host_handler(dir.path(), &riscv), None, "disabled entry");
        let s390x = Arch::from_oci("s390x").unwrap();
        assert_eq!(host_handler(dir.path(), &s390x), None);
        std::fs::write(dir.path().join("status"), "disabled\n").unwrap();
        assert_eq!(
            host_handler(dir.path(), &arm64),
            None,
            "binfmt_misc disabled"
        );
        assert_eq!(host_handler(&dir.path().join("nope"), &arm64), None);
    }

    #[test]
    fn native_architectures() {
        assert!(runs_natively(host_oci_arch()));
        if host_oci_arch() == "amd64" {
            assert!(runs_natively("386"));
            assert!(!runs_natively("arm64"));
        }
    }
}
