//! Interop: layers written by kiln, unpacked by umoci (an independent OCI
//! implementation), give the same tree as kiln's own applier, whiteouts and
//! opaque directories included.

mod common;

use std::path::Path;

use common::{describe_tree, meta, p, run_ok};
use kiln_layer::{
    ApplyOptions, Compression, EncodeOptions, EncodedLayer, Entry, EntryKind, Expected,
    apply_layer, encode_layer,
};
use kiln_oci::Digest;

fn put_blob(layout: &Path, bytes: &[u8]) -> Digest {
    let digest = Digest::sha256_of(bytes);
    std::fs::write(layout.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
    digest
}

fn descriptor(media_type: &str, digest: &Digest, size: usize) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
}

#[test]
fn umoci_unpacks_kiln_layers_to_the_same_tree_as_kiln() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("payload");
    std::fs::write(&src, vec![b'z'; 70_000]).unwrap();
    let base = vec![
        Entry::dir(p("etc"), meta(0o755, 0, 0)),
        Entry::bytes(
            p("etc/passwd"),
            &b"root:x:0:0::/root:/bin/sh\n"[..],
            meta(0o644, 0, 0),
        ),
        Entry::bytes(p("etc/old"), &b"old"[..], meta(0o600, 0, 0)),
        Entry::dir(p("opt"), meta(0o755, 0, 0)),
        Entry::dir(p("opt/app"), meta(0o750, 1000, 1000)),
        Entry::bytes(p("opt/app/stale"), &b"stale"[..], meta(0o644, 1000, 1000)),
        Entry::dir(p("usr"), meta(0o755, 0, 0)),
        Entry::file(p("usr/payload"), &src, meta(0o4755, 0, 0)),
        Entry::hardlink(p("usr/payload-link"), p("usr/payload"), meta(0o4755, 0, 0)),
        Entry::symlink(p("lib"), "usr", meta(0o777, 0, 0)),
        Entry {
            path: p("dev-null"),
            kind: EntryKind::CharDevice { major: 1, minor: 3 },
            meta: meta(0o666, 0, 0),
        },
        Entry::bytes(
            p(format!("usr/{}", "long".repeat(40))),
            &b"long"[..],
            meta(0o644, 0, 0),
        ),
    ];
    let upper = vec![
        Entry::whiteout(p("etc/old")),
        Entry::dir(p("opt/app"), meta(0o755, 1000, 1000)),
        Entry::opaque_dir(p("opt/app")),
        Entry::bytes(p("opt/app/fresh"), &b"fresh"[..], meta(0o644, 1000, 1000)),
        Entry::bytes(p("usr/added"), &b"added"[..], meta(0o640, 0, 42)),
        Entry::whiteout(p("dev-null")),
    ];

    let layout = dir.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut layers: Vec<(EncodedLayer, Vec<u8>)> = Vec::new();
    for entries in [base, upper] {
        let options = EncodeOptions {
            compression: Compression::Gzip { level: 6 },
            ..Default::default()
        };
        let (encoded, blob) = encode_layer(entries, &options, Vec::new()).unwrap();
        assert_eq!(put_blob(&layout, &blob), encoded.digest);
        layers.push((encoded, blob));
    }
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|(e, _)| format!("\"{}\"", e.diff_id))
        .collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let config_digest = put_blob(&layout, config.as_bytes());
    let layer_descs: Vec<String> = layers
        .iter()
        .map(|(e, blob)| {
            descriptor(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                &e.digest,
                blob.len(),
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
        descriptor(
            "application/vnd.oci.image.config.v1+json",
            &config_digest,
            config.len()
        ),
        layer_descs.join(",")
    );
    let manifest_digest = put_blob(&layout, manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"t"}}}}]}}"#,
        manifest.len()
    );
    std::fs::write(layout.join("index.json"), index).unwrap();

    let bundle = dir.path().join("bundle");
    run_ok(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:t", layout.display()),
            bundle.to_str().unwrap(),
        ],
        None,
    );

    let ours = dir.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    for (i, (encoded, blob)) in layers.iter().enumerate() {
        let expected = Expected {
            digest: Some(encoded.digest.clone()),
            size: Some(encoded.size),
            diff_id: Some(encoded.diff_id.clone()),
        };
        apply_layer(
            &blob[..],
            &format!("layer {i}"),
            expected,
            &ours,
            &ApplyOptions::default(),
        )
        .unwrap();
    }
    let theirs = describe_tree(&bundle.join("rootfs"));
    let mine = describe_tree(&ours);
    assert_eq!(mine, theirs);
    assert!(
        mine.contains_key("opt/app/fresh")
            && !mine.contains_key("opt/app/stale")
            && !mine.contains_key("etc/old")
    );
}
