//! Rootless id mapping: which ids a user namespace made by an unprivileged caller maps.
//!
//! As podman and buildah do: the caller becomes root inside, and the ranges `/etc/subuid`
//! and `/etc/subgid` give the caller (lines `name:start:count` or `uid:start:count`) map to
//! ids 1, 2, ... inside, in file order. Only the setuid helpers `newuidmap`/`newgidmap` (the
//! `uidmap` package) may write such maps, so the parent runs them on the supervisor once it
//! has unshared its user namespace (see `supervise.rs`). Without a subordinate range for
//! both uids and gids, or without the helpers, the map holds only the caller (written by the
//! child itself) and a non-root USER is refused with an error saying what to add.

use std::ffi::CStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::SandboxError;

/// Where the subordinate id ranges are read from.
const SUBUID: &str = "/etc/subuid";
const SUBGID: &str = "/etc/subgid";

/// One line of a uid_map or gid_map: `count` ids from `inside` map to ids from `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id inside the user namespace.
    pub inside: u32,
    /// The id it is outside (on disk, as the host sees it).
    pub outside: u32,
    /// How many consecutive ids.
    pub count: u32,
}

/// The uid and gid maps of a rootless run's user namespace, to translate owners between
/// the disk (outside) and the image (inside): a file a `USER 1000` command creates is owned
/// by `subuid start + 999` on disk and must be uid 1000 in the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMaps {
    /// uid_map lines.
    pub uids: Vec<IdRange>,
    /// gid_map lines.
    pub gids: Vec<IdRange>,
}

impl IdMaps {
    /// The uid inside for a uid on disk, `None` when unmapped.
    pub fn uid_inside(&self, outside: u32) -> Option<u32> {
        to_inside(&self.uids, outside)
    }

    /// The gid inside for a gid on disk, `None` when unmapped.
    pub fn gid_inside(&self, outside: u32) -> Option<u32> {
        to_inside(&self.gids, outside)
    }

    /// The uid on disk for a uid inside, `None` when unmapped.
    pub fn uid_outside(&self, inside: u32) -> Option<u32> {
        to_outside(&self.uids, inside)
    }

    /// The gid on disk for a gid inside, `None` when unmapped.
    pub fn gid_outside(&self, inside: u32) -> Option<u32> {
        to_outside(&self.gids, inside)
    }
}

fn to_inside(ranges: &[IdRange], outside: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| outside >= r.outside && outside - r.outside < r.count)
        .map(|r| r.inside + (outside - r.outside))
}

fn to_outside(ranges: &[IdRange], inside: u32) -> Option<u32> {
    ranges
        .iter()
        .find(|r| inside >= r.inside && inside - r.inside < r.count)
        .map(|r| r.outside + (inside - r.inside))
}

/// The id maps of the user namespace of a rootless chroot-mode run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdMapping {
    /// Root inside is the caller outside, nothing else is mapped; the child writes the maps
    /// itself (and must deny setgroups). `why` says why no subordinate range is used.
    CallerOnly { caller: Caller, why: String },
    /// The caller as root plus subordinate ranges, written by the setuid helpers.
    Subordinate {
        caller: Caller,
        uids: Vec<IdRange>,
        gids: Vec<IdRange>,
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
}

/// The unprivileged user kiln runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// The user name from the password database, when it has one.
    pub(crate) name: Option<String>,
}

impl Caller {
    /// The user kiln runs as (effective ids).
    pub(crate) fn current() -> Caller {
        // SAFETY: trivial getters.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Caller {
            uid,
            gid,
            name: user_name(uid),
        }
    }

    /// The name used in messages and in /etc/subuid lines.
    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.uid.to_string())
    }
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 16384];
    // SAFETY: a zeroed passwd is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid buffers; the strings point into `buf`, read before it is dropped.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string inside `buf`.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The ranges of a subordinate id file (`/etc/subuid` syntax) that belong to `caller`, in
