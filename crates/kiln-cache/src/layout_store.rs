//! Cache entries in a local OCI layout (`--cache-repo oci:/dir`), named by the
//! key's hex digest. Writers take an exclusive lock on `<dir>/.kiln-cache.lock`
//! so that builds sharing the directory never lose each other's index entries;
//! readers need none (blobs and `index.json` are replaced atomically).

use std::path::Path;

use kiln_oci::{Digest, OciLayout, OciLayoutWriter, Platform};
use nix::fcntl::{Flock, FlockArg};

use crate::entry::{self, CachedStep};
use crate::error::CacheError;
use crate::{LayerSource, StepToStore};

const LOCK_FILE: &str = ".kiln-cache.lock";

fn layout_error(dir: &Path, what: &'static str, key: &Digest) -> impl Fn(String) -> CacheError {
    let dir = dir.to_path_buf();
    let key = key.to_string();
    move |reason| CacheError::Layout {
        dir: dir.clone(),
        what,
        key: key.clone(),
        reason,
    }
}

/// The entry stored under `key`, if any.
pub fn lookup(dir: &Path, key: &Digest) -> Result<Option<(CachedStep, LayerSource)>, CacheError> {
    if !dir.join("index.json").is_file() {
        return Ok(None);
    }
    let fail = layout_error(dir, "looking up", key);
    let layout = OciLayout::open(dir).map_err(|e| fail(e.to_string()))?;
    let name = key.hex().to_string();
    if !layout.ref_names().contains(&name) {
        return Ok(None);
    }
    let descriptor = layout.entry(Some(&name)).map_err(|e| fail(e.to_string()))?;
    let manifest = layout
        .read_manifest(descriptor)
        .map_err(|e| fail(e.to_string()))?;
    let config = layout
        .read_document(&manifest.config)
        .map_err(|e| fail(e.to_string()))?;
    let step = entry::decode(key, &manifest, &config).map_err(|reason| CacheError::Invalid {
        cache: format!("oci:{}", dir.display()),
        key: key.to_string(),
        reason,
    })?;
    let source = match &step.layer {
        Some((layer, _)) => {
            let path = layout.blob_path(layer);
            if !path.is_file() {
                return Err(fail(format!("the layer blob {} is missing", layer.digest)));
            }
            LayerSource::File(path)
        }
        None => LayerSource::Nothing,
    };
    Ok(Some((step, source)))
}

/// Writes `step` under `key`, holding the directory's lock.
pub fn store(dir: &Path, step: &StepToStore, platform: &Platform) -> Result<(), CacheError> {
    let key = &step.key;
    let fail = layout_error(dir, "storing", key);
    fs_err::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    let lock_file = fs_err::File::create(dir.join(LOCK_FILE))
        .map_err(|e| fail(e.to_string()))?
        .into_parts()
        .0;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| fail(format!("locking {LOCK_FILE}: {errno}")))?;
    let (manifest, config) = entry::encode(key, &step.step, platform).map_err(&fail)?;
    let mut writer = OciLayoutWriter::create(dir).map_err(|e| fail(e.to_string()))?;
    if let (Some((descriptor, _)), Some(path)) = (&step.step.layer, &step.blob) {
        let (digest, _) = writer
            .write_blob_from_file(path)
            .map_err(|e| fail(e.to_string()))?;
        if digest != descriptor.digest {
            return Err(fail(format!(
                "the layer file {} has digest {digest}, expected {}",
                path.display(),
                descriptor.digest
            )));
        }
    }
    writer
        .write_bytes(&config)
        .map_err(|e| fail(e.to_string()))?;
    writer
        .add_image(&manifest, Some(key.hex()), None)
        .map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))?;
    Ok(())
}
