//! `cargo xtask bench ci [--scale F] [--rate MB/S] [--latency MS]`: the three
//! kinds of CI workload built by the release `kiln` binary against a real
//! registry behind the testkit's shaping proxy (default 50 MB/s per
//! connection and direction, 20 ms per request), each printed next to the
//! floors measured in the same run:
//!
//! - download: the base's layer fetched through the proxy (curl);
//! - unpack: `pigz -dc | tar -x` of that layer into a directory beside the
//!   build's (same disk);
//! - encode: `tar -c | pigz -p2` of what the workload's layer holds;
//! - upload: that encoded layer uploaded through the proxy (curl, monolithic).
//!
//! and the ratio of kiln's wall time (start to exit, push included) to the
//! largest floor, and kiln's peak RSS (`wait4` rusage of kiln, by GNU time);
//! then when kiln's push ended (the proxy's record of when the registry
//! answered the final manifest PUT, from kiln's start) and the ratio of its exit
//! time to that (what runs after the push: cleanup, exit). The
//! workloads: ten small RUNs on the Debian base, a COPY of 20,000 files
//! (12 KB each, incompressible), one RUN writing 500 MB (incompressible), and
//! ten small RUNs on a base of about 151,000 entries in one gzip layer (the
//! Debian base plus 145,500 small files, 1,500 directories and 4,500
//! symlinks), where cleaning up after the push used to cost more than the
//! build. `--scale` shrinks the file counts and the sizes for a quick run;
//! `--only NAME` runs the workloads whose names contain NAME; `--logs DIR`
//! keeps kiln's debug log (with timestamps) of each workload there.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kiln_testkit::{FaultProxy, Faults, FixtureImage, FixtureLayer, Registry, Shaping};

use crate::util::{cargo, require, run as run_cmd, workspace_root};

/// GNU time (Debian's `time`), for kiln's peak RSS.
const TIME: &str = "/usr/bin/time";

struct Settings {
    scale: f64,
    rate_mb: u64,
    latency_ms: u64,
    /// Only the workloads whose names contain this.
    only: Option<String>,
    /// Where kiln's debug log (with timestamps) of each workload goes.
    logs: Option<PathBuf>,
}

fn settings(args: &[String]) -> anyhow::Result<Settings> {
    let mut s = Settings {
        scale: 1.0,
        rate_mb: 50,
        latency_ms: 20,
        only: None,
        logs: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scale" => s.scale = value.parse().context("--scale")?,
            "--rate" => s.rate_mb = value.parse().context("--rate")?,
            "--latency" => s.latency_ms = value.parse().context("--latency")?,
            "--only" => s.only = Some(value.clone()),
            "--logs" => s.logs = Some(PathBuf::from(value)),
            other => anyhow::bail!(
                "bench ci: unknown flag {other:?} (known: --scale F, --rate MB/S, --latency MS, --only NAME, --logs DIR)"
            ),
        }
    }
    anyhow::ensure!(s.scale > 0.0 && s.scale <= 1.0, "--scale must be in (0, 1]");
    Ok(s)
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let s = settings(args)?;
    for tool in ["curl", "pigz", "tar", "head", TIME] {
        require(tool)?;
    }
    run_cmd(cargo().args(["build", "--release", "--package", "kiln"]))?;
    let kiln = workspace_root().join("target/release/kiln");
    let bench_dir = workspace_root().join("target/bench-ci");
    fs_err::create_dir_all(&bench_dir)?;
    let scratch = tempfile::tempdir_in(&bench_dir)?;

    let registry = Registry::start_plain();
    let shaping = Shaping::new(s.rate_mb, s.latency_ms);
    let proxy = FaultProxy::in_front_of(&registry, Faults::none().shape(shaping));
    let debian = kiln_testkit::debian::workspace_rootfs_tar().context("the Debian base image")?;
    let debian = fs_err::read(&debian)?;
    let workloads: Vec<Workload> = workloads(&s)
        .into_iter()
        .filter(|w| s.only.as_ref().is_none_or(|o| w.name.contains(o.as_str())))
        .collect();
    let mut bases = Vec::new();
    for kind in [BaseKind::Debian, BaseKind::ManyEntries] {
        if workloads.iter().any(|w| w.base == kind) {
            let tar = match kind {
                BaseKind::Debian => debian.clone(),
                BaseKind::ManyEntries => many_entries_tar(&debian, s.scale)?,
            };
            bases.push(Base::push(kind, &tar, &registry, &proxy, scratch.path())?);
        }
    }

    println!(
        "bench ci: registry behind a proxy shaped to {} MB/s per connection and direction, {} ms per request; scale {}",
        s.rate_mb, s.latency_ms, s.scale
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9}",
        "workload",
        "kiln s",
        "download",
        "unpack",
        "encode",
        "upload",
        "ratio",
        "peak RSS",
        "push end",
        "exit/push"
    );
    for workload in workloads {
        let base = bases
            .iter()
            .find(|b| b.kind == workload.base)
            .context("internal: the workload's base was not pushed")?;
        let dir = scratch.path().join(workload.name);
        fs_err::create_dir_all(&dir)?;
        let context = dir.join("context");
        fs_err::create_dir_all(&context)?;
        fs_err::write(
            context.join("Dockerfile"),
            format!("FROM {}\n{}", base.reference, workload.steps),
        )?;
        let layer_content = (workload.prepare)(&context, &dir)?;

        let floors = Floors {
            download: download_floor(&proxy, base, &dir)?,
            unpack: unpack_floor(&base.blob, &dir)?,
            encode: encode_floor(&layer_content, &dir)?,
        };
        let upload = upload_floor(&proxy, &dir.join("layer.tar.gz"))?;
        let started = Instant::now();
        let (wall, rss_kib) = kiln_build(
            &kiln,
            &context,
            &dir,
            &proxy,
            workload.name,
            s.logs.as_deref(),
        )?;
        let push_end = push_end(&proxy, workload.name, started)?;
        let largest = [floors.download, floors.unpack, floors.encode, upload]
            .into_iter()
            .max()
            .unwrap_or_default();
        println!(
            "{:<22} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>6.2}x {:>6} MB {:>9.2} {:>8.2}x",
            workload.name,
            wall.as_secs_f64(),
            floors.download.as_secs_f64(),
            floors.unpack.as_secs_f64(),
            floors.encode.as_secs_f64(),
            upload.as_secs_f64(),
            wall.as_secs_f64() / largest.as_secs_f64().max(1e-9),
            rss_kib / 1024,
            push_end.as_secs_f64(),
            wall.as_secs_f64() / push_end.as_secs_f64().max(1e-9),
        );
        fs_err::remove_dir_all(&dir)?;
    }
    Ok(())
}

