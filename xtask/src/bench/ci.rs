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
//! (12 KB each, incompressible), one RUN writing 500 MB (incompressible).
//! `--scale` shrinks the file count and the sizes for a quick run.

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
}

fn settings(args: &[String]) -> anyhow::Result<Settings> {
    let mut s = Settings {
        scale: 1.0,
        rate_mb: 50,
        latency_ms: 20,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--scale" => s.scale = value.parse().context("--scale")?,
            "--rate" => s.rate_mb = value.parse().context("--rate")?,
            "--latency" => s.latency_ms = value.parse().context("--latency")?,
            other => anyhow::bail!(
                "bench ci: unknown flag {other:?} (known: --scale F, --rate MB/S, --latency MS)"
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
    let layer = FixtureLayer::from_tar(&fs_err::read(&debian)?, true);
    let base_blob = scratch.path().join("base.tar.gz");
    fs_err::write(&base_blob, &layer.blob)?;
    let base = FixtureImage::from_layers(vec![layer], &["/bin/bash"]);
    base.push(&registry, "bench/debian:12", None)
        .map_err(|e| anyhow::anyhow!("pushing the Debian base: {e:?}"))?;
    let base_digest = base.layers[0].digest();
    let base_ref = format!("{}/bench/debian:12", proxy.host_port());

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
    for workload in workloads(&s) {
        let dir = scratch.path().join(workload.name);
        fs_err::create_dir_all(&dir)?;
        let context = dir.join("context");
        fs_err::create_dir_all(&context)?;
        fs_err::write(
            context.join("Dockerfile"),
            format!("FROM {base_ref}\n{}", workload.steps),
        )?;
        let layer_content = (workload.prepare)(&context, &dir)?;

        let floors = Floors {
            download: download_floor(&proxy, &base_digest, &dir)?,
            unpack: unpack_floor(&base_blob, &dir)?,
            encode: encode_floor(&layer_content, &dir)?,
        };
        let upload = upload_floor(&proxy, &dir.join("layer.tar.gz"))?;
        let started = Instant::now();
        let (wall, rss_kib) = kiln_build(&kiln, &context, &dir, &proxy, workload.name)?;
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
    steps: String,
    prepare: Prepare,
}

fn workloads(s: &Settings) -> Vec<Workload> {
    let files = ((20_000.0 * s.scale) as usize).max(10);
    let big_mb = ((500.0 * s.scale) as usize).max(1);
    let runs: String = (0..10)
        .map(|i| format!("RUN echo step {i} > /step-{i}\n"))
        .collect();
    vec![
        Workload {
            name: "ten-runs-debian",
            steps: runs,
            prepare: Box::new(|_, dir| {
                let layer = dir.join("layer");
                fs_err::create_dir_all(&layer)?;
                fs_err::write(layer.join("step-0"), "step 0\n")?;
                Ok(layer)
            }),
        },
        Workload {
            name: "copy-20k-files",
            steps: "COPY files /app\n".into(),
            prepare: Box::new(move |context, _| {
                let root = context.join("files");
                for i in 0..files {
                    let sub = root.join(format!("d{:03}", i / 200));
                    fs_err::create_dir_all(&sub)?;
                    fs_err::write(sub.join(format!("f{i}")), noise(12 * 1024, i as u64))?;
                }
                Ok(root)
            }),
        },
        Workload {
            name: "run-writes-500mb",
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
    ]
}

/// Incompressible bytes (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn timed(what: &str, cmd: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = crate::util::status(cmd.stdout(Stdio::null()))?;
    let took = started.elapsed();
    anyhow::ensure!(status.success(), "{what}: {cmd:?} failed with {status}");
    Ok(took)
}

fn download_floor(proxy: &FaultProxy, digest: &str, dir: &Path) -> anyhow::Result<Duration> {
    let url = format!("{}/v2/bench/debian/blobs/{digest}", proxy.url());
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
) -> anyhow::Result<(Duration, u64)> {
    let rss_file = dir.join("kiln.maxrss");
    let started = Instant::now();
    let out = crate::util::output(
        Command::new(TIME)
            .args(["-f", "%M", "-o"])
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
            .arg(dir.join("kaniko")),
    )?;
    let wall = started.elapsed();
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
