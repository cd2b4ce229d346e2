//! TLS for every HTTP client of the process (registries, S3, reports, health checks).
//!
//! reqwest builds a rustls configuration, and with it the platform's trust store (every
//! file under /etc/ssl/certs, parsed), whenever a client is built, whether or not it
//! will ever speak https. Most agents poll a plain-http registry, and a poll that finds
//! nothing new is most of what they do: loading the trust store was most of its cost.
//! So every client shares one configuration whose certificate verifier loads the trust
//! store on the first certificate it has to check, once per process. Verification is
//! unchanged: the same platform verifier as reqwest's own (rustls-platform-verifier,
//! which honours `SSL_CERT_FILE` and `SSL_CERT_DIR`), only built later.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::Verifier;

/// A client builder that uses the process's shared TLS configuration.
pub(crate) fn client_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match shared() {
        Ok(config) => builder.tls_backend_preconfigured(config.clone()),
        // Not expected with the built-in provider; reqwest's own set-up then runs and
        // reports what is wrong when the client is built.
        Err(_) => builder,
    }
}

fn shared() -> Result<&'static rustls::ClientConfig, &'static rustls::Error> {
    static CONFIG: OnceLock<Result<rustls::ClientConfig, rustls::Error>> = OnceLock::new();
    CONFIG.get_or_init(build).as_ref()
}

fn build() -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(OnFirstUse::new(provider)))
        .with_no_client_auth();
    // What reqwest offers without its http2 feature.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The platform verifier, made when the first server certificate arrives.
#[derive(Debug)]
struct OnFirstUse {
    provider: Arc<CryptoProvider>,
    platform: OnceLock<Result<Verifier, rustls::Error>>,
}

impl OnFirstUse {
    fn new(provider: Arc<CryptoProvider>) -> OnFirstUse {
        OnFirstUse {
            provider,
            platform: OnceLock::new(),
        }
    }

    fn platform(&self) -> Result<&Verifier, rustls::Error> {
        self.platform
            .get_or_init(|| {
                Verifier::new(self.provider.clone()).map_err(|e| {
                    rustls::Error::General(format!(
                        "cannot load the trusted CA certificates: {e}; install the system's CA bundle (ca-certificates) or point SSL_CERT_FILE at a PEM file of the CAs to trust"
                    ))
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for OnFirstUse {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.platform()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    // The handshake signatures need only the algorithms, not the trust store; this is
    // what the platform verifier (through rustls's WebPKI verifier) does for them too.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
