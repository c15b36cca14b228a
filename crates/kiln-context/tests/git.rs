//! git contexts against real servers on 127.0.0.1: Debian's `git daemon`
//! (`git://`) and `git http-backend` behind kiln-testkit's CGI host with Basic
//! auth, plain and TLS. Each fetched tree is compared with the tree committed.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_auth::MapEnvironment;
use kiln_context::{ContextError, GitCredentials, GitOptions, GitSource};
use kiln_testkit::git::git;
use kiln_testkit::{GitDaemon, GitHttp, GitHttpOptions, TestCa};

const USER: &str = "builder";
const PASSWORD: &str = "s3cr3t-Pa55word";

/// Bare repositories under `root`: `app.git` (main: two commits, tag v1 on the
/// first; branch dev), `lib.git`, `withsub.git` (a submodule `lib` -> ../lib.git).
struct Repos {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// The first commit's tree and the last one's, as written.
    v1_tree: PathBuf,
    main_tree: PathBuf,
    dev_tree: PathBuf,
    v1_commit: String,
    main_commit: String,
}

fn write(path: &Path, content: &str, mode: u32) {
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, content).unwrap();
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn snapshot(dir: &Path, into: &Path) {
    let status = std::process::Command::new("cp")
        .args(["-a", "--"])
        .arg(dir)
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = fs_err::remove_dir_all(into.join(".git"));
}

fn repos() -> Repos {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("srv");
    fs_err::create_dir_all(&root).unwrap();
    let work = dir.path().join("work");
    fs_err::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    write(&work.join("Dockerfile"), "FROM scratch\nCOPY . /\n", 0o644);
    write(&work.join("bin/run.sh"), "#!/bin/sh\necho hi\n", 0o755);
    write(&work.join("deep/er/file.txt"), "deep\n", 0o644);
    std::os::unix::fs::symlink("deep/er/file.txt", work.join("link")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1"]);
    let v1_commit = git(&work, &["rev-parse", "HEAD"]);
    let v1_tree = dir.path().join("v1-tree");
    snapshot(&work, &v1_tree);
    write(&work.join("second.txt"), "two\n", 0o644);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "two"]);
    let main_commit = git(&work, &["rev-parse", "HEAD"]);
    let main_tree = dir.path().join("main-tree");
    snapshot(&work, &main_tree);
    git(&work, &["checkout", "-q", "-b", "dev"]);
    write(&work.join("dev.txt"), "dev\n", 0o600);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "dev"]);
    let dev_tree = dir.path().join("dev-tree");
    snapshot(&work, &dev_tree);
    git(&work, &["checkout", "-q", "main"]);
    git(
        &root,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            "app.git",
        ],
    );

    let lib = dir.path().join("lib");
    fs_err::create_dir_all(&lib).unwrap();
    git(&lib, &["init", "-q", "-b", "main"]);
    write(&lib.join("lib.txt"), "library\n", 0o644);
    git(&lib, &["add", "-A"]);
    git(&lib, &["commit", "-q", "-m", "lib"]);
    git(
        &root,
        &[
            "clone",
            "-q",
            "--bare",
            &lib.display().to_string(),
            "lib.git",
        ],
    );

    let sup = dir.path().join("withsub");
    fs_err::create_dir_all(&sup).unwrap();
    git(&sup, &["init", "-q", "-b", "main"]);
    write(&sup.join("top.txt"), "top\n", 0o644);
    git(
        &sup,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &root.join("lib.git").display().to_string(),
            "lib",
        ],
    );
    git(
        &sup,
        &[
            "config",
            "-f",
            ".gitmodules",
            "submodule.lib.url",
            "../lib.git",
        ],
    );
    git(&sup, &["add", "-A"]);
    git(&sup, &["commit", "-q", "-m", "with a submodule"]);
    git(
        &root,
        &[
            "clone",
            "-q",
            "--bare",
            &sup.display().to_string(),
            "withsub.git",
        ],
    );
    Repos {
        _dir: dir,
        root,
        v1_tree,
        main_tree,
        dev_tree,
        v1_commit,
        main_commit,
    }
}

/// Every entry under `dir`: kind, permission bits and content or target.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs_err::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name() == ".git" {
                out.insert(format!("{prefix}.git"), "git dir".into());
                continue;
            }
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            let meta = fs_err::symlink_metadata(e.path()).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                out.insert(
                    name,
                    format!("link {}", fs_err::read_link(e.path()).unwrap().display()),
                );
            } else if meta.is_dir() {
                out.insert(name.clone(), format!("dir {mode:o}"));
                walk(&e.path(), &format!("{name}/"), out);
            } else {
                out.insert(
                    name,
                    format!(
                        "file {mode:o} {}",
                        fs_err::read_to_string(e.path()).unwrap()
                    ),
                );
            }
        }
    }
    walk(dir, "", &mut out);
    out
}

