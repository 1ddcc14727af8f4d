use std::process::Command;
use tamaq_e2e::binary;

#[test]
fn both_binaries_print_help() {
    for name in ["wallet-server", "canteen-terminal"] {
        let out = Command::new(binary(name))
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {name}: {e}; build it with `cargo build`"));
        assert!(out.status.success(), "{name} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage"), "{name} help: {text}");
    }
}
