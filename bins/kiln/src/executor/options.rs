//! Turns kaniko-style [`ExecutorArgs`] plus the environment into the
//! engine's [`BuildOptions`]. This is where flag syntax ends: `dir://` and
//! `tar://` prefixes, bare `--build-arg KEY` taken from the environment,
//! `KEY=VALUE` lists, and kaniko's environment variables (`KANIKO_DIR`,
//! `KANIKO_NO_PUSH`, `KANIKO_REGISTRY_MIRROR`, `KANIKO_REGISTRY_MAP`,
//! `SOURCE_DATE_EPOCH`, and GitLab's `CI_*` for `--ci-labels`).

use crate::cli::executor_flags::ExecutorArgs;
use kiln_build::{
    BuildOptions, ClientCert, Compression, ContextSource, DockerfileSource, ImageFormatChoice,
    Isolation, SecretSource, SnapshotMode,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Reads an environment variable; injectable so tests never touch the process env.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// For commands that take some executor flags (`kiln warm`, `kiln manifest`):
/// parses the `--name=value` flags they forward with the executor's parser,
/// starts logging as those flags say, and maps them onto build options from
/// the process environment. Errors are usage errors (exit 2).
pub fn from_forwarded_flags(forwarded: &[String]) -> Result<BuildOptions, String> {
    let args = crate::cli::executor_flags::parse(forwarded).map_err(|e| e.to_string())?;
    crate::logging::init(&args.verbosity, &args.log_format, args.log_timestamp);
    let env = |name: &str| std::env::var(name).ok();
    build_options(&args, &env)
}

/// Maps the command line onto build options. Errors are usage errors (exit 2).
pub fn build_options(args: &ExecutorArgs, env: Env<'_>) -> Result<BuildOptions, String> {
    let mut o = BuildOptions::new(context_source(&args.context, &args.git, env)?);
    o.context_sub_path = args.context_sub_path.as_ref().map(PathBuf::from);
    o.dockerfile = dockerfile_source(&args.dockerfile);
    o.destinations = args.destinations.clone();
    o.build_args = build_args(&args.build_args, env)?;
    o.target = args.target.clone();
    o.custom_platform = args.custom_platform.clone();
    o.emulators = args.emulators.iter().map(PathBuf::from).collect();
    if let Some(jobs) = args.jobs {
        o.jobs = jobs;
    }
    o.labels = key_values("--label", &args.labels)?;
    o.annotations = key_values("--annotation", &args.annotations)?;
    o.secrets = secrets(&args.secrets, env)?;
    o.no_push = args.no_push;
    if let Some(value) = env("KANIKO_NO_PUSH") {
        o.no_push = crate::cli::pflag::parse_bool("KANIKO_NO_PUSH", &value).map_err(|_| {
            format!("invalid value {value:?} for KANIKO_NO_PUSH: use true or false")
        })?;
    }
    o.tar_path = args.tar_path.as_ref().map(PathBuf::from);
    o.oci_layout_path = args.oci_layout_path.as_ref().map(PathBuf::from);
    o.digest_file = args.digest_file.as_ref().map(PathBuf::from);
    o.image_name_with_digest_file = args.image_name_with_digest_file.as_ref().map(PathBuf::from);
    o.image_name_tag_with_digest_file = args
        .image_name_tag_with_digest_file
        .as_ref()
        .map(PathBuf::from);
    o.dotenv_report = args.dotenv_report.as_ref().map(PathBuf::from);
    o.ci_labels = args.ci_labels.then(|| kiln_build::CiLabels::from_env(env));
    o.attest = kiln_build::AttestOptions {
        sbom: args.sbom,
        provenance: args.provenance,
        builder_id: env("CI_JOB_URL").filter(|v| !v.is_empty()),
        source_commit: env("CI_COMMIT_SHA").filter(|v| !v.is_empty()),
        source_repository: env("CI_PROJECT_URL").filter(|v| !v.is_empty()),
    };
    o.image_format = match args.image_format.as_deref() {
        Some("oci") => ImageFormatChoice::Oci,
        Some("docker") => ImageFormatChoice::Docker,
        _ => ImageFormatChoice::FollowBase,
    };
    o.compression = match args.compression.as_deref() {
        Some("zstd") => Compression::Zstd,
        _ => Compression::Gzip,
    };
    o.compression_level = match args.compression_level {
        -1 => None,
        level => Some(
            i32::try_from(level)
                .map_err(|_| format!("--compression-level {level} is out of range"))?,
        ),
    };
    o.snapshot_mode = match args.snapshot_mode.as_str() {
        "redo" => SnapshotMode::Redo,
        "time" => SnapshotMode::Time,
        _ => SnapshotMode::Full,
    };
    o.single_snapshot = args.single_snapshot;
    o.reproducible = args.reproducible;
    o.source_date_epoch = match env("SOURCE_DATE_EPOCH") {
        Some(v) if !v.is_empty() => Some(
            v.parse::<i64>()
                .map_err(|_| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?,
        ),
        _ => None,
    };
    o.ignore_paths = args.ignore_paths.iter().map(PathBuf::from).collect();
    o.ignore_var_run = args.ignore_var_run;
    // The flag wins over KANIKO_DIR, as in kaniko.
    o.kaniko_dir = args
        .kaniko_dir
        .clone()
        .or_else(|| env("KANIKO_DIR"))
        .map_or_else(|| PathBuf::from("/kaniko"), PathBuf::from);
    o.cleanup = args.cleanup;
    o.skip_unused_stages = args.skip_unused_stages;
    o.isolation = match args.isolation.as_str() {
        "chroot" => Isolation::Chroot,
        "in-place" => Isolation::InPlace,
        _ => Isolation::Auto,
    };

    let r = &mut o.registry;
    r.insecure = args.insecure;
    r.insecure_pull = args.insecure_pull;
    r.insecure_registries = args.insecure_registries.clone();
    r.skip_tls_verify = args.skip_tls_verify;
    r.skip_tls_verify_pull = args.skip_tls_verify_pull;
    r.skip_tls_verify_registries = args.skip_tls_verify_registries.clone();
    r.registry_mirrors = args.registry_mirrors.clone();
    if let Some(mirror) = env("KANIKO_REGISTRY_MIRROR") {
        r.registry_mirrors.push(mirror);
    }
    let mut maps = args.registry_maps.clone();
    if let Some(map) = env("KANIKO_REGISTRY_MAP") {
        maps.push(map);
    }
    r.registry_maps = registry_maps(&maps)?;
    r.skip_default_registry_fallback = args.skip_default_registry_fallback;
    r.registry_certificates = key_values("--registry-certificate", &args.registry_certificates)?
        .into_iter()
        .map(|(k, v)| (k, PathBuf::from(v)))
        .collect();
    r.registry_client_certs = client_certs(&args.registry_client_certs)?;
    r.io_timeout = registry_timeout(args.registry_timeout, env("KILN_REGISTRY_TIMEOUT"))?;

    o.retries.push_retry = retry_count("--push-retry", args.push_retry)?;
    o.retries.image_download_retry =
        retry_count("--image-download-retry", args.image_download_retry)?;
    o.retries.image_fs_extract_retry =
        retry_count("--image-fs-extract-retry", args.image_fs_extract_retry)?;
    o.skip_push_permission_check = args.skip_push_permission_check;
    o.push_ignore_immutable_tag_errors = args.push_ignore_immutable_tag_errors;

    let c = &mut o.cache;
    c.enabled = args.cache;
    c.repo = args.cache_repo.clone();
    c.ttl = args.cache_ttl;
    c.run_layers = args.cache_run_layers;
    c.copy_layers = args.cache_copy_layers;
    c.no_push = args.no_push_cache;
    // As kaniko: warmed base images are read only when the cache is on.
    c.dir = args.cache.then(|| PathBuf::from(&args.cache_dir));

    if !o.no_push && o.destinations.is_empty() {
        return Err("you must provide --destination, or use --no-push".into());
    }
    if o.destinations.is_empty()
        && (o.image_name_with_digest_file.is_some() || o.image_name_tag_with_digest_file.is_some())
    {
        return Err(
            "you must provide --destination when setting --image-name-with-digest-file or --image-name-tag-with-digest-file"
                .into(),
        );
    }
    Ok(o)
}

/// `--registry-timeout`, else `KILN_REGISTRY_TIMEOUT`, else kiln-registry's default;
/// zero would fail every request, so it is refused.
fn registry_timeout(
    flag: Option<Duration>,
    env: Option<String>,
) -> Result<Option<Duration>, String> {
    let timeout = match (flag, env) {
        (Some(t), _) => Some(t),
        (None, Some(text)) => Some(
            crate::cli::pflag::parse_duration("KILN_REGISTRY_TIMEOUT", &text)
                .map_err(|e| e.to_string())?,
        ),
        (None, None) => None,
    };
    if timeout == Some(Duration::ZERO) {
        return Err("--registry-timeout (or KILN_REGISTRY_TIMEOUT) must be more than 0".into());
    }
    Ok(timeout)
}

/// kaniko's `--context` forms: a path, `dir://PATH`, `tar://PATH`, `tar://stdin`,
/// a git repository (`git://…`, `http(s)://….git…`, with `--git` and kaniko's
/// `GIT_*` variables), an object in a store (`s3://…`, `gs://…`, an Azure
/// Blob URL `https://ACCOUNT.blob.core.windows.net/…`) and an archive URL
/// (`http(s)://…`).
fn context_source(context: &str, git: &[String], env: Env<'_>) -> Result<ContextSource, String> {
    if let Some(path) = context.strip_prefix("dir://") {
        return Ok(ContextSource::Dir(PathBuf::from(path)));
    }
    if let Some(rest) = context.strip_prefix("tar://") {
        return Ok(match rest {
            "stdin" => ContextSource::TarStdin,
            path => ContextSource::TarFile(PathBuf::from(path)),
        });
    }
    if let Some((scheme, _)) = context.split_once("://") {
        if let Some(object) =
            kiln_build::ObjectSource::parse(context).map_err(|e| format!("--context {e}"))?
        {
            return Ok(ContextSource::Object(object));
        }
        if matches!(scheme, "git" | "http" | "https") {
            let usage = |e: kiln_build::ContextError| format!("--context {e}");
            let pull_method = env("GIT_PULL_METHOD");
            if let Some(source) =
                kiln_build::GitSource::parse(context, pull_method.as_deref()).map_err(usage)?
            {
                let mut options = kiln_build::GitOptions::default();
                for value in git {
                    options.apply(value).map_err(|e| e.to_string())?;
                }
                return Ok(ContextSource::Git(Box::new(kiln_build::GitContext {
                    source,
                    options,
                    credentials: kiln_build::GitCredentials::from_vars(env),
                })));
            }
            return Ok(ContextSource::Url(
                kiln_build::HttpTarball::parse(context).map_err(usage)?,
            ));
        }
        return Err(format!(
            "--context {}: the {scheme}:// context is not supported by kiln; \
             use a directory, dir://PATH, tar://PATH, tar://stdin, git://…, https://….git, \
             s3://…, gs://…, an Azure Blob URL or an https:// archive",
            kiln_build::redact_url(context)
        ));
    }

    Ok(ContextSource::Dir(PathBuf::from(context)))
}

/// A URL stays a URL; a path that exists as given (relative to the working
/// directory) is used as is, as kaniko does; anything else is resolved by the
/// engine relative to the context.
fn dockerfile_source(dockerfile: &str) -> DockerfileSource {
    if dockerfile.starts_with("http://") || dockerfile.starts_with("https://") {
        return DockerfileSource::Url(dockerfile.to_string());
    }
    let path = Path::new(dockerfile);
    if path.is_relative()
        && path.is_file()
        && let Ok(absolute) = std::path::absolute(path)
    {
        return DockerfileSource::Path(absolute);
    }
    DockerfileSource::Path(path.to_path_buf())
}

/// `KEY=VALUE`, or bare `KEY` whose value comes from the environment (empty
/// when unset, as in kaniko).
fn build_args(args: &[String], env: Env<'_>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for arg in args {
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (arg.clone(), env(arg).unwrap_or_default()),
        };
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(format!(
                "--build-arg {arg:?}: expected KEY=VALUE or KEY with a non-empty name without spaces"
            ));
        }
        out.insert(key, value);
    }
    Ok(out)
}

fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>, String> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{flag} {item:?}: expected KEY=VALUE")),
        })
        .collect()
}

/// `id=ID,src=PATH`, `id=ID,env=VAR`, or `id=ID` (the variable named ID).
fn secrets(items: &[String], env: Env<'_>) -> Result<BTreeMap<String, SecretSource>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let mut id = None;
        let mut source = None;
        for part in item.split(',') {
            match part.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => source = Some(SecretSource::File(v.into())),
                Some(("env", v)) => source = Some(SecretSource::Env(v.to_string())),
                Some(("type", "file" | "env")) => {}
                _ => {
                    return Err(format!(
                        "--secret: unexpected {part:?}; expected id=ID,src=PATH or id=ID,env=VAR"
                    ));
                }
            }
        }
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| "--secret: missing id=ID".to_string())?;
        let source = match source {
            Some(s) => s,
            None if env(&id).is_some() => SecretSource::Env(id.clone()),
            None => {
                return Err(format!(
                    "--secret id={id}: no src=PATH or env=VAR, and no environment variable {id}"
                ));
            }
        };
        out.insert(id, source);
    }
    Ok(out)
}

/// kaniko's `--registry-map a=b;c=d`, repeatable; several values per original.
fn registry_maps(items: &[String]) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in items {
        for pair in item.split(';').filter(|p| !p.is_empty()) {
            let (from, to) = pair
                .split_once('=')
                .filter(|(f, t)| !f.is_empty() && !t.is_empty())
                .ok_or_else(|| format!("--registry-map {pair:?}: expected ORIGINAL=REPLACEMENT"))?;
            out.entry(from.to_string())
                .or_default()
                .push(to.to_string());
        }
    }
    Ok(out)
}