/// The tree git writes for a committed tree: files 0644 or 0755 (git records
/// only the executable bit), directories 0755.
fn as_git_writes(dir: &Path) -> BTreeMap<String, String> {
    tree(dir)
        .into_iter()
        .map(|(k, v)| {
            let v = if let Some(rest) = v.strip_prefix("file ") {
                let (mode, content) = rest.split_once(' ').unwrap();
                let exec = u32::from_str_radix(mode, 8).unwrap() & 0o100 != 0;
                format!("file {} {content}", if exec { "755" } else { "644" })
            } else if v.starts_with("dir ") {
                "dir 755".to_string()
            } else {
                v
            };
            (k, v)
        })
        .collect()
}

fn fetch(
    context: &str,
    pull_method: Option<&str>,
    options: &GitOptions,
    credentials: &GitCredentials,
    env: &MapEnvironment,
) -> Result<(tempfile::TempDir, String), ContextError> {
    let out = tempfile::tempdir().unwrap();
    let scratch = out.path().join("scratch");
    let dest = out.path().join("root");
    fs_err::create_dir_all(&scratch).unwrap();
    fs_err::create_dir_all(&dest).unwrap();
    let source = GitSource::parse(context, pull_method)?.expect("a git context");
    let fetched = source.fetch(options, credentials, env, &scratch, &dest)?;
    Ok((out, fetched.commit))
}

fn fetched_tree(out: &tempfile::TempDir) -> BTreeMap<String, String> {
    tree(&out.path().join("root"))
}

#[test]
fn git_daemon_branches_tags_and_a_pinned_commit() {
    let repos = repos();
    let daemon = GitDaemon::start(&repos.root);
    let env = MapEnvironment::new();
    let none = GitCredentials::default();
    let kaniko_form = format!("git://127.0.0.1:{}/app.git", daemon.port());
    let git_fetch = |suffix: &str, options: &GitOptions| {
        fetch(
            &format!("{kaniko_form}{suffix}"),
            Some("git"),
            options,
            &none,
            &env,
        )
    };

    let (out, commit) = git_fetch("", &GitOptions::default()).unwrap();
    assert_eq!(commit, repos.main_commit);
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.main_tree));
    assert!(
        !out.path().join("root/.git").exists(),
        "the checkout has no .git"
    );
    let shallow = fs_err::read_dir(out.path().join("scratch"))
        .unwrap()
        .any(|d| d.unwrap().path().join("shallow").is_file());
    assert!(shallow, "a fetch of a branch tip is shallow");

    let (out, _) = git_fetch("#dev", &GitOptions::default()).unwrap();
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.dev_tree));
    let (out, _) = git_fetch("#refs/heads/dev", &GitOptions::default()).unwrap();
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.dev_tree));
    let branch = GitOptions::parse("branch=dev").unwrap();
    let (out, _) = git_fetch("", &branch).unwrap();
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.dev_tree));

    let (out, commit) = git_fetch("#v1", &GitOptions::default()).unwrap();
    assert_eq!(commit, repos.v1_commit);
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.v1_tree));
    let (out, _) = git_fetch("#refs/tags/v1", &GitOptions::default()).unwrap();
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.v1_tree));

    let (out, commit) = git_fetch(
        &format!("#refs/heads/main#{}", repos.v1_commit),
        &GitOptions::default(),
    )
    .unwrap();
    assert_eq!(commit, repos.v1_commit);
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.v1_tree));

    let err = git_fetch("#no-such-branch", &GitOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&kaniko_form) && err.contains("no-such-branch"),
        "{err}"
    );
    let err = fetch(
        &format!("git://127.0.0.1:{}/missing.git", daemon.port()),
        Some("git"),
        &GitOptions::default(),
        &none,
        &env,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing.git"), "{err}");
}

