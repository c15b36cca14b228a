//! RUN isolation for kiln: runs one Dockerfile RUN command in a stage's root filesystem.
//!
//! # Two roots, one engine
//!
//! * **chroot mode** ([`Mode::Chroot`]): the root is the stage's private rootfs directory.
//!   A forked supervisor enters new mount, pid, ipc and uts namespaces (plus a user
//!   namespace when kiln is not root, plus a network namespace
//!   with only `lo` for `--network=none`), and forks the command process, pid 1 of the new
//!   pid namespace. That process binds the rootfs onto itself, mounts `/proc` (with Docker's
//!   masked and read-only paths), a tmpfs `/dev` (null, zero, full, random, urandom, tty
//!   bind-mounted from the host, devpts `newinstance`, shm), a read-only `/sys`, the host's
//!   `/etc/resolv.conf` and `/etc/hosts` read-only and the extra mounts, then pivot_root's
//!   into the rootfs (chroot if pivot_root is refused), detaches the host root and drops
//!   capabilities to Docker's default set. When the command exits, the kernel kills whatever
//!   it left in its pid namespace.
//! * **in-place mode** ([`Mode::InPlace`], kaniko's model): the root is `/` of the disposable
//!   container kiln runs in. The command runs directly, in its own session, under a
//!   supervisor that is a child subreaper and kills every leftover descendant. It needs no
//!   CAP_SYS_ADMIN and no user namespaces. kiln enters it only inside its own image
//!   ([`KILN_CONTAINER_MARKER`]) or when told the container is disposable.
//! * **auto** ([`Isolation::Auto`]) probes namespaces in a forked child
//!   ([`probe_namespaces`]) and chooses; [`Sandbox::reason`] says why.
//!
//! # Invariants
//!
//! * Nothing of the host is reachable from a chroot-mode command: all paths inside the
//!   rootfs (mount targets, WORKDIR, /etc/passwd) are resolved with `openat2`
//!   `RESOLVE_IN_ROOT`, so a symlink in an image cannot point a mount or a write outside it;
//!   the host root is detached after pivot_root; the rootfs and /dev are `nodev`, so a
//!   device node the command creates cannot be opened; CAP_SYS_ADMIN and the other
//!   capabilities Docker does not grant are dropped (and CAP_NET_RAW when a root command
//!   shares the host's network).
//! * The rootfs is left as the command left it: mount targets kiln had to create (`/proc`,
//!   `/dev`, `/sys`, `/etc/resolv.conf`, `/etc/hosts`, extra mount targets) are removed
//!   afterwards and their parents' mtimes restored (see [`RunOutcome`]).
//! * No process the command started survives [`Sandbox::run`].
//! * Between fork and exec only raw system calls on data prepared before the fork run, so
//!   the crate is safe to call from a multi-threaded (tokio) process.
//!
//! Rootless id maps (module `idmap`): the caller is root inside; the ranges `/etc/subuid`
//! and `/etc/subgid` give it become ids 1, 2, ... inside, written by the setuid helpers
//! `newuidmap`/`newgidmap`, which the parent runs while the supervisor waits on a pipe.
//! Without ranges or helpers (or when they fail), only the caller is mapped, and a non-root
//! USER is refused with an error saying what to add to `/etc/subuid`. [`Sandbox::id_maps`]
//! tells the engine how on-disk owners translate to image ids.
//!
//! # Foreign platforms
//!
//! A step whose [`RunSpec::platform`] the host CPU cannot run goes through binfmt_misc
//! (module `emulation`): a handler the host registered with the F flag is used as it is;
//! otherwise, in chroot mode, the supervisor (in its own user namespace: the rootless one,
//! or one with identity maps made just for this when kiln is root) mounts a private
//! binfmt_misc instance (Linux 6.7 and later) and registers an emulator from [`Emulators`]
//! (`--emulator`, or [`DEFAULT_EMULATOR_DIR`]) with the F flag; the host sees nothing.
//! When neither works, [`SandboxError::NoEmulation`] names the platform, the step and both
//! ways to enable it, and nothing runs. The magic and mask of each architecture are data
//! in module `binfmt`.
//!
//! USER resolution follows Docker ([`resolve_user_from`]); the environment gets Docker's
//! `PATH` and `HOME` defaults; WORKDIR is created owned by the user. The crate is
//! synchronous: [`Sandbox::run`] blocks until the command and its leftovers are gone.
//!
//! # Example: one RUN step in a busybox rootfs
//!
//! ```
//! use kiln_sandbox::{RunSpec, Sandbox, SandboxOptions, Stream};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let busybox = kiln_testkit::busybox::BusyboxRootfs::create(); // a stage's rootfs
//! # let rootfs = busybox.path();
//! // Auto: chroot mode where namespaces work (root, or user namespaces), in-place
//! // mode in kiln's own container, otherwise an error saying what to do.
//! let sandbox = Sandbox::new(&SandboxOptions::default())?;
//! println!("{:?}: {}", sandbox.mode(), sandbox.reason());
//!
//! let script = "echo \"$GREETING from $(hostname) in $PWD\" > /greeting; id -u";
//! let mut spec = RunSpec::new(&rootfs, ["/bin/sh", "-c", script]);
//! spec.env.push(("GREETING".into(), "hello".into())); // ENV and ARG values
//! spec.cwd = "/app".into(); // WORKDIR: created when missing
//! spec.hostname = Some("builder".into());
//!
//! let mut stdout = Vec::new();
//! sandbox.run(&spec, &mut |stream: Stream, line: &[u8]| {
//!     if stream == Stream::Stdout {
//!         stdout.push(String::from_utf8_lossy(line).into_owned());
//!     }
//! })?;
//! assert_eq!(stdout, ["0"]); // root inside
//! let greeting = std::fs::read_to_string(rootfs.join("greeting"))?;
//! assert_eq!(greeting, "hello from builder in /app\n");
//! # Ok(()) }
//! ```

#![warn(clippy::print_stdout, clippy::print_stderr)]

mod binfmt;
pub mod caps;
mod child;
mod chroot;
mod emulation;
mod env;
mod error;
mod idmap;
mod inplace;
mod live;
mod output;
mod parent_maps;
mod plan;
mod rerun;
mod rootpath;
mod sandbox;
mod spec;
mod supervise;
mod user;
mod workdir;

pub use binfmt::HOST_BINFMT_MISC;
pub use emulation::{DEFAULT_EMULATOR_DIR, Emulators};
pub use env::command_env;
pub use error::SandboxError;
pub use idmap::{IdMaps, IdRange};
pub use live::{stop_all, stopping};
pub use rerun::{INSIDE_ENV as ROOTLESS_NAMESPACE_ENV, rerun_in_user_namespace};
pub use sandbox::{
    Isolation, KILN_CONTAINER_MARKER, Mode, Sandbox, SandboxOptions, decide, probe_namespaces,
};
pub use spec::{DEFAULT_PATH, Mount, Network, OutputSink, RunOutcome, RunSpec, Stream};
pub use user::{ExecUser, resolve_user_from};
