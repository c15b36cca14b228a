//! Encoding of ustar headers and PAX extended headers.
//!
//! Fields that do not fit ustar (names over 100 bytes or not ASCII, link
//! targets likewise, ids over 0o7777777, sizes of 8 GiB and more, mtimes
//! outside 0..8^11, long or non-ASCII owner names, xattrs) go into a PAX
//! extended header (`typeflag 'x'`) placed right before the member, the way
//! Go's `archive/tar` (and so kaniko and Docker) write them. PAX records are
//! emitted in key order, so the output is deterministic.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;

/// Size of a tar block.
pub(crate) const BLOCK: usize = 512;

/// Tar type flags we write.
pub(crate) mod typeflag {
    pub const REGULAR: u8 = b'0';
    pub const HARDLINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub const FIFO: u8 = b'6';
    pub const PAX: u8 = b'x';
}

/// Everything needed to write one tar member's header(s).
pub(crate) struct HeaderSpec<'a> {
    /// Member name (directories end with `/`).
    pub name: &'a [u8],
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub linkname: &'a [u8],
    pub uname: Option<&'a str>,
    pub gname: Option<&'a str>,
    pub devmajor: u32,
    pub devminor: u32,
    pub xattrs: &'a BTreeMap<OsString, Vec<u8>>,
}

const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;

/// Writes the PAX header (if needed) and the ustar header of a member.
/// The caller writes the content and its padding.
pub(crate) fn write_member_header(spec: &HeaderSpec<'_>, out: &mut impl Write) -> io::Result<()> {
    let mut pax: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let name_fits = spec.name.len() <= 100 && spec.name.is_ascii();
    if !name_fits {
        pax.insert(b"path".to_vec(), spec.name.to_vec());
    }
    if !(spec.linkname.len() <= 100 && spec.linkname.is_ascii()) {
        pax.insert(b"linkpath".to_vec(), spec.linkname.to_vec());
    }
    if spec.uid > MAX_OCTAL_7 {
        pax.insert(b"uid".to_vec(), spec.uid.to_string().into_bytes());
    }
    if spec.gid > MAX_OCTAL_7 {
        pax.insert(b"gid".to_vec(), spec.gid.to_string().into_bytes());
    }
    if spec.size > MAX_OCTAL_11 {
        pax.insert(b"size".to_vec(), spec.size.to_string().into_bytes());
    }
    let mtime_fits = spec.mtime >= 0 && (spec.mtime as u64) <= MAX_OCTAL_11;
    if !mtime_fits {
        pax.insert(b"mtime".to_vec(), spec.mtime.to_string().into_bytes());
    }
    for (key, name) in [(&b"uname"[..], spec.uname), (&b"gname"[..], spec.gname)] {
        if let Some(name) = name
            && !(name.len() <= 32 && name.is_ascii())
        {
            pax.insert(key.to_vec(), name.as_bytes().to_vec());
        }
    }
    for (key, value) in spec.xattrs {
        let mut k = b"SCHILY.xattr.".to_vec();
        k.extend_from_slice(key.as_bytes());
        pax.insert(k, value.clone());
    }

    if !pax.is_empty() {
        let data = encode_pax_records(&pax);
        let base = spec
            .name
            .strip_suffix(b"/")
            .unwrap_or(spec.name)
            .rsplit(|&b| b == b'/')
            .next()
            .unwrap_or(b"");
        let mut pax_name = b"PaxHeaders.0/".to_vec();
        pax_name.extend(base.iter().copied().filter(|b| b.is_ascii()));
        pax_name.truncate(100);
        let header = ustar_block(&UstarFields {
            name: &pax_name,
            typeflag: typeflag::PAX,
            mode: 0,
            uid: 0,
            gid: 0,
            size: data.len() as u64,
            mtime: 0,
            linkname: b"",
            uname: b"",
            gname: b"",
            devmajor: 0,
            devminor: 0,
        });
        out.write_all(&header)?;
        out.write_all(&data)?;
        write_padding(data.len() as u64, out)?;
    }

    let header = ustar_block(&UstarFields {
        name: truncate(spec.name, 100),
        typeflag: spec.typeflag,
        mode: spec.mode & 0o7777,
        uid: spec.uid.min(MAX_OCTAL_7 + 1) & MAX_OCTAL_7,
        gid: spec.gid.min(MAX_OCTAL_7 + 1) & MAX_OCTAL_7,
        size: if spec.size > MAX_OCTAL_11 {
            0
        } else {
            spec.size
        },
        mtime: if mtime_fits { spec.mtime as u64 } else { 0 },
        linkname: truncate(spec.linkname, 100),
        uname: ascii_field(spec.uname, 32),
        gname: ascii_field(spec.gname, 32),
        devmajor: u64::from(spec.devmajor).min(MAX_OCTAL_7),
        devminor: u64::from(spec.devminor).min(MAX_OCTAL_7),
    });
    out.write_all(&header)
}

