//! kaniko's executor flags, with kaniko's spelling and defaults, parsed into
//! [`ExecutorArgs`]. Every flag kaniko 1.x accepts is accepted here; flags
//! that only tuned kaniko's internals are recorded in
//! [`ExecutorArgs::ignored`] so the caller can note them at debug level.

use super::pflag::{self, Arity, FlagSpec, UsageError};
use std::time::Duration;

/// How a flag's value is stored.
#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Str,
    Int,
    Duration,
    /// Repeatable; every occurrence is kept.
    Multi,
    /// Accepted for compatibility; has no effect in kiln.
    Ignored(Arity),
}

struct Flag {
    name: &'static str,
    short: Option<char>,
    kind: Kind,
}

const fn f(name: &'static str, kind: Kind) -> Flag {
    Flag {
        name,
        short: None,
        kind,
    }
}

const fn s(name: &'static str, short: char, kind: Kind) -> Flag {
    Flag {
        name,
        short: Some(short),
        kind,
    }
}

/// Every executor flag. Deprecated kaniko spellings map onto the same fields.
const FLAGS: &[Flag] = &[
    s("context", 'c', Kind::Str),
    f("context-sub-path", Kind::Str),
    s("dockerfile", 'f', Kind::Str),
    s("destination", 'd', Kind::Multi),
    f("build-arg", Kind::Multi),
    f("target", Kind::Str),
    f("custom-platform", Kind::Str),
    f("customPlatform", Kind::Str),
    f("label", Kind::Multi),
    f("annotation", Kind::Multi),
    f("secret", Kind::Multi),
    f("no-push", Kind::Bool),
    f("tar-path", Kind::Str),
    f("tarPath", Kind::Str),
    f("oci-layout-path", Kind::Str),
    f("digest-file", Kind::Str),
    f("image-name-with-digest-file", Kind::Str),
    f("image-name-tag-with-digest-file", Kind::Str),
    f("image-format", Kind::Str),
    f("compression", Kind::Str),
    f("compression-level", Kind::Int),
    f("snapshot-mode", Kind::Str),
    f("snapshotMode", Kind::Str),
    f("single-snapshot", Kind::Bool),
    f("reproducible", Kind::Bool),
    f("ignore-path", Kind::Multi),
    f("ignore-var-run", Kind::Bool),
    f("whitelist-var-run", Kind::Bool),
    f("kaniko-dir", Kind::Str),
    f("cleanup", Kind::Bool),
    f("skip-unused-stages", Kind::Bool),
    f("isolation", Kind::Str),
    // registries and TLS
    f("insecure", Kind::Bool),
    f("insecure-pull", Kind::Bool),
    f("insecure-registry", Kind::Multi),
    f("skip-tls-verify", Kind::Bool),
    f("skip-tls-verify-pull", Kind::Bool),
    f("skip-tls-verify-registry", Kind::Multi),
    f("registry-certificate", Kind::Multi),
    f("registry-client-cert", Kind::Multi),
    f("registry-mirror", Kind::Multi),
    f("registry-map", Kind::Multi),
    f("skip-default-registry-fallback", Kind::Bool),
    f("push-retry", Kind::Int),
    f("image-download-retry", Kind::Int),
    f("image-fs-extract-retry", Kind::Int),
    f("skip-push-permission-check", Kind::Bool),
    f("push-ignore-immutable-tag-errors", Kind::Bool),
    // cache
    f("cache", Kind::Bool),
    f("cache-repo", Kind::Str),
    f("cache-dir", Kind::Str),
    f("cache-ttl", Kind::Duration),
    f("cache-run-layers", Kind::Bool),
    f("cache-copy-layers", Kind::Bool),
    f("no-push-cache", Kind::Bool),
    // logging
    s("verbosity", 'v', Kind::Str),
    f("log-format", Kind::Str),
    f("log-timestamp", Kind::Bool),
    // kaniko internals: accepted, no effect
    f("force", Kind::Ignored(Arity::Bool)),
    f("use-new-run", Kind::Ignored(Arity::Bool)),
    f("compressed-caching", Kind::Ignored(Arity::Bool)),
    f("force-build-metadata", Kind::Ignored(Arity::Bool)),
    f("git", Kind::Ignored(Arity::Value)),
    s("bucket", 'b', Kind::Ignored(Arity::Value)),
];

