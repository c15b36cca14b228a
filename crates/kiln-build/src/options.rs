//! Everything a build can be told: one field per kaniko executor flag.
//!
//! The CLI resolves flag syntax (repeated flags, `KEY` build args taken from
//! the environment, `dir://`/`tar://` prefixes) and fills these types; the
//! engine never looks at `std::env` for them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Options for one build. `BuildOptions::new(context)` gives kaniko's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// `--context`: where the build context comes from.
    pub context: ContextSource,
    /// `--context-sub-path`: a sub-directory of the context to use as its root.
    pub context_sub_path: Option<PathBuf>,
    /// `--dockerfile` / `-f`: path (relative to the context root, or absolute) or URL.
    pub dockerfile: DockerfileSource,
    /// `--destination` / `-d`, in order. Empty with `no_push` false is an error.
    pub destinations: Vec<String>,
    /// `--build-arg`, already resolved (bare `KEY` replaced by its environment value by the caller).
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build; `None` means the last stage.
    pub target: Option<String>,
    /// `--custom-platform` / `--platform`: one platform (`os/arch[/variant]`) or a
    /// comma-separated list of them; `None` means the build machine's platform. With
    /// several, the Dockerfile is built once per platform and the output is an image
    /// index (an OCI index, or a Docker manifest list when every image is Docker's).
    pub custom_platform: Option<String>,
    /// `--label`: added to the final image's config labels (overriding the Dockerfile's).
    pub labels: BTreeMap<String, String>,
    /// `--annotation`: added to the final manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// `--ci-labels`: OCI labels and annotations from GitLab CI's variables, below the
    /// Dockerfile's `LABEL` and `--label` (see [`crate::CiLabels`]).
    pub ci_labels: Option<crate::CiLabels>,
    /// `--no-push`: build (and write local outputs) without pushing.
    pub no_push: bool,
    /// `--tar-path`: write a docker-archive (`docker save` format) here.
    pub tar_path: Option<PathBuf>,
    /// `--oci-layout-path`: write an OCI image layout here.
    pub oci_layout_path: Option<PathBuf>,
    /// `--digest-file`: write the image digest (`sha256:…`) here.
    pub digest_file: Option<PathBuf>,
    /// `--image-name-with-digest-file`: write `repo@sha256:…` for each destination.
    pub image_name_with_digest_file: Option<PathBuf>,
    /// `--image-name-tag-with-digest-file`: write `repo:tag@sha256:…` for each destination.
    pub image_name_tag_with_digest_file: Option<PathBuf>,
    /// `--dotenv-report`: after a successful push, write `IMAGE_DIGEST`, `IMAGE_REF`
    /// and `IMAGE_TAGS` here for GitLab's `artifacts: reports: dotenv`.
    pub dotenv_report: Option<PathBuf>,
    /// `--image-format`: the manifest family of the image pushed, written to
    /// `--tar-path` and named by the digest files. `--oci-layout-path` always
    /// holds the OCI form.
    pub image_format: ImageFormatChoice,
    /// `--compression`.
    pub compression: Compression,
    /// `--compression-level`; `None` is the codec's default.
    pub compression_level: Option<i32>,
    /// `--snapshot-mode`.
    pub snapshot_mode: SnapshotMode,
    /// `--single-snapshot`: one layer per stage instead of one per step.
    pub single_snapshot: bool,
    /// `--reproducible`: zero timestamps in layers and config, no build time in history.
    pub reproducible: bool,
    /// `SOURCE_DATE_EPOCH` (seconds), applied to layer mtimes and config/history dates.
    pub source_date_epoch: Option<i64>,
    /// `--ignore-path`: paths never captured in a RUN snapshot.
    pub ignore_paths: Vec<PathBuf>,
    /// `--ignore-var-run` (kaniko default true): `/var/run` is never captured.
    pub ignore_var_run: bool,
    /// `--kaniko-dir`: kiln's work directory (blob store, stage roots, cache mounts).
    pub kaniko_dir: PathBuf,
    /// `--cleanup`: also remove the blob store (pulled and built blobs) at the end,
    /// and in in-place mode clear `/` again (as kaniko); the per-build directory
    /// (stage roots, staging) is always removed.
    pub cleanup: bool,
    /// `--skip-unused-stages`: accepted for compatibility; kiln always builds only
    /// the stages the target needs (BuildKit's behaviour).
    pub skip_unused_stages: bool,
    /// `--secret id=…,src=…|env=…`: secrets for `RUN --mount=type=secret`.
    pub secrets: BTreeMap<String, SecretSource>,
    /// How RUN is isolated.
    pub isolation: Isolation,
    /// Registry, TLS and mirror options.
    pub registry: RegistryOptions,
    /// Retry counts.
    pub retries: RetryOptions,
    /// `--skip-push-permission-check`.
    pub skip_push_permission_check: bool,
    /// `--push-ignore-immutable-tag-errors`.
    pub push_ignore_immutable_tag_errors: bool,
    /// Layer cache options (issue 8).
    pub cache: CacheOptions,
    /// `--emulator`: QEMU user-mode emulators (named `qemu-<arch>[-static]`) kiln may
    /// register in its own user namespace to RUN steps of a foreign platform.
    pub emulators: Vec<PathBuf>,
    /// `--jobs`: how many stages (of any target platform) may be built at once; stages
    /// that do not depend on each other run in parallel. 1 builds them one after
    /// another. Default: the number of CPUs. In-place isolation always builds one at a
    /// time.
    pub jobs: usize,
    /// Directories searched next for `qemu-<arch>-static`; by default kiln's image's
    /// `/kaniko/emulators` (`kiln_sandbox::DEFAULT_EMULATOR_DIR`).
    pub emulator_dirs: Vec<PathBuf>,
    /// Not a flag: upload the pushed image's layers to every destination while
    /// the build goes on (each one while it is encoded), so the final push only
    /// confirms blobs and puts config and manifest. `true` by default; `false`
    /// uploads everything at the end, as before (benchmarks compare the two).
    pub push_while_building: bool,
    /// `--sbom`, `--provenance`: attestations attached to the image.
    pub attest: crate::AttestOptions,
}

