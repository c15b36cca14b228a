//! S3 contexts against moto (`moto_server`) on 127.0.0.1: the object streams
//! out byte for byte; a missing object, a missing bucket and wrong
//! credentials each give their own error, naming the URL and the fix, and
//! never the secret.

use std::io::Read;

use kiln_auth::MapEnvironment;
use kiln_context::ObjectSource;
use kiln_testkit::MotoS3;

const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";

fn env(server: &MotoS3) -> MapEnvironment {
    MapEnvironment::new()
        .with("AWS_ACCESS_KEY_ID", "AKIAKILNTEST")
        .with("AWS_SECRET_ACCESS_KEY", SECRET)
        .with("AWS_REGION", "eu-west-1")
        .with("S3_ENDPOINT", server.endpoint())
        .with("S3_FORCE_PATH_STYLE", "true")
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
    let file = dir.path().join("ctx.tar.gz");
    // 3 MiB of varied bytes: several chunks through the channel.
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).unwrap();
    server.put("ctx", "dir/ctx.tar.gz", &file);

    let env = env(&server);
    let source = ObjectSource::parse("s3://ctx/dir/ctx.tar.gz")
        .unwrap()
        .unwrap();
    let mut got = Vec::new();
    source.open(&env).unwrap().read_to_end(&mut got).unwrap();
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
