//! The training side's own tests (Python with numpy): the sample-quality metric of
//! `model/train/quality.py` (`test_quality.py`), the trainer's loss-spike guard
//! (`test_guard.py`) and the sweep's orchestration (`test_sweep.py`, with stand-ins for the
//! trainer and the metric). `.ci/run` installs numpy (Debian's
//! `python3-numpy`, which serves Debian's `/usr/bin/python3`) and sets
//! `WEBDIT_REQUIRE_BROWSER`, so that there a missing numpy fails this test; elsewhere it says
//! what is missing and checks nothing. The interpreter is `$WEBDIT_PYTHON`, else the first of
//! `python3` on `PATH` and Debian's `/usr/bin/python3` that imports numpy.

use std::path::Path;
use std::process::Command;

#[test]
fn training_side_tests_pass() {
    let candidates = match std::env::var("WEBDIT_PYTHON") {
        Ok(python) => vec![python],
        Err(_) => vec!["python3".to_string(), "/usr/bin/python3".to_string()],
    };
    let python = candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(python) = python else {
        assert!(
            std::env::var_os("WEBDIT_REQUIRE_BROWSER").is_none(),
            "python3 with numpy is required here but missing"
        );
        eprintln!("not checked: python3 with numpy is missing (scripts/test installs it)");
        return;
    };
    let out = Command::new(&python)
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
