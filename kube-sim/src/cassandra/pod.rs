//! Which pod a node is: the name every interface addresses it by.

use std::fmt;

/// A Cassandra pod: the simulated Kubernetes cluster (region) it runs in, its namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    pub region: String,
    pub namespace: String,
    pub name: String,
}

impl PodRef {
    pub fn new(
        region: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        PodRef {
            region: region.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.region, self.namespace, self.name)
    }
}
