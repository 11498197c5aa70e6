//! Helpers: templates, the capability probe, YAML round trips. (The URL
//! parser's own tests are in `net::url`.)

use super::*;

#[test]
fn render_template_fills_known_and_keeps_unknown() {
    let vars = [("cgroup", "/kubepods.slice"), ("value", "0.2")];
    assert_eq!(
        render_template("pressure in {{ cgroup }} ({{value}}) {{ node }}", &vars),
        "pressure in /kubepods.slice (0.2) {{ node }}"
    );
    assert_eq!(render_template("no placeholders", &vars), "no placeholders");
    assert_eq!(render_template("tail {{ cgroup", &vars), "tail {{ cgroup");
    assert_eq!(
        render_template("{{cgroup}}{{cgroup}}", &vars),
        "/kubepods.slice/kubepods.slice"
    );
    assert_eq!(render_template("", &vars), "");
    assert_eq!(
        render_template("é {{ cgroup }} ü", &vars),
        "é /kubepods.slice ü"
    );
}

#[test]
fn cap_sys_resource_is_read_from_cap_eff() {
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("self");
    std::fs::create_dir(&status).unwrap();
    let write = |capeff: &str| {
        std::fs::write(
                status.join("status"),
                format!("Name:\tcgroup-psi-exp\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t{capeff}\nCapBnd:\t000001ffffffffff\n"),
            )
            .unwrap();
    };
    write("000001ffffffffff");
    assert!(has_cap_sys_resource(dir.path()));
    write("0000000001000000");
    assert!(has_cap_sys_resource(dir.path()));
    write("00000000a80425fb"); // Docker's default set: no CAP_SYS_RESOURCE
    assert!(!has_cap_sys_resource(dir.path()));
    write("0000000000000000");
    assert!(!has_cap_sys_resource(dir.path()));
    write("garbage");
    assert!(!has_cap_sys_resource(dir.path()));
    assert!(!has_cap_sys_resource(&dir.path().join("missing")));
    write("0000000001000000");
    assert!(ValidationContext::detect(dir.path()).cap_sys_resource);
}

#[test]
fn to_yaml_round_trips_defaults() {
    let cfg = Config::default();
    let yaml = cfg.to_yaml();
    assert!(yaml.contains("timeout: 5s"), "{yaml}");
    assert_eq!(Config::parse_str(&yaml, Path::new(FILE)).unwrap(), cfg);
}

#[test]
fn to_yaml_round_trips_a_full_config() {
    let text = rule_with(
            "      kind: full\n      window: 4s\n      resolve_after: 1m 30s\n      labels: {severity: page}\n      annotations: {summary: \"{{ cgroup }} stalls\"}\ncgroups:\n  include: [\"/kubepods.slice/**\"]\n  exclude: [\"**/*.mount\"]\n  max_depth: 6\nmetrics:\n  disable: [cgroup_memory_stat_bytes]\nalerting:\n  alertmanagers: [\"http://am:9093\"]\n  webhooks: [\"https://hook/x\"]\n  timeout: 1500ms\n  queue_capacity: 10\n  external_url: \"https://exporter.example:9753/\"\nkubernetes:\n  kubelet_url: \"https://127.0.0.1:10250\"\n  insecure_skip_verify: true\n",
        );
    let cfg = assert_valid(&text, &strict());
    assert_eq!(cfg.psi.rules[0].resolve_after, Duration::from_secs(90));
    let yaml = cfg.to_yaml();
    assert!(yaml.contains("threshold: 150ms"), "{yaml}");
    assert!(yaml.contains("timeout: 1s 500ms"), "{yaml}");
    assert!(
        yaml.contains("external_url: https://exporter.example:9753/"),
        "{yaml}"
    );
    let again = assert_valid(&yaml, &strict());
    assert_eq!(again, cfg);
    assert_eq!(again.to_yaml(), yaml);
}

#[test]
fn suggestions_need_a_close_match() {
    assert_eq!(
        suggest("windw", ["window", "kind"].into_iter()),
        Some("window")
    );
    assert_eq!(suggest("zzz", ["window", "kind"].into_iter()), None);
}

#[test]
fn truncated_and_mangled_example_never_panics() {
    let full = include_str!("../../../examples/config.yaml");
    let ctx = strict();
    let check = |text: &str| match Config::parse_str_with(text, Path::new(FILE), &ctx) {
        Ok(_) => {}
        Err(ConfigError::Syntax { line, column, .. }) => {
            assert!(line >= 1 && column >= 1, "{text:?}");
            assert!(line <= text.lines().count() + 1, "{text:?}");
        }
        Err(ConfigError::Validation { errors, .. }) => assert!(!errors.is_empty()),
        Err(e) => panic!("unexpected {e}"),
    };
    let cuts: Vec<usize> = full.char_indices().map(|(i, _)| i).step_by(5).collect();
    for &cut in &cuts {
        check(&full[..cut]);
        let mut mangled = full.to_string();
        mangled.insert_str(cut, ": [");
        check(&mangled);
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "[a-z_:{}\\[\\],\"' \n\t#&*!|>-]{0,80}") {
        let _ = Config::parse_str(&text, Path::new(FILE));
    }
}
