fn main() {
    std::process::exit(cgroup_psi_exporter::app::main());
}
