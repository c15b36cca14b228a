//! COPY and ADD: from source patterns and a destination to the change-set
//! entries of one layer, without walking the image's filesystem.
//!
//! Rules (Docker/BuildKit): sources are relative to the context (or another
//! stage's root for `--from`), cleaned so they cannot leave it; Go globs,
//! a glob matching nothing is allowed when something else matched; a
//! directory is copied by content; a destination ending in `/` (or `.`) is a
//! directory, and so is one that already exists as a directory; several
//! sources need a directory destination; a relative destination is relative
//! to WORKDIR; missing parents are created (owned by `--chown` when given);
//! ADD extracts local tar archives (any compression) into the destination.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kiln_layer::{Entry, LayerPath, Metadata, Timestamp};

use crate::archive::{self, ItemKind};
use crate::dockerignore::IgnoreMatcher;
use crate::glob;
use crate::owner::{Chmod, Owner};
use crate::rootfs_path::{clean_abs, host_of, join_workdir, resolve_in_root};

/// Where COPY reads from.
#[derive(Debug, Clone, Copy)]
pub enum SourceTree<'a> {
    /// The build context, with its ignore rules. Files are owned by 0:0 in the image.
    Context {
        /// Context root.
        root: &'a Path,
        /// `.dockerignore`.
        ignore: &'a IgnoreMatcher,
    },
    /// Another stage's (or image's) root filesystem; owners are kept.
    Stage {
        /// Root directory.
        root: &'a Path,
    },
}

impl SourceTree<'_> {
    fn root(&self) -> &Path {
        match self {
            SourceTree::Context { root, .. } | SourceTree::Stage { root } => root,
        }
    }

    fn ignored(&self, rel: &str) -> bool {
        match self {
            SourceTree::Context { ignore, .. } => !rel.is_empty() && ignore.is_ignored(rel),
            SourceTree::Stage { .. } => false,
        }
    }
}

/// One COPY/ADD, with everything already expanded.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    /// Source patterns as written (after variable expansion).
    pub sources: Vec<String>,
    /// Destination as written (after expansion).
    pub dest: String,
    /// The stage's WORKDIR.
    pub workdir: String,
    /// `--chown`, resolved.
    pub chown: Option<Owner>,
    /// `--chmod`, parsed.
    pub chmod: Option<Chmod>,
    /// `--exclude` patterns (Docker ignore syntax, relative to each source).
    pub excludes: Vec<String>,
    /// `--parents`: keep each source's path below the context root.
    pub parents: bool,
    /// ADD: extract local tar archives.
    pub extract_archives: bool,
    /// Time for created parent directories.
    pub created: Timestamp,
}

