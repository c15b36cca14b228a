//! Cases that are not built, each with the reason, and files whose content
//! cannot match between two builds. Images without a local
//! stand-in are found by the rewrite ([`super::images`]) and reported the
//! same way; this list holds what the rewrite cannot see.

/// Why `case` is skipped, if it is.
pub fn skip_reason(case: &str) -> Option<&'static str> {
    const INTERNET: &str = "ADD of an https:// URL needs the internet";
    const APT: &str = "runs apt-get: needs the network beyond the harness, and apt's logs and \
                       timestamps make two builds differ anyway";
    Some(match case {
        "Dockerfile_test_add" | "Dockerfile_test_add_url_with_arg" => INTERNET,
        "Dockerfile_test_parent_dir_perms" | "with-context/issue-57" => INTERNET,
        "Dockerfile_test_add_404" => "expects an HTTP 404 from a server on the internet",
        "Dockerfile_test_issue_2049" | "Dockerfile_test_issue_2066" => APT,
        "Dockerfile_test_issue_684" => APT,
        "Dockerfile_test_issue_1039" | "Dockerfile_test_issue_1837" => {
            "runs yum on a UBI image: no stand-in has yum, and it needs Red Hat's repositories"
        }
        "Dockerfile_hardlink_base" => {
            "runs apk add: no stand-in has apk, and it needs Alpine's repositories"
        }
        "Dockerfile_test_hardlink" => {
            "needs hardlink-base (apk add), jboss/base-jdk, composer and php images"
        }
        "with-context/issue-1020" => "needs atomist/sdm-base and npm ci against the npm registry",
        "Dockerfile_test_extraction" => {
            "needs gcr.io/kaniko-test/extraction-base-image, not reproducible from the corpus"
        }
        "Dockerfile_git_buildcontext" => {
            "needs a git build context (COPY LICENSE from the kaniko repository)"
        }
        "Dockerfile_test_add_dest_symlink_dir" | "with-context/issue-774" => {
            "tests phusion/baseimage's symlinked /etc/service, which no stand-in has"
        }
        "Dockerfile_test_replaced_hardlinks" => {
            "tests jboss/base-jdk's layers replacing hardlinks, which no stand-in has"
        }
        "Dockerfile_test_volume_4" => "tests rabbitmq's declared volumes, which no stand-in has",
        "Dockerfile_test_cache_install" | "Dockerfile_test_cache_install_oci" => APT,
        "Dockerfile_test_copy_chown_intermediate_dirs"
        | "Dockerfile_test_add_chown_intermediate_dirs" => {
            "runs alpine's adduser: the busybox stand-in (Debian's busybox-static) has no adduser applet"
        }
        _ => return None,
    })
}

/// Files whose content is the build's own time or randomness, so two builds
/// never agree on it: their type, mode, owner and size are still compared.
pub fn volatile_files(case: &str) -> &'static [&'static str] {
    match case {
        // `RUN date > /date` (the cache cases keep /date compared: the
        // second build must reuse the first one's layer)
        "Dockerfile_test_multistage" => &["/date"],
        _ => &[],
    }
}
