//! COPY and ADD: sources from the context, an earlier stage or image
//! (`--from`), URLs and git repositories (ADD), heredocs; planned into
//! kiln-layer entries by `crate::copy` and committed as a layer directly, with
//! no filesystem walk. Entries are planned against the stage root (its
//! directories and symlinks on the destination's path), or an empty root for
//! `COPY --link` as BuildKit does. The cache key covers every entry's content,
//! mode and owner as it would land in an empty root, never mtimes.

use std::path::{Path, PathBuf};

use kiln_dockerfile::instructions::CopyCmd;
use kiln_layer::{Entry, LayerPath, Metadata, Timestamp};
use kiln_oci::Digest;

use crate::copy::{CopyRequest, SourceTree, plan_copy};
use crate::owner::{Chmod, Owner, resolve_chown};
use crate::rootfs_path::{host_of, join_workdir};

use super::cached::Cacheable;
use super::copy_ahead::{self, Ahead};
use super::state::{StageRun, StepResult};

/// What a COPY/ADD reads, gathered once for its key and its layer.
pub(super) struct CopySources<'c> {
    pub(super) cmd: &'c CopyCmd,
    local: &'c [String],
    downloads: &'c [crate::download::Downloaded],
    /// Checkouts of git sources (ADD only), each copied like a directory.
    git_checkouts: &'c [PathBuf],
    chmod: Option<&'c Chmod>,
    pub(super) extract: bool,
    /// The time of created parent directories, URL files without a
    /// `Last-Modified` and heredoc files: one value for the step, so every plan
    /// of it gives the same entries.
    created: Timestamp,
}

/// Runs a COPY (`is_add` false) or an ADD.
pub(super) fn step(
    run: &mut StageRun<'_, '_>,
    c: &CopyCmd,
    is_add: bool,
) -> StepResult<Option<Digest>> {
    let keyword = if is_add { "ADD" } else { "COPY" };
    let mut git_sources = Vec::new();
    let mut other = Vec::new();
    for source in &c.sources {
        match crate::add_git::parse(source)? {
            Some(git) => git_sources.push(git),
            None => other.push(source.clone()),
        }
    }
    let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
    let (urls, local): (Vec<String>, Vec<String>) = other.into_iter().partition(is_url);
    let has_remote = !urls.is_empty() || !git_sources.is_empty();
    if !is_add && has_remote {
        return Err("COPY does not accept URLs; use ADD".into());
    }
    if c.checksum.is_some() && (urls.len() + git_sources.len() != 1 || !local.is_empty()) {
        return Err("ADD --checksum needs exactly one URL or git source".into());
    }
    if local.iter().any(|s| s.starts_with("git@")) {
        return Err(NOT_YET_GIT.into());
    }
    let chmod = c.chmod.as_deref().map(Chmod::parse).transpose()?;
    let staging =
        run.env
            .work
            .join("staging")
            .join(format!("{}-{}", run.stage.index, run.cache_key.hex()));
    // URLs (ADD only): downloaded first, their content is part of the key.
    let mut downloads = Vec::new();
    for (n, url) in urls.iter().enumerate() {
        fs_err::create_dir_all(&staging).map_err(|e| e.to_string())?;
        let file = staging.join(format!("url-{n}"));
        downloads.push(crate::download::download_blocking(
            url,
            &file,
            c.checksum.as_deref(),
        )?);
    }
    // git repositories (ADD only): checked out first, likewise.
    let mut git_checkouts = Vec::new();
    let git_context = match &run.env.options.context {
        crate::ContextSource::Git(g) => Some(&**g),
        _ => None,
    };
    for (n, git) in git_sources.iter().enumerate() {
        git_checkouts.push(crate::add_git::checkout(
            git,
            git_context,
            c.keep_git_dir == Some(true),
            c.checksum.as_deref(),
            &staging.join(format!("git-{n}")),
        )?);
    }
    let sources = CopySources {
        cmd: c,
        local: &local,
        downloads: &downloads,
        git_checkouts: &git_checkouts,
        chmod: chmod.as_ref(),
        extract: is_add && c.unpack != Some(false),
        created: run.file_time(),
    };
    let mut shown: Vec<String> = c.sources.clone();
    if let Some(sum) = &c.checksum {
        shown.insert(0, format!("--checksum={sum}"));
    }
    shown.extend(c.inline.iter().map(|i| format!("<<{}", i.path)));
    let created_by = format!("{keyword} {} {} # buildkit", shown.join(" "), c.dest);
    // Cache key: the instruction and the content, mode and owner of every
    // source as it would land in an empty root (so the key never depends on
    // whether the stage's files are laid out yet).
    let unresolved = entries(run, &sources, None, None, &staging.join("key"))?;
    let mut material = format!(
        "{created_by}\nfrom={:?} chown={:?} chmod={:?} exclude={:?} parents={}\n",
        c.from, c.chown, c.chmod, c.exclude, c.parents
    )
    .into_bytes();
    if c.link {
        material.extend(b"link\n");
    }
    if !run.caches_steps(Cacheable::Copy) {
        // No cache to look the key up in: the key (which later steps' keys and the
        // build's events carry) is hashed beside the layer's writing, which reads
        // the same files, instead of in a pass of its own before it.
        let (hashed, layer) = std::thread::scope(|s| {
            let hashing = s.spawn(|| entries_digest(&unresolved));
            let layer = write_layer(run, &sources, &staging, &created_by, &unresolved);
            let hashed = hashing
                .join()
                .unwrap_or_else(|_| Err("internal: hashing the COPY sources panicked".into()));
            (hashed, layer)
        });
        material.extend(hashed?.as_bytes());
        let layer = layer?;
        run.advance_key(&material);
        return Ok(layer);
    }
    material.extend(entries_digest(&unresolved)?.as_bytes());
    let key = run.advance_key(&material);
    if let Some(result) = run.cached(Cacheable::Copy, &key, &created_by)? {
        return Ok(result);
    }
    let layer = write_layer(run, &sources, &staging, &created_by, &unresolved)?;
    run.remember(Cacheable::Copy, key, created_by, layer.as_ref());
    Ok(layer)
}

