//! Object-store contexts against real servers on 127.0.0.1: S3 (moto's
//! `moto_server`), Azure Blob Storage (Azurite), Google Cloud Storage
//! (`gcp-storage-emulator`, behind the testkit's `GcsFront`, which adds the
//! headers real GCS sends and the emulator omits). The object streams out byte for byte; a missing
//! object, a missing bucket and wrong credentials each give their own error,
//! naming the URL and the fix, and never the secret.

use std::io::Read;

use kiln_auth::MapEnvironment;
use kiln_context::ObjectSource;
use kiln_testkit::{Azurite, GcsEmulator, GcsFront, MotoS3};

const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";

fn env(server: &MotoS3) -> MapEnvironment {
    MapEnvironment::new()
        .with("AWS_ACCESS_KEY_ID", "AKIAKILNTEST")
        .with("AWS_SECRET_ACCESS_KEY", SECRET)
        .with("AWS_REGION", "eu-west-1")
        .with("S3_ENDPOINT", server.endpoint())
        .with("S3_FORCE_PATH_STYLE", "true")
}

/// 3 MiB of varied bytes (several chunks through the channel), written to
/// `dir/ctx.tar.gz`.
fn object_file(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let file = dir.join("ctx.tar.gz");
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    (file, data)
}

fn read_all(url: &str, env: &MapEnvironment) -> Vec<u8> {
    let mut got = Vec::new();
    ObjectSource::parse(url)
        .unwrap()
        .unwrap()
        .open(env)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    got
}

