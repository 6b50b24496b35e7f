#![allow(clippy::unwrap_used)]
//! Instances over HTTPS (rustls): trusted through the cluster's `ca_file`, refused when the
//! certificate is not trusted, and the `authorization` header sent upstream. Certificates are
//! made for the test by the `openssl` command.

mod common;

use std::{path::Path, process::Command, sync::Arc, time::Duration};

use common::{FAST, Response, Running, Upstream, command, wait_until};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

const WAIT: Duration = Duration::from_secs(5);

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is needed to make test certificates");
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A CA (`ca.pem`) and a server certificate for `localhost` signed by it.
fn certificates(dir: &Path) -> TlsAcceptor {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=turbine test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_instances_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let acceptor = certificates(dir.path());
    let mut upstream = Upstream::start_tls(acceptor).await;
    upstream.repeat(command("Secure", 3, 0, false), Duration::from_millis(100));
    let port = upstream.addr.port();
    let ca = dir.path().join("ca.pem").display().to_string();
    let config = format!(
        "{FAST}[clusters.trusted]\ninstances = [\"localhost:{port}\"]\nhttps = true\nca_file = {ca:?}\n\
         [clusters.untrusted]\ninstances = [\"https://localhost:{port}/hystrix.stream\"]\n"
    );
    let turbine = Running::start(&config).await;
    let mut stream = Response::get(turbine.addr, "/turbine.stream?cluster=trusted").await;
    let event = stream
        .event(WAIT, |v| v["name"] == "Secure")
        .await
        .expect("data over TLS");
    assert_eq!(event["rollingCountSuccess"], 3);

    // Without the CA the certificate is refused, and /clusters says why.
    wait_until(WAIT, || {
        let views = turbine.turbine.clusters();
        let view = views.iter().find(|v| v.name == "untrusted").unwrap();
        view.instances[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("TLS") && e.to_lowercase().contains("certificate"))
    })
    .await;
    assert_eq!(
        turbine
            .turbine
            .clusters()
            .iter()
            .find(|v| v.name == "untrusted")
            .unwrap()
            .keys,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_is_sent_upstream() {
    let mut upstream = Upstream::start().await;
    upstream.require_header("authorization: Bearer s3cr3t");
    upstream.repeat(command("Guarded", 1, 0, false), Duration::from_millis(100));
    let anonymous = Upstream::start().await;
    anonymous.require_header("authorization: Bearer s3cr3t");
    let config = format!(
        "{FAST}[clusters.default]\ninstances = [\"{}\"]\nauthorization = \"Bearer s3cr3t\"\n\
         [clusters.anonymous]\ninstances = [\"{}\"]\n",
        upstream.instance(),
        anonymous.instance()
    );
    let turbine = Running::start(&config).await;
    let mut stream = Response::get(turbine.addr, "/turbine.stream").await;
    stream
        .event(WAIT, |v| v["name"] == "Guarded")
        .await
        .expect("authorized");
    wait_until(WAIT, || {
        turbine.turbine.clusters().iter().any(|v| {
            v.name == "anonymous"
                && v.instances[0]
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("401"))
        })
    })
    .await;
}
