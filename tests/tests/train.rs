//! The training side's own tests (Python with numpy): the sample-quality metric of
//! `model/train/quality.py` (`test_quality.py`), the trainer's loss-spike guard
//! (`test_guard.py`) and the sweep's orchestration (`test_sweep.py`, with stand-ins for the
//! trainer and the metric). `.ci/run` installs numpy (Debian's
//! `python3-numpy`) and sets `WEBDIT_REQUIRE_BROWSER`, so that there a missing numpy fails
//! this test; elsewhere it says what is missing and checks nothing.

use std::path::Path;
use std::process::Command;

#[test]
fn training_side_tests_pass() {
    let numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !numpy {
        assert!(
            std::env::var_os("WEBDIT_REQUIRE_BROWSER").is_none(),
            "python3 with numpy is required here but missing"
        );
        eprintln!("not checked: python3 with numpy is missing (scripts/test installs it)");
        return;
    }
    let out = Command::new("python3")
        .args([
            "-m",
            "unittest",
            "-v",
            "model/train/test_quality.py",
            "model/train/test_guard.py",
            "model/train/test_sweep.py",
        ])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the training side's tests failed:\n{text}"
    );
    assert!(text.contains("Ran 10 tests"), "not all tests ran:\n{text}");
}
