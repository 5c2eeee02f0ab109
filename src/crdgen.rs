//! The CRDs Federator installs, as YAML: printed by `federator crd`, kept in `crds/`.

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::api::all_crds;

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("cannot render CRD {name} as YAML: {source}")]
    Render {
        name: String,
        source: serde_saphyr::ser::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// `<plural>.<group>.yaml` — kubebuilder's layout is `<group>_<plural>.yaml`; we keep that so
/// users comparing with k8ssandra-operator's `config/crd/bases` find the same file names.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

pub fn render(crd: &CustomResourceDefinition) -> Result<String, CrdError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    serde_saphyr::to_string(crd).map_err(|source| CrdError::Render { name, source })
}

/// Every CRD as one multi-document YAML stream.
pub fn render_all() -> Result<String, CrdError> {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&render(&crd)?);
    }
    Ok(out)
}

/// The files `crds/` must hold: (file name, contents).
pub fn files() -> Result<Vec<(String, String)>, CrdError> {
    all_crds()
        .iter()
        .map(|crd| Ok((file_name(crd), render(crd)?)))
        .collect()
}

/// Writes one file per CRD into `dir` and returns their names.
pub fn write_dir(dir: &Path) -> Result<Vec<String>, CrdError> {
    let write_err = |path: &Path, source| CrdError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e))?;
    let mut written = Vec::new();
    for (name, contents) in files()? {
        let path = dir.join(&name);
        std::fs::write(&path, contents).map_err(|e| write_err(&path, e))?;
        written.push(name);
    }
    Ok(written)
}
