//! kaniko's executor flags, with kaniko's spelling and defaults, parsed into
//! [`ExecutorArgs`]. Every flag kaniko 1.x accepts is accepted here; flags
//! that only tuned kaniko's internals are recorded in
//! [`ExecutorArgs::ignored`] so the caller can note them at debug level.
//!
//! [`FLAGS`] is also the source of `kiln build --help` ([`help()`]): each row
//! carries its group (a section of docs/kaniko-compat.md), placeholder,
//! default and description, and tests hold the rows, the page and the doc
//! to each other.

use super::flag::{Flag, Kind, alias, boolean, valued};
use super::help;
use super::pflag::{self, Arity, FlagSpec, UsageError};
use std::time::Duration;

/// Help groups, titled as the sections of docs/kaniko-compat.md.
pub const BUILD_INPUT: &str = "Build input";
pub const OUTPUT: &str = "Output";
pub const REGISTRIES: &str = "Registries and TLS";
pub const CACHE: &str = "Cache";
pub const LOGGING: &str = "Logging";
pub const IGNORED: &str = "Accepted, no effect";

/// The groups in the order `--help` shows them.
pub const GROUPS: &[&str] = &[BUILD_INPUT, OUTPUT, REGISTRIES, CACHE, LOGGING, IGNORED];

const NO_EFFECT_BOOL: Kind = Kind::Ignored(Arity::Bool);
const NO_EFFECT_VALUE: Kind = Kind::Ignored(Arity::Value);