/// Lays the sources out in the stage root and commits them as the step's layer
/// (encoded while the base is still being laid out when that gives the same
/// layer, see `copy_ahead`). `unresolved`: the entries as they would land in an
/// empty root without `--chown`.
fn write_layer(
    run: &mut StageRun<'_, '_>,
    sources: &CopySources<'_>,
    staging: &Path,
    created_by: &str,
    unresolved: &[Entry],
) -> StepResult<Option<Digest>> {
    let entries = match copy_ahead::ahead_of_root(run, sources, staging, created_by, unresolved)? {
        Ahead::Done(layer) => return Ok(layer),
        Ahead::Differs(entries) => entries,
        Ahead::NotTried => {
            let root = run.root()?;
            entries_on_root(run, sources, &root, staging)?
        }
    };
    run.commit_entries(entries, created_by.to_string())
}

/// The entries of a COPY/ADD landing in the stage's laid-out `root`: `--chown`
/// resolved there, planned against it, or against an empty root for `--link`
/// (BuildKit: the layer is made on an empty directory, so the base's
/// directories and symlinks on the destination's path play no part).
pub(super) fn entries_on_root(
    run: &StageRun<'_, '_>,
    sources: &CopySources<'_>,
    root: &Path,
    staging: &Path,
) -> StepResult<Vec<Entry>> {
    let owner = match &sources.cmd.chown {
        Some(spec) => Some(resolve_chown(spec, Some(root))?),
        None => None,
    };
    let planned_on = (!sources.cmd.link).then_some(root);
    entries(run, sources, planned_on, owner, staging)
}