/// Plans the entries of a COPY/ADD. `dest_root` is the stage root (to resolve
/// symlinks and see existing directories), `None` for an empty stage.
/// `staging` receives extracted archive contents.
pub fn plan_copy(
    request: &CopyRequest,
    tree: SourceTree<'_>,
    dest_root: Option<&Path>,
    staging: &Path,
) -> Result<Vec<Entry>, String> {
    let excludes = if request.excludes.is_empty() {
        None
    } else {
        let text = request.excludes.join("\n");
        Some(IgnoreMatcher::parse(&text, Path::new("--exclude")).map_err(|e| e.to_string())?)
    };

    // 1. Expand sources.
    let mut matched: Vec<(String, PathBuf)> = Vec::new();
    for source in &request.sources {
        // Cleaned as an absolute path, so `..` cannot leave the source root.
        let rel = clean_abs(&format!("/{source}"))
            .trim_start_matches('/')
            .to_string();
        if glob::has_meta(&rel) {
            let hits = expand_glob(tree, &rel).map_err(|e| format!("source {source:?}: {e}"))?;
            matched.extend(hits);
        } else {
            if tree.ignored(&rel) {
                return Err(format!(
                    "source {source:?} not found: it is excluded by .dockerignore"
                ));
            }
            let host = host_of(
                tree.root(),
                &resolve_in_root(tree.root(), &format!("/{rel}")),
            );
            if std::fs::symlink_metadata(&host).is_err() {
                return Err(format!(
                    "source {source:?} not found in the {}",
                    tree_name(tree)
                ));
            }
            matched.push((rel, host));
        }
    }
    if matched.is_empty() {
        return Err(format!(
            "no source files were specified: {:?} matched nothing",
            request.sources
        ));
    }

    // 2. Destination.
    let written_as_dir = request.dest.ends_with('/')
        || request.dest == "."
        || request.dest.ends_with("/.")
        || request.dest.is_empty();
    let dest_abs = join_workdir(&request.workdir, &request.dest);
    let dest_abs = match dest_root {
        Some(root) => resolve_in_root(root, &dest_abs),
        None => dest_abs,
    };
    let exists_as_dir = dest_root.is_some_and(|root| host_of(root, &dest_abs).is_dir());
    let dest_is_dir = written_as_dir || exists_as_dir || dest_abs == "/";
    if matched.len() > 1 && !dest_is_dir {
        return Err(format!(
            "when copying more than one source file ({}), the destination {:?} must be a directory and end with a /",
            matched.len(),
            request.dest
        ));
    }

    // 3. Entries.
    let mut out: BTreeMap<LayerPath, Entry> = BTreeMap::new();
    for (rel, host) in &matched {
        let meta = fs_err::metadata(host).map_err(|e| e.to_string())?;
        let base_dest = if request.parents {
            let parent = Path::new(rel)
                .parent()
                .map(|p| p.to_string_lossy().into_owned());
            match parent {
                Some(p) if !p.is_empty() => clean_abs(&format!("{dest_abs}/{p}")),
                _ => dest_abs.clone(),
            }
        } else {
            dest_abs.clone()
        };
        if meta.is_dir() {
            // Directory: its content goes into the destination directory.
            let target = if request.parents && !rel.is_empty() {
                clean_abs(&format!("{dest_abs}/{rel}"))
            } else {
                dest_abs.clone()
            };
            add_dir_entry(&mut out, &target, host, request, tree)?;
            let walk = Walk {
                tree,
                request,
                excludes: excludes.as_ref(),
                source_rel: rel,
            };
            walk.dir(&mut out, host, rel, &target)?;
            continue;
        }
        let name = Path::new(rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if request.extract_archives
            && archive::is_tar_archive(host).map_err(|e| format!("{}: {e}", host.display()))?
        {
            let file = fs_err::File::open(host).map_err(|e| e.to_string())?;
            let items = archive::read_archive(file, &staging.join(out.len().to_string()), rel)?;
            for item in items {
                let path = layer_path(&format!("{base_dest}/{}", item.path))?;
                let meta = Metadata {
                    mode: item.mode,
                    uid: request.chown.map_or(item.uid, |o| o.uid),
                    gid: request.chown.map_or(item.gid, |o| o.gid),
                    mtime: item.mtime,
                    ..Metadata::default()
                };
                let entry = match item.kind {
                    ItemKind::File(staged) => Entry::file(path.clone(), staged, meta),
                    ItemKind::Dir => Entry::dir(path.clone(), meta),
                    ItemKind::Symlink(target) => Entry::symlink(path.clone(), target, meta),
                    ItemKind::Hardlink(target) => {
                        let target = layer_path(&format!("{base_dest}/{target}"))?;
                        Entry::hardlink(path.clone(), target, meta)
                    }
                };
                out.insert(path, entry);
            }
            continue;
        }
        let target = if dest_is_dir || request.parents {
            clean_abs(&format!("{base_dest}/{name}"))
        } else {
            dest_abs.clone()
        };
        let entry = source_entry(&target, host, request, tree)?;
        out.insert(entry.path.clone(), entry);
    }

    // 4. Files that are hard links of each other in the source stay linked.
    link_hardlinks(&mut out)?;

    // 5. Parents of everything, from the stage root when they exist.
    let paths: Vec<LayerPath> = out.keys().cloned().collect();
    for path in paths {
        let mut parent = path.parent();
        while let Some(p) = parent {
            if !out.contains_key(&p) {
                let abs = format!("/{p}");
                let entry = match dest_root.map(|r| host_of(r, &abs)) {
                    Some(host) if host.is_dir() => {
                        let m = fs_err::symlink_metadata(&host).map_err(|e| e.to_string())?;
                        Entry::dir(p.clone(), metadata_of(&m, None))
                    }
                    _ => {
                        let owner = request.chown.unwrap_or(Owner { uid: 0, gid: 0 });
                        Entry::dir(
                            p.clone(),
                            Metadata {
                                mode: 0o755,
                                uid: owner.uid,
                                gid: owner.gid,
                                mtime: request.created,
                                ..Metadata::default()
                            },
                        )
                    }
                };
                out.insert(p.clone(), entry);
            }
            parent = p.parent();
        }
    }
    Ok(out.into_values().collect())
}

/// Turns every regular file that shares its inode with an earlier (in path
/// order) copied file into a hard link to it, as BuildKit preserves them.
fn link_hardlinks(out: &mut BTreeMap<LayerPath, Entry>) -> Result<(), String> {
    let mut first: BTreeMap<(u64, u64), LayerPath> = BTreeMap::new();
    for entry in out.values_mut() {
        let kiln_layer::EntryKind::File(kiln_layer::FileSource::Path(host)) = &entry.kind else {
            continue;
        };
        let meta = fs_err::metadata(host).map_err(|e| e.to_string())?;
        if meta.nlink() < 2 {
            continue;
        }
        match first.get(&(meta.dev(), meta.ino())) {
            Some(target) => {
                entry.kind = kiln_layer::EntryKind::Hardlink {
                    target: target.clone(),
                };
            }
            None => {
                first.insert((meta.dev(), meta.ino()), entry.path.clone());
            }
        }
    }
    Ok(())
}

fn tree_name(tree: SourceTree<'_>) -> &'static str {
    match tree {
        SourceTree::Context { .. } => "build context",
        SourceTree::Stage { .. } => "source stage",
    }
}

fn layer_path(abs: &str) -> Result<LayerPath, String> {
    LayerPath::new(clean_abs(abs)).map_err(|e| e.to_string())
}

fn metadata_of(meta: &std::fs::Metadata, owner: Option<Owner>) -> Metadata {
    Metadata {
        mode: meta.mode() & 0o7777,
        uid: owner.map_or(u64::from(meta.uid()), |o| o.uid),
        gid: owner.map_or(u64::from(meta.gid()), |o| o.gid),
        mtime: Timestamp {
            sec: meta.mtime(),
            nsec: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
        },
        ..Metadata::default()
    }
}

/// Owner for copied entries: `--chown`, else 0:0 from the context, else kept.
fn copy_owner(request: &CopyRequest, tree: SourceTree<'_>) -> Option<Owner> {
    match (request.chown, tree) {
        (Some(o), _) => Some(o),
        (None, SourceTree::Context { .. }) => Some(Owner { uid: 0, gid: 0 }),
        (None, SourceTree::Stage { .. }) => None,
    }
}

fn source_entry(
    target: &str,
    host: &Path,
    request: &CopyRequest,
    tree: SourceTree<'_>,
) -> Result<Entry, String> {
    let path = layer_path(target)?;
    let meta = fs_err::symlink_metadata(host).map_err(|e| e.to_string())?;
    let mut md = metadata_of(&meta, copy_owner(request, tree));
    let ft = meta.file_type();
    if let Some(chmod) = request.chmod.as_ref().filter(|_| !ft.is_symlink()) {
        md.mode = chmod.apply(md.mode, ft.is_dir());
    }
    Ok(if ft.is_symlink() {
        let target = fs_err::read_link(host).map_err(|e| e.to_string())?;
        Entry::symlink(path, target.into_os_string(), md)
    } else if ft.is_dir() {
        Entry::dir(path, md)
    } else if ft.is_file() {
        Entry::file(path, host, md)
    } else {
        return Err(format!(
            "{} is not a regular file, directory or symlink",
            host.display()
        ));
    })
}

fn add_dir_entry(
    out: &mut BTreeMap<LayerPath, Entry>,
    target: &str,
    host: &Path,
    request: &CopyRequest,
    tree: SourceTree<'_>,
) -> Result<(), String> {
    if target == "/" {
        return Ok(());
    }
    let entry = source_entry(target, host, request, tree)?;
    out.insert(entry.path.clone(), entry);
    Ok(())
}

/// A recursive copy of one source directory.
struct Walk<'a> {
    tree: SourceTree<'a>,
    request: &'a CopyRequest,
    excludes: Option<&'a IgnoreMatcher>,
    /// The source directory's path in the tree (for `--exclude`).
    source_rel: &'a str,
}

impl Walk<'_> {
    fn dir(
        &self,
        out: &mut BTreeMap<LayerPath, Entry>,
        host_dir: &Path,
        rel_dir: &str,
        target_dir: &str,
    ) -> Result<(), String> {
        let mut names: Vec<_> = fs_err::read_dir(host_dir)
            .map_err(|e| e.to_string())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("reading {}: {e}", host_dir.display()))?;
        names.sort();
        let walk_ignored = match self.tree {
            SourceTree::Context { ignore, .. } => ignore.has_exclusions(),
            SourceTree::Stage { .. } => false,
        } || self.excludes.is_some_and(IgnoreMatcher::has_exclusions);
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let rel = join_rel(rel_dir, &name);
            let host = host_dir.join(&name);
            let target = clean_abs(&format!("{target_dir}/{name}"));
            let rel_in_source = rel
                .strip_prefix(self.source_rel)
                .unwrap_or(&rel)
                .trim_start_matches('/');
            let excluded = self.excludes.is_some_and(|m| m.is_ignored(rel_in_source));
            let ignored = self.tree.ignored(&rel) || excluded;
            let meta = fs_err::symlink_metadata(&host).map_err(|e| e.to_string())?;
            if meta.is_dir() {
                if ignored && !walk_ignored {
                    continue;
                }
                if !ignored {
                    add_dir_entry(out, &target, &host, self.request, self.tree)?;
                }
                self.dir(out, &host, &rel, &target)?;
            } else if !ignored {
                let entry = source_entry(&target, &host, self.request, self.tree)?;
                out.insert(entry.path.clone(), entry);
            }
        }
        Ok(())
    }
}

fn expand_glob(tree: SourceTree<'_>, pattern: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let parts: Vec<&str> = pattern.split('/').collect();
    let mut current: Vec<(String, PathBuf)> = vec![(String::new(), tree.root().to_path_buf())];
    for part in parts {
        let mut next = Vec::new();
        for (rel, host) in current {
            if !host.is_dir() {
                continue;
            }
            if !glob::has_meta(part) {
                let candidate = host.join(part);
                if std::fs::symlink_metadata(&candidate).is_ok() {
                    next.push((join_rel(&rel, part), candidate));
                }
                continue;
            }
            let mut names: Vec<String> = fs_err::read_dir(&host)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            names.sort();
            for name in names {
                if glob::glob_match(part, &name).map_err(|e| e.to_string())? {
                    next.push((join_rel(&rel, &name), host.join(&name)));
                }
            }
        }
        current = next;
    }
    Ok(current
        .into_iter()
        .filter(|(rel, _)| !tree.ignored(rel))
        .collect())
}

fn join_rel(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

#[cfg(test)]
mod tests;
