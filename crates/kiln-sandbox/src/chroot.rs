//! Chroot mode, parent side: resolves the user, creates WORKDIR and missing mount targets
//! inside the rootfs, and prepares the namespace and mount plan the child executes.
//!
//! The child, pid 1 of a new pid namespace in new mount/ipc/uts (and user, net) namespaces,
//! binds the rootfs onto itself, mounts /proc (with Docker's masked and read-only paths), a
//! tmpfs /dev with bind-mounted host devices, devpts and shm, a read-only /sys, the host's
//! resolv.conf and hosts read-only, the extra mounts, then pivot_root's into the rootfs,
//! detaches the host root and drops capabilities to Docker's default set.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::SandboxError;
use crate::caps;
use crate::env::{command_env, exec_candidates};
use crate::idmap::IdMapping;
use crate::parent_maps::ParentMaps;
use crate::plan::{ChrootPlan, ExecPlan, Op, Plan, Source};
use crate::rootpath::{CreatedTargets, Ensured, Root, TargetKind, cstring, rel_cstring};
use crate::spec::{Mount, Network, RunSpec};
use crate::user::resolve_user;

/// A plan ready to fork, with what must be undone afterwards.
pub(crate) struct Prepared {
    pub(crate) plan: Plan,
    pub(crate) op_descriptions: Vec<String>,
    pub(crate) created: CreatedTargets,
    pub(crate) created_workdir: Vec<PathBuf>,
}

/// /proc entries Docker hides behind /dev/null.
const MASKED_PROC_FILES: [&str; 4] = ["kcore", "keys", "timer_list", "sched_debug"];
/// /proc entries Docker makes read-only.
const READONLY_PROC_PATHS: [&str; 5] = ["bus", "fs", "irq", "sys", "sysrq-trigger"];
/// Device nodes bind-mounted from the host into the sandbox's /dev.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// The tty group, owner of /dev/pts entries.
const TTY_GID: u32 = 5;
/// Host files bind-mounted read-only, never left in the rootfs.
const HOST_FILES: [&str; 2] = ["/etc/resolv.conf", "/etc/hosts"];

fn c(s: &str) -> CString {
    // Only used on constants and formatted strings without NUL.
    CString::new(s).unwrap_or_default()
}

struct OpsBuilder<'a> {
    root: &'a Root,
    created: &'a mut CreatedTargets,
    ops: Vec<Op>,
    descriptions: Vec<String>,
}