/// Writes the zero padding that completes a member of `len` content bytes.
pub(crate) fn write_padding(len: u64, out: &mut impl Write) -> io::Result<()> {
    let rem = (len % BLOCK as u64) as usize;
    if rem != 0 {
        out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

fn truncate(bytes: &[u8], max: usize) -> &[u8] {
    &bytes[..bytes.len().min(max)]
}

fn ascii_field(name: Option<&str>, max: usize) -> &[u8] {
    match name {
        Some(n) if n.len() <= max && n.is_ascii() => n.as_bytes(),
        _ => b"",
    }
}

/// Encodes records as `"<len> <key>=<value>\n"`, where `len` counts the whole
/// record including its own digits.
fn encode_pax_records(records: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

struct UstarFields<'a> {
    name: &'a [u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    linkname: &'a [u8],
    uname: &'a [u8],
    gname: &'a [u8],
    devmajor: u64,
    devminor: u64,
}

fn put_octal(block: &mut [u8; BLOCK], offset: usize, width: usize, value: u64) {
    // width includes the terminating NUL
    let text = format!("{:0w$o}", value, w = width - 1);
    block[offset..offset + width - 1].copy_from_slice(text.as_bytes());
    block[offset + width - 1] = 0;
}

fn put_bytes(block: &mut [u8; BLOCK], offset: usize, bytes: &[u8]) {
    block[offset..offset + bytes.len()].copy_from_slice(bytes);
}

fn ustar_block(f: &UstarFields<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_bytes(&mut b, 0, f.name);
    put_octal(&mut b, 100, 8, u64::from(f.mode));
    put_octal(&mut b, 108, 8, f.uid);
    put_octal(&mut b, 116, 8, f.gid);
    put_octal(&mut b, 124, 12, f.size);
    put_octal(&mut b, 136, 12, f.mtime);
    b[156] = f.typeflag;
    put_bytes(&mut b, 157, f.linkname);
    put_bytes(&mut b, 257, b"ustar\0");
    put_bytes(&mut b, 263, b"00");
    put_bytes(&mut b, 265, f.uname);
    put_bytes(&mut b, 297, f.gname);
    put_octal(&mut b, 329, 8, f.devmajor);
    put_octal(&mut b, 337, 8, f.devminor);
    // checksum: sum of all bytes with the checksum field taken as spaces
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let text = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(text.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        let mut records = BTreeMap::new();
        records.insert(b"path".to_vec(), vec![b'a'; 93]);
        let data = encode_pax_records(&records);
        // 3 digits + ' ' + 'path' + '=' + 93 + '\n' = 103
        assert!(
            data.starts_with(b"103 path="),
            "{:?}",
            String::from_utf8_lossy(&data)
        );
        assert_eq!(data.len(), 103);
        records.clear();
        records.insert(b"k".to_vec(), b"v".to_vec());
        assert_eq!(encode_pax_records(&records), b"6 k=v\n");
    }
}
