//! CI runs every benchmark briefly: the binary works and prints every section. No
//! timing is judged here; figures belong in docs/BENCHMARKS.md, measured in release.

use std::process::Command;

#[test]
fn every_benchmark_runs_in_smoke_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_udpchat-bench"))
        .arg("--smoke")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for section in [
        "machine:",
        "1. raw UDP",
        "2. stop-and-wait",
        "3. seed's loss",
        "4. default window",
        "4b. window sweep",
        "5. ordered",
        "6. memory",
        "7. encryption",
        "9. the product path",
        // Measured, or skipped with the reason (not root, no `tc`, ...).
        "10. fairness",
    ] {
        assert!(stdout.contains(section), "{section} missing:\n{stdout}");
    }
}
