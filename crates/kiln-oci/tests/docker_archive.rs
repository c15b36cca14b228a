//! docker-archive: written by kiln and read by skopeo; written by skopeo and read by
//! kiln.

mod common;

use std::io::{self, Read};
use std::path::Path;

use common::{TestImage, skopeo, test_image};
use kiln_oci::{
    ArchiveLayerBlob, ArchiveLayout, DockerArchive, DockerArchiveWriter, LayerCompression,
    OciLayout, OciLayoutWriter, Reference,
};

fn write_archive(path: &Path, layout: ArchiveLayout, images: &[(&TestImage, &[&str])]) {
    write_archive_with(path, layout, images, false);
}

/// Writes an archive; with `compressed`, layers are stored as the image's blobs
/// (one of them gzip), as go-containerregistry and kaniko do.
fn write_archive_with(
    path: &Path,
    layout: ArchiveLayout,
    images: &[(&TestImage, &[&str])],
    compressed: bool,
) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = DockerArchiveWriter::new(file, layout);
    for (image, tags) in images {
        let tags: Vec<Reference> = tags.iter().map(|t| Reference::parse(t).unwrap()).collect();
        writer
            .add_image(&image.config_bytes, &tags, |diff_id| {
                let layer = image
                    .layers
                    .iter()
                    .find(|l| &l.diff_id == diff_id)
                    .expect("layer asked for is in the image");
                Ok(if compressed {
                    ArchiveLayerBlob {
                        reader: io::Cursor::new(layer.blob.clone()),
                        size: layer.descriptor.size,
                        digest: layer.descriptor.digest.clone(),
                    }
                } else {
                    ArchiveLayerBlob::uncompressed(
                        io::Cursor::new(layer.tar.clone()),
                        layer.tar.len() as u64,
                        diff_id,
                    )
                })
            })
            .unwrap();
    }
    writer.finish().unwrap();
}

fn read_layers(archive: &DockerArchive, tag: Option<&str>) -> Vec<Vec<u8>> {
    let image = archive.image(tag).unwrap();
    let (config, _) = archive.read_config(image).unwrap();
    (0..image.layers.len())
        .map(|index| {
            let mut reader = archive.open_layer(image, &config, index).unwrap();
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).unwrap();
            assert_eq!(bytes.len() as u64, reader.size());
            bytes
        })
        .collect()
}

#[test]
fn skopeo_copies_our_archive_in_both_layouts_into_an_oci_layout() {
    for layout in [ArchiveLayout::Blobs, ArchiveLayout::Legacy] {
        let work = tempfile::tempdir().unwrap();
        let image = test_image("archive");
        let archive = work.path().join("image.tar");
        write_archive(&archive, layout, &[(&image, &["kiln/test:v1"])]);

        let inspect: serde_json::Value = serde_json::from_slice(&skopeo(
            work.path(),
            &["inspect", &format!("docker-archive:{}", archive.display())],
        ))
        .unwrap();
        assert_eq!(inspect["Labels"]["test.label"], "archive", "{layout:?}");
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2, "{layout:?}");

        let oci = work.path().join("oci");
        skopeo(
            work.path(),
            &[
                "copy",
                &format!("docker-archive:{}:kiln/test:v1", archive.display()),
                &format!("oci:{}:copied", oci.display()),
            ],
        );
        let copied = OciLayout::open(&oci).unwrap();
        let resolved = copied.image(Some("copied"), None).unwrap();
        assert_eq!(
            resolved.config.rootfs.diff_ids, image.config.rootfs.diff_ids,
            "{layout:?}"
        );
        assert_eq!(resolved.config.config, image.config.config, "{layout:?}");
        copied.verify_layers(&resolved).unwrap();
        kiln_oci::validate_image(&resolved.manifest, &resolved.config).unwrap();
        for (descriptor, layer) in resolved.manifest.layers.iter().zip(&image.layers) {
            let mut stored = Vec::new();
            copied
                .open_blob(descriptor)
                .unwrap()
                .read_to_end(&mut stored)
                .unwrap();
            let tar = match descriptor.media_type.layer_compression() {
                Some(LayerCompression::Gzip) => {
                    let mut tar = Vec::new();
                    flate2::read::GzDecoder::new(stored.as_slice())
                        .read_to_end(&mut tar)
                        .unwrap();
                    tar
                }
                Some(LayerCompression::None) => stored,
                other => panic!("{layout:?}: unexpected layer compression {other:?}"),
            };
            assert!(
                tar == layer.tar,
                "{layout:?}: layer content changed in the copy"
            );
        }
    }
}

#[test]
fn reads_an_archive_written_by_skopeo() {
    let work = tempfile::tempdir().unwrap();
    let image = test_image("from-skopeo");
    let source = work.path().join("source");
    let mut writer = OciLayoutWriter::create(&source).unwrap();
    writer.write_bytes(&image.config_bytes).unwrap();
    for layer in &image.layers {
        writer.write_blob(layer.blob.as_slice()).unwrap();
    }
    writer.add_image(&image.manifest, Some("v1"), None).unwrap();
    writer.finish().unwrap();

    let archive_path = work.path().join("skopeo.tar");
    skopeo(
        work.path(),
        &[
            "copy",
            &format!("oci:{}:v1", source.display()),
            &format!(
                "docker-archive:{}:localhost:5000/kiln/test:v1",
                archive_path.display()
            ),
        ],
    );
    let archive = DockerArchive::open(&archive_path).unwrap();
    assert_eq!(archive.images().len(), 1);
    assert_eq!(
        archive.images()[0].repo_tags,
        ["localhost:5000/kiln/test:v1"]
    );
    let entry = archive.image(Some("localhost:5000/kiln/test:v1")).unwrap();
    let (config, _) = archive.read_config(entry).unwrap();
    assert_eq!(config.rootfs.diff_ids, image.config.rootfs.diff_ids);
    assert_eq!(config.config, image.config.config);
    let layers = read_layers(&archive, None);
    let expected: Vec<Vec<u8>> = image.layers.iter().map(|l| l.tar.clone()).collect();
    assert_eq!(
        layers, expected,
        "skopeo decompresses layers into the archive"
    );
}

