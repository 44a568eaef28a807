//! TLS test servers: certificates generated at run time with `rcgen` (ECDSA P-256, a few
//! milliseconds each), written into the server's temporary directory.
//!
//! A TLS server ([`RedisServerBuilder::tls`](crate::RedisServerBuilder::tls)) listens on two
//! loopback ports: its TLS port, which [`RedisServer::url`](crate::RedisServer::url) names
//! (`rediss://127.0.0.1:P/`), and a plain control port ([`RedisServer::port`]
//! (crate::RedisServer::port)) that the readiness probe, [`RedisServer::cli`]
//! (crate::RedisServer::cli) and `INFO` use, so that a test can watch the server while its
//! TLS clients fail.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::SpawnError;

/// What a TLS test server presents and demands; set through [`RedisServerBuilder`]
/// (crate::RedisServerBuilder) (`tls`, `tls_server_names`, `tls_expired_certificate`,
/// `tls_auth_clients`).
#[derive(Clone, Debug)]
pub(crate) struct TlsSettings {
    /// The names (DNS names or IP addresses) the server certificate is issued for.
    pub(crate) server_names: Vec<String>,
    /// Whether the server certificate expired (valid in 2000 only).
    pub(crate) expired: bool,
    /// `--tls-auth-clients yes` (a client certificate is required) instead of `optional`.
    pub(crate) auth_clients: bool,
    /// Files made beforehand and shared with other servers (the nodes of a TLS cluster trust
    /// one CA), used instead of generating a set per server.
    pub(crate) shared: Option<TlsFiles>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            server_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            expired: false,
            auth_clients: false,
            shared: None,
        }
    }
}

/// The PEM files of a TLS test server, all in its temporary directory (removed with it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The CA that signed the server's and the client's certificates: what a client trusts.
    pub ca_file: PathBuf,
    /// A client certificate signed by [`ca_file`](Self::ca_file) (for mutual TLS).
    pub cert_file: PathBuf,
    /// The client certificate's private key (PKCS#8).
    pub key_file: PathBuf,
    /// A CA that signed nothing here: trusting it instead of `ca_file` must fail.
    pub other_ca_file: PathBuf,
    /// The server's certificate.
    pub server_cert_file: PathBuf,
    /// The server's private key.
    pub server_key_file: PathBuf,
}

impl TlsFiles {
    /// Generates a CA, a server certificate (per `settings`), a client certificate and an
    /// unrelated CA into `dir/tls/`.
    pub(crate) fn generate(dir: &Path, settings: &TlsSettings) -> Result<TlsFiles, SpawnError> {
        let tls_dir = dir.join("tls");
        std::fs::create_dir_all(&tls_dir)
            .map_err(|e| SpawnError::io(format!("creating {}", tls_dir.display()), e))?;
        let (ca_key, ca_params) = ca("cachette test CA")?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(rcgen_error)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let (other_key, other_params) = ca("cachette unrelated CA")?;
        let other_cert = other_params.self_signed(&other_key).map_err(rcgen_error)?;

        let server_key = KeyPair::generate().map_err(rcgen_error)?;
        let mut server =
            CertificateParams::new(settings.server_names.clone()).map_err(rcgen_error)?;
        server
            .distinguished_name
            .push(DnType::CommonName, "cachette test server");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if settings.expired {
            server.not_before = rcgen::date_time_ymd(2000, 1, 1);
            server.not_after = rcgen::date_time_ymd(2000, 12, 31);
        }
        let server_cert = server
            .signed_by(&server_key, &issuer)
            .map_err(rcgen_error)?;

        let client_key = KeyPair::generate().map_err(rcgen_error)?;
        let mut client = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
        client
            .distinguished_name
            .push(DnType::CommonName, "cachette test client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client
            .signed_by(&client_key, &issuer)
            .map_err(rcgen_error)?;

        let files = TlsFiles {
            ca_file: tls_dir.join("ca.crt"),
            cert_file: tls_dir.join("client.crt"),
            key_file: tls_dir.join("client.key"),
            other_ca_file: tls_dir.join("other-ca.crt"),
            server_cert_file: tls_dir.join("server.crt"),
            server_key_file: tls_dir.join("server.key"),
        };
        for (path, pem) in [
            (&files.ca_file, ca_cert.pem()),
            (&files.cert_file, client_cert.pem()),
            (&files.key_file, client_key.serialize_pem()),
            (&files.other_ca_file, other_cert.pem()),
            (&files.server_cert_file, server_cert.pem()),
            (&files.server_key_file, server_key.serialize_pem()),
        ] {
            std::fs::write(path, pem)
                .map_err(|e| SpawnError::io(format!("writing {}", path.display()), e))?;
        }
        Ok(files)
    }

    /// The files `settings` name: the shared ones, else a set generated into `dir/tls/`.
    pub(crate) fn for_server(dir: &Path, settings: &TlsSettings) -> Result<TlsFiles, SpawnError> {
        match &settings.shared {
            Some(files) => Ok(files.clone()),
            None => TlsFiles::generate(dir, settings),
        }
    }

    /// The extra arguments of a node of a TLS cluster: the cluster bus and replication in TLS
    /// too, each node presenting the client certificate to the others.
    pub(crate) fn cluster_node_args(&self) -> Vec<OsString> {
        vec![
            "--tls-cluster".into(),
            "yes".into(),
            "--tls-replication".into(),
            "yes".into(),
            "--tls-client-cert-file".into(),
            self.cert_file.clone().into(),
            "--tls-client-key-file".into(),
            self.key_file.clone().into(),
        ]
    }

    /// The `redis-cli` arguments of a TLS client trusting [`ca_file`](Self::ca_file) and
    /// presenting the client certificate.
    pub(crate) fn cli_args(&self) -> Vec<OsString> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.ca_file.clone().into(),
            "--cert".into(),
            self.cert_file.clone().into(),
            "--key".into(),
            self.key_file.clone().into(),
        ]
    }

    /// The `redis-server` arguments that serve these files (the TLS port comes apart).
    pub(crate) fn server_args(&self, settings: &TlsSettings) -> Vec<OsString> {
        vec![
            "--tls-cert-file".into(),
            self.server_cert_file.clone().into(),
            "--tls-key-file".into(),
            self.server_key_file.clone().into(),
            "--tls-ca-cert-file".into(),
            self.ca_file.clone().into(),
            "--tls-auth-clients".into(),
            if settings.auth_clients {
                "yes"
            } else {
                "optional"
            }
            .into(),
        ]
    }
}

fn ca(name: &str) -> Result<(KeyPair, CertificateParams), SpawnError> {
    let key = KeyPair::generate().map_err(rcgen_error)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rcgen_error)?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok((key, params))
}

fn rcgen_error(e: rcgen::Error) -> SpawnError {
    SpawnError::io(
        "generating TLS certificates",
        std::io::Error::other(e.to_string()),
    )
}
