//! `RUN --mount=type=bind|cache|tmpfs|secret|ssh,...` options.

/// The kind of a RUN mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

/// Cache mount sharing between concurrent builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// One `--mount` with BuildKit's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mount {
    pub kind: MountKind,
    /// Where it appears in the RUN container (defaults filled for secret
    /// and ssh).
    pub target: Option<String>,
    /// Path inside `from` (bind, cache) .
    pub source: Option<String>,
    /// Stage name/index or image for bind and cache mounts.
    pub from: Option<String>,
    pub readonly: bool,
    /// Cache id, secret id or ssh id (defaults filled).
    pub id: Option<String>,
    pub sharing: CacheSharing,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Secret/ssh: fail when not provided.
    pub required: bool,
    /// Tmpfs size in bytes.
    pub size: Option<u64>,
    /// Secret exposed as this environment variable.
    pub env: Option<String>,
}

/// Parses one `--mount` value. `expand` is applied to every option value
/// except `type` (pass the identity to validate without expanding). Numeric
/// values still containing `$` are left unset instead of failing.
pub fn parse_mount(
    value: &str,
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
    ssh_index: usize,
) -> Result<Mount, String> {
    let mut m = Mount {
        kind: MountKind::Bind,
        target: None,
        source: None,
        from: None,
        readonly: false,
        id: None,
        sharing: CacheSharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    let mut readonly: Option<bool> = None;
    let (mut sharing_set, mut required_set) = (false, false);
    let (mut mode_set, mut uid_set, mut gid_set) = (false, false, false);
    for field in split_csv(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let val = match (&val, key.as_str()) {
            (Some(v), k) if k != "type" => Some(expand(v)?),
            _ => val,
        };
        let deferred = |v: &str| v.contains('$');
        match key.as_str() {
            "mode" => mode_set = true,
            "uid" => uid_set = true,
            "gid" => gid_set = true,
            _ => {}
        }
        match (key.as_str(), val) {
            ("readonly" | "ro", v) => readonly = Some(parse_bool(&key, v.as_deref())?),
            ("readwrite" | "rw", v) => readonly = Some(!parse_bool(&key, v.as_deref())?),
            ("required", v) => {
                required_set = true;
                m.required = parse_bool(&key, v.as_deref())?;
            }
            (_, None) => {
                return Err(format!("invalid field '{field}' must be a key=value pair"));
            }
            ("type", Some(v)) => {
                m.kind = match v.to_ascii_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    _ => return Err(format!("unsupported mount type {v:?}")),
                }
            }
            ("from", Some(v)) => m.from = Some(v),
            ("source" | "src", Some(v)) => m.source = Some(v),
            ("target" | "dst" | "destination", Some(v)) => m.target = Some(v),
            ("id", Some(v)) => m.id = Some(v),
            ("env", Some(v)) => m.env = Some(v),
            ("sharing", Some(v)) => {
                sharing_set = true;
                m.sharing = match v.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => return Err(format!("unsupported sharing value {v:?}")),
                }
            }
            ("mode", Some(v)) if !deferred(&v) => {
                m.mode = Some(
                    u32::from_str_radix(&v, 8)
                        .map_err(|_| format!("invalid value {v} for mode"))?,
                )
            }
            ("uid", Some(v)) if !deferred(&v) => {
                m.uid = Some(
                    v.parse()
                        .map_err(|_| format!("invalid value {v} for uid"))?,
                )
            }
            ("gid", Some(v)) if !deferred(&v) => {
                m.gid = Some(
                    v.parse()
                        .map_err(|_| format!("invalid value {v} for gid"))?,
                )
            }
            ("size", Some(v)) if !deferred(&v) => {
                m.size = Some(parse_size(&v).ok_or(format!("invalid value for size: {v}"))?)
            }
            ("mode" | "uid" | "gid" | "size", Some(_)) => {}
            (other, Some(_)) => return Err(format!("unexpected key '{other}' in '{field}'")),
        }
    }
    let kind = m.kind;
    let name = format!("{kind:?}").to_ascii_lowercase();
    let file_info_allowed = matches!(kind, MountKind::Secret | MountKind::Ssh | MountKind::Cache);
    for (field, set) in [("mode", mode_set), ("uid", uid_set), ("gid", gid_set)] {
        if set && !file_info_allowed {
            return Err(format!("{field} not allowed for {name:?} type mounts"));
        }
    }
    if required_set && !matches!(kind, MountKind::Secret | MountKind::Ssh) {
        return Err(format!("unexpected key 'required' for mount type '{name}'"));
    }
    if m.size.is_some() && kind != MountKind::Tmpfs {
        return Err(format!("unexpected key 'size' for mount type '{name}'"));
    }
    if sharing_set && kind != MountKind::Cache {
        return Err(format!("invalid cache sharing set for {name} mount"));
    }
    m.readonly = readonly.unwrap_or(!matches!(kind, MountKind::Cache | MountKind::Tmpfs));
    match kind {
        MountKind::Bind | MountKind::Cache | MountKind::Tmpfs => {
            if m.target.as_deref().unwrap_or("").is_empty() {
                return Err(format!("mount type={name} requires a target"));
            }
            if kind == MountKind::Cache && m.id.is_none() {
                m.id = m.target.clone();
            }
        }
        MountKind::Secret => {
            if m.from.is_some() {
                return Err("secret mount should not have a from".to_string());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() {
                return Err("invalid secret mount. one of source, target required".to_string());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".to_string());
            }
            if m.id.is_none() {
                m.id = m
                    .source
                    .clone()
                    .or_else(|| m.target.as_deref().map(basename));
            }
            if m.target.is_none() && m.env.is_none() {
                m.target = Some(format!(
                    "/run/secrets/{}",
                    basename(m.id.as_deref().unwrap_or_default())
                ));
            }
        }
        MountKind::Ssh => {
            if m.id.is_none() {
                m.id = Some("default".to_string());
            }
            if m.target.is_none() {
                m.target = Some(format!("/run/buildkit/ssh_agent.{ssh_index}"));
            }
        }
    }
    Ok(m)
}