#[test]
fn our_archive_round_trips_and_is_deterministic() {
    let work = tempfile::tempdir().unwrap();
    let first_image = test_image("first");
    let second_image = test_image("second");
    for layout in [ArchiveLayout::Blobs, ArchiveLayout::Legacy] {
        let one = work.path().join("one.tar");
        let two = work.path().join("two.tar");
        let images: &[(&TestImage, &[&str])] = &[
            (&first_image, &["busybox", "kiln/app:v1"]),
            (&second_image, &["kiln/app:v1", "localhost:5000/x/y:z"]),
        ];
        write_archive(&one, layout, images);
        write_archive(&two, layout, images);
        assert!(std::fs::read(&one).unwrap() == std::fs::read(&two).unwrap());

        let archive = DockerArchive::open(&one).unwrap();
        // The tag moved to the image added last; the shared layers are stored once.
        assert_eq!(archive.images()[0].repo_tags, ["busybox:latest"]);
        assert_eq!(
            archive.images()[1].repo_tags,
            ["kiln/app:v1", "localhost:5000/x/y:z"]
        );
        assert_eq!(archive.images()[0].layers, archive.images()[1].layers);
        let by_full_name = archive
            .image(Some("docker.io/library/busybox:latest"))
            .unwrap();
        let (config, config_bytes) = archive.read_config(by_full_name).unwrap();
        assert_eq!(config_bytes, first_image.config_bytes);
        assert_eq!(config, first_image.config);
        let expected: Vec<Vec<u8>> = first_image.layers.iter().map(|l| l.tar.clone()).collect();
        assert!(read_layers(&archive, Some("busybox")) == expected);

        let error = archive.image(Some("nope:v9")).unwrap_err().to_string();
        assert!(error.contains("no image tagged \"nope:v9\""), "{error}");
        let error = archive.image(None).unwrap_err().to_string();
        assert!(error.contains("holds 2 images"), "{error}");
    }
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let image = test_image("bad");
    let file = std::fs::File::create(work.path().join("bad.tar")).unwrap();
    let mut writer = DockerArchiveWriter::new(file, ArchiveLayout::Blobs);
    let error = writer
        .add_image(&image.config_bytes, &[], |diff_id| {
            let wrong = common::layer_tar(&[("evil", b"not the layer")]);
            let size = wrong.len() as u64;
            Ok(ArchiveLayerBlob::uncompressed(
                io::Cursor::new(wrong),
                size,
                diff_id,
            ))
        })
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not match its digest"), "{error}");

    // On the reading side: an archive whose layer bytes were altered after writing.
    let path = work.path().join("good.tar");
    write_archive(&path, ArchiveLayout::Blobs, &[(&image, &["kiln/x:y"])]);
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"hello from kiln";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at] = b'j';
    std::fs::write(&path, &bytes).unwrap();
    let archive = DockerArchive::open(&path).unwrap();
    let entry = archive.image(Some("kiln/x:y")).unwrap();
    let (config, _) = archive.read_config(entry).unwrap();
    let mut reader = archive.open_layer(entry, &config, 0).unwrap();
    assert!(reader.is_verified());
    let error = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn archives_with_compressed_layers_are_written_read_and_accepted_by_skopeo() {
    let work = tempfile::tempdir().unwrap();
    let image = test_image("compressed");
    let path = work.path().join("compressed.tar");
    write_archive_with(
        &path,
        ArchiveLayout::Blobs,
        &[(&image, &["kiln/c:1"])],
        true,
    );

    let archive = DockerArchive::open(&path).unwrap();
    let entry = archive.image(Some("kiln/c:1")).unwrap();
    assert_eq!(
        entry.layers[1],
        format!("blobs/sha256/{}", image.layers[1].descriptor.digest.hex())
    );
    let (config, _) = archive.read_config(entry).unwrap();
    let mut plain = archive.open_layer(entry, &config, 0).unwrap();
    assert_eq!(plain.compression(), LayerCompression::None);
    assert!(plain.is_verified());
    plain.read_to_end(&mut Vec::new()).unwrap();
    let mut gzipped = archive.open_layer(entry, &config, 1).unwrap();
    assert_eq!(gzipped.compression(), LayerCompression::Gzip);
    assert!(!gzipped.is_verified());
    let mut stored = Vec::new();
    gzipped.read_to_end(&mut stored).unwrap();
    assert!(stored == image.layers[1].blob);

    let oci = work.path().join("oci");
    skopeo(
        work.path(),
        &[
            "copy",
            &format!("docker-archive:{}", path.display()),
            &format!("oci:{}:c", oci.display()),
        ],
    );
    let copied = OciLayout::open(&oci).unwrap();
    let resolved = copied.image(Some("c"), None).unwrap();
    assert_eq!(
        resolved.config.rootfs.diff_ids,
        image.config.rootfs.diff_ids
    );
    copied.verify_layers(&resolved).unwrap();
}
