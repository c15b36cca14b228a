//! Unpacking an image's layers (blobs in the store) onto a stage root with
//! kiln-layer's safe applier, verifying each blob's digest and size.

use std::path::Path;

use kiln_layer::{ApplyOptions, Expected, apply_layer};
use kiln_oci::Descriptor;

use crate::archive::running_as_root;
use crate::blobs::BlobStore;

/// Applies `layers` in order onto `root`.
pub fn unpack_layers(blobs: &BlobStore, layers: &[Descriptor], root: &Path) -> Result<(), String> {
    let options = ApplyOptions {
        preserve_owners: running_as_root(),
        xattrs: true,
    };
    for layer in layers {
        let path = blobs.path(&layer.digest);
        let file = fs_err::File::open(&path)
            .map_err(|e| format!("base layer {} is not in the blob store: {e}", layer.digest))?;
        let expected = Expected {
            digest: Some(layer.digest.clone()),
            size: Some(layer.size),
            diff_id: None,
        };
        apply_layer(
            std::io::BufReader::with_capacity(1 << 20, file),
            &layer.digest.to_string(),
            expected,
            root,
            &options,
        )
        .map_err(|e| format!("unpacking base layer {}: {e}", layer.digest))?;
    }
    Ok(())
}
