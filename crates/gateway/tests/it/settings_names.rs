//! The settings the gateway reads are exactly the README's configuration table, and the
//! deployment files (docker-compose, Helm chart, local cluster script) only set real ones.

use std::cell::RefCell;
use std::collections::BTreeSet;

use roomcast_gateway::Config;

/// Every `ROOMCAST_*` variable `Config::load` asks for.
fn read_settings() -> BTreeSet<String> {
    let asked = RefCell::new(BTreeSet::new());
    let env = |key: &str| {
        asked.borrow_mut().insert(key.to_owned());
        (key == "ROOMCAST_JWT_SECRET").then(|| "s".to_owned())
    };
    Config::load(None, &env).expect("a secret alone is a valid configuration");
    asked.into_inner()
}

/// The `ROOMCAST_*` names in the README table's second column.
fn documented_settings() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(crate::ops::repo().join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once("` | `ROOMCAST_"))
        .map(|(_, rest)| format!("ROOMCAST_{}", rest.split('`').next().unwrap()))
        .collect()
}

/// `ROOMCAST_*` words in a file.
fn variables_in(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(crate::ops::repo().join(path)).unwrap();
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ROOMCAST_") && w.len() > "ROOMCAST_".len())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_table_lists_exactly_the_settings_read() {
    let read = read_settings();
    assert!(read.contains("ROOMCAST_ALLOWED_ORIGINS"));
    assert_eq!(documented_settings(), read);
}

#[test]
fn deployment_files_set_only_real_settings() {
    let mut known = read_settings();
    // Read by main and the script rather than Config: the log filter and the script's binary.
    known.extend(["ROOMCAST_LOG".to_owned(), "ROOMCAST_BIN".to_owned()]);
    let files = [
        "deploy/docker/docker-compose.yml",
        "deploy/docker/Dockerfile",
        "deploy/local/cluster.sh",
        "helm/roomcast/templates/deployment.yaml",
        "helm/roomcast/values.yaml",
    ];
    for file in files {
        let unknown: Vec<String> = variables_in(file).difference(&known).cloned().collect();
        assert!(unknown.is_empty(), "{file} sets {unknown:?}, which roomcast does not read");
    }
}