/// Every executor flag, with what `--help` says about it. Deprecated kaniko
/// spellings map onto the same fields.
pub const FLAGS: &[Flag] = &[
    valued(
        "context",
        Kind::Str,
        "PATH",
        BUILD_INPUT,
        "build context: a directory, dir://PATH, tar://PATH (maybe compressed), tar://stdin, git://HOST/PATH[#REF[#COMMIT]], https://HOST/PATH.git[#REF[#COMMIT]] or an https:// tar archive",
    )
    .short('c')
    .default("/workspace/"),
    valued(
        "context-sub-path",
        Kind::Str,
        "PATH",
        BUILD_INPUT,
        "build from this directory inside the context",
    ),
    valued(
        "git",
        Kind::Multi,
        "KEY=VALUE",
        BUILD_INPUT,
        "git context options: branch=, single-branch=, recurse-submodules=, insecure-skip-tls= (repeat, or comma-separated)",
    ),
    valued(
        "dockerfile",
        Kind::Str,
        "PATH",
        BUILD_INPUT,
        "the Dockerfile: a path (as given, else inside the context) or an http(s) URL",
    )
    .short('f')
    .default("Dockerfile"),
    valued(
        "build-arg",
        Kind::Multi,
        "KEY[=VALUE]",
        BUILD_INPUT,
        "build argument; a bare KEY takes its value from the environment",
    ),
    valued(
        "target",
        Kind::Str,
        "STAGE",
        BUILD_INPUT,
        "build this stage and only the stages it needs",
    )
    .default_note("the last stage"),
    valued(
        "custom-platform",
        Kind::Multi,
        "OS/ARCH[/VARIANT][,...]",
        BUILD_INPUT,
        "platform(s) to build for, comma-separated or repeated; several make an image index",
    )
    .default_note("this machine's"),
    alias("customPlatform", "custom-platform", Kind::Multi, BUILD_INPUT),
    alias("platform", "custom-platform", Kind::Multi, BUILD_INPUT),
    valued(
        "jobs",
        Kind::Int,
        "N",
        BUILD_INPUT,
        "build at most N stages (of any platform) at once; stages that do not depend on each other run in parallel",
    )
    .default_note("the number of CPUs"),
    valued(
        "emulator",
        Kind::Multi,
        "PATH",
        BUILD_INPUT,
        "a qemu-<arch>-static emulator kiln registers in its own user namespace for RUN of a foreign platform",
    )
    .default_note("/kaniko/emulators/qemu-<arch>-static"),
    boolean(
        "skip-unused-stages",
        BUILD_INPUT,
        "build only the stages the target needs (kiln always does)",
    ),
    valued(
        "secret",
        Kind::Multi,
        "SPEC",
        BUILD_INPUT,
        "id=ID,src=PATH or id=ID,env=VAR: a secret for RUN --mount=type=secret, never stored",
    ),
    valued(
        "destination",
        Kind::Multi,
        "IMAGE",
        OUTPUT,
        "push the image to this reference; required unless --no-push",
    )
    .short('d'),
    boolean(
        "no-push",
        OUTPUT,
        "build without pushing (also KANIKO_NO_PUSH=true)",
    ),
    valued(
        "tar-path",
        Kind::Str,
        "PATH",
        OUTPUT,
        "also write the image as a docker save archive",
    ),
    alias("tarPath", "tar-path", Kind::Str, OUTPUT),
    valued(
        "oci-layout-path",
        Kind::Str,
        "DIR",
        OUTPUT,
        "also write the image as an OCI image layout",
    ),
    valued(
        "digest-file",
        Kind::Str,
        "PATH",
        OUTPUT,
        "write the image's manifest digest to this file",
    ),
    valued(
        "image-name-with-digest-file",
        Kind::Str,
        "PATH",
        OUTPUT,
        "write each destination as NAME@DIGEST to this file",
    ),
    valued(
        "image-name-tag-with-digest-file",
        Kind::Str,
        "PATH",
        OUTPUT,
        "write each destination as NAME:TAG@DIGEST to this file",
    ),
    valued(
        "dotenv-report",
        Kind::Str,
        "PATH",
        OUTPUT,
        "after a push, write IMAGE_DIGEST, IMAGE_REF, IMAGE_TAGS for GitLab's dotenv report",
    ),
    boolean(
        "ci-labels",
        OUTPUT,
        "add org.opencontainers.image.* labels and annotations from GitLab CI's variables",
    ),
    boolean(
        "sbom",
        OUTPUT,
        "attach an SPDX 2.3 SBOM (OS packages, base images) as an OCI 1.1 artifact",
    ),
    boolean(
        "provenance",
        OUTPUT,
        "attach a SLSA provenance v1 in-toto statement as an OCI 1.1 artifact",
    ),
    valued(
        "label",
        Kind::Multi,
        "KEY=VALUE",
        OUTPUT,
        "add a label to the image config",
    ),
    valued(
        "annotation",
        Kind::Multi,
        "KEY=VALUE",
        OUTPUT,
        "add an annotation to the manifest",
    ),
    valued(
        "image-format",
        Kind::Str,
        "oci|docker",
        OUTPUT,
        "manifest format of the pushed image (buildah's --format); the OCI layout is always OCI",
    )
    .default_note("the base's"),
    valued(
        "compression",
        Kind::Str,
        "gzip|zstd",
        OUTPUT,
        "compression of the layers kiln writes",
    )
    .default_note("gzip"),
    valued(
        "compression-level",
        Kind::Int,
        "N",
        OUTPUT,
        "compression level; -1 is the codec's default",
    )
    .default("-1"),
    valued(
        "snapshot-mode",
        Kind::Str,
        "full|redo|time",
        OUTPUT,
        "how changed files are found after RUN",
    )
    .default("full"),
    alias("snapshotMode", "snapshot-mode", Kind::Str, OUTPUT),
    boolean(
        "single-snapshot",
        OUTPUT,
        "one layer per stage instead of one per step",
    ),
    boolean(
        "reproducible",
        OUTPUT,
        "strip timestamps from layers, config and history (SOURCE_DATE_EPOCH too)",
    ),
    valued(
        "ignore-path",
        Kind::Multi,
        "PATH",
        OUTPUT,
        "leave this path out of snapshots",
    ),
    boolean("ignore-var-run", OUTPUT, "leave /var/run out of snapshots").default("true"),
    alias("whitelist-var-run", "ignore-var-run", Kind::Bool, OUTPUT),
    valued(
        "kaniko-dir",
        Kind::Str,
        "DIR",
        OUTPUT,
        "kiln's work directory",
    )
    .default_note("$KANIKO_DIR, else /kaniko"),
    boolean(
        "cleanup",
        OUTPUT,
        "clean the filesystem up after an in-place build",
    ),
    valued(
        "isolation",
        Kind::Str,
        "auto|chroot|in-place",
        OUTPUT,
        "how RUN is isolated: a private root per stage, or kaniko's in-place model",
    )
    .default("auto"),
    boolean("insecure", REGISTRIES, "push over plain HTTP"),
    boolean("insecure-pull", REGISTRIES, "pull over plain HTTP"),
    valued(
        "insecure-registry",
        Kind::Multi,
        "REGISTRY",
        REGISTRIES,
        "use plain HTTP with this registry",
    ),
    boolean(
        "skip-tls-verify",
        REGISTRIES,
        "do not verify TLS certificates when pushing",
    ),
    boolean(
        "skip-tls-verify-pull",
        REGISTRIES,
        "do not verify TLS certificates when pulling",
    ),
    valued(
        "skip-tls-verify-registry",
        Kind::Multi,
        "REGISTRY",
        REGISTRIES,
        "do not verify this registry's TLS certificate",
    ),
    valued(
        "registry-certificate",
        Kind::Multi,
        "REGISTRY=PATH",
        REGISTRIES,
        "trust this CA certificate for the registry",
    ),
    valued(
        "registry-client-cert",
        Kind::Multi,
        "REGISTRY=CERT,KEY",
        REGISTRIES,
        "client certificate and key for the registry",
    ),
    valued(
        "registry-mirror",
        Kind::Multi,
        "HOST[/PATH]",
        REGISTRIES,
        "pull Docker Hub images through this mirror (also KANIKO_REGISTRY_MIRROR)",
    ),
    valued(
        "registry-map",
        Kind::Multi,
        "ORIGINAL=REPLACEMENT[;...]",
        REGISTRIES,
        "pull images of a registry from another (also KANIKO_REGISTRY_MAP)",
    ),
    boolean(
        "skip-default-registry-fallback",
        REGISTRIES,
        "fail instead of falling back to the original registry when mirrors fail",
    ),
    valued(
        "push-retry",
        Kind::Int,
        "N",
        REGISTRIES,
        "retry a failed push N times",
    )
    .default("0"),
    valued(
        "image-download-retry",
        Kind::Int,
        "N",
        REGISTRIES,
        "retry a failed base image download N times",
    )
    .default("0"),
    valued(
        "registry-timeout",
        Kind::Duration,
        "DURATION",
        REGISTRIES,
        "fail a registry request (and retry it, see the -retry flags) when no byte moves \
         on its connection for this long (Go syntax: 30s, 2m)",
    )
    .default_note("2m, or KILN_REGISTRY_TIMEOUT"),
    valued(
        "image-fs-extract-retry",
        Kind::Int,
        "N",
        REGISTRIES,
        "retry unpacking a base layer N times, after 1 s, 2 s, 4 s...",
    )
    .default("0"),
    boolean(
        "skip-push-permission-check",
        REGISTRIES,
        "do not check push access before building",
    ),
    boolean(
        "push-ignore-immutable-tag-errors",
        REGISTRIES,
        "treat a push refused because the tag is immutable as a success",
    ),
    boolean(
        "cache",
        CACHE,
        "look RUN (and COPY) steps up in the cache and store misses",
    ),
    valued(
        "cache-repo",
        Kind::Str,
        "REPO|oci:DIR",
        CACHE,
        "repository (or local OCI layout) holding cached layers",
    )
    .default_note("the first destination + /cache"),
    valued(
        "cache-dir",
        Kind::Str,
        "DIR",
        CACHE,
        "base images warmed by kiln warm, read with --cache",
    )
    .default("/cache"),
    valued(
        "cache-ttl",
        Kind::Duration,
        "DURATION",
        CACHE,
        "cache entries older than this are misses (Go syntax: 6h, 1h30m)",
    )
    .default("336h"),
    boolean("cache-run-layers", CACHE, "cache RUN steps").default("true"),
    boolean("cache-copy-layers", CACHE, "cache COPY and ADD steps"),
    boolean(
        "no-push-cache",
        CACHE,
        "look the cache up, never store in it",
    ),
    valued(
        "verbosity",
        Kind::Str,
        "LEVEL",
        LOGGING,
        "trace, debug, info, warn, error, fatal or panic",
    )
    .short('v')
    .default("info"),
    valued(
        "log-format",
        Kind::Str,
        "text|color|json",
        LOGGING,
        "log line format; json is one object per line",
    )
    .default("color"),
    boolean(
        "log-timestamp",
        LOGGING,
        "prefix log lines with a timestamp",
    ),
    valued(
        "force",
        NO_EFFECT_BOOL,
        "",
        IGNORED,
        "kiln builds in a private root, or refuses in-place outside a disposable container",
    ),
    valued(
        "use-new-run",
        NO_EFFECT_BOOL,
        "",
        IGNORED,
        "kiln's snapshots already hash only what changed",
    ),
    valued(
        "compressed-caching",
        NO_EFFECT_BOOL,
        "",
        IGNORED,
        "kiln streams layers; nothing to compress in memory",
    ),
    valued(
        "force-build-metadata",
        NO_EFFECT_BOOL,
        "",
        IGNORED,
        "kiln writes history and config as Docker does",
    ),
    valued(
        "bucket",
        NO_EFFECT_VALUE,
        "BUCKET",
        IGNORED,
        "cloud contexts are not supported",
    )
    .short('b'),
];

