//! Push pipeline bench: a build of three COPY steps making large gzip layers
//! (3 × ~96 MB of text-like and incompressible data), pushed to a local
//! plain-HTTP docker-registry, with the pipeline (`push_while_building`, the
//! default: layers upload while they are encoded and while later steps run)
//! and in the old order (everything uploaded after the last step).
//!
//! The two run interleaved, `ROUNDS` times, who goes first alternating, each
//! into a fresh kaniko dir and a repository of its own. Printed per side:
//! the best wall time, the time after the last step's end until the build
//! returns (push phase: with the pipeline the wait for the last upload plus
//! confirming blobs and putting config and manifest), and time-to-exit over
//! time-until-the-last-encoding-ended; then the old order's time over the
//! pipeline's, best and median of the rounds' pairs.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use kiln_build::{BuildOptions, BuildOutcome, ContextSource};

const ROUNDS: usize = 5;

const DOCKERFILE: &str = "FROM scratch\nCOPY a.bin /a.bin\nCOPY b.bin /b.bin\nCOPY c.bin /c.bin\n";

/// ~96 MB: three quarters text-like (gzip has work to do), a quarter noise.
fn file(path: &Path, seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let words: [&[u8]; 8] = [
        b"layer ",
        b"image ",
        b"registry ",
        b"digest\n",
        b"manifest ",
        b"config ",
        b"blob ",
        b"0x1f8b ",
    ];
    for block in 0..96 {
        let mut chunk = Vec::with_capacity(1 << 20);
        while chunk.len() < 1 << 20 {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            if block % 4 == 3 {
                chunk.extend_from_slice(&r.to_le_bytes());
            } else {
                chunk.extend_from_slice(words[(r % 8) as usize]);
            }
        }
        chunk.truncate(1 << 20);
        out.write_all(&chunk).unwrap();
    }
}

fn once(ctx: &Path, host: &str, repo: &str, pipelined: bool) -> (Duration, BuildOutcome) {
    let work = tempfile::tempdir().unwrap();
    let mut options = BuildOptions::new(ContextSource::Dir(ctx.to_path_buf()));
    options.kaniko_dir = work.path().join("kiln");
    options.destinations = vec![format!("{host}/{repo}:1")];
    options.registry.insecure = true;
    options.reproducible = true;
    options.push_while_building = pipelined;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    let outcome = runtime
        .block_on(kiln_build::build(&options, &kiln_build::NoopObserver))
        .expect("kiln build");
    (start.elapsed(), outcome)
}

/// Best wall, its push phase, and exit over last-encoding-end.
struct Side {
    wall: Vec<f64>,
    push: Vec<f64>,
    exit_over_encoded: Vec<f64>,
}

impl Side {
    fn new() -> Side {
        Side {
            wall: Vec::new(),
            push: Vec::new(),
            exit_over_encoded: Vec::new(),
        }
    }

    fn add(&mut self, wall: Duration, outcome: &BuildOutcome) {
        let t = &outcome.timings;
        let encoded = (t.prepare + t.pull + t.build).as_secs_f64();
        self.wall.push(wall.as_secs_f64());
        self.push.push(t.push.as_secs_f64());
        self.exit_over_encoded.push(wall.as_secs_f64() / encoded);
    }

    fn row(&self, name: &str) {
        let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        println!(
            "{name:<26} {:>9.2} {:>11.2} {:>12.2}x",
            best(&self.wall),
            best(&self.push),
            median(&self.exit_over_encoded)
        );
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let registry = kiln_testkit::Registry::start_plain();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), DOCKERFILE).unwrap();
    for (i, name) in ["a.bin", "b.bin", "c.bin"].iter().enumerate() {
        file(&ctx.path().join(name), i as u64 + 1);
    }
    let host = registry.host_port();
    let (mut pipe, mut seq) = (Side::new(), Side::new());
    let mut pairs = Vec::new();
    for round in 0..ROUNDS {
        let run_pipe = || once(ctx.path(), &host, &format!("pipe{round}"), true);
        let run_seq = || once(ctx.path(), &host, &format!("seq{round}"), false);
        let ((pw, po), (sw, so)) = if round % 2 == 0 {
            let p = run_pipe();
            (p, run_seq())
        } else {
            let s = run_seq();
            (run_pipe(), s)
        };
        pipe.add(pw, &po);
        seq.add(sw, &so);
        pairs.push(sw.as_secs_f64() / pw.as_secs_f64());
        assert_eq!(po.digest, so.digest, "both orders push the same image");
    }
    println!(
        "3 COPY layers of ~96 MB (gzip -6) pushed to a local registry; {ROUNDS} rounds, interleaved"
    );
    println!(
        "{:<26} {:>9} {:>11} {:>13}",
        "order", "wall s", "push phase s", "exit/encoded"
    );
    pipe.row("pipelined (default)");
    seq.row("sequential (old order)");
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "sequential / pipelined wall: best {:.2}x, median of pairs {:.2}x (rounds: {})",
        best(&seq.wall) / best(&pipe.wall),
        median(&pairs),
        pairs
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}
