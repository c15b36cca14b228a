//! Compares kiln's image with the reference's (buildah's or Docker's): file
//! trees (path, type, mode, uid:gid, size, content, symlink target, hardlink
//! group, xattrs) and the config fields Docker defines for a container.

use super::artifacts::{BUILDAH_LABEL, is_buildah_only_artifact};
use super::reference::Reference;
use super::tree::{Kind, Node};
use anyhow::Result;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// The config fields compared (`.config.<field>`).
const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "Healthcheck",
    "StopSignal",
    "Shell",
    "OnBuild",
];

/// One side of the comparison.
pub struct Side<'a> {
    pub rootfs: &'a Path,
    pub nodes: &'a BTreeMap<String, Node>,
}

/// Differences between the two trees, one line each. Files in `volatile`
/// (a case's build-time outputs) are compared except for their content.
/// buildah's documented artifacts are left out when it is the reference;
/// Docker's are reported (docs/conformance.md explains them).
pub fn trees(
    kiln: &Side<'_>,
    other: &Side<'_>,
    volatile: &[&str],
    reference: Reference,
) -> Result<Vec<String>> {
    let name = reference.name();
    let mut out = Vec::new();
    let mut only_under: Option<String> = None;
    let paths: std::collections::BTreeSet<&String> =
        kiln.nodes.keys().chain(other.nodes.keys()).collect();
    for path in paths {
        if let Some(dir) = &only_under {
            if path.starts_with(&format!("{dir}/")) {
                continue;
            }
            only_under = None;
        }
        match (kiln.nodes.get(path), other.nodes.get(path)) {
            (Some(k), Some(b)) => {
                let content = !volatile.contains(&path.as_str());
                out.extend(node_differences(path, k, b, (kiln, other), content, name)?);
            }
            (Some(k), None) => {
                out.push(format!("only in kiln: {path} {}", describe(k)));
                if k.kind == Kind::Dir {
                    only_under = Some(path.clone());
                }
            }
            (None, Some(b)) => {
                if reference == Reference::Buildah && is_buildah_only_artifact(path, b) {
                    continue;
                }
                out.push(format!("only in {name}: {path} {}", describe(b)));
                if b.kind == Kind::Dir {
                    only_under = Some(path.clone());
                }
            }
            (None, None) => {}
        }
    }
    Ok(out)
}

fn node_differences(
    path: &str,
    k: &Node,
    b: &Node,
    (kiln, reference): (&Side<'_>, &Side<'_>),
    compare_content: bool,
    name: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if k.kind != b.kind {
        out.push(format!(
            "{path}: type kiln {:?}, {name} {:?}",
            k.kind, b.kind
        ));
        return Ok(out);
    }
    if k.mode != b.mode {
        out.push(format!(
            "{path}: mode kiln {:04o}, {name} {:04o}",
            k.mode, b.mode
        ));
    }
    if (k.uid, k.gid) != (b.uid, b.gid) {
        out.push(format!(
            "{path}: owner kiln {}:{}, {name} {}:{}",
            k.uid, k.gid, b.uid, b.gid
        ));
    }
    if k.kind == Kind::File {
        if k.size != b.size {
            out.push(format!("{path}: size kiln {}, {name} {}", k.size, b.size));
        } else if compare_content
            && !same_content(
                &kiln.rootfs.join(&path[1..]),
                &reference.rootfs.join(&path[1..]),
            )?
        {
            out.push(format!("{path}: content differs ({} bytes each)", k.size));
        }
    }
    if k.hardlinks != b.hardlinks {
        out.push(format!(
            "{path}: hardlinked with kiln {:?}, {name} {:?}",
            k.hardlinks, b.hardlinks
        ));
    }
    if k.xattrs != b.xattrs {
        out.push(format!(
            "{path}: xattrs kiln {:?}, {name} {:?}",
            k.xattrs.keys().collect::<Vec<_>>(),
            b.xattrs.keys().collect::<Vec<_>>()
        ));
    }
    Ok(out)
}

fn describe(node: &Node) -> String {
    let kind = match &node.kind {
        Kind::Symlink(target) => format!("symlink -> {}", target.display()),
        Kind::File => format!("file {} bytes", node.size),
        other => format!("{other:?}").to_lowercase(),
    };
    format!("({kind}, {:04o} {}:{})", node.mode, node.uid, node.gid)
}

/// Byte-compares two files of equal size.
fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let (mut fa, mut fb) = (fs_err::File::open(a)?, fs_err::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut fs_err::File, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Differences between the two configs' container fields.
pub fn configs(
    kiln: &serde_json::Value,
    reference_config: &serde_json::Value,
    reference: Reference,
) -> Vec<String> {
    let name = reference.name();
    // buildah's artifact (TESTBED.md): its version label on every image it
    // commits. kiln never sets it, but inherits it, as Docker would, from a
    // base image buildah built (onbuild-base), so it goes on both sides.
    let (mut kiln, mut reference_config) = (kiln.clone(), reference_config.clone());
    for config in [&mut kiln, &mut reference_config] {
        if let Some(labels) = config["config"]["Labels"].as_object_mut() {
            labels.remove(BUILDAH_LABEL);
        }
    }
    CONFIG_FIELDS
        .iter()
        .filter_map(|field| {
            let k = normalized(&kiln["config"][field]);
            let b = normalized(&reference_config["config"][field]);
            (k != b).then(|| format!("config {field}: kiln {k}, {name} {b}"))
        })
        .collect()
}

/// Absent, null, "", [] and {} all mean "not set" in a Docker config.
fn normalized(value: &serde_json::Value) -> serde_json::Value {
    let empty = match value {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if empty {
        serde_json::Value::Null
    } else {
        value.clone()
    }
}
