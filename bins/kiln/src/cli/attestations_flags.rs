//! `kiln attestations` flags: its own `--show` and the executor's registry
//! and logging flags (rows of the executor's table, so both commands parse
//! and describe them identically).

use super::executor_flags::{self, LOGGING, OUTPUT, REGISTRIES};
use super::flag::{Flag, Kind, valued};
use super::help;
use super::pflag::FlagSpec;

/// The command's own flags.
pub const OWN: &[Flag] = &[valued(
    "show",
    Kind::Str,
    "sbom|provenance|DIGEST",
    OUTPUT,
    "print one attestation's document (the newest of that kind, or the one whose manifest has this digest)",
)];

/// Executor flags it takes, passed to the executor's parser.
pub const SHARED: &[&[&str]] = &[
    executor_flags::REGISTRY_CONNECTION,
    &["image-download-retry"],
    executor_flags::LOGGING_FLAGS,
];

/// The shared executor rows.
pub fn shared() -> impl Iterator<Item = &'static Flag> + Clone {
    executor_flags::borrowed(SHARED)
}

/// Every flag `kiln attestations` takes.
pub fn flags() -> impl Iterator<Item = &'static Flag> + Clone {
    OWN.iter().chain(shared())
}

/// What the command-line splitter needs.
pub fn specs() -> Vec<FlagSpec> {
    flags().map(Flag::spec).collect()
}

/// The `--help` page of `kiln attestations`.
pub fn help() -> String {
    help::render(&help::Page {
        usage: &["kiln attestations [--show sbom|provenance|DIGEST] [flags] IMAGE".to_string()],
        about: "Lists the attestations attached to IMAGE (its OCI 1.1 referrers, from the \
                registry's referrers API or the referrers tag schema): kind, artifact type, \
                manifest digest and size. With --show, prints one attestation's document \
                (SPDX JSON or an in-toto statement), checked against its digest and subject.",
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
    fn shared_flags_are_executor_flags_not_own_flags() {
        for flag in shared() {
            let name = flag.name;
            assert!(executor_flags::flag(name).is_some(), "--{name}");
            assert!(OWN.iter().all(|own| own.name != name), "--{name} twice");
        }
    }
}
