//! Unpacking an image's layers (blobs in the store) onto a stage root with
//! kiln-layer's safe applier, verifying each blob's digest and size. A blob
//! the pull pipeline is still downloading is applied from its stream as it
//! arrives (`pull::arrival`); it is verified when the stream ends, and a
//! mismatch fails the layer (the caller then never uses the root).
//!
//! `--image-fs-extract-retry N` (kaniko's semantics): a layer that fails to
//! apply is applied again, up to N more times, after 1 s, 2 s, 4 s… Applying
//! a layer again over a partial first attempt gives the same tree: every
//! entry of the layer is written again, whiteouts and opaque directories
//! included.

use std::path::Path;
use std::time::Duration;

use kiln_layer::{ApplyOptions, Expected, apply_layer, apply_layer_file};
use kiln_oci::Descriptor;

use crate::archive::running_as_root;
use crate::blobs::BlobStore;

/// The delay before the first retry; doubled for each further one (kaniko's).
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Applies `layers` in order onto `root`; a layer that fails is retried up to
/// `retries` times (`--image-fs-extract-retry`). The error of the last attempt says
/// how many attempts were made.
pub fn unpack_layers(
    blobs: &BlobStore,
    layers: &[Descriptor],
    root: &Path,
    retries: u32,
) -> Result<(), String> {
    let options = ApplyOptions {
        preserve_owners: running_as_root(),
        xattrs: true,
    };
    for layer in layers {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let Err(e) = unpack_layer(blobs, layer, root, &options) else {
                break;
            };
            if attempt > retries {
                return Err(if retries == 0 {
                    e
                } else {
                    format!(
                        "{e} (gave up after {attempt} attempts, --image-fs-extract-retry={retries})"
                    )
                });
            }
            let delay = FIRST_RETRY_DELAY * 2u32.saturating_pow(attempt - 1);
            tracing::warn!(layer = %layer.digest, attempt, "{e}; retrying in {delay:?}");
            std::thread::sleep(delay);
        }
    }
    Ok(())
}

fn unpack_layer(
    blobs: &BlobStore,
    layer: &Descriptor,
    root: &Path,
    options: &ApplyOptions,
) -> Result<(), String> {
    let expected = Expected {
        digest: Some(layer.digest.clone()),
        size: Some(layer.size),
        diff_id: None,
    };
    let name = layer.digest.to_string();
    // The layer's own message names the entry inside the image; the root names
    // the directory on this machine (the one that filled up, when the disk is full).
    let unpacking = |e| {
        format!(
            "unpacking base layer {} into {}: {e}",
            layer.digest,
            root.display()
        )
    };
    if let Some(arrival) = blobs
        .arriving(&layer.digest)
        .filter(|a| !a.is_stored() && !blobs.contains(&layer.digest))
    {
        tracing::debug!(layer = %layer.digest, "unpacking as it downloads");
        return apply_layer(arrival.reader(), &name, expected, root, options)
            .map(|_| ())
            .map_err(|e| match arrival.wait_failure() {
                Some(download) => format!("unpacking base layer {}: {download}", layer.digest),
                None => unpacking(e),
            });
    }
    let path = blobs.path(&layer.digest);
    let file = fs_err::File::open(&path)
        .map_err(|e| format!("base layer {} is not in the blob store: {e}", layer.digest))?;
    // the store writes a blob once, under a temporary name, and never
    // truncates it: safe to map (see `apply_layer_file`)
    apply_layer_file(file.file(), &name, expected, root, options)
        .map(|_| ())
        .map_err(unpacking)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_oci::MediaType;

    /// A gzipped layer holding `hello` (`world`).
    fn layer_bytes() -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, "hello", &b"world"[..])
            .unwrap();
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    /// A store whose blob for the layer has the right size and the wrong bytes.
    fn corrupt_store(dir: &Path) -> (BlobStore, Descriptor, Vec<u8>) {
        let good = layer_bytes();
        let descriptor = Descriptor::for_bytes(MediaType::OciLayerGzip, &good);
        let blobs = BlobStore::open(dir.join("blobs")).unwrap();
        let mut bad = good.clone();
        for b in bad.iter_mut().skip(10) {
            *b ^= 0x5a;
        }
        fs_err::write(blobs.path(&descriptor.digest), &bad).unwrap();
        (blobs, descriptor, good)
    }

    #[test]
    fn a_layer_failing_every_time_is_tried_retries_plus_one_times() {
        let dir = tempfile::tempdir().unwrap();
        let (blobs, layer, _) = corrupt_store(dir.path());
        let root = dir.path().join("root");
        fs_err::create_dir(&root).unwrap();
        let err = unpack_layers(&blobs, std::slice::from_ref(&layer), &root, 2).unwrap_err();
        assert!(err.contains(&layer.digest.to_string()), "{err}");
        // Regression (issue 19, `cargo xtask chaos` diskfull): the directory on
        // this machine is named, not only the entry inside the image.
        assert!(err.contains(&format!("into {}", root.display())), "{err}");
        assert!(
            err.contains("gave up after 3 attempts, --image-fs-extract-retry=2"),
            "{err}"
        );
        let once = unpack_layers(&blobs, &[layer], &root, 0).unwrap_err();
        assert!(!once.contains("attempts"), "{once}");
    }

    /// The blob is repaired while the first retry waits: the layer is then applied.
    #[test]
    fn a_layer_repaired_between_attempts_is_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let (blobs, layer, good) = corrupt_store(dir.path());
        let root = dir.path().join("root");
        fs_err::create_dir(&root).unwrap();
        let path = blobs.path(&layer.digest);
        let repair = std::thread::spawn(move || {
            std::thread::sleep(FIRST_RETRY_DELAY / 4);
            fs_err::write(path, good).unwrap();
        });
        unpack_layers(&blobs, &[layer], &root, 3).unwrap();
        repair.join().unwrap();
        assert_eq!(fs_err::read_to_string(root.join("hello")).unwrap(), "world");
    }
}
