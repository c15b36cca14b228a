//! Which platforms a build is for, and which platform each stage is built for.
//!
//! `--custom-platform` (and its alias `--platform`) holds one platform or a
//! comma-separated list (the CLI joins repeated flags with commas). One platform
//! builds one image; several build the Dockerfile once per platform and output an
//! index (see `index_output.rs`).
//!
//! A stage is built for its `FROM --platform=...` value, else the target platform.
//! With several target platforms, a stage whose inputs are the same for two targets
//! (pinned to `$BUILDPLATFORM` and reading no target-dependent ARG) is built once:
//! [`StageKey`] names those inputs, and the engine keeps one output per key.

use std::collections::BTreeMap;

use kiln_dockerfile::model::{Base, PlannedStage};
use kiln_dockerfile::{Command, Instruction};
use kiln_oci::Platform;

use crate::error::BuildError;
use crate::options::BuildOptions;

/// The target platforms, in the order given, duplicates dropped; the host's when
/// none is given.
pub(crate) fn target_platforms(options: &BuildOptions) -> Result<Vec<Platform>, BuildError> {
    let Some(text) = &options.custom_platform else {
        return Ok(vec![Platform::host()]);
    };
    let mut out: Vec<Platform> = Vec::new();
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(BuildError::Options(format!(
                "--custom-platform {text:?}: an empty platform in the list"
            )));
        }
        let platform = item
            .parse::<Platform>()
            .map_err(|e| BuildError::Options(format!("--custom-platform {item:?}: {e}")))?;
        if !out.contains(&platform) {
            out.push(platform);
        }
    }
    Ok(out)
}

/// Outputs that cannot hold several images, refused before anything is built.
pub(crate) fn check_outputs(
    options: &BuildOptions,
    platforms: &[Platform],
) -> Result<(), BuildError> {
    if platforms.len() > 1
        && let Some(path) = &options.tar_path
    {
        let list: Vec<String> = platforms.iter().map(Platform::to_string).collect();
        return Err(BuildError::Options(format!(
            "--tar-path {}: a docker-archive holds one image per platform, and this build is for \
             {} platforms ({}); write an OCI layout with --oci-layout-path (it holds the index \
             and every platform's image), or build one platform with --custom-platform",
            path.display(),
            platforms.len(),
            list.join(", ")
        )));
    }
    Ok(())
}

/// The platform `stage` is built for: the build's target platform as given (so its
/// variant is kept exactly), or the stage's `FROM --platform=...` value.
pub(crate) fn stage_platform(target: &Platform, stage: &PlannedStage) -> Platform {
    let planned = &stage.platform;
    if dockerfile_platform(target) == *planned {
        return target.clone();
    }
    let mut platform = Platform::new(&planned.os, &planned.architecture);
    if let Some(variant) = &planned.variant {
        platform = platform.with_variant(variant);
    }
    platform
}

/// `platform` as kiln-dockerfile normalises it (for the predefined ARGs).
pub(crate) fn dockerfile_platform(platform: &Platform) -> kiln_dockerfile::Platform {
    kiln_dockerfile::Platform::new(
        &platform.os,
        &platform.architecture,
        platform.variant.as_deref(),
    )
}

/// The platform to emulate for a RUN in a stage of `platform`: `None` when the host
/// runs its programs natively (its own architecture).
pub(crate) fn foreign_platform(platform: &Platform) -> Option<String> {
    let host = Platform::host();
    let same =
        dockerfile_platform(platform).architecture == dockerfile_platform(&host).architecture;
    (!same).then(|| platform.to_string())
}

/// What a stage's result depends on besides the Dockerfile text, which every
/// per-platform build shares: its platform, its expanded base, the value of every ARG
/// it declares and the keys of the stages it needs. Two target platforms' builds of a
/// stage with equal keys give the same result, so it is built once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StageKey(String);

