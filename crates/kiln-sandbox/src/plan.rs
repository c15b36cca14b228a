//! Everything a forked child needs, prepared in the parent: C strings, pointer arrays, ids,
//! mount operations. The child (see `child.rs`) only reads these and makes raw system calls,
//! because the parent may be multi-threaded (tokio) and nothing that takes a lock (malloc,
//! stdio, tracing) is safe between fork and exec.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::SandboxError;
use crate::parent_maps::ParentMaps;
use crate::rootpath::cstring;

/// Steps that are not mount operations, for failure reports; mount op `i` is `OP_BASE + i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Step {
    Unshare = 1,
    SetgroupsDeny,
    UidMap,
    GidMap,
    MakePrivate,
    Sethostname,
    LoopbackUp,
    ForkCommand,
    BindRoot,
    OpenRoot,
    PivotRoot,
    DetachOldRoot,
    DropCaps,
    Setgroups,
    Setgid,
    Setuid,
    Chdir,
    Exec,
    Stdio,
    Setsid,
    Subreaper,
    WaitCommand,
    WaitIdMaps,
    Binfmt,
}

pub(crate) const OP_BASE: u32 = 1000;

impl Step {
    pub(crate) fn from_u32(v: u32) -> Option<Step> {
        use Step::*;
        const ALL: [Step; 24] = [
            Unshare,
            SetgroupsDeny,
            UidMap,
            GidMap,
            MakePrivate,
            Sethostname,
            LoopbackUp,
            ForkCommand,
            BindRoot,
            OpenRoot,
            PivotRoot,
            DetachOldRoot,
            DropCaps,
            Setgroups,
            Setgid,
            Setuid,
            Chdir,
            Exec,
            Stdio,
            Setsid,
            Subreaper,
            WaitCommand,
            WaitIdMaps,
            Binfmt,
        ];
        ALL.into_iter().find(|s| *s as u32 == v)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Step::Unshare => "create namespaces (unshare)",
            Step::SetgroupsDeny => "write /proc/self/setgroups",
            Step::UidMap => "write /proc/self/uid_map",
            Step::GidMap => "write /proc/self/gid_map",
            Step::MakePrivate => "make mounts private",
            Step::Sethostname => "set the hostname",
            Step::LoopbackUp => "bring the loopback interface up",
            Step::ForkCommand => "fork the command process",
            Step::BindRoot => "bind the rootfs onto itself",
            Step::OpenRoot => "open the rootfs",
            Step::PivotRoot => "pivot_root/chroot into the rootfs",
            Step::DetachOldRoot => "detach the host root",
            Step::DropCaps => "drop capabilities",
            Step::Setgroups => "set supplementary groups",
            Step::Setgid => "set the group id",
            Step::Setuid => "set the user id",
            Step::Chdir => "change to the working directory",
            Step::Exec => "exec the command",
            Step::Stdio => "set up stdin/stdout/stderr",
            Step::Setsid => "start a new session",
            Step::Subreaper => "become a child subreaper",
            Step::WaitCommand => "wait for the command",
            Step::WaitIdMaps => "wait for the parent to map the user namespace's ids",
            Step::Binfmt => {
                "register the emulator in a binfmt_misc instance of the sandbox's user namespace"
            }
        }
    }
}

/// The source of a mount operation.
pub(crate) enum Source {
    /// A name for a pseudo filesystem ("proc", "tmpfs", ...).
    Name(CString),
    /// A host path, resolved before pivot_root.
    Host(CString),
    /// The target itself (bind a path inside the root onto itself, to make it read-only).
    Target,
}

/// One operation below the root, before pivot_root. Paths are relative to the root and
/// resolved inside it.
pub(crate) enum Op {
    Mount {
        source: Source,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
        readonly: bool,
        /// A missing target or source is skipped instead of failing.
        optional: bool,
    },
    /// Mount a fresh read-only sysfs, or bind the host's /sys read-only where that is denied.
    Sysfs { target: CString },
    Mkdir {
        parent: CString,
        name: CString,
        mode: u32,
    },
    Touch {
        parent: CString,
        name: CString,
        mode: u32,
    },
    Symlink {
        parent: CString,
        name: CString,
        target: CString,
    },
    /// Change the owner of a path (ids as seen inside the user namespace), not following
    /// a final symlink.
    Chown { path: CString, uid: u32, gid: u32 },
}

/// The identity switch and the exec, common to both modes.
pub(crate) struct ExecPlan {
    _argv: Vec<CString>,
    pub(crate) argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    pub(crate) envp_ptrs: Vec<*const libc::c_char>,
    pub(crate) candidates: Vec<CString>,
    pub(crate) cwd: CString,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) groups: Vec<libc::gid_t>,
    /// Skip setgroups (denied in a user namespace made by an unprivileged user).
    pub(crate) skip_setgroups: bool,
}

fn null_terminated(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl ExecPlan {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        argv: &[OsString],
        env: &[(String, String)],
        candidates: Vec<Vec<u8>>,
        cwd: &std::path::Path,
        uid: u32,
        gid: u32,
        groups: &[u32],
        skip_setgroups: bool,
    ) -> Result<ExecPlan, SandboxError> {
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| cstring(a.as_bytes(), "a command argument"))
            .collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env
            .iter()
            .map(|(k, v)| {
                if k.is_empty() || k.contains('=') {
                    return Err(SandboxError::InvalidSpec(format!(
                        "invalid environment variable name {k:?}"
                    )));
                }
                cstring(format!("{k}={v}").as_bytes(), "an environment variable")
            })
            .collect::<Result<_, _>>()?;
        let candidates = candidates
            .into_iter()
            .map(|c| cstring(&c, "the program path"))
            .collect::<Result<_, _>>()?;
        Ok(ExecPlan {
            argv_ptrs: null_terminated(&argv),
            _argv: argv,
            envp_ptrs: null_terminated(&envp),
            _envp: envp,
            candidates,
            cwd: cstring(cwd.as_os_str().as_bytes(), "the working directory")?,
            uid,
            gid,
            groups: groups.to_vec(),
            skip_setgroups,
        })
    }
}

/// Namespace and filesystem setup of chroot mode.
pub(crate) struct ChrootPlan {
    pub(crate) root: CString,
    pub(crate) unshare_flags: libc::c_int,
    /// Contents of uid_map and gid_map the supervisor writes itself when a user namespace
    /// maps only the caller to root.
    pub(crate) id_maps: Option<(CString, CString)>,
    /// A user namespace whose maps the parent writes (newuidmap/newgidmap, or root's
    /// identity maps) once the supervisor has unshared (the supervisor waits for it).
    pub(crate) parent_maps: Option<Box<ParentMaps>>,
    /// A binfmt_misc registration line (F flag) the supervisor writes into a private
    /// binfmt_misc instance of its user namespace before forking the command.
    pub(crate) binfmt: Option<CString>,
    pub(crate) hostname: Option<CString>,
    pub(crate) loopback_up: bool,
    pub(crate) ops: Vec<Op>,
    pub(crate) last_cap: u32,
    /// Capabilities the command keeps (bit n = capability n).
    pub(crate) cap_mask: u64,
}

/// What the supervisor process runs.
pub(crate) enum Plan {
    Chroot {
        setup: ChrootPlan,
        exec: Option<ExecPlan>,
    },
    InPlace {
        exec: ExecPlan,
    },
}