impl OpsBuilder<'_> {
    fn push(&mut self, op: Op, description: String) {
        self.ops.push(op);
        self.descriptions.push(description);
    }

    fn ensure(&mut self, target: &Path, kind: TargetKind) -> Result<Ensured, SandboxError> {
        let mut paths = Vec::new();
        self.root
            .ensure(target, kind, 0o755, None, Some(self.created), &mut paths)
            .map_err(|source| SandboxError::Io {
                action: "create mount target",
                path: self.root.display(target),
                source,
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn mount(
        &mut self,
        source: Source,
        target: impl AsRef<Path>,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
        readonly: bool,
        optional: bool,
        what: String,
    ) -> Result<(), SandboxError> {
        let target = target.as_ref();
        let target = rel_cstring(target).map_err(|e| {
            SandboxError::InvalidSpec(format!("mount target {}: {e}", target.display()))
        })?;
        self.push(
            Op::Mount {
                source,
                target,
                fstype: fstype.map(c),
                flags,
                data: data.map(c),
                readonly,
                optional,
            },
            what,
        );
        Ok(())
    }

    /// Creates a WORKDIR directory (mode 0755) owned by `uid:gid` inside the namespace.
    fn workdir(&mut self, dir: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
        let invalid = |e: std::io::Error| {
            SandboxError::InvalidSpec(format!("WORKDIR {}: {e}", dir.display()))
        };
        let parent = rel_cstring(dir.parent().unwrap_or(Path::new("/"))).map_err(invalid)?;
        let name = dir
            .file_name()
            .map(|n| cstring(n.as_bytes(), "a WORKDIR component"))
            .transpose()?
            .ok_or_else(|| SandboxError::InvalidSpec(format!("WORKDIR {}", dir.display())))?;
        self.push(
            Op::Mkdir {
                parent,
                name,
                mode: 0o755,
            },
            format!("create the working directory {}", dir.display()),
        );
        if (uid, gid) != (0, 0) {
            let path = rel_cstring(dir).map_err(invalid)?;
            self.push(
                Op::Chown { path, uid, gid },
                format!("give {} to {uid}:{gid}", dir.display()),
            );
        }
        Ok(())
    }

    /// `tty_gid`: the tty group exists in the namespace, so devpts gives it its ptys.
    fn standard(&mut self, tty_gid: bool) -> Result<(), SandboxError> {
        if self.ensure(Path::new("/proc"), TargetKind::Dir)? == Ensured::Present {
            let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            self.mount(
                Source::Name(c("proc")),
                "/proc",
                Some("proc"),
                nosuid_nodev_noexec,
                None,
                false,
                false,
                "mount proc on /proc".into(),
            )?;
            for f in MASKED_PROC_FILES {
                let t = format!("/proc/{f}");
                self.mount(
                    Source::Host(c("/dev/null")),
                    &t,
                    None,
                    libc::MS_BIND,
                    None,
                    false,
                    true,
                    format!("mask {t}"),
                )?;
            }
            for p in READONLY_PROC_PATHS {
                let t = format!("/proc/{p}");
                self.mount(
                    Source::Target,
                    &t,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                    true,
                    true,
                    format!("make {t} read-only"),
                )?;
            }
        } else {
            return Err(SandboxError::InvalidSpec(
                "/proc in the rootfs is a dangling symlink".into(),
            ));
        }
        if self.ensure(Path::new("/dev"), TargetKind::Dir)? != Ensured::Present {
            return Err(SandboxError::InvalidSpec(
                "/dev in the rootfs is a dangling symlink".into(),
            ));
        }
        self.mount(
            Source::Name(c("tmpfs")),
            "/dev",
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
            false,
            false,
            "mount a tmpfs on /dev".into(),
        )?;
        for d in DEVICES {
            self.push(
                Op::Touch {
                    parent: c("dev"),
                    name: c(d),
                    mode: 0o666,
                },
                format!("create /dev/{d}"),
            );
            let host = format!("/dev/{d}");
            self.mount(
                Source::Host(c(&host)),
                &host,
                None,
                libc::MS_BIND,
                None,
                false,
                true,
                format!("bind the host's {host}"),
            )?;
        }
        self.push(
            Op::Mkdir {
                parent: c("dev"),
                name: c("pts"),
                mode: 0o755,
            },
            "create /dev/pts".into(),
        );
        let pts_data = if tty_gid {
            "newinstance,ptmxmode=0666,mode=0620,gid=5"
        } else {
            "newinstance,ptmxmode=0666,mode=0620"
        };
        self.mount(
            Source::Name(c("devpts")),
            "/dev/pts",
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some(pts_data),
            false,
            false,
            "mount devpts on /dev/pts".into(),
        )?;
        self.push(
            Op::Mkdir {
                parent: c("dev"),
                name: c("shm"),
                mode: 0o1777,
            },
            "create /dev/shm".into(),
        );
        self.mount(
            Source::Name(c("shm")),
            "/dev/shm",
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("mode=1777,size=65536k"),
            false,
            false,
            "mount a tmpfs on /dev/shm".into(),
        )?;
        for (name, target) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            self.push(
                Op::Symlink {
                    parent: c("dev"),
                    name: c(name),
                    target: c(target),
                },
                format!("create the /dev/{name} symlink"),
            );
        }
        if self.ensure(Path::new("/sys"), TargetKind::Dir)? != Ensured::Present {
            return Err(SandboxError::InvalidSpec(
                "/sys in the rootfs is a dangling symlink".into(),
            ));
        }
        self.push(
            Op::Sysfs { target: c("sys") },
            "mount a read-only /sys".into(),
        );
        for host in HOST_FILES {
            if !Path::new(host).exists() {
                tracing::debug!(
                    file = host,
                    "the host has no such file; not providing it to RUN"
                );
                continue;
            }
            match self.ensure(Path::new(host), TargetKind::File) {
                Ok(Ensured::Present) => {
                    self.mount(
                        Source::Host(c(host)),
                        host,
                        None,
                        libc::MS_BIND,
                        None,
                        true,
                        false,
                        format!("bind the host's {host} read-only"),
                    )?;
                }
                Ok(Ensured::DanglingSymlink(at)) => {
                    tracing::debug!(file = host, symlink = %at.display(), "dangling symlink in the rootfs; not providing the host's file");
                }
                Err(e) => {
                    tracing::warn!(file = host, error = %e, "cannot provide the host's file to RUN")
                }
            }
        }
        Ok(())
    }

    fn extra(&mut self, mount: &Mount) -> Result<(), SandboxError> {
        let target = mount.target();
        if !target.is_absolute() {
            return Err(SandboxError::InvalidSpec(format!(
                "mount target {} is not absolute",
                target.display()
            )));
        }
        let (kind, source_desc) = match mount {
            Mount::Bind { source, .. } => {
                let meta = std::fs::metadata(source).map_err(|e| SandboxError::Io {
                    action: "inspect bind mount source",
                    path: source.clone(),
                    source: e,
                })?;
                (
                    if meta.is_dir() {
                        TargetKind::Dir
                    } else {
                        TargetKind::File
                    },
                    source.display().to_string(),
                )
            }
            Mount::Tmpfs { .. } => (TargetKind::Dir, "tmpfs".to_owned()),
        };
        if let Ensured::DanglingSymlink(at) = self.ensure(target, kind)? {
            return Err(SandboxError::InvalidSpec(format!(
                "mount target {}: {} is a symlink to a missing path",
                target.display(),
                at.display()
            )));
        }
        let t = target.display().to_string();
        match mount {
            Mount::Bind {
                source, readonly, ..
            } => {
                let src = cstring(source.as_os_str().as_bytes(), "bind mount source")?;
                let ro = if *readonly { " read-only" } else { "" };
                self.mount(
                    Source::Host(src),
                    target,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                    *readonly,
                    false,
                    format!("bind {source_desc} onto {t}{ro}"),
                )?;
            }
            Mount::Tmpfs { size, mode, .. } => {
                let data = match size {
                    Some(s) => format!("mode={mode:o},size={s}"),
                    None => format!("mode={mode:o}"),
                };
                self.mount(
                    Source::Name(c("tmpfs")),
                    target,
                    Some("tmpfs"),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some(&data),
                    false,
                    false,
                    format!("mount a tmpfs on {t}"),
                )?;
            }
        }
        Ok(())
    }
}

/// Prepares a chroot-mode run of `spec`. `userns`: the id maps of a new user namespace
/// (kiln is not root), `None` when kiln is root. `binfmt`: an emulator registration for
/// the sandbox's own binfmt_misc instance (a foreign platform, see `emulation.rs`).
pub(crate) fn prepare(
    spec: &RunSpec,
    userns: Option<&IdMapping>,
    binfmt: Option<Vec<u8>>,
) -> Result<Prepared, SandboxError> {
    let root = Root::open(&spec.root)?;
    let user = resolve_user(&root, &spec.user)?;
    let mut workdir_mkdirs = Vec::new();
    let created_workdir = match userns {
        None => crate::workdir::ensure(&root, &spec.cwd, &user)?,
        Some(mapping) => {
            // Supplementary groups need setgroups, which only helper-written maps allow.
            let gids: Vec<u32> = if mapping.uses_helpers() {
                user.groups.iter().copied().chain([user.gid]).collect()
            } else {
                vec![user.gid]
            };
            mapping.check_user(&spec.user, user.uid, gids)?;
            // The caller may not write in the user's directories nor give a directory to
            // another id outside; root inside the namespace can.
            let missing = crate::workdir::missing(&root, &spec.cwd)?;
            workdir_mkdirs.clone_from(&missing);
            missing
        }
    };
    let env = command_env(&spec.env, &user.home);
    let argv0 = spec
        .argv
        .first()
        .ok_or_else(|| SandboxError::InvalidSpec("empty command".into()))?;
    let exec = ExecPlan::new(
        &spec.argv,
        &env,
        exec_candidates(argv0, &env),
        &crate::rootpath::clean_abs(&spec.cwd),
        user.uid,
        user.gid,
        &user.groups,
        userns.is_some_and(|m| !m.uses_helpers()),
    )?;
    let mut created = CreatedTargets::default();
    let mut builder = OpsBuilder {
        root: &root,
        created: &mut created,
        ops: Vec::new(),
        descriptions: Vec::new(),
    };
    let built = workdir_mkdirs
        .iter()
        .try_for_each(|dir| builder.workdir(dir, user.uid, user.gid))
        .and_then(|()| builder.standard(userns.is_none_or(|m| m.maps_gid(TTY_GID))))
        .and_then(|()| spec.mounts.iter().try_for_each(|m| builder.extra(m)));
    let (ops, op_descriptions) = (builder.ops, builder.descriptions);
    if let Err(e) = built {
        created.remove_all()?;
        return Err(e);
    }
    let setup = namespace_setup(
        &root,
        spec.network,
        spec.hostname.as_deref(),
        userns,
        ops,
        binfmt,
    )?;
    Ok(Prepared {
        plan: Plan::Chroot {
            setup,
            exec: Some(exec),
        },
        op_descriptions,
        created,
        created_workdir,
    })
}

/// The namespace part of a chroot plan. With `binfmt` and kiln root, the supervisor also
/// gets a user namespace (only a user namespace can own a binfmt_misc instance), whose
/// identity maps kiln writes: ids on disk stay exactly as in a root run without it.
pub(crate) fn namespace_setup(
    root: &Root,
    network: Network,
    hostname: Option<&str>,
    userns: Option<&IdMapping>,
    ops: Vec<Op>,
    binfmt: Option<Vec<u8>>,
) -> Result<ChrootPlan, SandboxError> {
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    let parent_maps = match userns {
        Some(m) => m
            .uses_helpers()
            .then(|| Box::new(ParentMaps::Helpers(m.clone()))),
        None if binfmt.is_some() => Some(Box::new(ParentMaps::identity()?)),
        None => None,
    };
    if userns.is_some() || binfmt.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    if network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    let id_maps = userns.filter(|m| !m.uses_helpers()).map(|m| {
        let (uid_map, gid_map) = m.map_texts();
        (c(&uid_map), c(&gid_map))
    });
    let hostname = hostname
        .map(|h| cstring(h.as_bytes(), "hostname"))
        .transpose()?;
    // Real root sharing the host's network namespace keeps no packet-socket access to it.
    let cap_mask = if userns.is_none() && network != Network::None {
        caps::default_mask() & !(1u64 << caps::CAP_NET_RAW)
    } else {
        caps::default_mask()
    };
    Ok(ChrootPlan {
        root: cstring(root.path().as_os_str().as_bytes(), "root path")?,
        unshare_flags: flags,
        id_maps,
        parent_maps,
        binfmt: binfmt
            .map(|line| cstring(&line, "the binfmt_misc registration"))
            .transpose()?,
        hostname,
        loopback_up: network == Network::None,
        ops,
        last_cap: caps::last_cap(),
        cap_mask,
    })
}
