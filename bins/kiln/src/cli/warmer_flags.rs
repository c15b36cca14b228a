//! kaniko's warmer flags: the warmer's own (`-i/--image`, `-d/--dockerfile`,
//! `-c/--cache-dir`, `-f/--force`, `--customPlatform`) and the executor
//! flags it shares, which are rows of the executor's table so that both
//! commands parse and describe them identically.

use super::executor_flags::{self, BUILD_INPUT, LOGGING, REGISTRIES};
use super::flag::{Flag, Kind, alias, boolean, valued};
use super::help;
use super::pflag::FlagSpec;

/// The warmer's own help group, titled as its section of docs/kaniko-compat.md.
pub const WARMER: &str = "kiln warm (kaniko's warmer)";

/// Where images go without `--cache-dir`.
pub const DEFAULT_CACHE_DIR: &str = "/cache";

/// The warmer's own flags.
pub const OWN: &[Flag] = &[
    valued("image", Kind::Multi, "IMAGE", WARMER, "an image to cache").short('i'),
    valued(
        "dockerfile",
        Kind::Str,
        "PATH",
        WARMER,
        "cache the base images of the stages this Dockerfile's build needs",
    )
    .short('d'),
    valued(
        "cache-dir",
        Kind::Str,
        "DIR",
        WARMER,
        "the cache directory (an OCI layout)",
    )
    .short('c')
    .default(DEFAULT_CACHE_DIR),
    boolean(
        "force",
        WARMER,
        "fetch images again even when already cached",
    )
    .short('f'),
    valued(
        "custom-platform",
        Kind::Multi,
        "OS/ARCH[/VARIANT][,...]",
        WARMER,
        "platform(s) whose images to cache, comma-separated or repeated",
    )
    .default_note("this machine's"),
    alias("customPlatform", "custom-platform", Kind::Multi, WARMER),
];

/// Executor flags the warmer also takes, passed to the executor's parser.
pub const SHARED: &[&[&str]] = &[
    &["build-arg", "target"],
    executor_flags::REGISTRY_CONNECTION,
    &["image-download-retry"],
    executor_flags::LOGGING_FLAGS,
];

/// Every flag the warmer takes: its own, then the shared executor rows.
pub fn flags() -> impl Iterator<Item = &'static Flag> + Clone {
    OWN.iter().chain(executor_flags::borrowed(SHARED))
}

/// What the command-line splitter needs.
pub fn specs() -> Vec<FlagSpec> {
    flags().map(Flag::spec).collect()
}

/// The warmer's `--help` page; `program` is how it was called
/// (`kiln warm`, `warmer`).
pub fn help(program: &str) -> String {
    help::render(&help::Page {
        usage: &[
            format!("{program} -i IMAGE [-i IMAGE...] [flags]"),
            format!("{program} -d Dockerfile [--build-arg K=V...] [--target STAGE] [flags]"),
        ],
        about: "Fills --cache-dir with base images, so that later builds with --cache \
                read them from disk instead of the registry.",
        sections: help::sections(&[WARMER, BUILD_INPUT, REGISTRIES, LOGGING], flags()),
        footer: "The shared flags behave as the executor's (kiln build --help); \
                 docs/kaniko-compat.md lists each flag's kaniko status.",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::executor_flags::GROUPS;

    #[test]
    fn every_row_has_a_description_a_group_and_a_placeholder() {
        let groups: Vec<&str> = std::iter::once(WARMER)
            .chain(GROUPS.iter().copied())
            .collect();
        let problems = super::super::flag::table_problems(flags(), &groups);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn shared_flags_are_executor_flags_outside_the_warmers_group() {
        for flag in executor_flags::borrowed(SHARED) {
            let name = flag.name;
            assert_ne!(flag.group, WARMER, "--{name}");
            assert!(OWN.iter().all(|own| own.name != name), "--{name} twice");
        }
    }
}