/// The entries of a COPY/ADD landing in `root` (`None`: an empty root).
pub(super) fn entries(
    run: &StageRun<'_, '_>,
    sources: &CopySources<'_>,
    root: Option<&Path>,
    owner: Option<Owner>,
    staging: &Path,
) -> StepResult<Vec<Entry>> {
    let c = sources.cmd;
    let request = CopyRequest {
        sources: sources.local.to_vec(),
        dest: c.dest.clone(),
        workdir: run.workdir(),
        chown: owner,
        chmod: sources.chmod.cloned(),
        excludes: c.exclude.clone(),
        parents: c.parents,
        extract_archives: sources.extract,
        created: sources.created,
    };
    let mut entries = Vec::new();
    if !sources.local.is_empty() {
        let source_root;
        let tree = match &c.from {
            None => SourceTree::Context {
                root: run.env.context.root(),
                ignore: run.env.context.ignore(),
            },
            Some(name) => {
                source_root = run.stage_root(name).ok_or_else(|| {
                    format!("--from={name}: neither an earlier stage nor an image reference")
                })?;
                SourceTree::Stage { root: &source_root }
            }
        };
        entries = plan_copy(&request, tree, root, staging)?;
    }
    // git checkouts: their contents land in the destination directory.
    for checkout in sources.git_checkouts {
        let git_request = CopyRequest {
            sources: vec![".".into()],
            excludes: Vec::new(),
            parents: false,
            extract_archives: false,
            dest: if c.dest.ends_with('/') {
                c.dest.clone()
            } else {
                format!("{}/", c.dest)
            },
            ..request.clone()
        };
        entries.extend(plan_copy(
            &git_request,
            SourceTree::Stage { root: checkout },
            root,
            staging,
        )?);
    }
    // URLs: mode 0600, never extracted.
    let many = sources.downloads.len() + sources.local.len() + c.inline.len() > 1;
    for got in sources.downloads {
        let dest_abs = join_workdir(&run.workdir(), &c.dest);
        let target = if c.dest.ends_with('/') || many {
            format!("{dest_abs}/{}", got.file_name)
        } else {
            dest_abs
        };
        let owner = owner.unwrap_or(Owner { uid: 0, gid: 0 });
        let path = LayerPath::new(&target).map_err(|e| e.to_string())?;
        push_parents(&mut entries, &path, owner, sources.created, root)?;
        entries.push(Entry::file(
            path,
            got.path.clone(),
            Metadata {
                mode: sources.chmod.map_or(0o600, |m| m.apply(0o600, false)),
                uid: owner.uid,
                gid: owner.gid,
                mtime: got
                    .last_modified
                    .map_or(sources.created, Timestamp::from_secs),
                ..Metadata::default()
            },
        ));
    }
    // Heredoc sources (`COPY <<EOF /dest`) become files.
    if !c.inline.is_empty() {
        let dest_is_dir = c.dest.ends_with('/') || c.inline.len() + c.sources.len() > 1;
        let dest_abs = join_workdir(&run.workdir(), &c.dest);
        let owner = owner.unwrap_or(Owner { uid: 0, gid: 0 });
        let mode = sources.chmod.map_or(0o644, |m| m.apply(0o644, false));
        for inline in &c.inline {
            let target = if dest_is_dir {
                format!("{dest_abs}/{}", inline.path)
            } else {
                dest_abs.clone()
            };
            let path = LayerPath::new(&target).map_err(|e| e.to_string())?;
            push_parents(&mut entries, &path, owner, sources.created, root)?;
            entries.push(Entry::bytes(
                path,
                inline.data.clone().into_bytes(),
                Metadata {
                    mode,
                    uid: owner.uid,
                    gid: owner.gid,
                    mtime: sources.created,
                    ..Metadata::default()
                },
            ));
        }
    }
    Ok(entries)
}

const NOT_YET_GIT: &str = "ADD from a git repository over SSH (git@HOST:PATH) is not supported by kiln; use its https://HOST/PATH.git URL";

/// Adds the missing parent directories of `path` to `entries`: from the stage
/// root when they exist there (unchanged metadata), else new (0755, `owner`).
fn push_parents(
    entries: &mut Vec<Entry>,
    path: &LayerPath,
    owner: Owner,
    mtime: Timestamp,
    root: Option<&Path>,
) -> StepResult<()> {
    let mut parent = path.parent();
    while let Some(p) = parent {
        if !entries.iter().any(|e| e.path == p) {
            let host = root.map(|r| host_of(r, &format!("/{p}")));
            let meta = match host.as_deref().map(std::fs::symlink_metadata) {
                Some(Ok(m)) if m.is_dir() => {
                    use std::os::unix::fs::MetadataExt;
                    Metadata {
                        mode: m.mode() & 0o7777,
                        uid: u64::from(m.uid()),
                        gid: u64::from(m.gid()),
                        mtime: Timestamp::from_secs(m.mtime()),
                        ..Metadata::default()
                    }
                }
                _ => Metadata {
                    mode: 0o755,
                    uid: owner.uid,
                    gid: owner.gid,
                    mtime,
                    ..Metadata::default()
                },
            };
            entries.push(Entry::dir(p.clone(), meta));
        }
        parent = p.parent();
    }
    Ok(())
}

/// A digest over entry paths, kinds, modes, owners and file contents (not
/// mtimes), for cache keys.
fn entries_digest(entries: &[Entry]) -> StepResult<String> {
    let mut hasher = kiln_oci::Hasher::sha256();
    for e in entries {
        hasher.update(e.path.as_bytes());
        hasher.update(
            format!(
                "\0{}\0{:o}\0{}:{}\0",
                e.kind.name(),
                e.meta.mode,
                e.meta.uid,
                e.meta.gid
            )
            .as_bytes(),
        );
        match &e.kind {
            kiln_layer::EntryKind::File(kiln_layer::FileSource::Path(p)) => {
                let mut file = fs_err::File::open(p).map_err(|e| e.to_string())?;
                let mut h = kiln_oci::DigestWriter::new(std::io::sink());
                std::io::copy(&mut file, &mut h).map_err(|e| e.to_string())?;
                let (_, d, _) = h.finish().map_err(|e| e.to_string())?;
                hasher.update(d.to_string().as_bytes());
            }
            kiln_layer::EntryKind::File(kiln_layer::FileSource::Bytes(b)) => hasher.update(b),
            kiln_layer::EntryKind::Symlink { target } => hasher.update(target.as_encoded_bytes()),
            kiln_layer::EntryKind::Hardlink { target } => hasher.update(target.as_bytes()),
            _ => {}
        }
    }
    Ok(hasher.finish().to_string())
}