impl BuildOptions {
    /// kaniko's defaults for everything but the context.
    pub fn new(context: ContextSource) -> Self {
        BuildOptions {
            context,
            context_sub_path: None,
            dockerfile: DockerfileSource::Path(PathBuf::from("Dockerfile")),
            destinations: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            custom_platform: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            ci_labels: None,
            no_push: false,
            tar_path: None,
            oci_layout_path: None,
            digest_file: None,
            image_name_with_digest_file: None,
            image_name_tag_with_digest_file: None,
            dotenv_report: None,
            image_format: ImageFormatChoice::FollowBase,
            compression: Compression::Gzip,
            compression_level: None,
            snapshot_mode: SnapshotMode::Full,
            single_snapshot: false,
            reproducible: false,
            source_date_epoch: None,
            ignore_paths: Vec::new(),
            ignore_var_run: true,
            kaniko_dir: PathBuf::from("/kaniko"),
            cleanup: false,
            skip_unused_stages: false,
            secrets: BTreeMap::new(),
            isolation: Isolation::Auto,
            registry: RegistryOptions::default(),
            retries: RetryOptions::default(),
            skip_push_permission_check: false,
            push_ignore_immutable_tag_errors: false,
            cache: CacheOptions::default(),
            emulators: Vec::new(),
            jobs: std::thread::available_parallelism().map_or(1, usize::from),
            emulator_dirs: vec![PathBuf::from(kiln_sandbox::DEFAULT_EMULATOR_DIR)],
            push_while_building: true,
            attest: crate::AttestOptions::default(),
        }
    }
}

/// `--context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextSource {
    /// A directory (`dir://path` or a plain path).
    Dir(PathBuf),
    /// A tar file, optionally compressed (gzip, bzip2, xz, zstd; detected by magic).
    TarFile(PathBuf),
    /// A tar stream on standard input (`tar://stdin`), optionally compressed.
    TarStdin,
    /// A git repository (`git://…`, `https://….git#…`), fetched into the work dir.
    Git(Box<GitContext>),
    /// A tar archive over HTTP(S), optionally compressed, streamed into the work dir.
    Url(kiln_context::HttpTarball),
    /// A tar archive in an object store (`s3://…`, `gs://…`, an Azure Blob URL), streamed likewise.
    Object(kiln_context::ObjectSource),
}

/// A git context: the repository and ref, kaniko's `--git` options and the
/// credentials (kaniko's `GIT_USERNAME`, `GIT_PASSWORD`, `GIT_TOKEN`, read by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitContext {
    /// The repository, ref and commit.
    pub source: kiln_context::GitSource,
    /// `--git`.
    pub options: kiln_context::GitOptions,
    /// Credentials for HTTP(S) (never printed).
    pub credentials: kiln_context::GitCredentials,
}

