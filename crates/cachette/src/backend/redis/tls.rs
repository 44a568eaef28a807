//! TLS for `rediss://` connections: the settings ([`TlsOptions`]), the rustls client
//! configuration built from them once per backend (certificate and key files are read and
//! checked then, so a bad file fails the build, not the first command), the handshake, and
//! the one place where a TLS failure is put into words.
//!
//! cachette opens TLS connections itself, like TCP ones (`connection.rs`), so that they run
//! under the same stall watchdog. The crypto provider is ring, named explicitly (never a
//! process-wide default). The `redis` crate's own TLS (used for pub/sub wake-ups and the
//! stats publisher) gets the same CA and client certificate through
//! [`RedisEndpoint::client`](crate::RedisEndpoint::client).

use std::path::PathBuf;

/// TLS settings of a `rediss://` connection: which CA to trust, the client certificate for
/// mutual TLS, and the opt-out of verification for development.
///
/// The server's certificate is always checked against the host name of the URL (or of each
/// cluster node) and, without [`ca_file`](Self::ca_file), against the Mozilla root CAs
/// bundled with the crate (`webpki-roots`).
///
/// | field | `config.json` `"redis"` key | environment |
/// |---|---|---|
/// | [`ca_file`](Self::ca_file) | `tls_ca_file` | `REDIS_TLS_CA_FILE` |
/// | [`cert_file`](Self::cert_file) | `tls_cert_file` | `REDIS_TLS_CERT_FILE` |
/// | [`key_file`](Self::key_file) | `tls_key_file` | `REDIS_TLS_KEY_FILE` |
/// | [`insecure`](Self::insecure) | `tls_insecure` | `REDIS_TLS_INSECURE` |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// PEM file of the CA certificate(s) to trust instead of the bundled public roots.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (chain) presented for mutual TLS; needs
    /// [`key_file`](Self::key_file).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1); needs
    /// [`cert_file`](Self::cert_file).
    pub key_file: Option<PathBuf>,
    /// **Development only**: accept any server certificate (no CA, expiry or host name
    /// check). The traffic is still encrypted, but anyone on the path can impersonate the
    /// server. Logged at `warn` each time a backend is built with it.
    pub insecure: bool,
}

impl TlsOptions {
    /// Whether nothing is set (the defaults: public roots, no client certificate, verified).
    pub fn is_default(&self) -> bool {
        *self == TlsOptions::default()
    }
}

#[cfg(feature = "tls")]
pub(crate) use self::enabled::*;

/// What to add to the message of a connection reset on a plain connection: a TLS-only Redis
/// port (`--port 0 --tls-port ...`) resets a client that speaks plain RESP to it at once,
/// which the bare "connection reset by peer" does not explain. Empty for any other error.
pub(crate) fn plain_client_hint(error: &redis::RedisError) -> &'static str {
    let reset = std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>())
        .and_then(|shared| shared.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset);
    if reset {
        " (if this port serves TLS only, connect with rediss://)"
    } else {
        ""
    }
}

/// Without the `tls` feature no TLS connection is ever opened (`rediss://` is refused when a
/// URL is parsed): the connector is a type with no value.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
pub(crate) enum TlsConnector {}

#[cfg(feature = "tls")]
mod enabled {
    use std::io;
    use std::path::Path;
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::WebPkiSupportedAlgorithms;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::{AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct};
    use tokio::io::{AsyncRead, AsyncWrite};

    use super::TlsOptions;
    use crate::error::{Error, Result};

    /// Where a file error says the setting came from (the file, the environment and code all
    /// end up here, so it names the setting by its `config.json` key and the path).
    const SOURCE: &str = "the TLS settings";

    /// A rustls client configuration built from [`TlsOptions`], shared by every connection of
    /// a backend.
    #[derive(Clone)]
    pub(crate) struct TlsConnector {
        config: Arc<ClientConfig>,
    }