struct Floors {
    download: Duration,
    unpack: Duration,
    encode: Duration,
}

/// Writes a workload's context files (into the context, given its scratch
/// dir); returns the directory holding what the workload's layer holds (for
/// the encode floor).
type Prepare = Box<dyn Fn(&Path, &Path) -> anyhow::Result<PathBuf>>;

struct Workload {
    name: &'static str,
    base: BaseKind,
    steps: String,
    prepare: Prepare,
}

/// The base images the workloads start from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BaseKind {
    /// Debian bookworm minbase: one layer, 6,656 entries.
    Debian,
    /// The Debian base and about 145,000 more entries, in one layer.
    ManyEntries,
}

/// A base pushed to the registry (its one layer kept on disk for the floors).
struct Base {
    kind: BaseKind,
    /// `host:port/repo:tag` through the proxy.
    reference: String,
    repository: String,
    layer_digest: String,
    blob: PathBuf,
}

impl Base {
    fn push(
        kind: BaseKind,
        tar: &[u8],
        registry: &Registry,
        proxy: &FaultProxy,
        scratch: &Path,
    ) -> anyhow::Result<Base> {
        let repository = match kind {
            BaseKind::Debian => "bench/debian",
            BaseKind::ManyEntries => "bench/many-entries",
        };
        let layer = FixtureLayer::from_tar(tar, true);
        let blob = scratch.join(format!("{}.tar.gz", repository.replace('/', "-")));
        fs_err::write(&blob, &layer.blob)?;
        let image = FixtureImage::from_layers(vec![layer], &["/bin/bash"]);
        image
            .push(registry, &format!("{repository}:1"), None)
            .map_err(|e| anyhow::anyhow!("pushing the {kind:?} base: {e:?}"))?;
        Ok(Base {
            kind,
            reference: format!("{}/{repository}:1", proxy.host_port()),
            repository: repository.to_owned(),
            layer_digest: image.layers[0].digest(),
            blob,
        })
    }
}

