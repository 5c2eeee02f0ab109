//! The shared reference data: k8ssandra-operator's and cass-operator's CRDs and manifests
//! (`../shared/compat`, beside the repository).

use std::path::{Path, PathBuf};

use serde_json::Value;

pub const COMPAT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/compat");

/// A path in the reference data, or None (reported as a missing prerequisite) when it is absent.
pub fn compat_path(relative: &str) -> Option<PathBuf> {
    let path = Path::new(COMPAT_DIR).join(relative);
    if path.exists() {
        Some(path)
    } else {
        kube_sim::prerequisites::missing(&format!(
            "{} is absent; compatibility data not available",
            path.display()
        ));
        None
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The documents of a YAML file, empty ones left out.
pub fn yaml_documents(path: &Path) -> Vec<Value> {
    let documents: Vec<Value> = serde_saphyr::from_multiple(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

/// The fixture files (k8ssandra-operator's manifests), sorted; None when the data is absent.
pub fn fixture_files() -> Option<Vec<PathBuf>> {
    let dir = compat_path("fixtures")?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "yaml" || ext == "yml"))
        .collect();
    files.sort();
    Some(files)
}

/// A file's name, for messages.
pub fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
