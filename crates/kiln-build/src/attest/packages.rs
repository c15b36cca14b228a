//! The OS packages an image holds, from the package databases that
//! [`super::image_files`] read: Debian's dpkg `status` and `status.d/*`
//! (distroless images), Alpine's apk `installed` database.

use super::image_files::Files;
use super::os_release::OsRelease;
use super::{apk, dpkg};

/// Which package manager installed a package (the PURL type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ecosystem {
    /// dpkg (`pkg:deb`).
    Deb,
    /// apk (`pkg:apk`).
    Apk,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// Package manager.
    pub ecosystem: Ecosystem,
    /// Binary package name.
    pub name: String,
    /// Version as the database writes it (with a Debian epoch, if any).
    pub version: String,
    /// Architecture (`amd64`, `all`, `x86_64`, `noarch`, ...).
    pub architecture: String,
    /// Source package name, when the database names one other than `name`.
    pub source: Option<String>,
    /// Source package version, when it differs from `version`.
    pub source_version: Option<String>,
    /// The database file it was listed in, relative to the image root.
    pub found_in: String,
}

/// The packages an image holds, sorted, and its os-release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Installed packages, sorted by ecosystem, name, version, architecture.
    pub packages: Vec<Package>,
    /// The image's `/etc/os-release` (or `/usr/lib/os-release`).
    pub os: OsRelease,
}

/// Parses every package database in `files`. A database that cannot be
/// parsed is an error naming its path and line.
pub fn inventory(files: &Files) -> Result<Inventory, String> {
    let os = files
        .get("etc/os-release")
        .or_else(|| files.get("usr/lib/os-release"))
        .map(|b| OsRelease::parse(&String::from_utf8_lossy(b)))
        .unwrap_or_default();
    let mut packages = Vec::new();
    for (path, bytes) in files {
        if path == "var/lib/dpkg/status" {
            packages.extend(dpkg::parse(path, bytes, true)?);
        } else if let Some(name) = path.strip_prefix("var/lib/dpkg/status.d/") {
            // distroless: one stanza file per package, beside `NAME.md5sums`.
            if !name.ends_with(".md5sums") {
                packages.extend(dpkg::parse(path, bytes, false)?);
            }
        } else if path == "lib/apk/db/installed" {
            packages.extend(apk::parse(path, bytes)?);
        }
    }
    packages.sort();
    packages.dedup_by(|a, b| {
        (a.ecosystem, &a.name, &a.version, &a.architecture)
            == (b.ecosystem, &b.name, &b.version, &b.architecture)
    });
    Ok(Inventory { packages, os })
}
