//! Shared helpers for kiln-oci's integration tests: deterministic test layers built
//! with the `tar` crate, and a runner for the real skopeo.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::Command;

use kiln_oci::{
    Descriptor, Digest, History, ImageConfig, LayerCompression, Manifest, MediaType, Platform,
};

/// An uncompressed layer tar with the given regular files (and their parent dirs).
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        if let Some((dir, _)) = path.rsplit_once('/') {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            header.set_mtime(1_700_000_000);
            builder
                .append_data(&mut header, format!("{dir}/"), std::io::empty())
                .unwrap();
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_mtime(1_700_000_000);
        builder.append_data(&mut header, path, *content).unwrap();
    }
    builder.into_inner().unwrap()
}

/// gzip with fixed settings.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// One test layer: the uncompressed tar and the blob as stored.
pub struct TestLayer {
    pub tar: Vec<u8>,
    pub blob: Vec<u8>,
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

/// A small two-layer image (one plain tar layer, one gzip layer).
pub struct TestImage {
    pub config: ImageConfig,
    pub config_bytes: Vec<u8>,
    pub config_descriptor: Descriptor,
    pub layers: Vec<TestLayer>,
    pub manifest: Manifest,
}

/// Files of a test layer: (path, content).
type Files<'a> = &'a [(&'a str, &'a [u8])];

pub fn test_image(label: &str) -> TestImage {
    let contents: [(Files<'_>, LayerCompression); 2] = [
        (
            &[
                ("etc/hello.txt", b"hello from kiln\n"),
                ("bin/tool", b"#!/bin/sh\necho hi\n"),
            ],
            LayerCompression::None,
        ),
        (
            &[("srv/data/file.bin", &[7u8; 5000])],
            LayerCompression::Gzip,
        ),
    ];
    let mut config = ImageConfig::for_platform(&Platform::new("linux", "amd64"));
    config.created = Some("2024-01-02T03:04:05Z".to_owned());
    let container = config.container_config_mut();
    container.set_env_var("PATH", "/usr/bin:/bin");
    container.cmd = Some(vec!["/bin/tool".to_owned()]);
    container
        .labels
        .get_or_insert_with(Default::default)
        .insert("test.label".to_owned(), label.to_owned());
    let mut layers = Vec::new();
    for (files, compression) in contents {
        let tar = layer_tar(files);
        let diff_id = Digest::sha256_of(&tar);
        let blob = match compression {
            LayerCompression::None => tar.clone(),
            _ => gzip(&tar),
        };
        let descriptor = Descriptor::for_bytes(MediaType::oci_layer(compression), &blob);
        config.push_layer(
            diff_id.clone(),
            History {
                created_by: Some(format!("COPY {} /", files[0].0)),
                ..History::default()
            },
        );
        layers.push(TestLayer {
            tar,
            blob,
            descriptor,
            diff_id,
        });
    }
    config.push_empty_step(History {
        created_by: Some("CMD [\"/bin/tool\"]".to_owned()),
        ..History::default()
    });
    let (config_descriptor, config_bytes) = config.to_blob(MediaType::OciConfig).unwrap();
    let manifest = Manifest::new_oci(
        config_descriptor.clone(),
        layers.iter().map(|l| l.descriptor.clone()).collect(),
    );
    TestImage {
        config,
        config_bytes,
        config_descriptor,
        layers,
        manifest,
    }
}

/// Runs skopeo with a permissive policy and a private TMPDIR; panics with the output
/// if it fails, or with install instructions if it is missing.
pub fn skopeo(work: &Path, args: &[&str]) -> Vec<u8> {
    if !Path::new("/usr/bin/skopeo").exists() {
        panic!("needs skopeo at /usr/bin/skopeo: install with .ci/install-deps");
    }
    let policy = work.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    let tmp = work.join("skopeo-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let output = Command::new("/usr/bin/skopeo")
        .arg("--policy")
        .arg(&policy)
        .args(args)
        .env("TMPDIR", &tmp)
        .output()
        .expect("running /usr/bin/skopeo");
    assert!(
        output.status.success(),
        "skopeo {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// All files under `dir` with their contents, sorted by relative path.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}
