//! `cargo xtask demo`: kiln's main job on the bundled example, offline, with
//! nothing on the machine but Linux and a Rust toolchain.
//!
//! 1. cargo builds kiln and `hello` (`fixtures/demo/hello`), the latter linked
//!    statically (`-C target-feature=+crt-static`), so it is a whole userland:
//!    the image needs no busybox, shell or libc from the host.
//! 2. The build context is `fixtures/demo` plus that binary; kiln builds its
//!    multi-stage Dockerfile (exec-form RUN steps, `COPY --from`, a build arg,
//!    labels, a user) into an OCI layout under `target/demo/image`.
//! 3. The image runs with kiln's own code, in a second process
//!    (`xtask __demo-run`): kiln-layer's applier unpacks the layout's layers
//!    (digests verified) into a fresh rootfs and kiln-sandbox runs the image's
//!    command in it, as its user, in new namespaces. No umoci, runc or unshare.
//!
//! Root is not required: without it, kiln and the run step each re-run
//! themselves in a user namespace that maps the caller's /etc/subuid and
//! /etc/subgid ranges (kiln-sandbox's rootless path), since the image's user
//! (uid 1000) must exist there. Where that cannot work, the demo says so in
//! one line before building anything.

use crate::util::{cargo, ensure_static, output, run as run_cmd, target_dir, workspace_root};
use anyhow::{Context, Result, bail, ensure};
use kiln_layer::{ApplyOptions, Expected, apply_layer_file};
use kiln_oci::OciLayout;
use kiln_sandbox::{Isolation, Network, RunSpec, Sandbox, SandboxOptions, Stream};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The uid and gid of the image's user (`add-user demo 1000` in the Dockerfile).
const IMAGE_USER_ID: u32 = 1000;

/// The files of `fixtures/demo` that make the build context (with `hello`).
const CONTEXT_FILES: [&str; 2] = ["Dockerfile", "greeting.txt"];

/// The file that marks a directory as the demo's output, which the next run
/// may delete.
const MARKER: &str = ".kiln-demo-output";

/// What `cargo xtask demo [--out DIR] [--kiln PATH --hello PATH]` was asked.
struct Options {
    /// Where the context, the image and kiln's work dir go (`target/demo`).
    out: PathBuf,
    /// Already built kiln and (static) hello binaries: cargo is not run.
    prebuilt: Option<(PathBuf, PathBuf)>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        const USAGE: &str = "usage: cargo xtask demo [--out DIR] [--kiln PATH --hello PATH]";
        let (mut out, mut kiln, mut hello) = (None, None, None);
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--out" => &mut out,
                "--kiln" => &mut kiln,
                "--hello" => &mut hello,
                _ => bail!("unknown argument {flag:?}; {USAGE}"),
            };
            *slot = Some(PathBuf::from(
                args.next()
                    .with_context(|| format!("{flag} needs a value; {USAGE}"))?,
            ));
        }
        let prebuilt = match (kiln, hello) {
            (Some(kiln), Some(hello)) => Some((kiln, hello)),
            (None, None) => None,
            _ => bail!("--kiln and --hello go together; {USAGE}"),
        };
        Ok(Options {
            out: out.unwrap_or_else(|| target_dir().join("demo")),
            prebuilt,
        })
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let (kiln, hello) = match options.prebuilt {
        Some(binaries) => binaries,
        None => build_programs()?,
    };
    check_ids_for_the_image_user()?;
    ensure_static(&hello)?;

    let out = options.out;
    clear_output_dir(&out)?;
    let context = out.join("context");
    fs_err::create_dir_all(&context)?;
    fs_err::write(out.join(MARKER), "made by `cargo xtask demo`\n")?;
    for file in CONTEXT_FILES {
        fs_err::copy(
            workspace_root().join("fixtures/demo").join(file),
            context.join(file),
        )?;
    }
    fs_err::copy(&hello, context.join("hello"))?;

    let layout = out.join("image");
    run_cmd(
        Command::new(&kiln)
            .arg("build")
            .arg("--context")
            .arg(&context)
            .arg("--no-push")
            .arg("--oci-layout-path")
            .arg(&layout)
            .arg("--kaniko-dir")
            .arg(out.join("work"))
            .arg("--build-arg")
            .arg("VERSION=2.0"),
    )?;

    let me = std::env::current_exe().context("finding the xtask binary")?;
    let ran = output(Command::new(me).arg("__demo-run").arg(&layout).arg(&out))?;
    let said = String::from_utf8_lossy(&ran.stdout);
    ensure!(
        ran.status.success(),
        "running the image at {} failed ({}): {}{}",
        layout.display(),
        ran.status,
        said,
        String::from_utf8_lossy(&ran.stderr).trim()
    );
    println!("the image at {} says: {}", layout.display(), said.trim());
    println!(
        "it is a plain OCI image layout (any OCI tool reads it, e.g. `skopeo inspect oci:{}`)",
        layout.display()
    );
    Ok(())
}

