//! USER resolution against the rootfs's /etc/passwd and /etc/group, with the rules of
//! Docker (runc's `GetExecUser`): `name`, `uid`, `name:group`, `uid:gid`; a numeric uid that
//! is not in passwd is allowed (gid 0, HOME `/`); a user or group NAME that is missing is an
//! error naming it; supplementary groups come from /etc/group only when no group is given.

use std::path::Path;

use crate::SandboxError;
use crate::rootpath::Root;

/// The identity a RUN command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids (from /etc/group memberships).
    pub groups: Vec<u32>,
    /// Home directory from passwd, `/` when the user has no entry.
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).copied().unwrap_or("").to_owned(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn numeric(s: &str) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Resolves `user` (a USER value) given the texts of /etc/passwd and /etc/group (`None`
/// when the file does not exist).
pub fn resolve_user_from(
    user: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ExecUser, SandboxError> {
    let err = |reason: String| SandboxError::User {
        user: user.to_owned(),
        reason,
    };
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd_entries = passwd.map(parse_passwd).unwrap_or_default();
    let entry = match numeric(user_part) {
        Some(uid) => passwd_entries.iter().find(|e| e.uid == uid),
        None => passwd_entries.iter().find(|e| e.name == user_part),
    };
    let (uid, mut gid, home, name) = match (entry, numeric(user_part)) {
        (Some(e), _) => (e.uid, e.gid, e.home.clone(), Some(e.name.clone())),
        (None, Some(uid)) => (uid, 0, "/".to_owned(), None),
        (None, None) => {
            let why = if passwd.is_some() {
                format!("unable to find user {user_part}: no matching entries in passwd file")
            } else {
                format!("unable to find user {user_part}: the image has no /etc/passwd")
            };
            return Err(err(why));
        }
    };
    let group_entries = group.map(parse_group).unwrap_or_default();
    let mut groups = Vec::new();
    match group_part {
        Some(g) if !g.is_empty() => {
            let found = match numeric(g) {
                Some(n) => group_entries
                    .iter()
                    .find(|e| e.gid == n)
                    .map(|e| e.gid)
                    .or(Some(n)),
                None => group_entries.iter().find(|e| e.name == g).map(|e| e.gid),
            };
            gid = found.ok_or_else(|| {
                err(format!(
                    "unable to find group {g}: no matching entries in group file"
                ))
            })?;
        }
        _ => {
            if let Some(name) = name {
                groups = group_entries
                    .iter()
                    .filter(|e| e.members.contains(&name))
                    .map(|e| e.gid)
                    .collect();
                groups.dedup();
            }
        }
    }
    let home = if home.is_empty() {
        "/".to_owned()
    } else {
        home
    };
    // As Docker does for its containers (moby's getUser): the primary group
    // comes first among the supplementary groups.
    groups.retain(|g| *g != gid);
    groups.insert(0, gid);
    Ok(ExecUser {
        uid,
        gid,
        groups,
        home,
    })
}

/// Resolves `user` against the rootfs opened as `root`.
pub(crate) fn resolve_user(root: &Root, user: &str) -> Result<ExecUser, SandboxError> {
    let read = |p: &str| -> Result<Option<String>, SandboxError> {
        let bytes = root
            .read_file(Path::new(p))
            .map_err(|source| SandboxError::Io {
                action: "read",
                path: root.display(Path::new(p)),
                source,
            })?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    };
    let passwd = read("/etc/passwd")?;
    let group = read("/etc/group")?;
    resolve_user_from(user, passwd.as_deref(), group.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nnohome:x:1001:100:::/bin/sh\n";
    const GROUP: &str = "root:x:0:\nuser:x:1000:\nusers:x:100:user,nohome\nwheel:x:10:user\n";

    fn check(user: &str) -> ExecUser {
        resolve_user_from(user, Some(PASSWD), Some(GROUP)).unwrap()
    }

    #[test]
    fn empty_user_is_root_with_its_home() {
        assert_eq!(
            check(""),
            ExecUser {
                uid: 0,
                gid: 0,
                groups: vec![0],
                home: "/root".into()
            }
        );
    }

    #[test]
    fn name_gets_passwd_gid_home_and_member_groups() {
        assert_eq!(
            check("user"),
            ExecUser {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 100, 10],
                home: "/home/user".into()
            }
        );
    }

    #[test]
    fn uid_in_passwd_is_that_user() {
        assert_eq!(check("1000"), check("user"));
    }

    #[test]
    fn unknown_uid_is_allowed_with_gid_0_and_home_root() {
        assert_eq!(
            check("4242"),
            ExecUser {
                uid: 4242,
                gid: 0,
                groups: vec![0],
                home: "/".into()
            }
        );
        assert_eq!(
            check("4242:77"),
            ExecUser {
                uid: 4242,
                gid: 77,
                groups: vec![77],
                home: "/".into()
            }
        );
    }

    #[test]
    fn explicit_group_replaces_supplementary_groups() {
        assert_eq!(
            check("user:wheel"),
            ExecUser {
                uid: 1000,
                gid: 10,
                groups: vec![10],
                home: "/home/user".into()
            }
        );
        assert_eq!(
            check("user:5"),
            ExecUser {
                uid: 1000,
                gid: 5,
                groups: vec![5],
                home: "/home/user".into()
            }
        );
    }

    #[test]
    fn empty_home_becomes_root_dir() {
        assert_eq!(check("nohome").home, "/");
    }

    #[test]
    fn missing_names_are_errors_naming_them() {
        let e = resolve_user_from("ghost", Some(PASSWD), Some(GROUP))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ghost") && e.contains("passwd"), "{e}");
        let e = resolve_user_from("user:ghosts", Some(PASSWD), Some(GROUP))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ghosts") && e.contains("group"), "{e}");
        let e = resolve_user_from("user", None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no /etc/passwd"), "{e}");
    }
}
