//! A generated tree of mixed files shared by the benches: many small
//! text-like files, some large text-like files, some incompressible ones.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use kiln_layer::{Entry, LayerPath, Metadata, Timestamp};

/// xorshift64*: fast, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const WORDS: &[&str] = &[
    "the",
    "layer",
    "image",
    "container",
    "build",
    "registry",
    "manifest",
    "digest",
    "config",
    "static",
    "void",
    "return",
    "int",
    "char",
    "struct",
    "include",
    "define",
    "if",
    "else",
    "for",
    "while",
    "function",
    "package",
    "import",
    "export",
    "class",
    "public",
    "private",
    "error",
    "value",
    "string",
    "bytes",
    "0x1f8b",
    "usr/lib/x86_64-linux-gnu",
    "libc.so.6",
];

fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        let r = rng.next();
        out.extend_from_slice(WORDS[(r % WORDS.len() as u64) as usize].as_bytes());
        out.push(if r >> 60 == 0 { b'\n' } else { b' ' });
        if r >> 56 == 1 {
            out.extend_from_slice(format!("{:x}", r).as_bytes());
        }
    }
    out.truncate(len);
    out
}

fn random(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes the tree (~500 MB) into `root`; returns its byte count.
pub fn generate(root: &Path) -> u64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut total = 0u64;
    for d in 0..200 {
        let dir = root.join(format!("pkg{d:03}/lib"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let len = 512 + (rng.next() % 16_000) as usize;
            let data = if f % 10 == 9 {
                random(&mut rng, len)
            } else {
                text(&mut rng, len)
            };
            std::fs::write(dir.join(format!("file{f:03}.txt")), &data).unwrap();
            total += len as u64;
        }
    }
    let big = root.join("big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..10 {
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(big.join(format!("blob{i}"))).unwrap());
        for _ in 0..34 {
            let chunk = if i >= 8 {
                random(&mut rng, 1 << 20)
            } else {
                text(&mut rng, 1 << 20)
            };
            file.write_all(&chunk).unwrap();
            total += chunk.len() as u64;
        }
    }
    total
}

/// Writes a COPY context into `root`: 20,000 files (~235 MB) in 200
/// directories, one in ten incompressible; returns its byte count.
pub fn generate_context(root: &Path) -> u64 {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut total = 0u64;
    for d in 0..200 {
        let dir = root.join(format!("src{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let len = 512 + (rng.next() % 22_500) as usize;
            let data = if f % 10 == 9 {
                random(&mut rng, len)
            } else {
                text(&mut rng, len)
            };
            std::fs::write(dir.join(format!("file{f:03}.txt")), &data).unwrap();
            total += len as u64;
        }
    }
    total
}

/// The change set of everything below `root`, with on-disk metadata.
pub fn entries(root: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            // lstat relative to the open directory, as kiln's walk does
            let md = e.metadata().unwrap();
            let rel = LayerPath::from_os(path.strip_prefix(root).unwrap()).unwrap();
            let meta = Metadata {
                mode: md.mode() & 0o7777,
                uid: u64::from(md.uid()),
                gid: u64::from(md.gid()),
                mtime: Timestamp::from_secs(md.mtime()),
                ..Metadata::default()
            };
            if md.is_dir() {
                stack.push(path.clone());
                out.push(Entry::dir(rel, meta));
            } else {
                out.push(Entry::file(rel, &path, meta));
            }
        }
    }
    out
}

/// Runs a shell pipeline and returns its wall time in seconds.
pub fn time_shell(script: &str) -> f64 {
    let start = Instant::now();
    let status = Command::new("sh")
        .args(["-c", script])
        .status()
        .expect("sh");
    assert!(status.success(), "{script} failed");
    start.elapsed().as_secs_f64()
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn rusage(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(who, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds (user + system) used so far by this process, all threads.
pub fn cpu_self() -> f64 {
    rusage(libc::RUSAGE_SELF)
}

/// CPU seconds used so far by waited-for child processes (and theirs).
pub fn cpu_children() -> f64 {
    rusage(libc::RUSAGE_CHILDREN)
}

/// Wall and CPU seconds of one measured run.
#[derive(Clone, Copy)]
pub struct Run {
    pub wall: f64,
    pub cpu: f64,
}

/// Times `f` in this process.
pub fn measure_self<T>(f: impl FnOnce() -> T) -> (T, Run) {
    let (c0, t0) = (cpu_self(), Instant::now());
    let out = f();
    let run = Run {
        wall: t0.elapsed().as_secs_f64(),
        cpu: cpu_self() - c0,
    };
    (out, run)
}

/// Times a shell pipeline (wall, and CPU of all its processes).
pub fn measure_shell(script: &str) -> Run {
    let c0 = cpu_children();
    let wall = time_shell(script);
    Run {
        wall,
        cpu: cpu_children() - c0,
    }
}

/// Prints a row: name, MB/s (wall), MB per CPU-second, extra column, ratio.
pub fn row(name: &str, mb: f64, run: Run, extra: &str, vs: &str) {
    println!(
        "{name:<30} {:>9.1} {:>11.1} {extra:>9} {vs:>10}",
        mb / run.wall,
        mb / run.cpu
    );
}

/// The header matching [`row`].
pub fn header(first: &str, extra: &str) {
    println!(
        "{first:<30} {:>9} {:>11} {extra:>9} {:>10}",
        "MB/s", "MB/cpu-s", "vs base"
    );
}

/// Prints the median of `pairs` (the baseline's time over kiln's, one per
/// round) and every round's ratio, sorted.
pub fn median_of_pairs(label: &str, pairs: &mut [f64]) {
    pairs.sort_by(f64::total_cmp);
    println!(
        "{:<30} {:.2}x (rounds: {})",
        label,
        pairs[pairs.len() / 2],
        pairs
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}