impl StageKey {
    /// The key of `stage`, given the keys of the stages planned before it.
    pub(crate) fn of(
        stage: &PlannedStage,
        platform: &Platform,
        earlier: &BTreeMap<usize, StageKey>,
    ) -> StageKey {
        let mut text = format!("stage {}\nplatform {platform}\n", stage.index);
        match &stage.base {
            Base::Scratch => text.push_str("base scratch\n"),
            Base::Image(reference) => text.push_str(&format!("base image {reference}\n")),
            Base::Stage(_) => text.push_str("base stage\n"),
        }
        for dep in &stage.depends_on {
            let key = earlier
                .get(dep)
                .map(|k| k.0.as_str())
                .unwrap_or("unplanned");
            text.push_str(&format!("needs {dep} {{\n{key}}}\n"));
        }
        let mut scope = stage.env.clone();
        for name in declared_args(&stage.instructions) {
            scope.declare_arg(&name, None);
            text.push_str(&format!("arg {name}={:?}\n", scope.lookup(&name)));
        }
        StageKey(text)
    }
}

/// Names of the ARGs a stage declares, in order.
fn declared_args(instructions: &[Instruction]) -> Vec<String> {
    instructions
        .iter()
        .filter_map(|i| match &i.command {
            Command::Arg(cmd) => Some(cmd.args.iter().map(|a| a.name.clone())),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The name of a per-platform directory or label (`linux-arm64-v8`).
pub(crate) fn dir_name(platform: &Platform) -> String {
    platform.to_string().replace('/', "-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::ContextSource;

    fn options(platforms: Option<&str>) -> BuildOptions {
        let mut o = BuildOptions::new(ContextSource::Dir(".".into()));
        o.custom_platform = platforms.map(str::to_owned);
        o
    }

    #[test]
    fn a_list_gives_each_platform_once_in_order() {
        let got = target_platforms(&options(Some("linux/arm64, linux/amd64,linux/arm64")))
            .expect("platforms");
        let shown: Vec<String> = got.iter().map(Platform::to_string).collect();
        // kiln-oci normalises arm64 to arm64/v8, as containerd does.
        assert_eq!(shown, ["linux/arm64/v8", "linux/amd64"]);
        assert_eq!(
            target_platforms(&options(None)).expect("host"),
            vec![Platform::host()]
        );
        let err = target_platforms(&options(Some("linux/amd64,,linux/arm64")))
            .expect_err("empty item")
            .to_string();
        assert!(err.contains("empty platform"), "{err}");
    }

    #[test]
    fn tar_path_with_several_platforms_names_the_alternatives() {
        let mut o = options(Some("linux/amd64,linux/arm64"));
        o.tar_path = Some("/out/image.tar".into());
        let platforms = target_platforms(&o).expect("platforms");
        let err = check_outputs(&o, &platforms)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("/out/image.tar"), "{err}");
        assert!(err.contains("--oci-layout-path"), "{err}");
        assert!(err.contains("one platform"), "{err}");
        assert!(check_outputs(&o, &platforms[..1]).is_ok());
    }

    #[test]
    fn a_stage_pinned_to_the_build_platform_has_one_key_for_every_target() {
        let dockerfile = "FROM --platform=$BUILDPLATFORM scratch AS build\nARG TARGETARCH\n\
                          FROM --platform=$BUILDPLATFORM scratch AS tool\nRUN true\n\
                          FROM scratch\nCOPY --from=build / /\nCOPY --from=tool / /\n";
        let parsed = kiln_dockerfile::parse("Dockerfile", dockerfile.as_bytes()).expect("parse");
        let keys = |target: &str| {
            let target: Platform = target.parse().expect("platform");
            let plan = parsed
                .plan(&kiln_dockerfile::model::PlanOptions {
                    target_platform: dockerfile_platform(&target),
                    build_platform: kiln_dockerfile::Platform::host(),
                    ..Default::default()
                })
                .expect("plan");
            let mut keys = BTreeMap::new();
            for stage in &plan.stages {
                let key = StageKey::of(stage, &stage_platform(&target, stage), &keys);
                keys.insert(stage.index, key);
            }
            keys
        };
        let (amd, arm) = (keys("linux/amd64"), keys("linux/arm64"));
        assert_ne!(amd[&0], arm[&0], "the build stage reads TARGETARCH");
        assert_eq!(amd[&1], arm[&1], "the tool stage is the same for both");
        assert_ne!(amd[&2], arm[&2], "the final stages are per platform");
    }
}
