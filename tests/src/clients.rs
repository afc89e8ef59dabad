//! Third-party clients of this project's APIs (npm packages in `tests/clients`, installed by
//! `.ci/install`), run as the user would run them.

use std::path::PathBuf;
use std::process::Output;

/// `tests/clients`, with its `node_modules`.
pub fn clients_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients");
    assert!(
        dir.join("node_modules").exists(),
        "{}/node_modules is missing: run `bash .ci/install` (or `npm ci` there)",
        dir.display()
    );
    dir
}

/// Runs `node <script> <args…>` in `tests/clients` (asynchronously: the peers the test
/// started keep being served meanwhile).
pub async fn node(script: &str, args: &[&str]) -> Output {
    let dir = clients_dir();
    tokio::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs (Node.js is installed by .ci/install)")
}