fn open_err(url: &str, env: &MapEnvironment) -> String {
    match ObjectSource::parse(url).unwrap().unwrap().open(env) {
        Ok(_) => panic!("{url} opened"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_s3_object_streams_and_each_failure_says_what_to_fix() {
    let server = MotoS3::start(false);
    server.create_bucket("ctx");
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = object_file(dir.path());
    server.put("ctx", "dir/ctx.tar.gz", &file);

    let env = env(&server);
    let got = read_all("s3://ctx/dir/ctx.tar.gz", &env);
    assert!(
        got == data,
        "the object's bytes differ ({} bytes read)",
        got.len()
    );

    let err = open_err("s3://ctx/missing.tar.gz", &env);
    assert!(
        err.contains("s3://ctx/missing.tar.gz")
            && err.contains("no object")
            && err.contains("check the key"),
        "{err}"
    );
    let err = open_err("s3://no-such-bucket/ctx.tar.gz", &env);
    assert!(
        err.contains("bucket \"no-such-bucket\" does not exist"),
        "{err}"
    );
    let err = open_err(
        "s3://ctx/dir/ctx.tar.gz",
        &MapEnvironment::new().with("S3_ENDPOINT", server.endpoint()),
    );
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");

    let locked = MotoS3::start(true);
    let err = open_err("s3://ctx/dir/ctx.tar.gz", &self::env(&locked));
    assert!(
        err.contains("refused the credentials") && err.contains("AWS_SECRET_ACCESS_KEY"),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
    eprintln!("wrong credentials: {err}");
}

const ACCOUNT: &str = "kilnacct";

/// An account key as Azure shows them: base64 of random-looking bytes.
fn azure_key(seed: u8) -> String {
    use std::fmt::Write;
    let bytes: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(seed))
        .collect();
    // Base64 by hand would be silly; the testkit's engine is not exported,
    // so shell out to the coreutils one.
    let mut hex = String::new();
    for b in &bytes {
        write!(hex, "\\x{b:02x}").unwrap();
    }
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("printf '{hex}' | base64 -w0")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn azure_env(server: &Azurite, key: &str) -> MapEnvironment {
    MapEnvironment::new()
        .with("AZURE_STORAGE_ACCESS_KEY", key)
        .with("AZURE_STORAGE_ENDPOINT", server.endpoint())
}

#[test]
fn an_azure_blob_streams_and_each_failure_says_what_to_fix() {
    let key = azure_key(11);
    let server = Azurite::start(ACCOUNT, &key);
    server.create_container("ctx");
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = object_file(dir.path());
    server.put("ctx", "dir/ctx.tar.gz", &file);
    let url = |path: &str| format!("https://{ACCOUNT}.blob.core.windows.net/{path}");

    let env = azure_env(&server, &key);
    let got = read_all(&url("ctx/dir/ctx.tar.gz"), &env);
    assert!(
        got == data,
        "the blob's bytes differ ({} bytes read)",
        got.len()
    );

    let missing = url("ctx/missing.tar.gz");
    let err = open_err(&missing, &env);
    assert!(
        err.contains(&missing) && err.contains("no object \"missing.tar.gz\" in container \"ctx\""),
        "{err}"
    );
    let err = open_err(&url("no-such-container/ctx.tar.gz"), &env);
    assert!(
        err.contains("container \"no-such-container\" does not exist")
            && err.contains("AZURE_STORAGE_ENDPOINT"),
        "{err}"
    );
    let err = open_err(
        &url("ctx/dir/ctx.tar.gz"),
        &MapEnvironment::new().with("AZURE_STORAGE_ENDPOINT", server.endpoint()),
    );
    assert!(
        err.contains("AZURE_STORAGE_ACCESS_KEY") && err.contains(ACCOUNT),
        "{err}"
    );

    let wrong = azure_key(99);
    let err = open_err(&url("ctx/dir/ctx.tar.gz"), &azure_env(&server, &wrong));
    assert!(
        err.contains("refused the credentials")
            && err.contains("AZURE_STORAGE_ACCESS_KEY")
            && err.contains(&url("ctx/dir/ctx.tar.gz")),
        "{err}"
    );
    assert!(!err.contains(&wrong) && !err.contains(&key), "{err}");
    eprintln!("wrong key: {err}");

    // A key that is not base64: named, never echoed.
    let garbage = "not*base64*Secret-Value";
    let err = open_err(&url("ctx/dir/ctx.tar.gz"), &azure_env(&server, garbage));
    assert!(err.contains("AZURE_STORAGE_ACCESS_KEY"), "{err}");
    assert!(!err.contains(garbage), "{err}");

    // A SAS token in the URL is refused without being echoed.
    let sas = url("ctx/dir/ctx.tar.gz?sv=2021&sig=S3cretSignature");
    let err = ObjectSource::parse(&sas).unwrap_err().to_string();
    assert!(err.contains("AZURE_STORAGE_ACCESS_KEY"), "{err}");
    assert!(!err.contains("S3cretSignature"), "{err}");
}

#[test]
fn a_gcs_object_streams_and_each_failure_says_what_to_fix() {
    let server = GcsEmulator::start();
    // A bucket name with `-`, which object_store sends escaped (`%2D`).
    server.create_bucket("ctx-bucket");
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = object_file(dir.path());
    server.put("ctx-bucket", "dir/ctx.tar.gz", &file);
    // The emulator alone cannot serve a download object_store accepts (no
    // `ETag`, no `Last-Modified`); the front adds them from the emulator's
    // own metadata, and the bytes stay the emulator's.
    let front = GcsFront::in_front_of(&server);
    let url = "gs://ctx-bucket/dir/ctx.tar.gz";

    for host in [front.host(), format!("http://{}", front.host())] {
        let got = read_all(
            url,
            &MapEnvironment::new().with("STORAGE_EMULATOR_HOST", host),
        );
        assert!(
            got == data,
            "the object's bytes differ ({} bytes read)",
            got.len()
        );
    }
    // HEAD, answered by the front from the emulator's metadata: the size and
    // the MD5 of what was uploaded.
    let head = std::process::Command::new("curl")
        .args([
            "-sSI",
            &format!("http://{}/ctx-bucket/dir%2Fctx.tar.gz", front.host()),
        ])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).to_lowercase();
    let md5 = std::process::Command::new("md5sum")
        .arg(&file)
        .output()
        .unwrap();
    let md5 = String::from_utf8_lossy(&md5.stdout);
    let md5 = md5.split_whitespace().next().unwrap();
    assert!(
        head.starts_with("http/1.1 200")
            && head.contains(&format!("content-length: {}\r\n", data.len()))
            && head.contains(&format!("etag: \"{md5}\"\r\n"))
            && head.contains("last-modified: "),
        "{head}"
    );

    // Straight to the emulator, the download fails on the missing headers:
    // the gap the front fills, pinned so that an emulator that gains them
    // shows up here.
    let err = open_err(
        "gs://ctx/dir/ctx.tar.gz",
        &MapEnvironment::new().with("STORAGE_EMULATOR_HOST", server.host()),
    );
    server.create_bucket("ctx");
    server.put("ctx", "dir/ctx.tar.gz", &file);
    let err_after = open_err(
        "gs://ctx/dir/ctx.tar.gz",
        &MapEnvironment::new().with("STORAGE_EMULATOR_HOST", server.host()),
    );
    assert!(err.contains("no such bucket"), "{err}");
    assert!(
        err_after.contains("gs://ctx/dir/ctx.tar.gz")
            && (err_after.contains("Last-Modified") || err_after.contains("ETag")),
        "{err_after}"
    );

    let env = MapEnvironment::new().with("STORAGE_EMULATOR_HOST", front.host());
    let err = open_err("gs://ctx-bucket/missing.tar.gz", &env);
    assert!(
        err.contains("gs://ctx-bucket/missing.tar.gz")
            && err.contains("no object \"missing.tar.gz\" in bucket \"ctx-bucket\"")
            && err.contains("check the key"),
        "{err}"
    );
    let err = open_err("gs://no-such-bucket/ctx.tar.gz", &env);
    assert!(
        err.contains("gs://no-such-bucket/ctx.tar.gz")
            && err.contains("bucket \"no-such-bucket\" does not exist")
            && err.contains("STORAGE_EMULATOR_HOST"),
        "{err}"
    );
    // Straight to the emulator, a missing bucket is an empty 404 like a
    // missing object, and the error names both possibilities.
    let err = open_err(
        "gs://nosuchbucket/ctx.tar.gz",
        &MapEnvironment::new().with("STORAGE_EMULATOR_HOST", server.host()),
    );
    assert!(
        err.contains("gs://nosuchbucket/ctx.tar.gz")
            && err.contains("no such bucket")
            && err.contains("check the bucket name"),
        "{err}"
    );

    // Credentials: the emulator checks none, so what can fail is the file
    // GOOGLE_APPLICATION_CREDENTIALS names: missing, or not a key. Neither
    // error shows the file's secret.
    let missing = dir.path().join("no-such-key.json");
    let err = open_err(
        "gs://ctx/dir/ctx.tar.gz",
        &MapEnvironment::new().with(
            "GOOGLE_APPLICATION_CREDENTIALS",
            missing.display().to_string(),
        ),
    );
    assert!(
        err.contains("GOOGLE_APPLICATION_CREDENTIALS")
            && err.contains(&missing.display().to_string())
            && err.contains("gs://ctx/dir/ctx.tar.gz"),
        "{err}"
    );
    const PRIVATE: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-kiln-not-a-real-key";
    let bad = dir.path().join("bad-key.json");
    std::fs::write(
        &bad,
        format!(
            r#"{{"type":"service_account","client_email":"ci@kiln.iam.gserviceaccount.com","private_key_id":"1","private_key":"-----BEGIN PRIVATE KEY-----\n{PRIVATE}\n-----END PRIVATE KEY-----\n"}}"#
        ),
    )
    .unwrap();
    let err = open_err(
        "gs://ctx/dir/ctx.tar.gz",
        &MapEnvironment::new().with("GOOGLE_APPLICATION_CREDENTIALS", bad.display().to_string()),
    );
    assert!(err.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{err}");
    assert!(!err.contains(PRIVATE), "{err}");
    eprintln!("unusable key file: {err}");
}