/// file order, as (start, count).
pub(crate) fn parse_subids(text: &str, caller: &Caller) -> Vec<(u32, u32)> {
    let uid = caller.uid.to_string();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let mut f = line.split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            let ours = owner == uid || caller.name.as_deref() == Some(owner);
            let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
            (ours && count > 0 && start.checked_add(count).is_some()).then_some((start, count))
        })
        .collect()
}

/// The map: root to the caller's id, then the subordinate ranges from inside id 1 on.
fn ranges(caller_id: u32, subids: &[(u32, u32)]) -> Vec<IdRange> {
    let mut out = vec![IdRange {
        inside: 0,
        outside: caller_id,
        count: 1,
    }];
    let mut next = 1u32;
    for &(start, count) in subids {
        let count = count.min(u32::MAX - next);
        if count == 0 {
            break;
        }
        out.push(IdRange {
            inside: next,
            outside: start,
            count,
        });
        next += count;
    }
    out
}

fn find_helper(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl IdMapping {
    /// The mapping for `caller`, given the texts of /etc/subuid and /etc/subgid (`None` when
    /// missing) and the helper binaries found (`None` when missing).
    pub(crate) fn decide(
        caller: Caller,
        subuid: Option<&str>,
        subgid: Option<&str>,
        helpers: Option<(PathBuf, PathBuf)>,
    ) -> IdMapping {
        let who = caller.label();
        let sub_u = subuid.map(|t| parse_subids(t, &caller)).unwrap_or_default();
        let sub_g = subgid.map(|t| parse_subids(t, &caller)).unwrap_or_default();
        let why = if sub_u.is_empty() {
            format!("{SUBUID} has no range for {who}")
        } else if sub_g.is_empty() {
            format!("{SUBGID} has no range for {who}")
        } else if let Some((newuidmap, newgidmap)) = helpers {
            return IdMapping::Subordinate {
                uids: ranges(caller.uid, &sub_u),
                gids: ranges(caller.gid, &sub_g),
                caller,
                newuidmap,
                newgidmap,
            };
        } else {
            "newuidmap/newgidmap are not installed (package uidmap)".to_owned()
        };
        IdMapping::CallerOnly { caller, why }
    }

    /// The mapping for the current process, from the system's files and helpers; says at
    /// debug level which one it is and why.
    pub(crate) fn detect() -> IdMapping {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let helpers = find_helper("newuidmap").zip(find_helper("newgidmap"));
        let mapping = IdMapping::decide(
            Caller::current(),
            read(SUBUID).as_deref(),
            read(SUBGID).as_deref(),
            helpers,
        );
        match &mapping {
            IdMapping::CallerOnly { why, .. } => tracing::debug!(
                %why,
                "rootless RUN: the user namespace maps only the caller to root"
            ),
            IdMapping::Subordinate { uids, gids, .. } => tracing::debug!(
                uid_map = %map_text(uids).trim_end(),
                gid_map = %map_text(gids).trim_end(),
                "rootless RUN: the user namespace maps the caller to root and subordinate ids with newuidmap/newgidmap"
            ),
        }
        mapping
    }

    /// The maps as a public value.
    pub(crate) fn maps(&self) -> IdMaps {
        IdMaps {
            uids: self.uid_ranges(),
            gids: self.gid_ranges(),
        }
    }

    fn uid_ranges(&self) -> Vec<IdRange> {
        match self {
            IdMapping::CallerOnly { caller, .. } => ranges(caller.uid, &[]),
            IdMapping::Subordinate { uids, .. } => uids.clone(),
        }
    }

    fn gid_ranges(&self) -> Vec<IdRange> {
        match self {
            IdMapping::CallerOnly { caller, .. } => ranges(caller.gid, &[]),
            IdMapping::Subordinate { gids, .. } => gids.clone(),
        }
    }

    /// The caller-only mapping of the same caller, because of `why`.
    pub(crate) fn caller_only(self, why: String) -> IdMapping {
        match self {
            IdMapping::CallerOnly { caller, .. } | IdMapping::Subordinate { caller, .. } => {
                IdMapping::CallerOnly { caller, why }
            }
        }
    }

    /// Whether `gid` (inside) is mapped.
    pub(crate) fn maps_gid(&self, gid: u32) -> bool {
        mapped(&self.gid_ranges(), gid)
    }

    /// Whether the helpers write the maps (and setgroups stays allowed).
    pub(crate) fn uses_helpers(&self) -> bool {
        matches!(self, IdMapping::Subordinate { .. })
    }

    /// uid_map and gid_map contents, for the child to write itself (caller-only mapping).
    pub(crate) fn map_texts(&self) -> (String, String) {
        (map_text(&self.uid_ranges()), map_text(&self.gid_ranges()))
    }

    /// Checks that every id of a USER is mapped; the error names the ids and what to add.
    pub(crate) fn check_user(
        &self,
        user: &str,
        uid: u32,
        gids: impl IntoIterator<Item = u32>,
    ) -> Result<(), SandboxError> {
        let unmapped_uid = (!mapped(&self.uid_ranges(), uid)).then_some(uid);
        let gid_ranges = self.gid_ranges();
        let unmapped_gids: Vec<u32> = gids
            .into_iter()
            .filter(|g| !mapped(&gid_ranges, *g))
            .collect();
        if unmapped_uid.is_none() && unmapped_gids.is_empty() {
            return Ok(());
        }
        let mut ids = String::new();
        if let Some(u) = unmapped_uid {
            let _ = write!(ids, "uid {u}");
        }
        if !unmapped_gids.is_empty() {
            let list: Vec<String> = unmapped_gids.iter().map(u32::to_string).collect();
            if !ids.is_empty() {
                ids.push_str(", ");
            }
            let _ = write!(ids, "gid {}", list.join(","));
        }
        let reason = match self {
            IdMapping::CallerOnly { caller, why } => {
                let who = caller.label();
                format!(
                    "{ids} cannot be used: kiln runs unprivileged (uid {}), so its user namespace maps only root \
                     ({why}); add a subordinate range for {who} to {SUBUID} and {SUBGID} (a line such as \
                     `{who}:100000:65536` in each) and install newuidmap/newgidmap (package uidmap)",
                    caller.uid
                )
            }
            IdMapping::Subordinate {
                caller, uids, gids, ..
            } => {
                let who = caller.label();
                format!(
                    "{ids} cannot be used: kiln runs unprivileged (uid {}) and its user namespace maps only uids \
                     0-{} and gids 0-{} (root and the ranges {SUBUID} and {SUBGID} give {who}); give {who} a \
                     larger range in {SUBUID} and {SUBGID}",
                    caller.uid,
                    last_inside(uids),
                    last_inside(gids)
                )
            }
        };
        Err(SandboxError::User {
            user: user.to_owned(),
            reason,
        })
    }

    /// Writes the maps of process `pid` (which has just unshared its user namespace) with
    /// newuidmap and newgidmap.
    pub(crate) fn write_with_helpers(&self, pid: libc::pid_t) -> Result<(), SandboxError> {
        let IdMapping::Subordinate {
            uids,
            gids,
            newuidmap,
            newgidmap,
            ..
        } = self
        else {
            return Ok(());
        };
        run_helper(newuidmap, pid, uids)?;
        run_helper(newgidmap, pid, gids)
    }
}

fn run_helper(helper: &Path, pid: libc::pid_t, ranges: &[IdRange]) -> Result<(), SandboxError> {
    let mut cmd = Command::new(helper);
    cmd.arg(pid.to_string());
    for r in ranges {
        cmd.args([
            r.inside.to_string(),
            r.outside.to_string(),
            r.count.to_string(),
        ]);
    }
    let err = |reason: String| SandboxError::IdMap {
        helper: helper.to_path_buf(),
        reason,
    };
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(err(format!(
            "{} with map `{}`: {}",
            out.status,
            map_text(ranges).trim_end().replace('\n', ", "),
            stderr.trim()
        )))
    }
}