    impl std::fmt::Debug for TlsConnector {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("TlsConnector")
        }
    }

    impl TlsConnector {
        /// Reads and checks the files named by `options` and builds the client configuration.
        ///
        /// # Errors
        /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the setting and the path of
        /// a file that cannot be read or holds no usable certificate or key (never the file's
        /// contents), or for a certificate without a key (or the reverse).
        pub(crate) fn new(options: &TlsOptions) -> Result<TlsConnector> {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| {
                    Error::config(
                        SOURCE,
                        "tls",
                        format!("no usable TLS protocol version: {e}"),
                    )
                })?;
            let builder = if options.insecure {
                tracing::warn!(
                    "cachette: TLS certificate verification is OFF (tls_insecure / \
                     REDIS_TLS_INSECURE): for development only; the server is not \
                     authenticated"
                );
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerification(
                        provider.signature_verification_algorithms,
                    )))
            } else {
                builder.with_root_certificates(roots(options.ca_file.as_deref())?)
            };
            let config = match (&options.cert_file, &options.key_file) {
                (Some(cert), Some(key)) => {
                    let chain = certificates(cert, "tls_cert_file")?;
                    let key_der = private_key(key)?;
                    builder.with_client_auth_cert(chain, key_der).map_err(|_| {
                        Error::config(
                            SOURCE,
                            "tls_key_file",
                            format!(
                                "the key in {} does not match the certificate in {} or is \
                                     of an unsupported type",
                                key.display(),
                                cert.display()
                            ),
                        )
                    })?
                }
                (None, None) => builder.with_no_client_auth(),
                (Some(_), None) => {
                    return Err(Error::config(
                        SOURCE,
                        "tls_key_file",
                        "a client certificate (tls_cert_file) needs its key (tls_key_file)",
                    ))
                }
                (None, Some(_)) => {
                    return Err(Error::config(
                        SOURCE,
                        "tls_cert_file",
                        "a client key (tls_key_file) needs its certificate (tls_cert_file)",
                    ))
                }
            };
            Ok(TlsConnector {
                config: Arc::new(config),
            })
        }

        /// The TLS handshake over `stream` for `host` (checked against the certificate),
        /// completed by `deadline`.
        ///
        /// A plain (non-TLS) Redis port never answers a client hello: it waits for the end of
        /// an inline command that never comes. A handshake still incomplete at `deadline` is
        /// therefore a TLS failure ([`HandshakeTimeout`], which [`describe`] puts into
        /// words), not a timeout. (A plain server that does answer, e.g. with `-ERR`, fails at
        /// once: rustls rejects the reply as not TLS.)
        pub(crate) async fn connect<S>(
            &self,
            host: &str,
            stream: S,
            deadline: tokio::time::Instant,
        ) -> io::Result<tokio_rustls::client::TlsStream<S>>
        where
            S: AsyncRead + AsyncWrite + Unpin,
        {
            let name = ServerName::try_from(host.to_owned()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the host is not a valid TLS server name",
                )
            })?;
            let started = tokio::time::Instant::now();
            let handshake =
                tokio_rustls::TlsConnector::from(self.config.clone()).connect(name, stream);
            match tokio::time::timeout_at(deadline, handshake).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    rustls::Error::Other(rustls::OtherError(Arc::new(HandshakeTimeout(
                        started.elapsed(),
                    )))),
                )),
            }
        }
    }

    /// A TLS handshake that did not complete in the time left to connect (see
    /// [`TlsConnector::connect`]).
    #[derive(Debug)]
    pub(crate) struct HandshakeTimeout(std::time::Duration);

    impl std::fmt::Display for HandshakeTimeout {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "the server did not complete the TLS handshake within {} ms: is this a TLS \
                 port? (a plain Redis port never answers one; use redis:// there) Else the \
                 server is not responding",
                self.0.as_millis()
            )
        }
    }

    impl std::error::Error for HandshakeTimeout {}

    fn read(path: &Path, field: &str) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| {
            Error::config(
                SOURCE,
                field,
                format!("cannot read {}: {}", path.display(), e.kind()),
            )
        })
    }

    fn certificates(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>> {
        let pem = read(path, field)?;
        // The parser's own errors may quote the file: they are replaced, not passed on.
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| {
                Error::config(
                    SOURCE,
                    field,
                    format!("{} is not a valid PEM certificate file", path.display()),
                )
            })?;
        if certs.is_empty() {
            return Err(Error::config(
                SOURCE,
                field,
                format!(
                    "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ),
            ));
        }
        Ok(certs)
    }

    fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
        let pem = read(path, "tls_key_file")?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
            Error::config(
                SOURCE,
                "tls_key_file",
                format!(
                    "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                    path.display()
                ),
            )
        })
    }

    fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                for cert in certificates(path, "tls_ca_file")? {
                    roots.add(cert).map_err(|_| {
                        Error::config(
                            SOURCE,
                            "tls_ca_file",
                            format!(
                                "{} holds a certificate that is not a valid CA",
                                path.display()
                            ),
                        )
                    })?;
                }
            }
        }
        Ok(roots)
    }

    /// `tls_insecure`: every server certificate is accepted; the handshake signatures are
    /// still checked (the session is encrypted, just not authenticated).
    #[derive(Debug)]
    struct NoVerification(WebPkiSupportedAlgorithms);

    impl ServerCertVerifier for NoVerification {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_schemes()
        }
    }

    /// The TLS failure inside `error`'s source chain (an I/O error wrapping a rustls error),
    /// if there is one.
    pub(crate) fn tls_failure<'e>(
        error: &'e (dyn std::error::Error + 'static),
    ) -> Option<&'e rustls::Error> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            // The `redis` crate keeps the I/O error behind an `Arc`.
            let inner: &(dyn std::error::Error + 'static) =
                match e.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>() {
                    Some(shared) => &**shared,
                    None => e,
                };
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            if let Some(io) = inner.downcast_ref::<io::Error>() {
                if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return Some(tls);
                }
            }
            next = e.source();
        }
        None
    }

    /// Which check failed, in words (for [`ErrorKind::Tls`](crate::ErrorKind::Tls) errors).
    pub(crate) fn describe(error: &rustls::Error) -> String {
        use rustls::Error as E;
        use AlertDescription as A;
        use CertificateError as C;
        match error {
            E::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer | C::BadSignature => {
                    "the server's certificate is not signed by a trusted CA (check tls_ca_file)"
                        .to_owned()
                }
                C::NotValidForName => {
                    "the server's certificate is not valid for the host name connected to"
                        .to_owned()
                }
                C::NotValidForNameContext {
                    expected,
                    presented,
                } => format!(
                    "the server's certificate is not valid for the host name {} (it names {})",
                    expected.to_str(),
                    if presented.is_empty() {
                        "no host".to_owned()
                    } else {
                        presented.join(", ")
                    }
                ),
                C::Expired | C::ExpiredContext { .. } => {
                    "the server's certificate has expired".to_owned()
                }
                C::NotValidYet | C::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet".to_owned()
                }
                C::Revoked => "the server's certificate is revoked".to_owned(),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    "the server's certificate is not for TLS servers".to_owned()
                }
                other => format!("the server's certificate was rejected ({other:?})"),
            },
            E::AlertReceived(A::CertificateRequired) => {
                "the server requires a client certificate (set tls_cert_file and tls_key_file)"
                    .to_owned()
            }
            E::AlertReceived(
                alert @ (A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::CertificateExpired
                | A::CertificateRevoked
                | A::UnsupportedCertificate
                | A::AccessDenied),
            ) => format!("the server refused the client certificate (alert {alert:?})"),
            E::AlertReceived(A::HandshakeFailure) => {
                "the server refused the handshake (does it require a client certificate?)"
                    .to_owned()
            }
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
                "the server did not answer in TLS: is this a TLS port? (a plain Redis port \
                 answers in plain text; use redis:// there)"
                    .to_owned()
            }
            E::Other(other) if other.0.is::<HandshakeTimeout>() => other.0.to_string(),
            other => format!("TLS handshake failed: {other}"),
        }
    }
}
