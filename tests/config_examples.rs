//! Every shipped example config parses and validates under the strictest
//! context (no CAP_SYS_RESOURCE, as in a hardened DaemonSet), so what users
//! copy from `examples/` works as is.

use crate::common;

use std::path::{Path, PathBuf};

use cgroup_psi_exporter::config::{Config, ValidationContext};

/// As in a hardened DaemonSet: no CAP_SYS_RESOURCE.
fn strict() -> ValidationContext {
    ValidationContext {
        cap_sys_resource: false,
        known_families: Vec::new(),
    }
}

fn example_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        // Exporter configs only: examples/ also holds a Prometheus config.
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("config"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn examples_exist() {
    let names: Vec<String> = example_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"config.yaml".to_string()), "{names:?}");
    assert!(
        names.contains(&"config-minimal.yaml".to_string()),
        "{names:?}"
    );
}

#[test]
fn every_example_parses_and_validates_without_cap_sys_resource() {
    let strict = strict();
    for file in example_files() {
        let cfg =
            Config::load_with(&file, &strict).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            !cfg.psi.rules.is_empty(),
            "{}: an example without rules",
            file.display()
        );
        assert_eq!(cfg.validate(&strict), Ok(()));
        // What --check-config prints parses back to the same config.
        let again = Config::parse_str(&cfg.to_yaml(), Path::new("normalised.yaml"))
            .unwrap_or_else(|e| panic!("{}: normalised form: {e}", file.display()));
        assert_eq!(again, cfg, "{}", file.display());
    }
}

#[test]
fn full_example_uses_every_section() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config.yaml");
    let cfg = Config::load(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for section in [
        "cgroups:",
        "metrics:",
        "namespaces:",
        "psi:",
        "alerting:",
        "kubernetes:",
    ] {
        assert!(text.contains(section), "missing {section}");
    }
    assert!(
        cfg.psi.rules.iter().any(|r| r.cgroups == ["/"]),
        "no host rule"
    );
    let resources: Vec<&str> = cfg.psi.rules.iter().map(|r| r.resource.name()).collect();
    for r in ["cpu", "memory", "io"] {
        assert!(resources.contains(&r), "no {r} rule");
    }
    assert!(
        !cfg.psi.pressure_levels.is_empty(),
        "no pressure level rule"
    );
    assert!(cfg.alerting.memory_events.high && cfg.alerting.memory_events.max);
    assert!(!cfg.alerting.alertmanagers.is_empty());
    assert!(!cfg.alerting.webhooks.is_empty());
    assert!(!cfg.metrics.disable.is_empty());
    assert!(!cfg.kubernetes.kubelet_url.is_empty());
}

/// The exporter configs quoted in the README and docs/ (```yaml blocks
/// whose first key is a config section) are valid as written, so the
/// documentation cannot drift from the schema.
#[test]
fn config_blocks_in_the_docs_parse_and_validate() {
    const SECTIONS: &[&str] = &[
        "cgroups:",
        "metrics:",
        "namespaces:",
        "psi:",
        "alerting:",
        "kubernetes:",
    ];
    let strict = strict();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            docs.push(p);
        }
    }
    let mut checked = 0;
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (line, yaml) in common::yaml_blocks(&text, SECTIONS) {
            let name = format!("{}:{line}", doc.display());
            Config::parse_str_with(&yaml, Path::new(&name), &strict)
                .unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "the README and docs/psi-agent.md quote configs"
    );
}
