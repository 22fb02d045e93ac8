//! TLS with rustls and the ring provider: the listener's server config and the upstream client's.
//!
//! Configs are built with the ring provider passed explicitly, so nothing depends on a
//! process-wide default; the binary installs ring as the default too, for any library that
//! asks for one.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ProxyError;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ProxyError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ProxyError::config(field, format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ProxyError::config(field, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ProxyError::config(
            field,
            format!("{}: no PEM certificate found", path.display()),
        ));
    }
    Ok(certs)
}

/// The listener's TLS config: the certificate chain and key, ALPN `h2` and `http/1.1`.
///
/// # Errors
///
/// A file cannot be read, holds no certificate or key, or the key does not fit the certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, ProxyError> {
    let certs = read_certs("tls.cert", cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ProxyError::config("tls.key", format!("{}: {e}", key.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::config("tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ProxyError::config("tls.key", format!("does not fit tls.cert: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The upstream client's TLS config: the Mozilla (webpki) roots, or only the certificates of
/// `ca_file`. ALPN is left to the connector (`http/1.1` only, see [`crate::forward`]).
///
/// # Errors
///
/// The CA file cannot be read or holds no usable certificate.
pub fn upstream_client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ProxyError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_certs("upstream.ca_file", path)? {
                roots.add(cert).map_err(|e| {
                    ProxyError::config("upstream.ca_file", format!("{}: {e}", path.display()))
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProxyError::config("upstream", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
