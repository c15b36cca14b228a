//! Background servers: a thread running a current-thread tokio runtime, so the testkit's
//! HTTP servers work from synchronous and asynchronous tests alike.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

/// A future running on its own thread until dropped.
#[derive(Debug)]
pub(crate) struct BackgroundServer {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundServer {
    /// Runs `serve` on a new thread; it is cancelled (with every task it spawned) on drop.
    pub(crate) fn spawn<F>(name: &str, serve: F) -> BackgroundServer
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building a tokio runtime for a testkit server");
                runtime.block_on(async move {
                    tokio::select! {
                        _ = serve => {}
                        _ = rx => {}
                    }
                });
            })
            .expect("spawning a testkit server thread");
        BackgroundServer {
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A response body the testkit's servers return.
pub(crate) type Body = http_body_util::Full<bytes::Bytes>;

/// Accepts HTTP/1.1 connections (through TLS when `tls` is set) and answers each request
/// with `handler`.
pub(crate) async fn serve_http<H, Fut>(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: H,
) where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = hyper::Response<Body>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handler(req).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = http
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = http
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

/// A rustls acceptor for a server certificate (ring provider).
pub(crate) fn tls_acceptor(cert: &crate::tls::CertFiles) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("parsing server certificate PEM");
    let key =
        PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("parsing server key PEM");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server certificate and key");
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// Binds 127.0.0.1 on a free port, for a server started on a [`BackgroundServer`].
pub(crate) fn bind_free() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let port = listener.local_addr().expect("local_addr").port();
    (listener, port)
}