/// kaniko's `--registry-client-cert registry=cert,key`.
fn client_certs(items: &[String]) -> Result<BTreeMap<String, ClientCert>, String> {
    key_values("--registry-client-cert", items)?
        .into_iter()
        .map(|(registry, files)| match files.split_once(',') {
            Some((cert, key)) if !cert.is_empty() && !key.is_empty() => Ok((
                registry,
                ClientCert {
                    cert: cert.into(),
                    key: key.into(),
                },
            )),
            _ => Err(format!(
                "--registry-client-cert {registry}={files}: expected REGISTRY=CERT_PATH,KEY_PATH"
            )),
        })
        .collect()
}

fn retry_count(flag: &str, value: i64) -> Result<u32, String> {
    u32::try_from(value).map_err(|_| format!("{flag} {value}: must be 0 or more"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::executor_flags;
    use crate::cli::executor_flags::parse;
    use crate::cli::flag::Shown;

    fn opts(cmdline: &str, vars: &[(&str, &str)]) -> Result<BuildOptions, String> {
        let args = parse(
            &cmdline
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
        .map_err(|e| e.0)?;
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        build_options(&args, &|k| vars.get(k).cloned())
    }

    #[test]
    fn context_forms() {
        let c = |s: &str| opts(&format!("--no-push -c {s}"), &[]).map(|o| o.context);
        assert_eq!(c("/src").unwrap(), ContextSource::Dir("/src".into()));
        assert_eq!(c("dir:///src").unwrap(), ContextSource::Dir("/src".into()));
        assert_eq!(
            c("tar:///c.tgz").unwrap(),
            ContextSource::TarFile("/c.tgz".into())
        );
        assert_eq!(c("tar://stdin").unwrap(), ContextSource::TarStdin);
        assert!(matches!(
            c("s3://bucket/x.tgz").unwrap(),
            ContextSource::Object(_)
        ));
        assert!(c("s3://bucket").unwrap_err().contains("s3://BUCKET/KEY"));
        assert!(matches!(
            c("gs://bucket/x.tgz").unwrap(),
            ContextSource::Object(_)
        ));
        assert!(c("gs://bucket").unwrap_err().contains("gs://BUCKET/KEY"));
        assert!(matches!(
            c("https://acct.blob.core.windows.net/ctr/x.tgz").unwrap(),
            ContextSource::Object(_)
        ));
        assert!(
            c("https://acct.blob.core.windows.net/ctr")
                .unwrap_err()
                .contains("CONTAINER/BLOB")
        );
        assert!(c("ftp://h/x").unwrap_err().contains("ftp://"));
        assert!(matches!(
            c("https://h/ctx.tar.gz").unwrap(),
            ContextSource::Url(_)
        ));
        let git = |cmdline: &str, vars: &[(&str, &str)]| match opts(cmdline, vars).unwrap().context
        {
            ContextSource::Git(g) => *g,
            other => panic!("not a git context: {other:?}"),
        };
        let g = git(
            "--no-push -c git://h/r.git#refs/heads/dev --git branch=main --git recurse-submodules=true",
            &[("GIT_TOKEN", "tok"), ("GIT_PULL_METHOD", "http")],
        );
        assert_eq!(g.source.display_url(), "http://h/r.git");
        assert_eq!(g.options.branch.as_deref(), Some("main"));
        assert!(g.options.recurse_submodules);
        assert_eq!(g.credentials.username.as_deref(), Some("tok"));
        let g = git(
            "--no-push -c https://h/r.git#v1 --git branch=x,insecure-skip-tls=true",
            &[],
        );
        assert!(g.options.insecure_skip_tls && g.credentials.is_empty());
        assert!(
            opts("--no-push -c git://h/r --git depth=1", &[])
                .unwrap_err()
                .contains("depth")
        );
    }

    #[test]
    fn registry_timeout_from_the_flag_else_the_environment() {
        let t = |cmdline: &str, vars: &[(&str, &str)]| {
            opts(&format!("--no-push {cmdline}"), vars).map(|o| o.registry.io_timeout)
        };
        assert_eq!(t("", &[]).unwrap(), None);
        assert_eq!(
            t("--registry-timeout=30s", &[("KILN_REGISTRY_TIMEOUT", "5m")]).unwrap(),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            t("", &[("KILN_REGISTRY_TIMEOUT", "1m30s")]).unwrap(),
            Some(Duration::from_secs(90))
        );
        assert!(
            t("--registry-timeout=0s", &[])
                .unwrap_err()
                .contains("more than 0")
        );
        assert!(t("", &[("KILN_REGISTRY_TIMEOUT", "soon")]).is_err());
    }

    #[test]
    fn destination_required_unless_no_push() {
        assert!(opts("", &[]).unwrap_err().contains("--destination"));
        assert!(opts("--no-push", &[]).is_ok());
        assert!(opts("", &[("KANIKO_NO_PUSH", "true")]).is_ok());
        assert!(
            opts("--no-push --image-name-with-digest-file=/f", &[])
                .unwrap_err()
                .contains("--destination")
        );
    }

    #[test]
    fn build_args_from_flags_and_environment() {
        let o = opts(
            "--no-push --build-arg A=1 --build-arg B --build-arg C --build-arg D=x=y",
            &[("B", "from-env")],
        )
        .unwrap();
        let got: Vec<_> = o
            .build_args
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("A", "1"), ("B", "from-env"), ("C", ""), ("D", "x=y")]
        );
        assert!(
            opts("--no-push --build-arg =v", &[])
                .unwrap_err()
                .contains("--build-arg")
        );
    }

    #[test]
    fn registry_maps_mirrors_certs_and_env() {
        let o = opts(
            "-d r/x --registry-map=a=b;a=c --registry-map d=e --registry-mirror m1 \
             --registry-certificate reg:5000=/ca.pem --registry-client-cert reg=/c.pem,/k.pem",
            &[
                ("KANIKO_REGISTRY_MIRROR", "m2"),
                ("KANIKO_REGISTRY_MAP", "f=g"),
            ],
        )
        .unwrap();
        let r = &o.registry;
        assert_eq!(r.registry_maps["a"], vec!["b", "c"]);
        assert_eq!(r.registry_maps["d"], vec!["e"]);
        assert_eq!(r.registry_maps["f"], vec!["g"]);
        assert_eq!(r.registry_mirrors, vec!["m1", "m2"]);
        assert_eq!(
            r.registry_certificates["reg:5000"],
            PathBuf::from("/ca.pem")
        );
        assert_eq!(r.registry_client_certs["reg"].key, PathBuf::from("/k.pem"));
        assert!(opts("-d r/x --registry-client-cert reg=/c.pem", &[]).is_err());
    }

    #[test]
    fn image_format_follows_the_base_unless_chosen() {
        let format = |flags: &str| opts(flags, &[]).unwrap().image_format;
        assert_eq!(format("--no-push"), ImageFormatChoice::FollowBase);
        assert_eq!(
            format("--no-push --image-format oci"),
            ImageFormatChoice::Oci
        );
        assert_eq!(
            format("--no-push --image-format=docker"),
            ImageFormatChoice::Docker
        );
    }

    #[test]
    fn secrets_kaniko_dir_epoch_and_levels() {
        let o = opts(
            "--no-push --secret id=a,src=/s --secret id=b,env=TOKEN --secret id=C --compression=zstd --compression-level=19",
            &[("C", "x"), ("KANIKO_DIR", "/kd"), ("SOURCE_DATE_EPOCH", "1700000000")],
        )
        .unwrap();
        assert_eq!(o.secrets["a"], SecretSource::File("/s".into()));
        assert_eq!(o.secrets["b"], SecretSource::Env("TOKEN".into()));
        assert_eq!(o.secrets["C"], SecretSource::Env("C".into()));
        assert_eq!(o.kaniko_dir, PathBuf::from("/kd"));
        assert_eq!(o.source_date_epoch, Some(1_700_000_000));
        assert_eq!(o.compression, Compression::Zstd);
        assert_eq!(o.compression_level, Some(19));
        let o = opts("--no-push --kaniko-dir=/flag", &[("KANIKO_DIR", "/kd")]).unwrap();
        assert_eq!(o.kaniko_dir, PathBuf::from("/flag"));
        assert!(
            opts("--no-push --secret id=z", &[])
                .unwrap_err()
                .contains("id=z")
        );
        assert!(opts("--no-push", &[("SOURCE_DATE_EPOCH", "soon")]).is_err());
    }

    /// Defaults applied after parsing (by `build_options`) are the ones the
    /// help describes.
    #[test]
    fn described_defaults_are_the_options_defaults() {
        let no_env = |_: &str| None;
        let args = ExecutorArgs {
            no_push: true,
            ..ExecutorArgs::default()
        };
        let default = build_options(&args, &no_env).unwrap();
        let note = |name: &str| match executor_flags::flag(name).unwrap().default {
            Shown::Note(n) => n,
            other => panic!("--{name}: {other:?}"),
        };
        let compression = format!("{:?}", default.compression).to_ascii_lowercase();
        assert_eq!(note("compression"), compression);
        let given = parse(&["--no-push".into(), format!("--compression={compression}")]).unwrap();
        assert_eq!(
            build_options(&given, &no_env).unwrap().compression,
            default.compression
        );
        let kaniko_dir = default.kaniko_dir.display().to_string();
        assert!(
            note("kaniko-dir").ends_with(&format!("else {kaniko_dir}")),
            "{kaniko_dir}"
        );
        let with_env = |name: &str| (name == "KANIKO_DIR").then(|| "/elsewhere".to_string());
        let from_env = build_options(&args, &with_env).unwrap();
        assert_eq!(from_env.kaniko_dir, std::path::Path::new("/elsewhere"));
        assert!(note("kaniko-dir").starts_with("$KANIKO_DIR"));
    }
}
