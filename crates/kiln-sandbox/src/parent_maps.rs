//! Id maps the parent writes for the supervisor's new user namespace, while the supervisor
//! waits on a pipe (see `supervise.rs`): a process cannot map more than its own id into a
//! namespace it has just entered, but its parent, outside, can.
//!
//! * Rootless with subordinate ranges: the setuid helpers newuidmap/newgidmap write them
//!   (see `idmap.rs`).
//! * Root that needs a user namespace only for its own binfmt_misc instance (a foreign
//!   platform's RUN, see `emulation.rs`): every id kiln's own namespace maps is mapped to
//!   itself, so ids on disk are exactly what they are in a root run without the namespace.

use std::path::PathBuf;

use crate::SandboxError;
use crate::idmap::IdMapping;

/// Who writes the maps, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParentMaps {
    /// newuidmap/newgidmap write the caller's subordinate ranges.
    Helpers(IdMapping),
    /// kiln (root) writes identity maps itself.
    Identity { uid_map: String, gid_map: String },
}

/// The identity map of every range `map` (a uid_map or gid_map of kiln's own namespace)
/// holds: each `inside outside count` line becomes `inside inside count`.
fn identity_of(map: &str) -> String {
    map.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (inside, _outside, count) = (f.next()?, f.next()?, f.next()?);
            Some(format!("{inside} {inside} {count}\n"))
        })
        .collect()
}

impl ParentMaps {
    /// Identity maps of the ids kiln's own user namespace maps (all of them on a host).
    pub(crate) fn identity() -> Result<ParentMaps, SandboxError> {
        let read = |path: &'static str| {
            std::fs::read_to_string(path).map_err(|source| SandboxError::Io {
                action: "read",
                path: PathBuf::from(path),
                source,
            })
        };
        Ok(ParentMaps::Identity {
            uid_map: identity_of(&read("/proc/self/uid_map")?),
            gid_map: identity_of(&read("/proc/self/gid_map")?),
        })
    }

    /// Writes the maps of process `pid`, which has just unshared its user namespace.
    pub(crate) fn write(&self, pid: libc::pid_t) -> Result<(), SandboxError> {
        match self {
            ParentMaps::Helpers(mapping) => mapping.write_with_helpers(pid),
            ParentMaps::Identity { uid_map, gid_map } => {
                for (file, map) in [("uid_map", uid_map), ("gid_map", gid_map)] {
                    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
                    // One write: the kernel takes a map only whole.
                    std::fs::write(&path, map).map_err(|source| SandboxError::Io {
                        action: "write the identity id map of the emulation's user namespace to",
                        path,
                        source,
                    })?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_keep_every_mapped_id_as_it_is() {
        assert_eq!(
            identity_of("         0          0 4294967295\n"),
            "0 0 4294967295\n"
        );
        assert_eq!(
            identity_of("0 1500 1\n1 100000 65536\n"),
            "0 0 1\n1 1 65536\n"
        );
    }
}