/// The executor's command line, with kaniko's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorArgs {
    pub context: String,
    pub context_sub_path: Option<String>,
    pub dockerfile: String,
    pub destinations: Vec<String>,
    /// `KEY=VALUE` or bare `KEY` (the caller takes it from the environment).
    pub build_args: Vec<String>,
    pub target: Option<String>,
    pub custom_platform: Option<String>,
    pub labels: Vec<String>,
    pub annotations: Vec<String>,
    /// `id=ID,src=PATH` or `id=ID,env=VAR`.
    pub secrets: Vec<String>,
    pub no_push: bool,
    pub tar_path: Option<String>,
    pub oci_layout_path: Option<String>,
    pub digest_file: Option<String>,
    pub image_name_with_digest_file: Option<String>,
    pub image_name_tag_with_digest_file: Option<String>,
    /// `oci` or `docker`; `None` follows the base image.
    pub image_format: Option<String>,
    pub compression: Option<String>,
    /// kaniko's default is -1: the compressor's own default.
    pub compression_level: i64,
    pub snapshot_mode: String,
    pub single_snapshot: bool,
    pub reproducible: bool,
    pub ignore_paths: Vec<String>,
    pub ignore_var_run: bool,
    pub kaniko_dir: Option<String>,
    pub cleanup: bool,
    pub skip_unused_stages: bool,
    pub isolation: String,
    pub insecure: bool,
    pub insecure_pull: bool,
    pub insecure_registries: Vec<String>,
    pub skip_tls_verify: bool,
    pub skip_tls_verify_pull: bool,
    pub skip_tls_verify_registries: Vec<String>,
    pub registry_certificates: Vec<String>,
    pub registry_client_certs: Vec<String>,
    pub registry_mirrors: Vec<String>,
    pub registry_maps: Vec<String>,
    pub skip_default_registry_fallback: bool,
    pub push_retry: i64,
    pub image_download_retry: i64,
    pub image_fs_extract_retry: i64,
    pub skip_push_permission_check: bool,
    pub push_ignore_immutable_tag_errors: bool,
    pub cache: bool,
    pub cache_repo: Option<String>,
    pub cache_dir: String,
    pub cache_ttl: Duration,
    pub cache_run_layers: bool,
    pub cache_copy_layers: bool,
    pub no_push_cache: bool,
    pub verbosity: String,
    pub log_format: String,
    pub log_timestamp: bool,
    /// Flags accepted for compatibility that change nothing, as given.
    pub ignored: Vec<String>,
}

impl Default for ExecutorArgs {
    fn default() -> Self {
        ExecutorArgs {
            context: "/workspace/".into(),
            context_sub_path: None,
            dockerfile: "Dockerfile".into(),
            destinations: vec![],
            build_args: vec![],
            target: None,
            custom_platform: None,
            labels: vec![],
            annotations: vec![],
            secrets: vec![],
            no_push: false,
            tar_path: None,
            oci_layout_path: None,
            digest_file: None,
            image_name_with_digest_file: None,
            image_name_tag_with_digest_file: None,
            image_format: None,
            compression: None,
            compression_level: -1,
            snapshot_mode: "full".into(),
            single_snapshot: false,
            reproducible: false,
            ignore_paths: vec![],
            ignore_var_run: true,
            kaniko_dir: None,
            cleanup: false,
            skip_unused_stages: false,
            isolation: "auto".into(),
            insecure: false,
            insecure_pull: false,
            insecure_registries: vec![],
            skip_tls_verify: false,
            skip_tls_verify_pull: false,
            skip_tls_verify_registries: vec![],
            registry_certificates: vec![],
            registry_client_certs: vec![],
            registry_mirrors: vec![],
            registry_maps: vec![],
            skip_default_registry_fallback: false,
            push_retry: 0,
            image_download_retry: 0,
            image_fs_extract_retry: 0,
            skip_push_permission_check: false,
            push_ignore_immutable_tag_errors: false,
            cache: false,
            cache_repo: None,
            cache_dir: "/cache".into(),
            cache_ttl: Duration::from_secs(336 * 3600),
            cache_run_layers: true,
            cache_copy_layers: false,
            no_push_cache: false,
            verbosity: "info".into(),
            log_format: "color".into(),
            log_timestamp: false,
            ignored: vec![],
        }
    }
}

/// Parses the executor's arguments (without the program name).
pub fn parse(args: &[String]) -> Result<ExecutorArgs, UsageError> {
    let specs: Vec<FlagSpec> = FLAGS
        .iter()
        .map(|flag| FlagSpec {
            name: flag.name,
            short: flag.short,
            arity: match flag.kind {
                Kind::Bool => Arity::Bool,
                Kind::Ignored(arity) => arity,
                _ => Arity::Value,
            },
        })
        .collect();
    let parsed = pflag::parse(&specs, args)?;
    if let Some(extra) = parsed.positional.first() {
        return Err(UsageError(format!(
            "unexpected argument {extra:?}: the executor takes only flags (did you mean --context {extra}?)"
        )));
    }
    let mut out = ExecutorArgs::default();
    for occurrence in parsed.flags {
        apply(&mut out, occurrence.name, occurrence.value)?;
    }
    Ok(out)
}

