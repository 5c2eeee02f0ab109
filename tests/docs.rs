//! docs/ must keep up with the code: every setting in the configuration reference, every condition
//! reason the code sets in the troubleshooting guide, every guide linked from the README, and no
//! link to a file that does not exist.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The part of a Rust file before its unit tests.
fn code_of(path: &Path) -> String {
    let text = read(path);
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// String literals of `text` that look like a condition type or reason: one CamelCase word.
fn camel_case_literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() > 2
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars().all(|c| c.is_ascii_alphanumeric())
                && s.chars().skip(1).any(|c| c.is_ascii_lowercase())
        })
        .map(String::from)
        .collect()
}

#[test]
fn the_configuration_reference_names_every_setting_and_its_variable() {
    let settings = code_of(&repo().join("src/settings.rs"));
    let start = settings.find("const SETTING_KEYS").expect("src/settings.rs lists SETTING_KEYS");
    let end = start + settings[start..].find("];").expect("end of SETTING_KEYS");
    let keys: Vec<&str> = settings[start..end].split('"').skip(1).step_by(2).collect();
    assert!(keys.len() >= 10, "parsed {keys:?}");
    let doc = read(&repo().join("docs/configuration.md"));
    for key in keys {
        let variable = format!("FEDERATOR_{}", key.to_ascii_uppercase().replace('.', "__"));
        assert!(
            doc.contains(&format!("| `{key}` |")),
            "docs/configuration.md has no row for `{key}`"
        );
        assert!(
            doc.contains(&format!("`{variable}`")),
            "docs/configuration.md does not name {variable}"
        );
    }
}

#[test]
fn the_troubleshooting_guide_explains_every_condition_and_reason() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut names = Vec::new();
    // src/api/ holds cass-operator's condition types and the condition statuses: not ours.
    for file in files.iter().filter(|f| !f.starts_with(repo().join("src/api"))) {
        let code = code_of(file);
        // `pub const REASON_X: &str = "Name";` and `CONDITION_X` anywhere in the code.
        for line in code.lines().map(str::trim) {
            let is_name = ["pub const REASON_", "pub const CONDITION_", "const REASON_"]
                .iter()
                .any(|p| line.starts_with(p));
            if is_name && line.contains(": &str = \"") {
                names.extend(camel_case_literals(line));
            }
        }
    }
    // The ClientConfig's reasons are written as literals where they are decided.
    for file in [
        "src/clusters/status.rs",
        "src/clusters/kubeconfig.rs",
        "src/clusters/region.rs",
    ] {
        let code = code_of(&repo().join(file));
        let reasons: Vec<String> = if file.ends_with("status.rs") {
            camel_case_literals(&code)
        } else {
            // Only the `as_str` arms: `Variant => "Reason",`.
            code.lines().filter(|l| l.contains("=> \"")).flat_map(camel_case_literals).collect()
        };
        assert!(!reasons.is_empty(), "no reason found in {file}");
        names.extend(reasons);
    }
    names.sort();
    names.dedup();
    assert!(names.len() > 30, "parsed {names:?}");
    let doc = read(&repo().join("docs/troubleshooting.md"));
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !doc.contains(&format!("`{name}`")) && !doc.contains(&format!("| {name} |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/troubleshooting.md does not explain {missing:?}"
    );
}

#[test]
fn the_readme_links_every_guide_and_no_link_is_broken() {
    let readme = read(&repo().join("README.md"));
    let mut pages = vec![(repo().join("README.md"), readme.clone())];
    for entry in std::fs::read_dir(repo().join("docs")).expect("docs/").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "md") {
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            assert!(
                readme.contains(&format!("(docs/{name})")),
                "README.md does not link docs/{name}"
            );
            let text = read(&path);
            pages.push((path, text));
        }
    }
    for (page, text) in &pages {
        // Markdown links: ](target)
        for part in text.split("](").skip(1) {
            let Some(target) = part.split(')').next() else {
                continue;
            };
            let target = target.split('#').next().unwrap_or("");
            // Not a path: a URL, or a pattern in a code span of the CRD reference.
            let not_a_path =
                target.contains("://") || target.chars().any(|c| " []*^$\\`".contains(c));
            if target.is_empty() || not_a_path {
                continue;
            }
            let resolved = page.parent().expect("parent").join(target);
            assert!(
                resolved.exists(),
                "{} links to {target}, which does not exist",
                page.display()
            );
        }
    }
}
