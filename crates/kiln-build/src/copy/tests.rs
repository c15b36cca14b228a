use super::*;
use kiln_layer::EntryKind;

struct Fixture {
    ctx: PathBuf,
    ignore: IgnoreMatcher,
    staging: tempfile::TempDir,
}

fn kaniko_context() -> Fixture {
    let ctx = crate::test_support::kaniko_integration_dir();
    let text = fs_err::read_to_string(ctx.join(".dockerignore")).unwrap();
    let ignore = IgnoreMatcher::parse(&text, &ctx.join(".dockerignore")).unwrap();
    Fixture {
        ctx,
        ignore,
        staging: tempfile::tempdir().unwrap(),
    }
}

fn request(sources: &[&str], dest: &str) -> CopyRequest {
    CopyRequest {
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest: dest.into(),
        workdir: "/".into(),
        chown: None,
        chmod: None,
        excludes: Vec::new(),
        parents: false,
        extract_archives: false,
        created: Timestamp::from_secs(0),
    }
}

impl Fixture {
    fn plan(&self, req: &CopyRequest, dest_root: Option<&Path>) -> Result<Vec<Entry>, String> {
        let tree = SourceTree::Context {
            root: &self.ctx,
            ignore: &self.ignore,
        };
        plan_copy(req, tree, dest_root, self.staging.path())
    }

    fn paths(&self, req: &CopyRequest) -> Vec<String> {
        self.plan(req, None)
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}{}",
                    e.path,
                    if matches!(e.kind, EntryKind::Dir) {
                        "/"
                    } else {
                        ""
                    }
                )
            })
            .collect()
    }
}

#[test]
fn single_file_to_file_and_to_dir() {
    let f = kaniko_context();
    assert_eq!(f.paths(&request(&["context/foo"], "foo")), ["foo"]);
    assert_eq!(
        f.paths(&request(&["context/foo"], "/foodir/")),
        ["foodir/", "foodir/foo"]
    );
    let entries = f.plan(&request(&["context/foo"], "foo"), None).unwrap();
    assert_eq!(entries[0].meta.mode, 0o555, "mode kept from the context");
    assert_eq!((entries[0].meta.uid, entries[0].meta.gid), (0, 0));
    let mut wd = request(&["context/foo"], "rel/x");
    wd.workdir = "/app".into();
    assert_eq!(f.paths(&wd), ["app/", "app/rel/", "app/rel/x"]);
}

#[test]
fn globs_dirs_by_content_and_empty_wildcards() {
    let f = kaniko_context();
    assert_eq!(
        f.paths(&request(&["context/bar/b*"], "bar/")),
        // `bam` is a directory: its content (bam/bat) lands in bar/ too.
        ["bar/", "bar/bat", "bar/baz"]
    );
    assert_eq!(f.paths(&request(&["context/fo?"], "/foo2")), ["foo2"]);
    assert_eq!(
        f.paths(&request(
            &["context/bar/doesnotexist*", "context/foo"],
            "hello"
        )),
        ["hello"]
    );
    assert_eq!(
        f.paths(&request(&["context/arr[[]0].txt"], "/mydir/")),
        ["mydir/", "mydir/arr[0].txt"]
    );
    assert_eq!(
        f.paths(&request(&["context/bar"], "/baz/")),
        ["baz/", "baz/bam/", "baz/bam/bat", "baz/bat", "baz/baz"]
    );
    assert_eq!(
        f.paths(&request(&["./context/empty"], "/empty")),
        ["empty/", "empty/.gitignore"]
    );
}

#[test]
fn dockerignore_applies_to_globs_and_whole_context() {
    let f = kaniko_context();
    // Only ignore/foo survives, so a file destination is fine.
    assert_eq!(f.paths(&request(&["ignore/*"], "/foo")), ["foo"]);
    let all = f.paths(&request(&["."], "/ctx/"));
    assert!(all.contains(&"ctx/ignore/foo".to_string()));
    assert!(
        !all.iter()
            .any(|p| p == "ctx/ignore/bar" || p == "ctx/ignore/baz")
    );
    let err = f.plan(&request(&["ignore/bar"], "/x"), None).unwrap_err();
    assert!(err.contains("excluded by .dockerignore"), "{err}");
}

#[test]
fn several_sources_need_a_directory_destination() {
    let f = kaniko_context();
    let err = f
        .plan(&request(&["context/foo", "context/bar/bat"], "/test"), None)
        .unwrap_err();
    assert!(err.contains("must be a directory"), "{err}");
    assert_eq!(
        f.paths(&request(&["context/foo", "context/bar/ba?"], "/test/")),
        ["test/", "test/bat", "test/baz", "test/foo"]
    );
}

