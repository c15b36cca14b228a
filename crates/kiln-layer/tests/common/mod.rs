//! Shared helpers of the kiln-layer integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use kiln_layer::{
    Applied, ApplyOptions, Error, Expected, LayerPath, Metadata, Timestamp, apply_layer,
    apply_layer_file,
};

/// A `LayerPath` from a test literal.
pub fn p(s: impl AsRef<[u8]>) -> LayerPath {
    LayerPath::new(s).expect("valid test path")
}

/// Metadata with mode, owner and a fixed mtime.
pub fn meta(mode: u32, uid: u64, gid: u64) -> Metadata {
    Metadata {
        mode,
        uid,
        gid,
        mtime: Timestamp::from_secs(1_700_000_000),
        ..Metadata::default()
    }
}

/// How a test hands a blob to the applier: as a stream ([`apply_layer`]) or
/// stored in a file ([`apply_layer_file`], which reads a plain blob through
/// mappings and writes file contents from them in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Stream,
    File,
}

impl Via {
    pub const BOTH: [Via; 2] = [Via::Stream, Via::File];

    /// Applies `blob` onto `root` with the default options.
    pub fn apply(
        self,
        blob: &[u8],
        name: &str,
        expected: Expected,
        root: &Path,
    ) -> Result<Applied, Error> {
        match self {
            Via::Stream => apply_layer(blob, name, expected, root, &ApplyOptions::default()),
            Via::File => {
                let mut file = tempfile::tempfile().expect("temporary blob file");
                std::io::Write::write_all(&mut file, blob).expect("writing the blob file");
                apply_layer_file(&file, name, expected, root, &ApplyOptions::default())
            }
        }
    }
}

/// Runs an external tool, panicking loudly when it is missing.
pub fn run(program: &str, args: &[&str], dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("needs `{program}` ({e}): install with .ci/install-deps"))
}

/// Runs a tool and asserts it succeeded, returning stdout.
pub fn run_ok(program: &str, args: &[&str], dir: Option<&Path>) -> String {
    let out = run(program, args, dir);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builders for raw (possibly hostile) tar streams, byte by byte.
pub mod rawtar {
    /// A ustar header block with a valid checksum.
    pub fn header(name: &[u8], typeflag: u8, size: u64, link: &[u8], mode: u32) -> [u8; 512] {
        let mut b = [0u8; 512];
        let n = name.len().min(100);
        b[..n].copy_from_slice(&name[..n]);
        let put = |b: &mut [u8; 512], off: usize, width: usize, v: u64| {
            let s = format!("{:0w$o}", v, w = width - 1);
            b[off..off + width - 1].copy_from_slice(s.as_bytes());
        };
        put(&mut b, 100, 8, u64::from(mode));
        put(&mut b, 108, 8, 0);
        put(&mut b, 116, 8, 0);
        put(&mut b, 124, 12, size);
        put(&mut b, 136, 12, 1_600_000_000);
        b[156] = typeflag;
        let l = link.len().min(100);
        b[157..157 + l].copy_from_slice(&link[..l]);
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    /// A tar stream under construction.
    #[derive(Default)]
    pub struct RawTar(pub Vec<u8>);

    impl RawTar {
        fn data(&mut self, data: &[u8]) {
            self.0.extend_from_slice(data);
            let rem = data.len() % 512;
            if rem != 0 {
                self.0.extend(std::iter::repeat_n(0u8, 512 - rem));
            }
        }
        pub fn file(mut self, name: &[u8], data: &[u8]) -> Self {
            self.0
                .extend_from_slice(&header(name, b'0', data.len() as u64, b"", 0o644));
            self.data(data);
            self
        }
        pub fn dir(mut self, name: &[u8]) -> Self {
            self.0.extend_from_slice(&header(name, b'5', 0, b"", 0o755));
            self
        }
        pub fn symlink(mut self, name: &[u8], target: &[u8]) -> Self {
            self.0
                .extend_from_slice(&header(name, b'2', 0, target, 0o777));
            self
        }
        pub fn hardlink(mut self, name: &[u8], target: &[u8]) -> Self {
            self.0
                .extend_from_slice(&header(name, b'1', 0, target, 0o644));
            self
        }
        pub fn char_device(mut self, name: &[u8]) -> Self {
            self.0.extend_from_slice(&header(name, b'3', 0, b"", 0o666));
            self
        }
        /// A PAX extended header applying to the next member.
        pub fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
            let mut body = Vec::new();
            for (key, value) in records {
                let base = key.len() + value.len() + 3;
                let mut len = base + 1;
                while len != base + len.to_string().len() {
                    len = base + len.to_string().len();
                }
                body.extend_from_slice(format!("{len} {key}=").as_bytes());
                body.extend_from_slice(value);
                body.push(b'\n');
            }
            self.0.extend_from_slice(&header(
                b"PaxHeaders/x",
                b'x',
                body.len() as u64,
                b"",
                0o644,
            ));
            self.data(&body);
            self
        }
        /// A GNU long-name header applying to the next member.
        pub fn gnu_long_name(mut self, name: &[u8]) -> Self {
            let mut data = name.to_vec();
            data.push(0);
            self.0.extend_from_slice(&header(
                b"././@LongLink",
                b'L',
                data.len() as u64,
                b"",
                0o644,
            ));
            self.data(&data);
            self
        }
        pub fn finish(mut self) -> Vec<u8> {
            self.0.extend_from_slice(&[0u8; 1024]);
            self.0
        }
    }
}

/// A description of every file below `root`: type, mode, owner, size,
/// content hash, link target, mtime (non-directories), xattrs.
pub fn describe_tree(root: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ft = md.file_type();
            let mut desc = format!("mode={:o} uid={} gid={}", md.mode(), md.uid(), md.gid());
            if ft.is_dir() {
                stack.push(path.clone());
            } else {
                desc.push_str(&format!(" mtime={} nlink={}", md.mtime(), md.nlink()));
            }
            if ft.is_file() {
                let content = std::fs::read(&path).unwrap();
                desc.push_str(&format!(
                    " size={} sha={}",
                    content.len(),
                    kiln_oci::Digest::sha256_of(&content)
                ));
            }
            if ft.is_symlink() {
                desc.push_str(&format!(
                    " -> {}",
                    std::fs::read_link(&path).unwrap().display()
                ));
            }
            if ft.is_char_device() || ft.is_block_device() {
                desc.push_str(&format!(" rdev={}", md.rdev()));
            }
            if !ft.is_symlink() {
                let mut names: Vec<_> = xattr::list(&path).unwrap().collect();
                names.sort();
                for name in names {
                    let value = xattr::get(&path, &name).unwrap().unwrap_or_default();
                    desc.push_str(&format!(" xattr {}={:?}", name.to_string_lossy(), value));
                }
            }
            out.insert(rel, desc);
        }
    }
    out
}
