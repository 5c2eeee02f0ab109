//! Files a pod keeps on its Cassandra data volume (`/var/lib/cassandra`) besides the node's
//! data, such as Medusa's restore marker and prepared restore mappings. Like the
//! PersistentVolume, they outlive the pod's containers and restarts.

use super::CassandraModel;
use super::cluster::PodRef;

impl CassandraModel {
    /// A file on the pod's data volume.
    pub fn volume_file(&self, pod: &PodRef, path: &str) -> Option<&str> {
        self.volumes.get(pod).and_then(|files| files.get(path)).map(String::as_str)
    }

    /// Writes (or replaces) a file on the pod's data volume.
    pub fn write_volume_file(&mut self, pod: &PodRef, path: &str, content: impl Into<String>) {
        self.volumes.entry(pod.clone()).or_default().insert(path.to_string(), content.into());
    }

    /// The pod's PersistentVolumeClaim was deleted: its files go with it.
    pub fn clear_volume(&mut self, pod: &PodRef) {
        self.volumes.remove(pod);
    }
}