fn basename(p: &str) -> String {
    p.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Go's `strconv.ParseBool`; a bare key means true.
fn parse_bool(key: &str, v: Option<&str>) -> Result<bool, String> {
    match v {
        None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(other) => Err(format!("invalid value for {key}: {other}")),
    }
}

/// `1024`, `10k`, `64m`, `1g`, `512MiB`: sizes in bytes (binary units).
fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let mult: u64 = match v[split..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Comma-separated fields; a field may be double-quoted (`""` is a quote).
fn split_csv(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            }
            '"' if cur.is_empty() || cur.ends_with('=') => in_quotes = true,
            ',' if !in_quotes => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if in_quotes {
        return Err(format!("unterminated quote in mount options {s:?}"));
    }
    out.push(cur);
    Ok(out.into_iter().filter(|f| !f.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<Mount, String> {
        parse_mount(v, &mut |s| Ok(s.to_string()), 0)
    }

    #[test]
    fn defaults_per_kind() {
        let m = parse("type=bind,target=/src,from=build,source=/out").unwrap();
        assert!(m.readonly);
        assert_eq!(m.from.as_deref(), Some("build"));
        let m = parse("type=cache,target=/root/.cache,sharing=locked,mode=0755,uid=1").unwrap();
        assert!(!m.readonly);
        assert_eq!(m.id.as_deref(), Some("/root/.cache"));
        assert_eq!(
            (m.sharing, m.mode, m.uid),
            (CacheSharing::Locked, Some(0o755), Some(1))
        );
        let m = parse("type=tmpfs,target=/tmp,size=64m").unwrap();
        assert_eq!((m.size, m.readonly), (Some(64 << 20), false));
        let m = parse("type=secret,source=npmrc,target=/root/.npmrc,mode=0400").unwrap();
        assert_eq!((m.id.as_deref(), m.mode), (Some("npmrc"), Some(0o400)));
        let m = parse("type=secret,id=tok,required").unwrap();
        assert_eq!(m.target.as_deref(), Some("/run/secrets/tok"));
        assert!(m.required);
        let m = parse("type=secret,target=/etc/key").unwrap();
        assert_eq!(m.id.as_deref(), Some("key"));
        let m = parse("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!((m.target, m.env.as_deref()), (None, Some("TOKEN")));
        let m = parse("type=ssh").unwrap();
        assert_eq!(m.id.as_deref(), Some("default"));
        assert_eq!(m.target.as_deref(), Some("/run/buildkit/ssh_agent.0"));
        let m = parse("target=/x,rw").unwrap();
        assert_eq!((m.kind, m.readonly), (MountKind::Bind, false));
    }

    #[test]
    fn errors() {
        for bad in [
            "type=nfs,target=/x",
            "type=bind",
            "type=cache,target=/x,sharing=maybe",
            "type=cache,target=/x,mode=9",
            "type=bind,target=/x,bogus=1",
            "type=bind,target=/x,bogus",
            "type=secret",
            "type=secret,id=a,from=b",
            "type=secret,id=a,source=b",
            "type=bind,target=/x,size=1",
            "type=bind,target=/x,mode=0600",
            "type=tmpfs,target=/x,uid=1",
            "type=cache,target=/x,required",
            "type=bind,target=/x,sharing=locked",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn expansion_applies_to_values() {
        let m = parse_mount(
            "type=cache,target=$T,uid=$U",
            &mut |s| Ok(s.replace("$T", "/c").replace("$U", "7")),
            0,
        )
        .unwrap();
        assert_eq!((m.target.as_deref(), m.uid), (Some("/c"), Some(7)));
        let m = parse("type=cache,target=/c,uid=$U").unwrap();
        assert_eq!(m.uid, None);
    }
}