/// The table row of the flag called `name` (aliases included).
pub fn flag(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
}

/// How to reach a registry (plain HTTP, TLS, mirrors, maps): the executor
/// flags that the commands talking to registries without building
/// (`kiln warm`, `kiln manifest`) also take.
pub const REGISTRY_CONNECTION: &[&str] = &[
    "insecure",
    "insecure-pull",
    "insecure-registry",
    "skip-tls-verify",
    "skip-tls-verify-pull",
    "skip-tls-verify-registry",
    "registry-certificate",
    "registry-client-cert",
    "registry-mirror",
    "registry-map",
    "skip-default-registry-fallback",
];

/// The logging flags every command takes.
pub const LOGGING_FLAGS: &[&str] = &["verbosity", "log-format", "log-timestamp"];

/// The rows of executor flags another command borrows, named in groups of
/// names, in order.
pub fn borrowed(
    names: &'static [&'static [&'static str]],
) -> impl Iterator<Item = &'static Flag> + Clone {
    names
        .iter()
        .flat_map(|group| group.iter())
        .map(|name| flag(name).expect("borrowed flags are executor flags"))
}

/// The executor's command line, with kaniko's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorArgs {
    pub context: String,
    pub context_sub_path: Option<String>,
    /// `--git`, each value as given.
    pub git: Vec<String>,
    pub dockerfile: String,
    pub destinations: Vec<String>,
    /// `KEY=VALUE` or bare `KEY` (the caller takes it from the environment).
    pub build_args: Vec<String>,
    pub target: Option<String>,
    /// One platform or a comma-separated list (repeated flags joined with commas).
    pub custom_platform: Option<String>,
    /// `--emulator` paths.
    pub emulators: Vec<String>,
    /// `--jobs`; `None`: the number of CPUs.
    pub jobs: Option<usize>,
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
    pub dotenv_report: Option<String>,
    pub ci_labels: bool,
    pub sbom: bool,
    pub provenance: bool,
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
    pub registry_timeout: Option<Duration>,
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
    /// `--help` or `-h`: print [`help()`] instead of building.
    pub help: bool,
}