#[test]
fn missing_source_and_escape_are_errors() {
    let f = kaniko_context();
    let err = f.plan(&request(&["nope.txt"], "/x"), None).unwrap_err();
    assert!(
        err.contains("\"nope.txt\" not found in the build context"),
        "{err}"
    );
    let err = f.plan(&request(&["nothing*"], "/x"), None).unwrap_err();
    assert!(err.contains("no source files"), "{err}");
    // `..` is cleaned away at the context root, like Docker.
    assert_eq!(f.paths(&request(&["../../context/foo"], "/x")), ["x"]);
}

#[test]
fn chown_owns_created_parents_and_chmod_applies_to_copied_entries() {
    let f = kaniko_context();
    let mut req = request(&["context/bar"], "/a/b/");
    req.chown = Some(Owner {
        uid: 1001,
        gid: 1002,
    });
    req.chmod = Some(Chmod::parse("755").unwrap());
    let entries = f.plan(&req, None).unwrap();
    for e in &entries {
        assert_eq!((e.meta.uid, e.meta.gid), (1001, 1002), "{}", e.path);
    }
    let bat = entries
        .iter()
        .find(|e| e.path.to_string() == "a/b/bat")
        .unwrap();
    assert_eq!(bat.meta.mode, 0o755);
}

#[test]
fn existing_directory_and_symlinked_destination() {
    let f = kaniko_context();
    let root = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(root.path().join("real/service")).unwrap();
    std::os::unix::fs::symlink("/real/service", root.path().join("service")).unwrap();
    let entries = f
        .plan(&request(&["context/foo"], "/service"), Some(root.path()))
        .unwrap();
    let paths: Vec<String> = entries.iter().map(|e| e.path.to_string()).collect();
    assert_eq!(paths, ["real", "real/service", "real/service/foo"]);
}

#[test]
fn add_extracts_local_archives_but_not_compressed_files() {
    let f = kaniko_context();
    let mut req = request(&["context/tars/file.tar.gz"], "/t/");
    req.extract_archives = true;
    let entries = f.plan(&req, None).unwrap();
    let file = entries
        .iter()
        .find(|e| e.path.to_string() == "t/compressedFile")
        .unwrap();
    assert_eq!(file.meta.mode, 0o644);
    let EntryKind::File(kiln_layer::FileSource::Path(staged)) = &file.kind else {
        panic!()
    };
    assert_eq!(fs_err::read(staged).unwrap().len(), 11);
    // file.bz2 is a bzip2-compressed tar: extracted too.
    let mut req = request(&["context/tars/file.bz2"], "/t/");
    req.extract_archives = true;
    assert_eq!(f.paths(&req), ["t/", "t/bzCompressedFile"]);
    // A plain file is copied as it is.
    let mut req = request(&["context/tars/file"], "/t/");
    req.extract_archives = true;
    assert_eq!(f.paths(&req), ["t/", "t/file"]);
    // COPY never extracts.
    assert_eq!(
        f.paths(&request(&["context/tars/file.tar.gz"], "/t/")),
        ["t/", "t/file.tar.gz"]
    );
}

#[test]
fn exclude_and_parents() {
    let f = kaniko_context();
    let mut req = request(&["context/bar"], "/out/");
    req.excludes = vec!["bam".into(), "*z".into()];
    assert_eq!(f.paths(&req), ["out/", "out/bat"]);
    let mut req = request(&["context/bar/bat", "context/qux/quz"], "/p/");
    req.parents = true;
    assert_eq!(
        f.paths(&req),
        [
            "p/",
            "p/context/",
            "p/context/bar/",
            "p/context/bar/bat",
            "p/context/qux/",
            "p/context/qux/quz"
        ]
    );
}

#[test]
fn hard_links_in_the_source_stay_linked() {
    let stage = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(stage.path().join("d")).unwrap();
    fs_err::write(stage.path().join("d/a"), "same").unwrap();
    fs_err::hard_link(stage.path().join("d/a"), stage.path().join("d/b")).unwrap();
    let staging = tempfile::tempdir().unwrap();
    let entries = plan_copy(
        &request(&["/d"], "/out/"),
        SourceTree::Stage { root: stage.path() },
        None,
        staging.path(),
    )
    .unwrap();
    let b = entries
        .iter()
        .find(|e| e.path.to_string() == "out/b")
        .unwrap();
    match &b.kind {
        EntryKind::Hardlink { target } => assert_eq!(target.to_string(), "out/a"),
        other => panic!("out/b should be a hard link, is a {}", other.name()),
    }
}