/// `--dockerfile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerfileSource {
    /// Relative to the context root (after the sub path), or absolute.
    Path(PathBuf),
    /// An `http://` or `https://` URL, downloaded before the build.
    Url(String),
}

/// `--image-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormatChoice {
    /// The base image's family (kaniko's behaviour); OCI on scratch, with
    /// `--compression zstd`, or when a layer has no Docker schema 2 type.
    #[default]
    FollowBase,
    /// OCI image manifest and config (buildah's `--format oci`).
    Oci,
    /// Docker schema 2 manifest and config (buildah's `--format docker`);
    /// refused for what schema 2 cannot express (zstd layers, annotations).
    Docker,
}

/// `--compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// gzip (`application/vnd.oci.image.layer.v1.tar+gzip`).
    #[default]
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

/// `--snapshot-mode`: how RUN changes are detected by the walk backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotMode {
    /// Compare metadata and hash contents where needed (kaniko's default).
    #[default]
    Full,
    /// Compare metadata only (size, mtime, ctime, mode, owner).
    Redo,
    /// Compare mtime only.
    Time,
}

/// Where a `--secret` value comes from. The value is read only when a RUN mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `src=PATH`.
    File(PathBuf),
    /// `env=NAME`: the value of this environment variable.
    Env(String),
}

/// How RUN instructions are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// chroot where namespaces work, otherwise refuse with an explanation.
    #[default]
    Auto,
    /// Private rootfs per stage, namespaces + chroot for each RUN.
    Chroot,
    /// kaniko's model: the rootfs is `/` of the disposable container kiln runs in.
    InPlace,
}

/// Registry access options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryOptions {
    /// `--insecure`: push over plain HTTP.
    pub insecure: bool,
    /// `--insecure-pull`: pull over plain HTTP.
    pub insecure_pull: bool,
    /// `--insecure-registry`: registries reached over plain HTTP for push and pull.
    pub insecure_registries: Vec<String>,
    /// `--skip-tls-verify`: do not verify certificates when pushing.
    pub skip_tls_verify: bool,
    /// `--skip-tls-verify-pull`: do not verify certificates when pulling.
    pub skip_tls_verify_pull: bool,
    /// `--skip-tls-verify-registry`: registries whose certificates are not verified.
    pub skip_tls_verify_registries: Vec<String>,
    /// `--registry-mirror`: mirrors tried, in order, for docker.io (or all, see kaniko).
    pub registry_mirrors: Vec<String>,
    /// `--registry-map original=replacement` (repeatable per original).
    pub registry_maps: BTreeMap<String, Vec<String>>,
    /// `--skip-default-registry-fallback`: do not fall back to the original after mirrors.
    pub skip_default_registry_fallback: bool,
    /// `--registry-certificate registry=path`: extra CA bundle per registry.
    pub registry_certificates: BTreeMap<String, PathBuf>,
    /// `--registry-client-cert registry=cert,key`: client certificate per registry.
    pub registry_client_certs: BTreeMap<String, ClientCert>,
    /// `--registry-timeout`: kiln-registry's I/O timeout (no byte moving on a
    /// connection for this long fails the request); `None`: its default.
    pub io_timeout: Option<std::time::Duration>,
}

/// A client certificate and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Retry counts (kaniko's defaults: all 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryOptions {
    /// `--push-retry`.
    pub push_retry: u32,
    /// `--image-download-retry`.
    pub image_download_retry: u32,
    /// `--image-fs-extract-retry`.
    pub image_fs_extract_retry: u32,
}

/// Layer cache options (kaniko's `--cache*` flags). Accepted now, used by issue 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// `--cache`.
    pub enabled: bool,
    /// `--cache-repo`; `None` means the first destination's repository + `/cache`.
    pub repo: Option<String>,
    /// `--cache-ttl` (default 336h).
    pub ttl: Duration,
    /// `--cache-run-layers` (default true).
    pub run_layers: bool,
    /// `--cache-copy-layers` (default false).
    pub copy_layers: bool,
    /// `--no-push-cache`.
    pub no_push: bool,
    /// `--cache-dir`: kaniko's warmed base-image cache, read when pulling bases.
    pub dir: Option<PathBuf>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            enabled: false,
            repo: None,
            ttl: Duration::from_secs(336 * 3600),
            run_layers: true,
            copy_layers: false,
            no_push: false,
            dir: None,
        }
    }
}