/// Empties the way for a new run: an earlier run's output (the default
/// `target/demo`, or a directory holding [`MARKER`]) is deleted, an empty
/// or missing directory is fine; anything else is the user's and is refused.
fn clear_output_dir(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let ours = out.join(MARKER).exists() || out == target_dir().join("demo");
    if ours {
        return Ok(fs_err::remove_dir_all(out)?);
    }
    ensure!(
        fs_err::read_dir(out)?.next().is_none(),
        "{} is not empty and not an earlier demo output ({MARKER}); \
         the demo writes into a new or empty directory only",
        out.display()
    );
    Ok(())
}

/// Builds kiln and the static `hello`; returns their paths.
fn build_programs() -> Result<(PathBuf, PathBuf)> {
    run_cmd(cargo().args(["build", "--locked", "--package", "kiln"]))?;
    // `cargo rustc` gives the flag to this binary alone (it has no
    // dependencies); release keeps it apart from the workspace's dev build.
    run_cmd(cargo().args([
        "rustc",
        "--locked",
        "--release",
        "--package",
        "hello",
        "--bin",
        "hello",
        "--",
        "-C",
        "target-feature=+crt-static",
    ]))
    .context(
        "linking fixtures/demo/hello statically needs glibc's static libraries \
         (libc.a: package libc6-dev on Debian/Ubuntu, glibc-static on Fedora)",
    )?;
    Ok((
        target_dir().join("debug/kiln"),
        target_dir().join("release/hello"),
    ))
}

/// Without root, the build and the run need a user namespace in which the
/// image's user exists: kiln-sandbox's own decision (the same probe and id
/// maps `kiln build` uses) says whether it does.
fn check_ids_for_the_image_user() -> Result<()> {
    // SAFETY: trivial getter.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return Ok(());
    }
    let sandbox = Sandbox::new(&SandboxOptions {
        isolation: Isolation::Chroot,
        ..SandboxOptions::default()
    })
    .context("as a non-root user the demo needs user namespaces, and they do not work here")?;
    let mapped = sandbox.id_maps().is_some_and(|maps| {
        maps.uid_outside(IMAGE_USER_ID).is_some() && maps.gid_outside(IMAGE_USER_ID).is_some()
    });
    let who = std::env::var("USER").unwrap_or_else(|_| uid.to_string());
    ensure!(
        mapped,
        "as a non-root user the demo needs subordinate ids (its image has a user \
         {IMAGE_USER_ID}): add the line `{who}:100000:65536` to /etc/subuid and \
         /etc/subgid and install newuidmap and newgidmap (package uidmap), or run it as root"
    );
    Ok(())
}

/// `xtask __demo-run LAYOUT DIR`: unpacks the layout's only image into a fresh
/// rootfs under DIR with kiln-layer and runs its command with kiln-sandbox;
/// the command's output goes to this process's stdout and stderr. Without
/// root, first re-runs itself in a user namespace mapping the caller's
/// subordinate ids, so the image's owners (user 1000) can be set and used.
pub fn run_image(args: &[String]) -> Result<()> {
    let [layout_dir, dir] = args else {
        bail!("usage: xtask __demo-run LAYOUT DIR");
    };
    if let Some(code) = kiln_sandbox::rerun_in_user_namespace()? {
        std::process::exit(code);
    }
    let layout = OciLayout::open(layout_dir)?;
    let image = layout.image(None, None)?;
    let rootfs = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(dir)
        .with_context(|| format!("creating a rootfs directory in {dir}"))?;
    let diff_ids = &image.config.rootfs.diff_ids;
    ensure!(
        diff_ids.len() == image.manifest.layers.len(),
        "{layout_dir}: the config lists {} diff_ids for {} layers",
        diff_ids.len(),
        image.manifest.layers.len()
    );
    for (layer, diff_id) in image.manifest.layers.iter().zip(diff_ids) {
        let blob = fs_err::File::open(layout.blob_path(layer))?;
        let expected = Expected {
            digest: Some(layer.digest.clone()),
            size: Some(layer.size),
            diff_id: Some(diff_id.clone()),
        };
        apply_layer_file(
            blob.file(),
            &layer.digest.to_string(),
            expected,
            rootfs.path(),
            &ApplyOptions::default(),
        )?;
    }

    let config = image.config.config.unwrap_or_default();
    let argv: Vec<String> = config
        .entrypoint
        .into_iter()
        .flatten()
        .chain(config.cmd.into_iter().flatten())
        .collect();
    ensure!(!argv.is_empty(), "{layout_dir}: the image has no command");
    let mut spec = RunSpec::new(rootfs.path(), argv);
    spec.env = config
        .env
        .into_iter()
        .flatten()
        .filter_map(|e| e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    spec.user = config.user.unwrap_or_default();
    spec.cwd = config.working_dir.unwrap_or_else(|| "/".into()).into();
    spec.network = Network::None;
    let sandbox = Sandbox::new(&SandboxOptions {
        isolation: Isolation::Chroot,
        ..SandboxOptions::default()
    })?;
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    sandbox.run(&spec, &mut |stream: Stream, line: &[u8]| {
        let sink: &mut dyn Write = match stream {
            Stream::Stdout => &mut stdout,
            Stream::Stderr => &mut stderr,
        };
        let _ = sink.write_all(line).and_then(|()| sink.write_all(b"\n"));
    })?;
    Ok(())
}