impl Default for ExecutorArgs {
    fn default() -> Self {
        ExecutorArgs {
            context: "/workspace/".into(),
            context_sub_path: None,
            git: Vec::new(),
            dockerfile: "Dockerfile".into(),
            destinations: vec![],
            build_args: vec![],
            target: None,
            custom_platform: None,
            emulators: vec![],
            jobs: None,
            labels: vec![],
            annotations: vec![],
            secrets: vec![],
            no_push: false,
            tar_path: None,
            oci_layout_path: None,
            digest_file: None,
            image_name_with_digest_file: None,
            image_name_tag_with_digest_file: None,
            dotenv_report: None,
            ci_labels: false,
            sbom: false,
            provenance: false,
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
            registry_timeout: None,
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
            help: false,
        }
    }
}

/// The executor's `--help` page; `program` is how it was called
/// (`kiln build`, `executor`).
pub fn help(program: &str) -> String {
    help::render(&help::Page {
        usage: &[format!("{program} [flags]")],
        about: "Builds an image from a Dockerfile and pushes it, taking kaniko's executor \
                flags with kaniko's defaults.",
        sections: help::sections(GROUPS, FLAGS),
        footer: "Flags take --flag=value or --flag value; booleans --flag or --flag=false. \
                 Every flag's kaniko status: docs/kaniko-compat.md.",
    })
}