fn apply(out: &mut ExecutorArgs, name: &'static str, value: String) -> Result<(), UsageError> {
    let flag = FLAGS
        .iter()
        .find(|f| f.name == name)
        .expect("pflag only returns known names");
    if let Kind::Ignored(_) = flag.kind {
        out.ignored.push(format!("--{name}={value}"));
        return Ok(());
    }
    let boolean = || pflag::parse_bool(name, &value);
    let int = || pflag::parse_int(name, &value);
    let some = || Some(value.clone());
    match name {
        "context" => out.context = value,
        "context-sub-path" => out.context_sub_path = some(),
        "dockerfile" => out.dockerfile = value,
        "destination" => out.destinations.push(value),
        "build-arg" => out.build_args.push(value),
        "target" => out.target = some(),
        "custom-platform" | "customPlatform" => out.custom_platform = some(),
        "label" => out.labels.push(value),
        "annotation" => out.annotations.push(value),
        "secret" => out.secrets.push(value),
        "no-push" => out.no_push = boolean()?,
        "tar-path" | "tarPath" => out.tar_path = some(),
        "oci-layout-path" => out.oci_layout_path = some(),
        "digest-file" => out.digest_file = some(),
        "image-name-with-digest-file" => out.image_name_with_digest_file = some(),
        "image-name-tag-with-digest-file" => out.image_name_tag_with_digest_file = some(),
        "image-format" => {
            if value != "oci" && value != "docker" {
                return Err(UsageError(format!(
                    "invalid argument {value:?} for \"--image-format\" flag: must be one of oci, docker"
                )));
            }
            out.image_format = some();
        }
        "compression" => {
            if value != "gzip" && value != "zstd" {
                return Err(UsageError(format!(
                    "invalid argument {value:?} for \"--compression\" flag: must be one of gzip, zstd"
                )));
            }
            out.compression = some();
        }
        "compression-level" => out.compression_level = int()?,
        "snapshot-mode" | "snapshotMode" => {
            if !matches!(value.as_str(), "full" | "redo" | "time") {
                return Err(UsageError(format!(
                    "invalid argument {value:?} for \"--snapshot-mode\" flag: must be one of full, redo, time"
                )));
            }
            out.snapshot_mode = value;
        }
        "single-snapshot" => out.single_snapshot = boolean()?,
        "reproducible" => out.reproducible = boolean()?,
        "ignore-path" => out.ignore_paths.push(value),
        "ignore-var-run" | "whitelist-var-run" => out.ignore_var_run = boolean()?,
        "kaniko-dir" => out.kaniko_dir = some(),
        "cleanup" => out.cleanup = boolean()?,
        "skip-unused-stages" => out.skip_unused_stages = boolean()?,
        "isolation" => {
            if !matches!(value.as_str(), "auto" | "chroot" | "in-place") {
                return Err(UsageError(format!(
                    "invalid argument {value:?} for \"--isolation\" flag: must be one of auto, chroot, in-place"
                )));
            }
            out.isolation = value;
        }
        "insecure" => out.insecure = boolean()?,
        "insecure-pull" => out.insecure_pull = boolean()?,
        "insecure-registry" => out.insecure_registries.push(value),
        "skip-tls-verify" => out.skip_tls_verify = boolean()?,
        "skip-tls-verify-pull" => out.skip_tls_verify_pull = boolean()?,
        "skip-tls-verify-registry" => out.skip_tls_verify_registries.push(value),
        "registry-certificate" => out.registry_certificates.push(value),
        "registry-client-cert" => out.registry_client_certs.push(value),
        "registry-mirror" => out.registry_mirrors.push(value),
        "registry-map" => out.registry_maps.push(value),
        "skip-default-registry-fallback" => out.skip_default_registry_fallback = boolean()?,
        "push-retry" => out.push_retry = int()?,
        "image-download-retry" => out.image_download_retry = int()?,
        "image-fs-extract-retry" => out.image_fs_extract_retry = int()?,
        "skip-push-permission-check" => out.skip_push_permission_check = boolean()?,
        "push-ignore-immutable-tag-errors" => out.push_ignore_immutable_tag_errors = boolean()?,
        "cache" => out.cache = boolean()?,
        "cache-repo" => out.cache_repo = some(),
        "cache-dir" => out.cache_dir = value,
        "cache-ttl" => out.cache_ttl = pflag::parse_duration(name, &value)?,
        "cache-run-layers" => out.cache_run_layers = boolean()?,
        "cache-copy-layers" => out.cache_copy_layers = boolean()?,
        "no-push-cache" => out.no_push_cache = boolean()?,
        "verbosity" => {
            if !matches!(
                value.as_str(),
                "trace" | "debug" | "info" | "warn" | "warning" | "error" | "fatal" | "panic"
            ) {
                return Err(UsageError(format!(
                    "invalid argument {value:?} for \"--verbosity\" flag: must be one of trace, debug, info, warn, error, fatal, panic"
                )));
            }
            out.verbosity = value;
        }
        "log-format" => {
            if !matches!(value.as_str(), "text" | "color" | "json") {
                return Err(UsageError(format!(
                    "invalid argument {value:?} for \"--log-format\" flag: must be one of text, color, json"
                )));
            }
            out.log_format = value;
        }
        "log-timestamp" => out.log_timestamp = boolean()?,
        other => unreachable!("flag --{other} is in the table but not handled"),
    }
    Ok(())
}

