//! Overhead of snapshotting one step that changes one file, on a rootfs of 100,000
//! small files, per backend, next to a bare `find ROOT -printf ''` walk of the same tree
//! measured in the same run. Prints milliseconds and ratios.
//!
//! Also printed: a bare single-threaded `fstatat` of every path (the floor of any
//! stat-based walk, and what the walk backend's first baseline is compared with: a full
//! walk is also what a step costs without inotify or after a journal overflow), and a
//! step that makes more events than the kernel's inotify queue holds.
//!
//! `cargo bench -p kiln-snapshot --bench step` (as root, for the overlay backend).
//! `KILN_BENCH_FILES` changes the number of files; `KILN_BENCH_ROOT` reuses a tree built
//! by an earlier run of the same layout (it is modified) instead of building one.

#![allow(clippy::print_stdout)]

use std::ffi::CStr;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_snapshot::{IgnoreList, OverlaySnapshotter, SnapshotMode, WalkSnapshotter};

const RUNS: usize = 5;

fn build_tree(root: &Path, files: usize) {
    let per_dir = 100;
    let fanout = 10;
    let leaf_dirs = files.div_ceil(per_dir);
    let mut made = 0;
    for d in 0..leaf_dirs {
        let dir = root
            .join(format!("usr{}", d / (fanout * fanout)))
            .join(format!("lib{}", (d / fanout) % fanout))
            .join(format!("pkg{}", d % fanout));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..per_dir {
            if made == files {
                return;
            }
            fs::write(
                dir.join(format!("file{f}.txt")),
                format!("content of {d}/{f}\n"),
            )
            .unwrap();
            made += 1;
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `find ROOT -printf FORMAT` with its output discarded.
fn time_find(root: &Path, format: &str) -> Duration {
    let t = Instant::now();
    let st = Command::new("find")
        .arg(root)
        .args(["-printf", format])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "find failed");
    t.elapsed()
}

/// `getdents` + `fstatat` relative to each directory's fd, one thread: what any walk
/// that stats every path pays at least.
fn time_fstatat_walk(root: &Path) -> (Duration, usize) {
    use nix::dir::Dir;
    use nix::fcntl::{AtFlags, OFlag};
    use nix::sys::stat::{Mode, fstatat};
    fn walk(dir: &mut Dir, count: &mut usize) {
        let fd = dir.as_raw_fd();
        let mut subdirs = Vec::new();
        for e in dir.iter() {
            let e = e.unwrap();
            let name: &CStr = e.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let st = fstatat(Some(fd), name, AtFlags::AT_SYMLINK_NOFOLLOW).unwrap();
            *count += 1;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                subdirs.push(name.to_owned());
            }
        }
        for name in subdirs {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            let mut sub = Dir::openat(Some(fd), name.as_c_str(), flags, Mode::empty()).unwrap();
            walk(&mut sub, count);
        }
    }
    let t = Instant::now();
    let mut count = 0;
    let mut dir = Dir::open(root, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
    walk(&mut dir, &mut count);
    (t.elapsed(), count)
}

/// Creates and removes a file in `dir` for more events than the kernel's inotify queue
/// holds (16384 by default). Leaves only `dir`'s mtime changed.
fn churn(dir: &Path) {
    let limit: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    let p = dir.join("churn");
    // At least 3 events each (create, modify, close after write, delete).
    for _ in 0..=limit / 3 {
        fs::write(&p, "x").unwrap();
        fs::remove_file(&p).unwrap();
    }
}

fn main() {
    let files: usize = std::env::var("KILN_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let root = match std::env::var_os("KILN_BENCH_ROOT") {
        Some(existing) => std::path::PathBuf::from(existing),
        None => {
            let root = tmp.path().join("rootfs");
            let t = Instant::now();
            build_tree(&root, files);
            println!(
                "built a rootfs of {files} files in {:.0} ms",
                ms(t.elapsed())
            );
            root
        }
    };
    let target = root.join("usr0/lib0/pkg0/file0.txt");
    let ignore = IgnoreList::kaniko_defaults(Path::new("/kaniko"), true).unwrap();

    time_find(&root, ""); // warm the caches
    let find = median((0..RUNS).map(|_| time_find(&root, "")).collect());
    println!(
        "bare `find ROOT -printf ''`:            {:8.1} ms",
        ms(find)
    );
    // GNU find answers -printf '' from readdir's d_type alone; a snapshot must stat
    // every path, so show what a find that stats costs too.
    let find_stat = median((0..RUNS).map(|_| time_find(&root, "%C@")).collect());
    println!(
        "stat-ing `find ROOT -printf '%C@'`:     {:8.1} ms  ({:.2}x bare find)",
        ms(find_stat),
        find_stat.as_secs_f64() / find.as_secs_f64()
    );

    time_fstatat_walk(&root);
    let stat_walks: Vec<(Duration, usize)> = (0..RUNS).map(|_| time_fstatat_walk(&root)).collect();
    let paths = stat_walks[0].1;
    let stat_walk = median(stat_walks.into_iter().map(|(d, _)| d).collect());
    println!(
        "bare fstatat walk, 1 thread ({paths} paths): {:8.1} ms  ({:.2}x bare find)",
        ms(stat_walk),
        stat_walk.as_secs_f64() / find.as_secs_f64()
    );

    for mode in [SnapshotMode::Full, SnapshotMode::Redo] {
        let t = Instant::now();
        let mut walk = WalkSnapshotter::new(&root, mode, ignore.clone()).unwrap();
        let baseline = t.elapsed();
        let steps: Vec<Duration> = (0..RUNS)
            .map(|i| {
                let t = Instant::now();
                fs::write(&target, format!("step {i} {mode}\n")).unwrap();
                let changes = walk.diff().unwrap();
                let d = t.elapsed();
                assert_eq!(changes.len(), 4, "one file and its 3 parent dirs");
                d
            })
            .collect();
        let step = median(steps);
        println!(
            "walk ({mode}): first baseline (full walk) {:7.1} ms  ({:.2}x find, {:.2}x bare fstatat walk)",
            ms(baseline),
            baseline.as_secs_f64() / find.as_secs_f64(),
            baseline.as_secs_f64() / stat_walk.as_secs_f64()
        );
        println!(
            "walk ({mode}): step = change + diff      {:8.1} ms  ({:.2}x find, {:.2}x stat-ing find; the diff walk is the next baseline)",
            ms(step),
            step.as_secs_f64() / find.as_secs_f64(),
            step.as_secs_f64() / find_stat.as_secs_f64()
        );
        println!(
            "walk ({mode}): baseline + change + diff  {:8.1} ms  ({:.2}x find)",
            ms(baseline + step),
            (baseline + step).as_secs_f64() / find.as_secs_f64()
        );
        // A step with more events than the kernel queues: only the diff is timed.
        let churned: Vec<Duration> = (0..RUNS)
            .map(|i| {
                churn(&root.join("usr0/lib0/pkg1"));
                fs::write(&target, format!("churn {i} {mode}\n")).unwrap();
                let t = Instant::now();
                let changes = walk.diff().unwrap();
                let d = t.elapsed();
                assert_eq!(changes.len(), 5, "one file, a dir and their 3 parent dirs");
                d
            })
            .collect();
        let churned = median(churned);
        println!(
            "walk ({mode}): diff after ~16k events      {:8.1} ms  ({:.2}x find)",
            ms(churned),
            churned.as_secs_f64() / find.as_secs_f64(),
        );
    }

    match OverlaySnapshotter::new(
        &root,
        tmp.path().join("scratch"),
        SnapshotMode::Full,
        ignore,
    ) {
        Ok(mut overlay) => {
            let steps: Vec<Duration> = (0..RUNS)
                .map(|i| {
                    let t = Instant::now();
                    let step = overlay.begin().unwrap();
                    let p = step.merged().join("usr0/lib0/pkg0/file0.txt");
                    fs::write(p, format!("overlay step {i}\n")).unwrap();
                    let changes = step.finish().unwrap();
                    let d = t.elapsed();
                    assert_eq!(changes.len(), 4, "one file and its 3 parent dirs");
                    d
                })
                .collect();
            let step = median(steps);
            println!(
                "overlay (full): mount + change + diff + merge {:6.1} ms  ({:.3}x find; target < 50 ms)",
                ms(step),
                step.as_secs_f64() / find.as_secs_f64()
            );
        }
        Err(e) => println!("overlay backend unavailable here: {e}"),
    }
}
