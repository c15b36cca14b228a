//! `kiln manifest` flags: `create`'s own (`-d/--destination`,
//! `--oci-layout-path`) and the executor's registry and logging flags, which
//! are rows of the executor's table so that both commands parse and describe
//! them identically.

use super::executor_flags::{self, LOGGING, OUTPUT, REGISTRIES};
use super::flag::{Flag, Kind, valued};
use super::help;
use super::pflag::FlagSpec;

/// `create`'s own flags.
pub const CREATE: &[Flag] = &[
    valued(
        "destination",
        Kind::Multi,
        "IMAGE",
        OUTPUT,
        "push the index to this reference, after every manifest it names is there",
    )
    .short('d'),
    valued(
        "oci-layout-path",
        Kind::Str,
        "DIR",
        OUTPUT,
        "also (or only) write the index, its manifests and blobs as an OCI image layout",
    ),
];

/// Executor flags both subcommands take, passed to the executor's parser.
pub const SHARED: &[&[&str]] = &[
    executor_flags::REGISTRY_CONNECTION,
    &["push-retry", "image-download-retry"],
    executor_flags::LOGGING_FLAGS,
];

/// The shared executor rows.
pub fn shared() -> impl Iterator<Item = &'static Flag> + Clone {
    executor_flags::borrowed(SHARED)
}

/// Every flag `kiln manifest create` takes (`inspect` takes the shared ones).
pub fn flags() -> impl Iterator<Item = &'static Flag> + Clone {
    CREATE.iter().chain(shared())
}

/// What the command-line splitter needs for `create` (`true`) or `inspect`.
pub fn specs(create: bool) -> Vec<FlagSpec> {
    let own = if create { CREATE } else { &[] };
    own.iter().chain(shared()).map(Flag::spec).collect()
}

/// The `--help` page of `kiln manifest`.
pub fn help() -> String {
    help::render(&help::Page {
        usage: &[
            "kiln manifest create -d IMAGE [-d IMAGE...] [--oci-layout-path DIR] [flags] SRC..."
                .to_string(),
            "kiln manifest inspect [flags] IMAGE".to_string(),
        ],
        about: "create: one image index (a Docker manifest list when every source is \
                Docker's) from single-platform images pushed by separate jobs, each \
                platform read from its config; it prints the index digest. inspect: prints \
                a manifest or index as the registry serves it.",
        sections: help::sections(&[OUTPUT, REGISTRIES, LOGGING], flags()),
        footer: "The registry flags behave as the executor's (kiln build --help).",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::executor_flags::GROUPS;

    #[test]
    fn every_row_has_a_description_a_group_and_a_placeholder() {
        let problems = super::super::flag::table_problems(flags(), GROUPS);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn shared_flags_are_executor_flags_not_create_flags() {
        for flag in shared() {
            let name = flag.name;
            assert!(executor_flags::flag(name).is_some(), "--{name}");
            assert!(CREATE.iter().all(|own| own.name != name), "--{name} twice");
        }
    }
}
