//! The client for the home cluster: the one Federator runs in (the hub in control-plane mode).

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Debug, thiserror::Error)]
pub enum HomeClientError {
    #[error("cannot read kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot use kubeconfig{context}: {source}")]
    Kubeconfig {
        context: String,
        source: kube::config::KubeconfigError,
    },
    #[error(
        "no cluster to talk to: not running in a pod, and no kubeconfig found (set --kubeconfig or KUBECONFIG): {0}"
    )]
    Infer(kube::config::InferConfigError),
    #[error("cannot build a client for the home cluster: {0}")]
    Client(#[from] kube::Error),
}

/// Where the home cluster's connection comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HomeCluster {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

impl HomeCluster {
    /// A kubeconfig file or context given explicitly wins; otherwise the in-cluster service
    /// account, otherwise `KUBECONFIG` / `~/.kube/config`.
    pub async fn config(&self) -> Result<kube::Config, HomeClientError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let context_text =
            self.context.as_deref().map(|c| format!(" (context {c})")).unwrap_or_default();
        if let Some(path) = &self.kubeconfig {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| HomeClientError::ReadKubeconfig {
                    path: path.display().to_string(),
                    source,
                })?;
            return kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(
                |source| HomeClientError::Kubeconfig {
                    context: context_text,
                    source,
                },
            );
        }
        if self.context.is_some() {
            return kube::Config::from_kubeconfig(&options).await.map_err(|source| {
                HomeClientError::Kubeconfig {
                    context: context_text,
                    source,
                }
            });
        }
        if let Ok(config) = kube::Config::incluster() {
            return Ok(config);
        }
        kube::Config::infer().await.map_err(HomeClientError::Infer)
    }

    pub async fn client(&self) -> Result<kube::Client, HomeClientError> {
        Ok(kube::Client::try_from(self.config().await?)?)
    }
}
