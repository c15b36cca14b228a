//! The canonical JSON writer against documents written by Go programs (umoci), and
//! reference parsing against the FROM lines of kaniko's integration Dockerfiles, and
//! timestamps against GNU date.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::tree;
use kiln_oci::{ImageConfig, Index, Manifest, OciLayout, Reference, canonical_json};

fn umoci(args: &[&str]) {
    if !Path::new("/usr/bin/umoci").exists() {
        panic!("needs umoci at /usr/bin/umoci: install with .ci/install-deps");
    }
    let output = Command::new("/usr/bin/umoci").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "umoci {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn documents_written_by_go_reserialise_byte_for_byte() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let image = format!("{}:t", dir.display());
    umoci(&["init", "--layout", dir.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    let payload = work.path().join("payload.txt");
    std::fs::write(&payload, "payload\n").unwrap();
    umoci(&[
        "insert",
        "--image",
        &image,
        payload.to_str().unwrap(),
        "/opt/payload.txt",
    ]);
    umoci(&[
        "config",
        "--image",
        &image,
        "--config.env",
        "A=<b>&c",
        "--config.env",
        "TAB=a\tb",
        "--config.label",
        "html=<x y=\"z\">",
        "--config.label",
        "unicode=é ü \u{2028}",
        "--config.exposedports",
        "80/tcp",
        "--config.volume",
        "/data",
        "--config.entrypoint",
        "/bin/sh",
        "--config.cmd",
        "-c",
        "--config.workingdir",
        "/srv",
        "--config.user",
        "nobody",
        "--config.stopsignal",
        "SIGTERM",
        "--author",
        "me <m@example.com>",
        "--history.comment",
        "comment & <stuff>",
        "--os",
        "linux",
        "--architecture",
        "arm64",
    ]);

    let layout = OciLayout::open(&dir).unwrap();
    let resolved = layout.image(Some("t"), None).unwrap();
    assert_eq!(resolved.config.rootfs.diff_ids.len(), 1);
    kiln_oci::validate_image(&resolved.manifest, &resolved.config).unwrap();
    let container = resolved.config.config.as_ref().unwrap();
    assert_eq!(container.env_var("A"), Some("<b>&c"));
    assert_eq!(container.labels.as_ref().unwrap()["html"], "<x y=\"z\">");

    // Every JSON document umoci wrote re-serialises to the same bytes.
    let mut checked = 0;
    for (name, bytes) in tree(&dir) {
        if name == "oci-layout" || !name.starts_with("blobs/") && name != "index.json" {
            continue;
        }
        let rewritten = if name == "index.json" {
            canonical_json::to_vec(&Index::from_slice(&bytes).unwrap()).unwrap()
        } else if let Ok(manifest) = Manifest::from_slice(&bytes) {
            canonical_json::to_vec(&manifest).unwrap()
        } else if bytes.first() == Some(&b'{') {
            canonical_json::to_vec(&ImageConfig::from_slice(&bytes).unwrap()).unwrap()
        } else {
            continue; // a layer
        };
        // umoci writes some blobs with Go's json.Encoder, which appends one newline
        // to json.Marshal's output; everything else must be identical.
        let original = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        assert_eq!(
            String::from_utf8(rewritten).unwrap(),
            String::from_utf8(original.to_vec()).unwrap(),
            "{name}"
        );
        checked += 1;
    }
    // index.json, and per umoci step one manifest and one config (new, insert, config).
    assert!(checked >= 7, "only {checked} documents checked");
}

fn conformance_dir() -> PathBuf {
    let dir = std::env::var_os("KILN_CONFORMANCE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
        PathBuf::from,
    );
    assert!(
        dir.join("kaniko-dockerfiles").is_dir(),
        "needs the conformance data at {} (set KILN_CONFORMANCE_DIR)",
        dir.display()
    );
    dir
}

fn dockerfiles(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            dockerfiles(&path, out);
        } else if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("Dockerfile"))
        {
            out.push(path);
        }
    }
}

#[test]
fn every_literal_from_reference_in_kanikos_dockerfiles_parses() {
    let mut files = Vec::new();
    dockerfiles(&conformance_dir().join("kaniko-dockerfiles"), &mut files);
    let mut parsed = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // `FROM <stage>` names an earlier stage (case-insensitively), not an image.
        let stages: Vec<String> = text
            .lines()
            .filter_map(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                let at = words.iter().position(|w| w.eq_ignore_ascii_case("AS"))?;
                let is_from = words.first()?.eq_ignore_ascii_case("FROM");
                is_from.then(|| words.get(at + 1).map(|w| w.to_ascii_lowercase()))?
            })
            .collect();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if !words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
                continue;
            }
            let Some(image) = words.find(|w| !w.starts_with("--")) else {
                continue;
            };
            if image.contains('$')
                || image == "scratch"
                || stages.contains(&image.to_ascii_lowercase())
            {
                continue;
            }
            let reference = Reference::parse(image)
                .unwrap_or_else(|e| panic!("{}: {image}: {e}", file.display()));
            assert_eq!(Reference::parse(&reference.to_string()).unwrap(), reference);
            assert_eq!(Reference::parse(&reference.familiar()).unwrap(), reference);
            parsed += 1;
        }
    }
    assert!(
        parsed >= 90,
        "only {parsed} FROM references found in {} files",
        files.len()
    );
}

#[test]
fn created_timestamps_agree_with_gnu_date() {
    let seconds: [i64; 8] = [
        0,
        -1,
        951_782_400,
        1_700_000_000,
        -2_208_988_800,
        4_102_444_799,
        253_402_300_799,
        1_234_567_890,
    ];
    for value in seconds {
        let output = Command::new("date")
            .args(["-u", "-d", &format!("@{value}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .expect("running date(1) from coreutils");
        assert!(output.status.success());
        let expected = String::from_utf8(output.stdout).unwrap();
        assert_eq!(kiln_oci::rfc3339_utc(value, 0), expected.trim(), "{value}");
    }
}
