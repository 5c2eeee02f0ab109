//! The HTTP stack under every Kubernetes client: HTTP/2 when the API server offers it (every
//! kube-apiserver does), HTTP/1.1 otherwise.
//!
//! kube's own stack speaks HTTP/1.1 only, where each watch and each request in flight holds a
//! TLS connection of its own: about nine per region, 953 connections and some 40 MiB with 100
//! regions. Over HTTP/2 a region is one connection, as with client-go.

use std::time::Duration;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use rustls::pki_types::ServerName;
use tower::Service as _;
use tower::ServiceBuilder;
use tower::retry::RetryLayer;

/// Pings on an HTTP/2 connection with nothing else to say, so that a dead peer (a region whose
/// network went away without a FIN) is noticed: client-go's values.
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection pool to one API server under kube's request layers: TLS (verified, as
/// configured), HTTP/2 or HTTP/1.1 by ALPN, the connection (TCP and TLS) bounded by the connect
/// timeout, credentials from the kubeconfig, kube's retry of 429/503/504 unless the config turns
/// it off. Clones share the connections.
#[derive(Clone)]
pub struct Transport {
    service: Stack,
    default_namespace: String,
}

impl Transport {
    pub fn new(config: &kube::Config, connect_timeout: Duration) -> Result<Transport, kube::Error> {
        // Refused rather than bypassed: this stack connects directly (as kube's did without its
        // proxy features, which Federator does not enable).
        if let Some(proxy_url) = &config.proxy_url {
            return Err(kube::Error::ProxyProtocolUnsupported {
                proxy_url: Box::new(proxy_url.clone()),
            });
        }
        // kube's TLS settings (CA, client certificate, verification); the builder below adds ALPN.
        let tls = config.rustls_client_config()?;
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http();
        let https = match &config.tls_server_name {
            Some(name) => {
                let name = ServerName::try_from(name.clone()).map_err(|e| {
                    kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
                })?;
                https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
            }
            None => https,
        };
        let https = https.enable_all_versions().wrap_connector(tcp);
        let connector = tower::service_fn(move |uri: http::Uri| {
            let mut https = https.clone();
            Box::pin(async move {
                match tokio::time::timeout(connect_timeout, https.call(uri)).await {
                    Ok(connected) => connected,
                    Err(_) => Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connecting took longer than {connect_timeout:?}"),
                    )) as tower::BoxError),
                }
            })
        });
        let hyper = HyperClient::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .http2_keep_alive_interval(PING_INTERVAL)
            .http2_keep_alive_timeout(PING_TIMEOUT)
            .http2_keep_alive_while_idle(true)
            .build(connector);
        let service = Stack::new(
            ServiceBuilder::new()
                .option_layer(
                    config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry())),
                )
                .option_layer(config.auth_layer()?)
                .layer(config.extra_headers_layer()?)
                .layer(config.base_uri_layer())
                .map_err(tower::BoxError::from)
                .service(hyper),
        );
        Ok(Transport {
            service,
            default_namespace: config.default_namespace.clone(),
        })
    }

    /// A client over these connections; `wrap` adds the caller's layers (timeouts, limits,
    /// metrics).
    pub fn client<L>(&self, wrap: L) -> kube::Client
    where
        L: tower::Layer<Stack>,
        L::Service: tower::Service<
                http::Request<kube::client::Body>,
                Response = http::Response<hyper::body::Incoming>,
                Error = tower::BoxError,
            > + Send
            + 'static,
        <L::Service as tower::Service<http::Request<kube::client::Body>>>::Future: Send + 'static,
    {
        kube::Client::new(
            wrap.layer(self.service.clone()),
            self.default_namespace.clone(),
        )
    }
}

/// The stack below the caller's layers.
pub type Stack = tower::util::BoxCloneService<
    http::Request<kube::client::Body>,
    http::Response<hyper::body::Incoming>,
    tower::BoxError,
>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_url_is_refused_not_bypassed() {
        let mut config = kube::Config::new("https://203.0.113.7:6443".parse().expect("url"));
        config.proxy_url = Some("http://proxy.example:3128".parse().expect("proxy url"));
        let refused = Transport::new(&config, Duration::from_secs(1));
        assert!(
            matches!(refused, Err(kube::Error::ProxyProtocolUnsupported { .. })),
            "a client was built that would ignore the proxy"
        );
    }
}