/// The Debian rootfs tar followed by many small entries: `1,500 * scale`
/// directories, each with 97 small text files and 3 symlinks.
fn many_entries_tar(debian: &[u8], scale: f64) -> anyhow::Result<Vec<u8>> {
    let mut out = tar::Builder::new(Vec::with_capacity(debian.len() * 3));
    let mut archive = tar::Archive::new(debian);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data)?;
        // long names and PAX records were consumed by the reader: write the path anew
        let path = entry.path()?.into_owned();
        match entry.link_name()? {
            Some(target) => {
                let target = target.into_owned();
                out.append_link(&mut header, &path, &target)?;
            }
            None => out.append_data(&mut header, &path, data.as_slice())?,
        }
    }
    let dirs = ((1500.0 * scale) as usize).max(2);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for d in 0..dirs {
        let dir = format!("usr/lib/bench/pkg{:03}/mod{}", d / 10, d % 10);
        let mut header = generated_header(tar::EntryType::Directory, 0o755, 0);
        out.append_data(&mut header, format!("{dir}/"), std::io::empty())?;
        for f in 0..97 {
            let len = 200 + (f * 37 + d * 11) % 2800;
            let text = noise_text(len, &mut seed);
            let mut header = generated_header(tar::EntryType::Regular, 0o644, len as u64);
            out.append_data(&mut header, format!("{dir}/file{f:02}.py"), text.as_slice())?;
        }
        for l in 0..3 {
            let mut header = generated_header(tar::EntryType::Symlink, 0o777, 0);
            out.append_link(
                &mut header,
                format!("{dir}/link{l}"),
                format!("file{l:02}.py"),
            )?;
        }
    }
    Ok(out.into_inner()?)
}

/// A header for a generated entry: owned by root, the fixed mtime.
fn generated_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_704_067_200);
    header.set_size(size);
    header
}

/// `len` bytes of text lines (compressible, as source files are).
fn noise_text(len: usize, seed: &mut u64) -> Vec<u8> {
    let mut text = Vec::with_capacity(len + 32);
    while text.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        text.extend_from_slice(
            format!("value_{:x} = {}\n", *seed % 65_536, *seed % 977).as_bytes(),
        );
    }
    text.truncate(len);
    text
}

fn workloads(s: &Settings) -> Vec<Workload> {
    let files = ((20_000.0 * s.scale) as usize).max(10);
    let big_mb = ((500.0 * s.scale) as usize).max(1);
    let runs: String = (0..10)
        .map(|i| format!("RUN echo step {i} > /step-{i}\n"))
        .collect();
    let small_layer = || -> Prepare {
        Box::new(|_, dir| {
            let layer = dir.join("layer");
            fs_err::create_dir_all(&layer)?;
            fs_err::write(layer.join("step-0"), "step 0\n")?;
            Ok(layer)
        })
    };
    vec![
        Workload {
            name: "ten-runs-debian",
            base: BaseKind::Debian,
            steps: runs.clone(),
            prepare: small_layer(),
        },
        Workload {
            name: "copy-20k-files",
            base: BaseKind::Debian,
            steps: "COPY files /app\n".into(),
            prepare: Box::new(move |context, _| {
                let root = context.join("files");
                for i in 0..files {
                    let sub = root.join(format!("d{:03}", i / 200));
                    fs_err::create_dir_all(&sub)?;
                    fs_err::write(
                        sub.join(format!("f{i}")),
                        kiln_testkit::noise::bytes(12 * 1024, i as u64),
                    )?;
                }
                Ok(root)
            }),
        },
        Workload {
            name: "run-writes-500mb",
            base: BaseKind::Debian,
            steps: format!("RUN head -c {big_mb}M /dev/urandom > /big\n"),
            prepare: Box::new(move |_, dir| {
                let layer = dir.join("layer");
                fs_err::create_dir_all(&layer)?;
                let out = std::fs::File::create(layer.join("big"))?;
                let status = Command::new("head")
                    .args(["-c", &format!("{big_mb}M"), "/dev/urandom"])
                    .stdout(Stdio::from(out))
                    .status()?;
                anyhow::ensure!(status.success(), "head failed");
                Ok(layer)
            }),
        },
        Workload {
            name: "ten-runs-151k-entries",
            base: BaseKind::ManyEntries,
            steps: runs,
            prepare: small_layer(),
        },
    ]
}

fn timed(what: &str, cmd: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = crate::util::status(cmd.stdout(Stdio::null()))?;
    let took = started.elapsed();
    anyhow::ensure!(status.success(), "{what}: {cmd:?} failed with {status}");
    Ok(took)
}

fn download_floor(proxy: &FaultProxy, base: &Base, dir: &Path) -> anyhow::Result<Duration> {
    let url = format!(
        "{}/v2/{}/blobs/{}",
        proxy.url(),
        base.repository,
        base.layer_digest
    );
    let out = dir.join("download.blob");
    let took = timed(
        "download",
        Command::new("curl")
            .args(["-sfL", "-o"])
            .arg(&out)
            .arg(&url),
    )?;
    fs_err::remove_file(out)?;
    Ok(took)
}

