//! Fixture base images (a static busybox rootfs) made offline.