fn mapped(ranges: &[IdRange], id: u32) -> bool {
    to_outside(ranges, id).is_some()
}

fn last_inside(ranges: &[IdRange]) -> u32 {
    ranges
        .iter()
        .map(|r| r.inside + (r.count - 1))
        .max()
        .unwrap_or(0)
}

fn map_text(ranges: &[IdRange]) -> String {
    ranges.iter().fold(String::new(), |mut s, r| {
        let _ = writeln!(s, "{} {} {}", r.inside, r.outside, r.count);
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Caller {
        Caller {
            uid: 1500,
            gid: 1600,
            name: Some("alice".into()),
        }
    }

    fn helpers() -> Option<(PathBuf, PathBuf)> {
        Some(("/usr/bin/newuidmap".into(), "/usr/bin/newgidmap".into()))
    }

    #[test]
    fn subid_lines_match_by_name_or_uid_in_file_order() {
        let text = "# comment\nbob:100000:65536\nalice:165536:1000\n1500:300000:10\nalice:bad:1\nalice:5:0\n";
        assert_eq!(parse_subids(text, &alice()), [(165536, 1000), (300000, 10)]);
    }

    #[test]
    fn subordinate_ranges_follow_root_from_inside_id_1() {
        let m = IdMapping::decide(
            alice(),
            Some("alice:100000:65536\nalice:200000:10\n"),
            Some("alice:100000:65536\n"),
            helpers(),
        );
        let (uid_map, gid_map) = (map_text(&m.uid_ranges()), map_text(&m.gid_ranges()));
        assert_eq!(uid_map, "0 1500 1\n1 100000 65536\n65537 200000 10\n");
        assert_eq!(gid_map, "0 1600 1\n1 100000 65536\n");
        assert!(m.uses_helpers());
        let maps = m.maps();
        assert_eq!(maps.uid_outside(0), Some(1500));
        assert_eq!(maps.uid_outside(1000), Some(100999));
        assert_eq!(maps.uid_outside(65537), Some(200000));
        assert_eq!(maps.uid_outside(65547), None);
        assert_eq!(maps.uid_inside(100999), Some(1000));
        assert_eq!(maps.uid_inside(1500), Some(0));
        assert_eq!(maps.uid_inside(99999), None);
        assert_eq!(maps.gid_inside(1600), Some(0));
        assert_eq!(maps.gid_outside(65537), None);
        m.check_user("1000:1000", 1000, [1000, 10]).unwrap();
        let e = m.check_user("70000", 70000, [0]).unwrap_err().to_string();
        assert!(
            e.contains("uid 70000") && e.contains("0-65546") && e.contains("/etc/subuid"),
            "{e}"
        );
    }

    #[test]
    fn without_ranges_or_helpers_only_the_caller_is_mapped_and_the_error_says_what_to_add() {
        for (subuid, subgid, helpers, why) in [
            (
                None,
                Some("alice:1:2"),
                helpers(),
                "/etc/subuid has no range for alice",
            ),
            (
                Some("bob:1:2"),
                Some("alice:1:2"),
                helpers(),
                "/etc/subuid has no range",
            ),
            (
                Some("alice:1:2"),
                None,
                helpers(),
                "/etc/subgid has no range",
            ),
            (Some("alice:1:2"), Some("alice:1:2"), None, "newuidmap"),
        ] {
            let m = IdMapping::decide(alice(), subuid, subgid, helpers);
            assert!(!m.uses_helpers());
            assert_eq!(
                m.map_texts(),
                ("0 1500 1\n".to_owned(), "0 1600 1\n".to_owned())
            );
            m.check_user("root", 0, [0]).unwrap();
            let e = m.check_user("1000", 1000, [0, 27]).unwrap_err().to_string();
            assert!(
                e.contains("uid 1000, gid 27")
                    && e.contains("maps only root")
                    && e.contains(why)
                    && e.contains("alice:100000:65536"),
                "{e}"
            );
        }
    }
}