fn unpack_floor(blob: &Path, dir: &Path) -> anyhow::Result<Duration> {
    let into = dir.join("unpacked");
    fs_err::create_dir_all(&into)?;
    let script = format!(
        "pigz -dc '{}' | tar -x -C '{}'",
        blob.display(),
        into.display()
    );
    let took = timed("unpack", Command::new("sh").args(["-c", &script]))?;
    fs_err::remove_dir_all(into)?;
    Ok(took)
}

fn encode_floor(content: &Path, dir: &Path) -> anyhow::Result<Duration> {
    let script = format!(
        "tar -c -C '{}' . | pigz -p2 > '{}'",
        content.display(),
        dir.join("layer.tar.gz").display()
    );
    timed("encode", Command::new("sh").args(["-c", &script]))
}

fn upload_floor(proxy: &FaultProxy, blob: &Path) -> anyhow::Result<Duration> {
    let digest = {
        let out = crate::util::output(Command::new("sha256sum").arg(blob))?;
        let text = String::from_utf8(out.stdout)?;
        format!(
            "sha256:{}",
            text.split_whitespace().next().unwrap_or_default()
        )
    };
    let started = Instant::now();
    let start = crate::util::output(
        Command::new("curl")
            .args(["-sf", "-X", "POST", "-D", "-", "-o", "/dev/null"])
            .arg(format!("{}/v2/bench/floor/blobs/uploads/", proxy.url())),
    )?;
    let headers = String::from_utf8(start.stdout)?;
    let location = headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        })
        .context("the registry gave no upload location")?;
    let sep = if location.contains('?') { '&' } else { '?' };
    let status = crate::util::status(
        Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-X", "PUT"])
            .args(["-H", "Content-Type: application/octet-stream"])
            .arg("--data-binary")
            .arg(format!("@{}", blob.display()))
            .arg(format!("{location}{sep}digest={digest}")),
    )?;
    anyhow::ensure!(status.success(), "upload floor: curl failed with {status}");
    Ok(started.elapsed())
}

/// When kiln's push of workload `name` ended, from `started`: the proxy's
/// record of when the registry answered the last manifest PUT to its
/// repository (the tag, pushed after every blob).
fn push_end(proxy: &FaultProxy, name: &str, started: Instant) -> anyhow::Result<Duration> {
    let path = format!("/v2/bench/{name}/manifests/");
    let answered = proxy
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with(&path) && r.status < 300)
        .map(|r| r.answered)
        .max()
        .with_context(|| format!("the proxy saw no manifest PUT to {path}"))?;
    Ok(answered.saturating_duration_since(started))
}

/// Runs the kiln executor; its wall time and peak RSS (KiB).
///
/// The peak comes from GNU time's `wait4` of kiln, not from ours: Linux keeps a
/// process's peak RSS across `execve`, and a child spawned from this process
/// (which held the Debian base in memory) would report this process's peak.
/// kiln forked by `time` starts from `time`'s small one.
fn kiln_build(
    kiln: &Path,
    context: &Path,
    dir: &Path,
    proxy: &FaultProxy,
    name: &str,
    logs: Option<&Path>,
) -> anyhow::Result<(Duration, u64)> {
    let rss_file = dir.join("kiln.maxrss");
    let mut cmd = Command::new(TIME);
    cmd.args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(kiln)
        .arg("--context")
        .arg(context)
        .arg("--dockerfile")
        .arg(context.join("Dockerfile"))
        .arg("--destination")
        .arg(format!("{}/bench/{name}:1", proxy.host_port()))
        .args(["--insecure", "--insecure-pull"])
        .arg("--kaniko-dir")
        .arg(dir.join("kaniko"));
    if logs.is_some() {
        cmd.args(["--verbosity=debug", "--log-timestamp"]);
    }
    let started = Instant::now();
    let out = crate::util::output(&mut cmd)?;
    let wall = started.elapsed();
    if let Some(logs) = logs {
        fs_err::create_dir_all(logs)?;
        fs_err::write(logs.join(format!("{name}.log")), &out.stderr)?;
    }
    anyhow::ensure!(
        out.status.success(),
        "kiln failed on {name} ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs_err::read_to_string(&rss_file)?;
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("GNU time wrote no peak RSS: {text:?}"))?;
    Ok((wall, kib))
}
