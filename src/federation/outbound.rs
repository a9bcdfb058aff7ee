//! The one way this node calls a peer: the DSP crawler, the DCAT-AP harvester and SPARQL
//! `SERVICE` all build their connections here, so they share the same rules.
//!
//! Every call passes the contracts' [`AddressPolicy`] before any connection (an `https://` peer
//! too: the policy reads the host, not the scheme), follows no redirect (a `3xx` is an answer,
//! never a second address), and is bounded connection to last byte by the caller's timeout
//! (at most [`super::CALL_TIMEOUT`]); bodies are read under [`super::MAX_RESPONSE_BYTES`].
//!
//! `https://` peers are verified with rustls on ring against the system's roots
//! (`rustls-native-certs`: `/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus, with
//! `--peer-ca FILE` (`federation.peer_ca`), the certificates of one PEM file: a federation's
//! private CA. Nothing is ever accepted unverified.

use super::CrawlError;
use crate::config::ConfigError;
use crate::contract::AddressPolicy;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

/// How this node connects to peers.
#[derive(Debug, Clone)]
pub struct PeerClient {
    addresses: AddressPolicy,
    tls: TlsConfig,
}

impl PeerClient {
    /// A client under `addresses` that trusts the system's roots and, if given, the
    /// certificates in the PEM file `peer_ca`. A `peer_ca` that cannot be read or holds no
    /// certificate is a configuration error: a node must not start believing it trusts a CA
    /// it does not.
    pub fn new(addresses: AddressPolicy, peer_ca: Option<&Path>) -> Result<Self, ConfigError> {
        let tls = match peer_ca {
            None => node_tls(),
            Some(path) => {
                let mut roots = system_roots().to_vec();
                roots.extend(read_pem_certificates(path)?);
                let tls = tls_with_roots(&roots);
                // The node's other calls to peers (DSP messages of a negotiation) trust the
                // same CA; the first client built with one (at start) sets it for the process.
                let _ = PEER_CA_TLS.set(tls.clone());
                tls
            }
        };
        Ok(Self { addresses, tls })
    }

    /// The address policy every call passes.
    pub fn addresses(&self) -> &AddressPolicy {
        &self.addresses
    }

    /// An agent for calls to `url`, once `url` has passed the address policy: no redirects,
    /// `timeout` from connection to last byte, error statuses handed back as answers.
    pub fn agent(&self, url: &str, timeout: Duration) -> Result<ureq::Agent, CrawlError> {
        self.addresses
            .check(url)
            .map_err(|e| CrawlError::Refused(e.to_string()))?;
        Ok(ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .tls_config(self.tls.clone())
            .build()
            .into())
    }
}

/// The system's root certificates, read once per process. Errors on single files of the
/// store are not fatal: a peer whose chain needs one of them fails with a certificate error.
fn system_roots() -> &'static [Certificate<'static>] {
    static ROOTS: OnceLock<Vec<Certificate<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        rustls_native_certs::load_native_certs()
            .certs
            .iter()
            .map(|der| Certificate::from_der(der.as_ref()).to_owned())
            .collect()
    })
}

fn tls_with_roots(roots: &[Certificate<'static>]) -> TlsConfig {
    TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::new_with_certs(roots))
        .build()
}

/// The system's roots plus `--peer-ca`, once a [`PeerClient`] was built with it.
static PEER_CA_TLS: OnceLock<TlsConfig> = OnceLock::new();

/// The TLS settings for every other outbound agent of the node and its CLI (DSP messages to
/// counter-parties, `agora pull`): rustls on ring with the system's roots, and the CA of
/// `--peer-ca` once the node has read it. ureq's default roots would be webpki-roots, which
/// this build leaves out (CDLA-Permissive-2.0 is not OSI-approved), and an agent left at that
/// default panics on its first `https://` URL.
pub fn node_tls() -> TlsConfig {
    static SYSTEM: OnceLock<TlsConfig> = OnceLock::new();
    PEER_CA_TLS.get().cloned().unwrap_or_else(|| {
        SYSTEM
            .get_or_init(|| tls_with_roots(system_roots()))
            .clone()
    })
}

/// The certificates of a PEM file (other items, such as keys, are ignored).
fn read_pem_certificates(path: &Path) -> Result<Vec<Certificate<'static>>, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        setting: "federation.peer_ca",
        message,
    };
    let pem = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(certificate)) => certificates.push(certificate.to_owned()),
            Ok(_) => {}
            Err(e) => {
                return Err(invalid(format!(
                    "{} is not a valid PEM file: {e}",
                    path.display()
                )));
            }
        }
    }
    if certificates.is_empty() {
        return Err(invalid(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certificates)
}

/// A readable account of a failed call: a certificate the node does not trust is named as
/// such, with the way out, instead of rustls's bare error.
pub fn describe(error: &ureq::Error) -> String {
    let text = error.to_string();
    let certificate = matches!(
        error,
        ureq::Error::Rustls(rustls::Error::InvalidCertificate(_))
    ) || text.contains("certificate");
    if certificate {
        format!(
            "TLS certificate not trusted: {text} (trust the peer's CA with --peer-ca FILE or federation.peer_ca)"
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_ca_without_certificates_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n")?;
        let policy = AddressPolicy {
            allow_private: false,
        };
        let error = PeerClient::new(policy, Some(&empty))
            .err()
            .ok_or("an empty CA file was accepted")?;
        assert!(
            error.to_string().contains("holds no PEM certificate"),
            "{error}"
        );
        let missing = PeerClient::new(policy, Some(&dir.path().join("missing.pem")))
            .err()
            .ok_or("a missing CA file was accepted")?;
        assert!(missing.to_string().contains("missing.pem"), "{missing}");
        Ok(())
    }

    #[test]
    fn https_peers_still_pass_the_address_policy() -> Result<(), Box<dyn std::error::Error>> {
        let client = PeerClient::new(
            AddressPolicy {
                allow_private: false,
            },
            None,
        )?;
        for url in [
            "https://127.0.0.1:8443/sparql",
            "https://10.0.0.1/",
            "https://[::1]:443/",
            "https://169.254.169.254/latest",
        ] {
            let refused = client.agent(url, Duration::from_secs(1));
            assert!(
                matches!(refused, Err(CrawlError::Refused(_))),
                "{url} was not refused"
            );
        }
        Ok(())
    }
}