/// Parses the executor's arguments (without the program name).
pub fn parse(args: &[String]) -> Result<ExecutorArgs, UsageError> {
    let specs: Vec<FlagSpec> = FLAGS.iter().map(Flag::spec).collect();
    let parsed = pflag::parse(&specs, args)?;
    if parsed.help {
        return Ok(ExecutorArgs {
            help: true,
            ..ExecutorArgs::default()
        });
    }
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
    let flag = flag(name).expect("pflag only returns known names");
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
        "git" => out.git.push(value),
        "dockerfile" => out.dockerfile = value,
        "destination" => out.destinations.push(value),
        "build-arg" => out.build_args.push(value),
        "target" => out.target = some(),
        "custom-platform" | "customPlatform" | "platform" => {
            // Repeated flags add to the comma-separated list.
            out.custom_platform = Some(match out.custom_platform.take() {
                Some(list) => format!("{list},{value}"),
                None => value,
            })
        }
        "emulator" => out.emulators.push(value),
        "jobs" => {
            let jobs = int()?;
            if jobs < 1 {
                return Err(UsageError(format!(
                    "invalid argument {value:?} for \"--jobs\" flag: must be at least 1"
                )));
            }
            out.jobs = Some(jobs as usize);
        }
        "label" => out.labels.push(value),
        "annotation" => out.annotations.push(value),
        "secret" => out.secrets.push(value),
        "no-push" => out.no_push = boolean()?,
        "tar-path" | "tarPath" => out.tar_path = some(),
        "oci-layout-path" => out.oci_layout_path = some(),
        "digest-file" => out.digest_file = some(),
        "image-name-with-digest-file" => out.image_name_with_digest_file = some(),
        "image-name-tag-with-digest-file" => out.image_name_tag_with_digest_file = some(),
        "dotenv-report" => out.dotenv_report = some(),
        "ci-labels" => out.ci_labels = boolean()?,
        "sbom" => out.sbom = boolean()?,
        "provenance" => out.provenance = boolean()?,
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
        "registry-timeout" => out.registry_timeout = Some(pflag::parse_duration(name, &value)?),
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
    use crate::cli::flag::Shown;

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
    fn every_row_has_a_description_a_group_and_a_placeholder() {
        let problems = super::super::flag::table_problems(FLAGS, GROUPS);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    /// A default shown as a value is what the parser starts from: giving it
    /// explicitly changes nothing.
    #[test]
    fn shown_defaults_are_the_parsers_defaults() {
        let mut checked = 0;
        for flag in FLAGS {
            if let Shown::Value(v) = flag.default {
                let given = parse(&[format!("--{}={v}", flag.name)])
                    .unwrap_or_else(|e| panic!("--{}={v}: {e}", flag.name));
                assert_eq!(
                    given,
                    ExecutorArgs::default(),
                    "--{} default {v}",
                    flag.name
                );
                checked += 1;
            }
        }
        assert!(checked > 0);
    }

    #[test]
    fn help_asks_for_the_page_and_nothing_else() {
        let a = parse_str("--context x --help --nope").unwrap();
        assert!(a.help);
        assert!(!parse_str("--context x").unwrap().help);
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
