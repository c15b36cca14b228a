//! Property tests: parse/display round trips and the canonical writer's fixed point.

use std::collections::BTreeMap;

use kiln_oci::{Digest, History, ImageConfig, MediaType, Platform, Reference, canonical_json};
use proptest::prelude::*;

fn reference_text() -> impl Strategy<Value = String> {
    let registry = prop::sample::select(vec![
        "",
        "localhost/",
        "localhost:5000/",
        "registry.example.com/",
        "127.0.0.1:1234/",
        "docker.io/",
        "index.docker.io/",
        "[::1]:5000/",
    ]);
    let component = "[a-z0-9]{1,5}(([._]|__|-{1,3})[a-z0-9]{1,5})?";
    let path = prop::collection::vec(component, 1..4).prop_map(|c| c.join("/"));
    let tag = prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}");
    let digest = prop::option::of(prop::array::uniform32(any::<u8>()));
    (registry, path, tag, digest).prop_map(|(registry, path, tag, digest)| {
        let mut text = format!("{registry}{path}");
        if let Some(tag) = tag {
            text.push(':');
            text.push_str(&tag);
        }
        if let Some(digest) = digest {
            text.push('@');
            text.push_str(&Digest::from_sha256_bytes(digest).to_string());
        }
        text
    })
}

proptest! {
    #[test]
    fn digest_display_parses_back(bytes in prop::array::uniform32(any::<u8>())) {
        let digest = Digest::from_sha256_bytes(bytes);
        prop_assert_eq!(digest.to_string().parse::<Digest>().unwrap(), digest);
    }

    #[test]
    fn valid_references_parse_and_round_trip(text in reference_text()) {
        let reference = Reference::parse(&text).unwrap();
        prop_assert_eq!(&Reference::parse(&reference.to_string()).unwrap(), &reference);
        prop_assert_eq!(&Reference::parse(&reference.familiar()).unwrap(), &reference);
        prop_assert!(reference.tag().is_some() || reference.digest().is_some());
    }

    #[test]
    fn reference_parsing_never_panics(text in "\\PC{0,40}") {
        let _ = Reference::parse(&text);
    }

    #[test]
    fn platform_normalisation_is_idempotent(
        os in prop::sample::select(vec!["linux", "Linux", "windows", "darwin", "macos"]),
        arch in prop::sample::select(vec!["amd64", "x86_64", "x86-64", "aarch64", "arm64", "arm", "armhf", "armel", "i386", "386", "riscv64"]),
        variant in prop::option::of(prop::sample::select(vec!["v5", "v6", "7", "v7", "8", "v8", "v9.0", "v2", "v1"])),
    ) {
        let mut platform = Platform::new(os, arch);
        platform.variant = variant.map(str::to_owned);
        let normalized = platform.normalized();
        prop_assert_eq!(&normalized.normalized(), &normalized);
        prop_assert!(platform.matches(&normalized));
        prop_assert!(normalized.matches(&platform));
    }

    #[test]
    fn canonical_config_is_a_fixed_point(
        env in prop::collection::vec(("[A-Z_]{1,8}", "\\PC{0,16}"), 0..5),
        labels in prop::collection::btree_map("\\PC{1,10}", "\\PC{0,16}", 0..5),
        created_by in prop::collection::vec("\\PC{0,30}", 0..4),
        extra_key in "[a-z_]{1,10}",
        extra_value in any::<i64>(),
    ) {
        let mut config = ImageConfig::for_platform(&Platform::new("linux", "amd64"));
        let container = config.container_config_mut();
        for (key, value) in &env {
            container.set_env_var(key, value);
        }
        container.labels = Some(labels.clone());
        for command in created_by {
            config.push_empty_step(History { created_by: Some(command), ..History::default() });
        }
        if !matches!(extra_key.as_str(), "created" | "author" | "architecture" | "os" | "variant" | "config" | "rootfs" | "history") {
            config.extra.insert(extra_key, serde_json::json!({ "n": extra_value, "list": [1, "x"] }));
        }
        let (descriptor, bytes) = config.to_blob(MediaType::OciConfig).unwrap();
        let parsed = ImageConfig::from_slice(&bytes).unwrap();
        prop_assert_eq!(&parsed, &config);
        let again = canonical_json::to_vec(&parsed).unwrap();
        prop_assert_eq!(&again, &bytes);
        prop_assert!(descriptor.digest.matches(&again));
        let _: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    }
}