#[test]
fn private_repository_over_http_with_basic_auth_and_submodules() {
    let repos = repos();
    let server = GitHttp::start(
        &repos.root,
        GitHttpOptions {
            basic_auth: Some((USER.into(), PASSWORD.into())),
            tls: None,
        },
    );
    let env = MapEnvironment::new();
    let url = server.url("app.git");

    let err = fetch(
        &url,
        None,
        &GitOptions::default(),
        &GitCredentials::default(),
        &env,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&url) && err.contains("GIT_USERNAME"), "{err}");
    eprintln!("no credentials: {err}");

    let wrong = GitCredentials {
        username: Some(USER.into()),
        password: Some("wrong-password".into()),
    };
    let err = fetch(&url, None, &GitOptions::default(), &wrong, &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
    eprintln!("wrong password: {err}");

    let env_creds = MapEnvironment::new()
        .with("GIT_USERNAME", USER)
        .with("GIT_PASSWORD", PASSWORD);
    let creds = GitCredentials::from_env(&env_creds);
    let (out, _) = fetch(
        &format!("{url}#main"),
        None,
        &GitOptions::default(),
        &creds,
        &env,
    )
    .unwrap();
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.main_tree));

    // User info in the URL works too and never shows.
    let with_userinfo = url.replacen("http://", &format!("http://{USER}:{PASSWORD}@"), 1);
    let (out, _) = fetch(
        &with_userinfo,
        None,
        &GitOptions::default(),
        &GitCredentials::default(),
        &env,
    )
    .unwrap();
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.main_tree));
    let err = fetch(
        &format!("{with_userinfo}#nope"),
        None,
        &GitOptions::default(),
        &GitCredentials::default(),
        &env,
    )
    .unwrap_err()
    .to_string();
    assert!(!err.contains(PASSWORD) && err.contains("nope"), "{err}");

    // Submodules: fetched (relative URL, same server, same credentials) only when asked.
    let sub_url = server.url("withsub.git");
    let (out, _) = fetch(&sub_url, None, &GitOptions::default(), &creds, &env).unwrap();
    let t = fetched_tree(&out);
    assert_eq!(t.get("lib").map(String::as_str), Some("dir 755"));
    assert!(!t.contains_key("lib/lib.txt"), "{t:?}");
    let recurse = GitOptions::parse("recurse-submodules=true").unwrap();
    let (out, _) = fetch(&sub_url, None, &recurse, &creds, &env).unwrap();
    let t = fetched_tree(&out);
    assert_eq!(
        t.get("lib/lib.txt").map(String::as_str),
        Some("file 644 library\n"),
        "{t:?}"
    );
    assert_eq!(t.get("top.txt").map(String::as_str), Some("file 644 top\n"));
}

#[test]
fn private_repository_over_https_trusts_kilns_cas() {
    let repos = repos();
    let ca = TestCa::new("kiln git test CA");
    let server = GitHttp::start(
        &repos.root,
        GitHttpOptions {
            basic_auth: Some((USER.into(), PASSWORD.into())),
            tls: Some(ca.issue_server_cert("git", &[])),
        },
    );
    let url = server.url("app.git");
    let creds = GitCredentials {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
    };
    let err = fetch(
        &url,
        None,
        &GitOptions::default(),
        &creds,
        &MapEnvironment::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(&url) && err.contains("SSL_CERT_FILE"), "{err}");
    eprintln!("without the CA: {err}");
    assert!(!err.contains(PASSWORD), "{err}");

    let trusting = MapEnvironment::new().with("SSL_CERT_FILE", ca.pem_path().display().to_string());
    let (out, _) = fetch(&url, None, &GitOptions::default(), &creds, &trusting).unwrap();
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.main_tree));

    let cert_dir = tempfile::tempdir().unwrap();
    fs_err::copy(ca.pem_path(), cert_dir.path().join("ca.pem")).unwrap();
    let trusting_dir =
        MapEnvironment::new().with("SSL_CERT_DIR", cert_dir.path().display().to_string());
    fetch(&url, None, &GitOptions::default(), &creds, &trusting_dir).unwrap();

    let skip = GitOptions::parse("insecure-skip-tls=true").unwrap();
    let (out, _) = fetch(&url, None, &skip, &creds, &MapEnvironment::new()).unwrap();
    assert_eq!(fetched_tree(&out), as_git_writes(&repos.main_tree));
}

#[test]
fn a_kept_git_dir_is_a_clean_working_repository_at_the_commit() {
    let repos = repos();
    let daemon = GitDaemon::start(&repos.root);
    let out = tempfile::tempdir().unwrap();
    let (scratch, dest) = (out.path().join("scratch"), out.path().join("root"));
    fs_err::create_dir_all(&scratch).unwrap();
    fs_err::create_dir_all(&dest).unwrap();
    let source = GitSource::parse(&format!("{}#v1", daemon.url("app.git")), Some("git"))
        .unwrap()
        .unwrap();
    let fetched = source
        .fetch(
            &GitOptions::default(),
            &GitCredentials::default(),
            &MapEnvironment::new(),
            &scratch,
            &dest,
        )
        .unwrap();
    kiln_context::keep_git_dir(&fetched, &dest).unwrap();
    assert_eq!(git(&dest, &["rev-parse", "HEAD"]), repos.v1_commit);
    assert_eq!(
        git(&dest, &["status", "--porcelain"]),
        "",
        "the checkout matches its index"
    );
    assert_eq!(git(&dest, &["rev-parse", "--is-bare-repository"]), "false");
    let mut without_git = tree(&dest);
    assert_eq!(without_git.remove(".git").as_deref(), Some("git dir"));
    assert_eq!(without_git, as_git_writes(&repos.v1_tree));
}