/// Names of every accepted flag, for docs and tests.
#[cfg(test)]
fn all_names() -> impl Iterator<Item = &'static str> {
    FLAGS.iter().map(|f| f.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<ExecutorArgs, UsageError> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn gitlab_job_line() {
        let a = parse_str(
            "--context /builds/g/p --dockerfile /builds/g/p/Dockerfile --destination reg.example:5000/g/p:v1",
        )
        .unwrap();
        assert_eq!(a.context, "/builds/g/p");
        assert_eq!(a.dockerfile, "/builds/g/p/Dockerfile");
        assert_eq!(a.destinations, vec!["reg.example:5000/g/p:v1"]);
        assert!(!a.no_push);
        assert!(a.ignored.is_empty());
    }

    #[test]
    fn kaniko_defaults() {
        let a = parse_str("").unwrap();
        assert_eq!(a.context, "/workspace/");
        assert_eq!(a.dockerfile, "Dockerfile");
        assert_eq!(a.snapshot_mode, "full");
        assert_eq!(a.cache_dir, "/cache");
        assert_eq!(a.cache_ttl, Duration::from_secs(1_209_600));
        assert!(a.cache_run_layers && !a.cache_copy_layers && a.ignore_var_run);
        assert_eq!(a.compression_level, -1);
        assert_eq!(a.log_format, "color");
    }

    #[test]
    fn repeated_short_bool_and_deprecated_forms() {
        let a = parse_str(
            "-c dir -f Df -d a:1 -d a:2 --build-arg A=1 --build-arg B --cache=true \
             --ignore-var-run=false --snapshotMode=redo --tarPath /t.tar -v debug --force --use-new-run",
        )
        .unwrap();
        assert_eq!(a.context, "dir");
        assert_eq!(a.dockerfile, "Df");
        assert_eq!(a.destinations, vec!["a:1", "a:2"]);
        assert_eq!(a.build_args, vec!["A=1", "B"]);
        assert!(a.cache);
        assert!(!a.ignore_var_run);
        assert_eq!(a.snapshot_mode, "redo");
        assert_eq!(a.tar_path.as_deref(), Some("/t.tar"));
        assert_eq!(a.verbosity, "debug");
        assert_eq!(a.ignored, vec!["--force=true", "--use-new-run=true"]);
    }

    #[test]
    fn bad_values_and_unknown_flags_name_the_flag() {
        assert_eq!(
            parse_str("--frobnicate").unwrap_err().0,
            "unknown flag: --frobnicate"
        );
        assert!(
            parse_str("--compression=lz4")
                .unwrap_err()
                .0
                .contains("--compression")
        );
        assert_eq!(
            parse_str("--image-format=v2s2").unwrap_err().0,
            "invalid argument \"v2s2\" for \"--image-format\" flag: must be one of oci, docker"
        );
        assert!(
            parse_str("--cache=maybe")
                .unwrap_err()
                .0
                .contains("--cache")
        );
        assert!(
            parse_str("--push-retry=x")
                .unwrap_err()
                .0
                .contains("--push-retry")
        );
        assert!(
            parse_str("--cache-ttl=2w")
                .unwrap_err()
                .0
                .contains("--cache-ttl")
        );
        assert!(parse_str("stray").unwrap_err().0.contains("stray"));
    }

    #[test]
    fn every_flag_in_the_table_is_handled() {
        for name in all_names() {
            let flag = FLAGS.iter().find(|f| f.name == name).unwrap();
            let value = match flag.kind {
                Kind::Bool | Kind::Ignored(Arity::Bool) => "true",
                Kind::Int => "1",
                Kind::Duration => "1h",
                _ => match name {
                    "compression" => "zstd",
                    "image-format" => "docker",
                    "snapshot-mode" | "snapshotMode" => "time",
                    "isolation" => "chroot",
                    "verbosity" => "warn",
                    "log-format" => "json",
                    _ => "v",
                },
            };
            parse(&[format!("--{name}={value}")]).unwrap_or_else(|e| panic!("--{name}: {e}"));
        }
    }
}
