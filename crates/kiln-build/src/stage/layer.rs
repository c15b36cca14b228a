//! Committing a step's files: entries written into the stage root and
//! encoded into a layer blob (from one read of their sources when both),
//! into the blob store or through the push pipeline, and the layer and its
//! history added to the image.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_layer::{EncodeOptions, Entry, TarOptions};
use kiln_oci::Digest;

use crate::options::BuildOptions;

use super::state::{BuildEnv, StageRun, StepResult};

impl<'a, 'b> StageRun<'a, 'b> {
    /// Applies entries to the rootfs (so later steps see them) and makes a layer,
    /// unless in single-snapshot mode.
    pub(super) fn commit_entries(
        &mut self,
        entries: Vec<Entry>,
        created_by: String,
    ) -> StepResult<Option<Digest>> {
        let options = step_apply_options();
        if let Some(root) = self.rootfs.clone() {
            if !self.env.options.single_snapshot {
                // The next RUN takes a fresh baseline.
                self.snapshotter = None;
                if !entries.is_empty() {
                    // Root and layer from one read of the sources.
                    return self.push_layer_applying(entries, created_by, Some((&root, &options)));
                }
            }
            kiln_layer::apply_entries(entries.clone(), &root, &options)
                .map_err(|e| format!("writing the step's files into the stage root: {e}"))?;
        }
        if self.env.options.single_snapshot {
            self.single_snapshot_steps.push(created_by);
            return Ok(None);
        }
        self.push_layer(entries, created_by)
    }

    pub(super) fn push_layer(
        &mut self,
        entries: Vec<Entry>,
        created_by: String,
    ) -> StepResult<Option<Digest>> {
        self.push_layer_applying(entries, created_by, None)
    }

    /// [`StageRun::push_layer`], also writing the entries into a root from the
    /// same read of their sources when `apply_to` names one.
    fn push_layer_applying(
        &mut self,
        entries: Vec<Entry>,
        created_by: String,
        apply_to: Option<(&Path, &kiln_layer::ApplyOptions)>,
    ) -> StepResult<Option<Digest>> {
        if entries.is_empty() {
            let history = self.history(created_by);
            self.image.config.push_empty_step(history);
            return Ok(None);
        }
        let layer = encode_step_layer(self.env, self.stage.index, entries, apply_to, None)?;
        Ok(Some(self.add_layer(layer, created_by)))
    }

    /// Adds an encoded layer and its history to the stage's image.
    pub(super) fn add_layer(
        &mut self,
        layer: kiln_layer::EncodedLayer,
        created_by: String,
    ) -> Digest {
        let history = self.history(created_by);
        self.image.config.push_layer(layer.diff_id.clone(), history);
        let digest = layer.digest.clone();
        self.image.layers.push(layer.descriptor());
        digest
    }
}

/// How a step's files are written into the stage root: owners kept when
/// running as root, xattrs always.
pub(super) fn step_apply_options() -> kiln_layer::ApplyOptions {
    kiln_layer::ApplyOptions {
        preserve_owners: crate::archive::running_as_root(),
        xattrs: true,
    }
}

/// Encodes a layer of stage `stage` from `entries` into the blob store, through
/// the push pipeline when the stage's layers are pushed; with `apply_to`, also
/// writes them into that root from the same read. Setting `stop` makes the
/// encoding fail soon with a "stopped" error (and its uploads are dropped).
pub(super) fn encode_step_layer(
    env: &BuildEnv<'_>,
    stage: usize,
    entries: Vec<Entry>,
    apply_to: Option<(&Path, &kiln_layer::ApplyOptions)>,
    stop: Option<&AtomicBool>,
) -> StepResult<kiln_layer::EncodedLayer> {
    let encode = &env.encode;
    match env.push_pipeline.filter(|p| p.uploads_stage(stage)) {
        Some(p) => p.encode_and_upload(env.blobs, env.observer, |sink| {
            encode_entries(encode, entries, Stoppable { sink, stop }, apply_to)
                .map(|(layer, s)| (layer, s.sink))
        }),
        None => encode_into_store(env, |sink| {
            encode_entries(encode, entries, Stoppable { sink, stop }, apply_to)
                .map(|(layer, s)| (layer, s.sink))
        }),
    }
}

/// A layer's sink whose writes fail once `stop` is set.
struct Stoppable<'s, W> {
    sink: W,
    stop: Option<&'s AtomicBool>,
}

impl<W: std::io::Write> std::io::Write for Stoppable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Err(std::io::Error::other("stopped"));
        }
        self.sink.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}

/// Encodes a layer blob into the store through `encode`, which writes it into
/// the sink it is given and hands the sink back.
pub fn encode_into_store(
    env: &BuildEnv<'_>,
    encode: impl FnOnce(BlobFile) -> StepResult<(kiln_layer::EncodedLayer, BlobFile)>,
) -> StepResult<kiln_layer::EncodedLayer> {
    let temp = env.blobs.temp_path();
    let file = fs_err::File::create(&temp).map_err(|e| format!("writing the layer: {e}"))?;
    // A half-written blob (a full disk) must not stay behind, taking space.
    let discard = |e: String| {
        let _ = fs_err::remove_file(&temp);
        e
    };
    // The encoder's error names what it wrote; the blob file names the directory on
    // this machine (the one that filled up, when the disk is full).
    let (layer, sink) = encode(std::io::BufWriter::with_capacity(
        1 << 20,
        file.into_parts().0,
    ))
    .map_err(|e| discard(format!("{e} (into {})", temp.display())))?;
    sink.into_inner().map_err(|e| {
        discard(format!(
            "writing the layer {}: {}",
            temp.display(),
            e.error()
        ))
    })?;
    env.blobs
        .insert_file(&temp, &layer.digest)
        .map_err(|e| e.to_string())?;
    Ok(layer)
}

/// The sink a layer blob is written into.
pub type BlobFile = std::io::BufWriter<std::fs::File>;

/// Encodes entries into `sink`; with `apply_to`, also writes them into that
/// root from the same read of their sources (kiln-layer's tee).
pub fn encode_entries<W: std::io::Write + Send>(
    encode: &EncodeOptions,
    entries: Vec<Entry>,
    sink: W,
    apply_to: Option<(&Path, &kiln_layer::ApplyOptions)>,
) -> StepResult<(kiln_layer::EncodedLayer, W)> {
    match apply_to {
        None => kiln_layer::encode_layer(entries, encode, sink)
            .map_err(|e| format!("writing the layer: {e}")),
        Some((root, options)) => {
            let (layer, sink, _) =
                kiln_layer::encode_layer_applying(entries, encode, sink, root, options).map_err(
                    |e| format!("writing the layer and the step's files into the stage root: {e}"),
                )?;
            Ok((layer, sink))
        }
    }
}

/// Layer encoding options from the build options.
pub fn encode_options(options: &BuildOptions, layer_epoch: Option<i64>) -> EncodeOptions {
    let compression = match options.compression {
        crate::options::Compression::Gzip => kiln_layer::Compression::Gzip {
            level: options
                .compression_level
                .map_or(6, |l| l.clamp(0, 9) as u32),
        },
        crate::options::Compression::Zstd => kiln_layer::Compression::Zstd {
            level: options.compression_level.unwrap_or(3),
        },
    };
    EncodeOptions {
        compression,
        tar: TarOptions {
            source_date_epoch: layer_epoch,
        },
        threads: None,
    }
}
