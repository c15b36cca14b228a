//! `kiln parse` flags: the output format, and the build inputs a plan is
//! resolved for.

use super::flag::{Flag, Kind, boolean, valued};
use super::help;
use super::pflag::FlagSpec;

/// Help groups.
pub const OUTPUT: &str = "Output";
pub const PLAN: &str = "Plan (with --plan)";

/// Every `kiln parse` flag.
pub const FLAGS: &[Flag] = &[
    valued(
        "format",
        Kind::Str,
        "buildkit|json|text",
        OUTPUT,
        "buildkit: BuildKit's parse dump; json: the typed model (or the plan); text: the plan",
    )
    .default_note("buildkit, text with --plan"),
    boolean(
        "plan",
        PLAN,
        "print the stages the build needs, in build order",
    ),
    valued(
        "build-arg",
        Kind::Multi,
        "KEY[=VALUE]",
        PLAN,
        "build argument; a bare KEY takes its value from the environment",
    ),
    valued("target", Kind::Str, "STAGE", PLAN, "plan this stage").default_note("the last stage"),
    valued(
        "platform",
        Kind::Str,
        "OS/ARCH[/VARIANT]",
        PLAN,
        "platform to plan for",
    )
    .default_note("this machine's"),
];

/// What the command-line splitter needs.
pub fn specs() -> Vec<FlagSpec> {
    FLAGS.iter().map(Flag::spec).collect()
}

/// The `--help` page of `kiln parse`.
pub fn help() -> String {
    help::render(&help::Page {
        usage: &[
            "kiln parse [--format buildkit|json] DOCKERFILE".to_string(),
            "kiln parse --plan [--format text|json] [--build-arg K[=V]]... [--target T] \
             [--platform P] DOCKERFILE"
                .to_string(),
        ],
        about: "Prints a Dockerfile's parse tree or its build plan; if the file has errors, \
                prints every one as FILE:LINE:COL: message and exits 1. DOCKERFILE - reads \
                standard input.",
        sections: help::sections(&[OUTPUT, PLAN], FLAGS),
        footer: "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_description_a_group_and_a_placeholder() {
        let problems = super::super::flag::table_problems(FLAGS, &[OUTPUT, PLAN]);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
