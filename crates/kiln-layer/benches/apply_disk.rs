//! On-disk apply bench: kiln's applier against Docker 20.10's BuildKit and GNU tar on
//! the disk builds use (ext4 here), for a layer of many small entries.
//!
//! The layer is `KILN_BENCH_LAYER` (a gzip tar, e.g. a real base layer) or a
//! generated one of about 151,000 entries (small text files in many directories,
//! symlinks). Sides, interleaved for `KILN_BENCH_ROUNDS` rounds (default 3) with a
//! rotating order:
//!
//! * kiln: `apply_layer_file` into a fresh dir below a parent marked with
//!   [`kiln_layer::spread_new_dirs`], as kiln-build lays out its build dirs;
//! * BuildKit: `docker build` of `FROM` the one-layer image (pushed once to a
//!   docker-registry the bench starts) into a dockerd the bench starts (Debian's,
//!   overlay2, data root on the same disk); the figure is BuildKit's own extraction
//!   time from its progress log, the build's wall time printed beside it (see
//!   `apply_disk/docker.rs`);
//! * tar: `pigz -dc | tar -x` into a fresh dir in `<disk>`;
//! * kiln and tar on tmpfs (`/dev/shm`), the CPU-path reference.
//!
//! Every run starts after `sync` and the removal of the run before (timed apart, never
//! counted), so each side pays the same for what the previous deletion left the disk to
//! do. `<disk>` is `KILN_BENCH_DISK` or a directory under the target dir. Rows print the
//! best wall time, the median, system CPU seconds, and the median over rounds of the
//! side's time over kiln's in the same place and round (> 1 means kiln is faster);
//! then the issue's two targets as medians of per-round ratios: kiln on disk over
//! BuildKit's extraction (at most 1.0x) and kiln on tmpfs over tar on tmpfs (at most
//! 1.2x).
#![allow(clippy::print_stdout)]

#[path = "apply_disk/docker.rs"]
mod docker;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kiln_layer::{ApplyOptions, Expected, apply_layer_file};
use sha2::{Digest as _, Sha256};

/// Rounds unless `KILN_BENCH_ROUNDS` says otherwise.
const ROUNDS: usize = 3;
/// One measured run: wall seconds (for BuildKit its own extraction time) and system
/// CPU seconds (kernel time); for BuildKit the whole `docker build` too.
#[derive(Clone, Copy)]
struct Run {
    wall: f64,
    sys: f64,
    build: Option<f64>,
}

fn sys_time(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    usage.ru_stime.tv_sec as f64 + usage.ru_stime.tv_usec as f64 / 1e6
}

fn shell(script: &str) {
    let status = Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("sh");
    assert!(status.success(), "{script} failed");
}

/// Generates the many-entry tree as a gzip tar with GNU tar and pigz: about 151,000
/// entries (1,500 directories, 145,000 small text files, 4,500 symlinks).
fn generate_layer(work: &Path) -> PathBuf {
    let src = Path::new("/dev/shm").join(format!("kiln-bench-tree-{}", std::process::id()));
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for d in 0..1500 {
        let dir = src.join(format!("usr/lib/pkg{:03}/mod{}", d / 10, d % 10));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..97 {
            let len = (next() % 3000) as usize;
            let mut data = Vec::with_capacity(len + 64);
            let mut line = 0u64;
            while data.len() < len {
                writeln!(data, "{d} {f} {line} {:x}", next() % 65536).unwrap();
                line += 1;
            }
            data.truncate(len);
            std::fs::write(dir.join(format!("file{f:02}.py")), &data).unwrap();
        }
        for s in 0..3 {
            std::os::unix::fs::symlink(format!("file{s:02}.py"), dir.join(format!("link{s}")))
                .unwrap();
        }
    }
    let layer = work.join("layer.tar.gz");
    shell(&format!(
        "tar -C {} --sort=name --owner=0 --group=0 --mtime=@1704067200 -cf - . | pigz -p 2 -6 > {}",
        src.display(),
        layer.display()
    ));
    std::fs::remove_dir_all(&src).unwrap();
    layer
}

