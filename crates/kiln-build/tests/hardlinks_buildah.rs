//! Hard links across layers, kiln against buildah: a RUN links new names to a file of
//! the base image, to a file a COPY brought and to a file an earlier RUN made. Both
//! images are unpacked with umoci and compared file by file, hard link groups
//! included; each pair must also be one group in kiln's image.
//!
//! buildah runs with its overlay storage driver, whose layers come from overlayfs as
//! Docker's do (the old name is copied up next to the new link). Its vfs driver
//! compares trees and captures only the new name, so the image gets two separate
//! files there (buildah 1.28, measured): that driver is not the reference for links.

mod support;

use std::path::Path;

use support::{
    Fixture, LinkGroups, assert_same_tree, file_tree, run_tokio, umoci_unpack,
    without_buildah_artifacts,
};

const DOCKERFILE: &str = "FROM BASE_IMAGE
COPY copied.txt /opt/copied.txt
RUN mkdir -p /srv/data && echo made > /srv/data/made.txt
RUN ln /etc/passwd /etc/passwd.link \
 && ln /opt/copied.txt /usr/copied.link \
 && ln /srv/data/made.txt /srv/made.link
";

/// The names each of which must share its inode with the other in the image.
const GROUPS: [[&str; 2]; 3] = [
    ["/etc/passwd", "/etc/passwd.link"],
    ["/opt/copied.txt", "/usr/copied.link"],
    ["/srv/data/made.txt", "/srv/made.link"],
];

#[test]
fn links_to_files_of_earlier_layers_are_one_group_as_with_buildah_overlay() {
    let registry = kiln_testkit::Registry::start_plain();
    kiln_testkit::FixtureImage::busybox()
        .push(&registry, "fixtures/busybox:1", None)
        .unwrap();
    let base = format!("{}/fixtures/busybox:1", registry.host_port());
    let fx = Fixture::new(
        &DOCKERFILE.replace("BASE_IMAGE", &base),
        &[("copied.txt", "copied\n")],
    );

    // kiln, one layer per step.
    let (mut options, kiln_layout) = fx.layout_options();
    options.registry.insecure_pull = true;
    run_tokio(kiln_build::build(&options, &kiln_build::NoopObserver)).unwrap();

    // buildah with the overlay driver.
    let root = fx.work.path().join("buildah");
    let buildah = |args: &[&str]| {
        support::buildah(&root, "overlay", args);
    };
    let buildah_layout = fx.work.path().join("buildah-layout");
    let context = fx.path().display().to_string();
    buildah(&[
        "bud",
        "--isolation",
        "chroot",
        // A layer per step, so links are made across layers as in kiln's image.
        "--layers=true",
        "--format",
        "oci",
        "--tls-verify=false",
        "-f",
        &format!("{context}/Dockerfile"),
        "-t",
        "localhost/hardlinks:1",
        &context,
    ]);
    buildah(&[
        "push",
        "localhost/hardlinks:1",
        &format!("oci:{}:latest", buildah_layout.display()),
    ]);
    // Unmounts and removes buildah's overlay storage before the temp dir goes.
    buildah(&["rmi", "--all", "--force"]);

    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    // The same paths are filtered on both sides (the base has /dev, /proc and /sys).
    let unpacked = |layout: &Path, into: &Path| {
        let rootfs = umoci_unpack(layout, "latest", into).join("rootfs");
        without_buildah_artifacts(file_tree(&rootfs, LinkGroups::Record))
    };
    let kiln_tree = unpacked(&kiln_layout, a.path());
    let buildah_tree = unpacked(&buildah_layout, b.path());

    for [old, new] in GROUPS {
        let want = format!("group [{old:?}, {new:?}]");
        for name in [old, new] {
            let line = kiln_tree.get(name).map_or("", String::as_str);
            assert!(
                line.contains(&want),
                "{name} in kiln's image: want {want}, got {line:?}"
            );
        }
    }
    assert_same_tree(&kiln_tree, &buildah_tree);
}
