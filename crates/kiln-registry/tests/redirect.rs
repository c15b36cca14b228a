//! Blob GETs redirected to object storage on another host (distribution's `redirect`
//! storage middleware, as with S3/GCS backends): kiln follows the redirect and never sends
//! the registry's `Authorization` there.
//!
//! The "object storage" is a small HTTP file server over the registry's own storage
//! directory, reached as `localhost` while the registry is `127.0.0.1`.

mod common;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use kiln_registry::{Client, Credential, RepoRef, Secret};

/// The registry child, killed by PID on drop.
struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves files under `root` over HTTP on 127.0.0.1; records (path, had Authorization).
async fn object_store(root: PathBuf, seen: Arc<Mutex<Vec<(String, bool)>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (root, seen) = (root.clone(), seen.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (root, seen) = (root.clone(), seen.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            seen.lock().unwrap().push((
                                path.clone(),
                                req.headers().contains_key(http::header::AUTHORIZATION),
                            ));
                            let file = root.join(path.trim_start_matches('/'));
                            let resp = match std::fs::read(&file) {
                                Ok(data) if !path.contains("..") => {
                                    http::Response::new(Full::new(Bytes::from(data)))
                                }
                                _ => http::Response::builder()
                                    .status(404)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_blob_gets_never_carry_authorization() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    fs_err::create_dir_all(&storage).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let store_port = object_store(storage.clone(), seen.clone()).await;

    let htpasswd = dir.path().join("htpasswd");
    fs_err::write(
        &htpasswd,
        kiln_testkit::htpasswd::line("kiln", "pw-for-redirect"),
    )
    .unwrap();
    let port = kiln_testkit::ports::free_port();
    let config = format!(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {storage:?}\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: redirect-test\n\
         auth:\n  htpasswd:\n    realm: r\n    path: {htpasswd:?}\n\
         middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: http://localhost:{store_port}\n"
    );
    let config_path = dir.path().join("config.yml");
    fs_err::write(&config_path, config).unwrap();
    let _registry = KillOnDrop(
        Command::new(kiln_testkit::tools::docker_registry())
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("needs docker-registry: install with .ci/install-deps"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    let host = format!("127.0.0.1:{port}");
    let credential = Credential::Basic {
        username: "kiln".into(),
        password: Secret::new("pw-for-redirect"),
    };
    let client = Client::new(options(&host, true, None, Some(credential)));
    let img = test_image(dir.path(), &[50_000, 80_000], 60, "amd64");
    client
        .push_image(&img.image, &[target(&host, "redir/app", "v1")])
        .await
        .unwrap();
    assert_pulls_back(
        &client,
        &RepoRef::new(&host, "redir/app"),
        "v1",
        &img,
        dir.path(),
    )
    .await;

    let seen = seen.lock().unwrap().clone();
    // Config and both layers came from the object store, without Authorization.
    assert!(seen.len() >= 3, "the registry did not redirect: {seen:?}");
    assert!(
        seen.iter()
            .all(|(p, _)| p.starts_with("/docker/registry/v2/blobs/sha256/")),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|(_, auth)| !auth),
        "Authorization was sent to another host: {seen:?}"
    );
}