fn sha256_hex(reader: impl std::io::Read) -> String {
    let mut hasher = Sha256::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
    std::io::copy(&mut reader, &mut hasher).unwrap();
    to_hex(&hasher.finalize())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A docker-archive (`docker save` layout) with one layer: the blob as it is.
fn docker_archive(work: &Path, layer: &Path, diff_id: &str) -> PathBuf {
    let dir = work.join("archive");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::hard_link(layer, dir.join("layer.tar.gz")).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    );
    std::fs::write(dir.join("config.json"), config).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        format!(
            r#"[{{"Config":"config.json","RepoTags":["{}"],"Layers":["layer.tar.gz"]}}]"#,
            docker::BASE
        ),
    )
    .unwrap();
    let archive = work.join("image.tar");
    shell(&format!(
        "tar -C {} -cf {} manifest.json config.json layer.tar.gz",
        dir.display(),
        archive.display()
    ));
    archive
}

fn main() {
    let rounds: usize = std::env::var("KILN_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let disk = std::env::var_os("KILN_BENCH_DISK").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-disk"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&disk).unwrap();
    let work = tempfile::tempdir_in(&disk).unwrap();
    let layer = match std::env::var_os("KILN_BENCH_LAYER") {
        Some(p) => PathBuf::from(p),
        None => generate_layer(work.path()),
    };
    let digest = format!(
        "sha256:{}",
        sha256_hex(std::fs::File::open(&layer).unwrap())
    );
    let diff_id = format!(
        "sha256:{}",
        sha256_hex(flate2::read::MultiGzDecoder::new(
            std::fs::File::open(&layer).unwrap()
        ))
    );
    let entries = String::from_utf8(
        Command::new("sh")
            .args([
                "-c",
                &format!("pigz -dc {} | tar -t | wc -l", layer.display()),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let size = std::fs::metadata(&layer).unwrap().len();
    println!(
        "layer {} ({:.1} MB gzip, {} entries), disk dir {}, {rounds} rounds, order rotating",
        layer.display(),
        size as f64 / 1e6,
        entries.trim(),
        disk.display()
    );
    let expected = Expected {
        digest: Some(digest.parse().unwrap()),
        size: Some(size),
        diff_id: Some(diff_id.parse().unwrap()),
    };
    let archive = docker_archive(work.path(), &layer, &diff_id);
    let dockerd = docker::Dockerd::start(&work.path().join("docker"));
    let registry = docker::Registry::start(&work.path().join("registry"));
    let buildkit = docker::BuildKit::new(&dockerd, &registry, &archive, work.path());
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    // kiln applies where kiln-build puts a stage root: a fresh, uniquely named dir
    // below a parent marked to spread new dirs over block groups (see
    // kiln_layer::spread_new_dirs); tar and Docker write where they always do.
    let kiln_parent = work.path().join("kiln");
    std::fs::create_dir(&kiln_parent).unwrap();
    let spread = kiln_layer::spread_new_dirs(&kiln_parent).unwrap();
    println!("kiln's parent dir spreads new dirs over block groups: {spread}");

    let kiln = |into: &Path| {
        let file = std::fs::File::open(&layer).unwrap();
        let (s0, t0) = (sys_time(libc::RUSAGE_SELF), Instant::now());
        apply_layer_file(
            &file,
            "bench",
            expected.clone(),
            into,
            &ApplyOptions::default(),
        )
        .unwrap();
        Run {
            wall: t0.elapsed().as_secs_f64(),
            sys: sys_time(libc::RUSAGE_SELF) - s0,
            build: None,
        }
    };
    let tar = |into: &Path| {
        let (s0, t0) = (sys_time(libc::RUSAGE_CHILDREN), Instant::now());
        shell(&format!(
            "pigz -dc {} | tar -x -C {} --same-owner --same-permissions",
            layer.display(),
            into.display()
        ));
        Run {
            wall: t0.elapsed().as_secs_f64(),
            sys: sys_time(libc::RUSAGE_CHILDREN) - s0,
            build: None,
        }
    };
    // dockerd's data root is the place; the build removes what it made itself
    let buildkit_side = |_: &Path| {
        let run = buildkit.run();
        Run {
            wall: run.extract,
            sys: run.sys,
            build: Some(run.build),
        }
    };
    type Side<'a> = (&'a str, &'a Path, &'a dyn Fn(&Path) -> Run);
    const KILN_DISK: usize = 0;
    const BUILDKIT: usize = 1;
    const KILN_TMPFS: usize = 3;
    const TAR_TMPFS: usize = 4;
    let sides: [Side<'_>; 5] = [
        ("kiln, disk", &kiln_parent, &kiln),
        ("BuildKit extraction, disk", &disk, &buildkit_side),
        ("pigz -dc | tar -x, disk", &disk, &tar),
        ("kiln, tmpfs", shm.path(), &kiln),
        ("pigz -dc | tar -x, tmpfs", shm.path(), &tar),
    ];
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); sides.len()];
    for round in 0..rounds {
        for i in 0..sides.len() {
            let side = (round + i) % sides.len();
            let (name, place, apply) = sides[side];
            // unique names: where ext4 puts a new dir depends on its name
            let into = place.join(format!("into-{}-{round}-{side}", std::process::id()));
            std::fs::create_dir(&into).unwrap();
            shell("sync");
            let run = apply(&into);
            let build = run
                .build
                .map(|b| format!(", docker build {b:.2} s"))
                .unwrap_or_default();
            println!(
                "  round {round} {name:<26} {:>7.2} s  ({:.2} s system CPU{build})",
                run.wall, run.sys
            );
            runs[side].push(run);
            std::fs::remove_dir_all(&into).unwrap();
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // per round, the same round's pair: a / b
    let ratios = |a: usize, b: usize| -> Vec<f64> {
        runs[a]
            .iter()
            .zip(&runs[b])
            .map(|(a, b)| a.wall / b.wall)
            .collect()
    };
    println!(
        "{:<28} {:>8} {:>8} {:>10} {:>16}",
        "applier", "best s", "median s", "median sys", "its time / kiln's"
    );
    for (side, (name, _, _)) in sides.iter().enumerate() {
        let walls: Vec<f64> = runs[side].iter().map(|r| r.wall).collect();
        let sys: Vec<f64> = runs[side].iter().map(|r| r.sys).collect();
        // same place, same round: the ratio to kiln's run in that round
        let kiln_side = if side >= KILN_TMPFS {
            KILN_TMPFS
        } else {
            KILN_DISK
        };
        println!(
            "{name:<28} {:>8.2} {:>8.2} {:>10.2} {:>15.2}x",
            walls.iter().copied().fold(f64::INFINITY, f64::min),
            median(&walls),
            median(&sys),
            median(&ratios(side, kiln_side))
        );
    }
    let builds: Vec<f64> = runs[BUILDKIT].iter().filter_map(|r| r.build).collect();
    println!(
        "(BuildKit's whole docker build, for information: best {:.2} s, median {:.2} s)",
        builds.iter().copied().fold(f64::INFINITY, f64::min),
        median(&builds)
    );
    for (what, a, b, target) in [
        ("kiln, disk / BuildKit extraction", KILN_DISK, BUILDKIT, 1.0),
        ("kiln, tmpfs / tar, tmpfs", KILN_TMPFS, TAR_TMPFS, 1.2),
    ] {
        let per_round = ratios(a, b);
        let m = median(&per_round);
        let rounds: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "{what:<34} median {m:.2}x (rounds {}), target <= {target:.1}x: {}",
            rounds.join(" "),
            if m <= target { "met" } else { "NOT met" }
        );
    }
    drop(buildkit);
    drop(registry);
    drop(dockerd);
}
