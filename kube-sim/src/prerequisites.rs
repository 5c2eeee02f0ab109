//! What some tests need from the machine: the real `kubectl` (and its older and newer builds
//! beside it) and the compatibility data in `shared/compat` beside the workspace.
//!
//! Outside CI a missing one skips the test with a message saying what is missing. Under CI (the
//! `CI` environment variable set to anything but `false`, as CI runs `.ci/run`) it fails the
//! test instead, so a CI run never passes on tests that did not run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this run is CI's.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// Reports a missing prerequisite: panics under CI, else prints that the test is skipped.
pub fn missing(what: &str) {
    assert!(
        !in_ci(),
        "{what}: under CI every test must run (.ci/run installs what the tests need)"
    );
    eprintln!("skipped: {what}");
}

/// Whether `kubectl` runs; reports it missing otherwise.
pub fn kubectl() -> bool {
    let runs = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !runs {
        missing("kubectl is not installed");
    }
    runs
}

/// `kubectl.1.<minor>` beside the `kubectl` on PATH; reports it missing otherwise.
pub fn kubectl_build(minor: u32) -> Option<PathBuf> {
    let beside_kubectl = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
            .and_then(|found| std::fs::canonicalize(found).ok())
            .and_then(|real| real.parent().map(|dir| dir.join(format!("kubectl.1.{minor}"))))
    });
    let found = beside_kubectl.filter(|candidate| candidate.is_file());
    if found.is_none() {
        missing(&format!(
            "kubectl.1.{minor} is not installed beside kubectl on PATH"
        ));
    }
    found
}

/// `shared/compat` beside the workspace whose root is `workspace_root`, if it holds the CRDs;
/// reports it missing otherwise.
pub fn compat_dir(workspace_root: &Path) -> Option<PathBuf> {
    let dir = workspace_root.join("../shared/compat");
    if dir.join("crds").is_dir() {
        Some(dir)
    } else {
        missing(&format!("{} is not there", dir.display()));
        None
    }
}

/// The workspace root, from kube-sim's own manifest directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
