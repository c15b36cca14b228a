//! Blobs stream: writing a large layer into an OCI layout and a docker-archive, and
//! reading it back, does not grow peak memory with the blob size. In its own test
//! binary so no other test shares the process's peak RSS.

use std::io::{self, Read};

use kiln_oci::{
    ArchiveLayerBlob, ArchiveLayout, Descriptor, DockerArchive, DockerArchiveWriter, History,
    ImageConfig, MediaType, OciLayout, OciLayoutWriter, Platform, Sha256Hasher,
};

const BLOB_SIZE: u64 = 192 * 1024 * 1024;
const ALLOWED_GROWTH_KIB: u64 = 48 * 1024;

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A deterministic, incompressible-looking stream of `size` bytes (xorshift).
fn payload(size: u64) -> BlockGenerator {
    BlockGenerator {
        left: size,
        state: 0x9e37_79b9_7f4a_7c15,
    }
}

struct BlockGenerator {
    left: u64,
    state: u64,
}

impl Read for BlockGenerator {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left as usize) / 8 * 8;
        let n = if n == 0 {
            buf.len().min(self.left as usize)
        } else {
            n
        };
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn large_blobs_stream_through_layouts_and_archives_in_bounded_memory() {
    let work = tempfile::tempdir().unwrap();
    let before = peak_rss_kib();

    // The expected digest, computed by streaming too.
    let mut hasher = Sha256Hasher::new();
    io::copy(&mut payload(BLOB_SIZE), &mut hasher).unwrap();
    let (digest, size) = hasher.finish();
    assert_eq!(size, BLOB_SIZE);

    // OCI layout: write, then read back verified.
    let mut writer = OciLayoutWriter::create(work.path().join("layout")).unwrap();
    let descriptor = Descriptor::new(MediaType::OciLayer, digest.clone(), size);
    writer
        .write_blob_expecting(payload(BLOB_SIZE), &descriptor)
        .unwrap();
    let mut config = ImageConfig::for_platform(&Platform::new("linux", "amd64"));
    config.push_layer(digest.clone(), History::default());
    let (config_descriptor, config_bytes) = config.to_blob(MediaType::OciConfig).unwrap();
    writer.write_bytes(&config_bytes).unwrap();
    let manifest = kiln_oci::Manifest::new_oci(config_descriptor, vec![descriptor]);
    writer.add_image(&manifest, Some("big"), None).unwrap();
    writer.finish().unwrap();
    let layout = OciLayout::open(work.path().join("layout")).unwrap();
    let image = layout.image(Some("big"), None).unwrap();
    assert_eq!(layout.verify_layers(&image).unwrap(), BLOB_SIZE);

    // docker-archive: the payload doubles as an (invalid but opaque) layer tar.
    let archive_path = work.path().join("big.tar");
    let mut archive = DockerArchiveWriter::new(
        std::fs::File::create(&archive_path).unwrap(),
        ArchiveLayout::Blobs,
    );
    archive
        .add_image(&config_bytes, &[], |diff_id| {
            Ok(ArchiveLayerBlob::uncompressed(
                payload(BLOB_SIZE),
                BLOB_SIZE,
                diff_id,
            ))
        })
        .unwrap();
    archive.finish().unwrap();
    let archive = DockerArchive::open(&archive_path).unwrap();
    let entry = archive.image(None).unwrap();
    let (config, _) = archive.read_config(entry).unwrap();
    let mut layer = archive.open_layer(entry, &config, 0).unwrap();
    assert_eq!(io::copy(&mut layer, &mut io::sink()).unwrap(), BLOB_SIZE);

    let growth = peak_rss_kib().saturating_sub(before);
    assert!(
        growth < ALLOWED_GROWTH_KIB,
        "peak RSS grew by {growth} KiB while streaming {} MiB blobs",
        BLOB_SIZE / 1024 / 1024
    );
}
