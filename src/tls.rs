//! Whom Guichet trusts when it connects to a mail server with TLS (SPEC §9): the system's trust
//! store (`/etc/ssl/certs` on Debian, through rustls-native-certs; Mozilla's roots compiled in
//! when the system has none), plus a private CA from `ca_file` (PEM) for an internal server.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use anyhow::Context;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The trusted roots, as DER certificates: the system's, and every certificate of `ca_file`.
pub fn roots(ca_file: Option<&Path>) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let mut roots = system_roots();
    if let Some(file) = ca_file {
        let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .with_context(|| format!("cannot read the CA file {}", file.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} is not a PEM certificate file", file.display()))?;
        anyhow::ensure!(!extra.is_empty(), "{} holds no certificate", file.display());
        roots.extend(extra);
    }
    Ok(roots)
}

/// The system's trust store, read once (empty when it has none: Mozilla's roots are used then).
pub fn system_roots() -> Vec<CertificateDer<'static>> {
    static SYSTEM: LazyLock<Vec<CertificateDer<'static>>> =
        LazyLock::new(|| rustls_native_certs::load_native_certs().certs);
    SYSTEM.clone()
}

/// Says what a failed handshake means to an operator: a certificate the trust store does not
/// vouch for is named as such (with the way out), anything else keeps its own words.
pub fn handshake_error(e: std::io::Error, host: &str) -> anyhow::Error {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>())
        .is_some_and(|r| matches!(r, tokio_rustls::rustls::Error::InvalidCertificate(_)));
    if certificate {
        anyhow::anyhow!(
            "TLS certificate error with {host}: {e} (the server's certificate is not trusted by the system's \
             trust store; for a private CA, set ca_file)"
        )
    } else {
        anyhow::anyhow!("TLS handshake with {host}: {e}")
    }
}

/// A rustls client configuration trusting [`roots`].
pub fn client_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    let mut store = RootCertStore::empty();
    if system_roots().is_empty() {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    store.add_parsable_certificates(roots(ca_file)?);
    let config = ClientConfig::builder_with_provider(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
