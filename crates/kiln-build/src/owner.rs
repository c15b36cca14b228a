//! `--chown` resolution (names from the stage's `/etc/passwd` and `/etc/group`,
//! numbers as they are) and `--chmod` (octal or symbolic).

use std::path::Path;

/// A resolved owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Numeric user.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
}

/// Resolves `user[:group]` against the stage root's passwd/group files
/// (`root` is `None` for a stage without a filesystem, e.g. scratch).
/// As BuildKit: a user name without a group takes the user's primary group
/// from /etc/passwd; a numeric uid without a group takes the same number as
/// gid (not looked up).
pub fn resolve_chown(spec: &str, root: Option<&Path>) -> Result<Owner, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(format!("invalid --chown value {spec:?}: empty user"));
    }
    let passwd = root.and_then(|r| std::fs::read_to_string(r.join("etc/passwd")).ok());
    let groups = root.and_then(|r| std::fs::read_to_string(r.join("etc/group")).ok());
    let (uid, primary_gid) = match user.parse::<u64>() {
        Ok(uid) => (uid, uid),
        Err(_) => {
            let fields =
                lookup(passwd.as_deref(), |f| f.first() == Some(&user)).ok_or_else(|| {
                    format!("unable to find user {user:?} in the stage's /etc/passwd")
                })?;
            let uid = fields
                .get(2)
                .and_then(|u| u.parse().ok())
                .ok_or_else(|| format!("the /etc/passwd entry of {user:?} has no numeric uid"))?;
            let gid = fields.get(3).and_then(|g| g.parse().ok()).unwrap_or(uid);
            (uid, gid)
        }
    };
    let gid = match group {
        None => primary_gid,
        Some("") => return Err(format!("invalid --chown value {spec:?}: empty group")),
        Some(g) => match g.parse::<u64>() {
            Ok(gid) => gid,
            Err(_) => {
                let fields =
                    lookup(groups.as_deref(), |f| f.first() == Some(&g)).ok_or_else(|| {
                        format!("unable to find group {g:?} in the stage's /etc/group")
                    })?;
                fields
                    .get(2)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("the /etc/group entry of {g:?} has no numeric gid"))?
            }
        },
    };
    Ok(Owner { uid, gid })
}

fn lookup(file: Option<&str>, pick: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    file?
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| pick(f))
}

/// A parsed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// `--chmod=0755`: the exact permission bits.
    Octal(u32),
    /// `--chmod=u+x,g-w`: clauses applied to each file's current mode.
    Symbolic(Vec<Clause>),
}

/// One symbolic clause: `who op perms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    who: u32,
    op: char,
    perms: String,
}

impl Chmod {
    /// Parses an octal (`755`, `0644`) or symbolic (`u+x,go=r`) mode.
    pub fn parse(text: &str) -> Result<Chmod, String> {
        if !text.is_empty() && text.chars().all(|c| c.is_digit(8)) {
            let mode = u32::from_str_radix(text, 8).map_err(|e| e.to_string())?;
            if mode > 0o7777 {
                return Err(format!("invalid --chmod {text:?}: out of range"));
            }
            return Ok(Chmod::Octal(mode));
        }
        let mut clauses = Vec::new();
        for part in text.split(',') {
            let op_at = part.find(['+', '-', '=']).ok_or_else(|| {
                format!("invalid --chmod {text:?}: expected octal or [ugoa][+-=][rwxXst]")
            })?;
            let (who_text, rest) = part.split_at(op_at);
            let mut who = 0;
            for c in who_text.chars() {
                who |= match c {
                    'u' => 0o4700,
                    'g' => 0o2070,
                    'o' => 0o1007,
                    'a' => 0o7777,
                    _ => return Err(format!("invalid --chmod {text:?}: unknown who {c:?}")),
                };
            }
            if who == 0 {
                who = 0o7777;
            }
            let op = rest.chars().next().unwrap_or('+');
            let perms = rest[1..].to_string();
            if let Some(c) = perms.chars().find(|c| !"rwxXst".contains(*c)) {
                return Err(format!(
                    "invalid --chmod {text:?}: unknown permission {c:?}"
                ));
            }
            clauses.push(Clause { who, op, perms });
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The new permission bits of an entry whose mode is `mode`.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        match self {
            Chmod::Octal(m) => *m,
            Chmod::Symbolic(clauses) => {
                let mut mode = mode & 0o7777;
                for clause in clauses {
                    let mut bits = 0;
                    for p in clause.perms.chars() {
                        bits |= match p {
                            'r' => 0o444,
                            'w' => 0o222,
                            'x' => 0o111,
                            'X' if is_dir || mode & 0o111 != 0 => 0o111,
                            's' => 0o6000,
                            't' => 0o1000,
                            _ => 0,
                        };
                    }
                    let bits = bits & clause.who;
                    mode = match clause.op {
                        '+' => mode | bits,
                        '-' => mode & !bits,
                        _ => (mode & !clause.who) | bits,
                    };
                }
                mode
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_users() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(root.path().join("etc")).unwrap();
        fs_err::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1001:1002::/home/bob:/bin/sh\n",
        )
        .unwrap();
        fs_err::write(
            root.path().join("etc/group"),
            "root:x:0:\nappgroup:x:1005:\n",
        )
        .unwrap();
        root
    }

    #[test]
    fn chown_names_and_numbers() {
        let root = root_with_users();
        let r = Some(root.path());
        assert_eq!(
            resolve_chown("bob", r).unwrap(),
            Owner {
                uid: 1001,
                gid: 1002
            }
        );
        assert_eq!(
            resolve_chown("bob:1001", r).unwrap(),
            Owner {
                uid: 1001,
                gid: 1001
            }
        );
        assert_eq!(
            resolve_chown("1005:appgroup", r).unwrap(),
            Owner {
                uid: 1005,
                gid: 1005
            }
        );
        assert_eq!(
            resolve_chown("1001", None).unwrap(),
            Owner {
                uid: 1001,
                gid: 1001
            }
        );
        assert_eq!(resolve_chown("0", r).unwrap(), Owner { uid: 0, gid: 0 });
        let err = resolve_chown("nobody:x", r).unwrap_err();
        assert!(err.contains("nobody"), "{err}");
        let err = resolve_chown("1:nogroup", r).unwrap_err();
        assert!(err.contains("nogroup"), "{err}");
        assert!(resolve_chown("bob", None).is_err());
    }

    #[test]
    fn chmod_octal_and_symbolic() {
        assert_eq!(Chmod::parse("755").unwrap().apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("0666").unwrap().apply(0o700, true), 0o666);
        assert_eq!(Chmod::parse("u+x").unwrap().apply(0o644, false), 0o744);
        assert_eq!(Chmod::parse("go-w").unwrap().apply(0o666, false), 0o644);
        assert_eq!(Chmod::parse("a=r,u+w").unwrap().apply(0o777, false), 0o644);
        assert_eq!(Chmod::parse("+X").unwrap().apply(0o644, true), 0o755);
        assert_eq!(Chmod::parse("+X").unwrap().apply(0o644, false), 0o644);
        assert_eq!(Chmod::parse("u+s").unwrap().apply(0o755, false), 0o4755);
        assert!(Chmod::parse("9").is_err());
        assert!(Chmod::parse("u+q").is_err());
        assert!(Chmod::parse("77777").is_err());
    }
}
