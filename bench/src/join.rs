//! The desktop app joined across machines: `tests/e2e/run.sh multihost` with the release build
//! (the app on test host A, headless peers on hosts B and C, network namespaces on a bridge;
//! root), which counts the user's actions from the first window to joined and times the first
//! window to content added on B shown pinned in the app (issue 23's goals).

use anyhow::{bail, Context, Result};

use crate::Report;

pub fn join_figures(r: &mut Report) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tempfile::NamedTempFile::new()?;
    let status = std::process::Command::new("bash")
        .arg("tests/e2e/run.sh")
        .arg("multihost")
        .current_dir(&root)
        .env("E2E_PROFILE", "release")
        .env("JOIN_RESULT", out.path())
        .status()
        .context("running tests/e2e/run.sh multihost")?;
    if !status.success() {
        bail!("tests/e2e/run.sh multihost failed ({status})");
    }
    let text = std::fs::read_to_string(out.path())?;
    // Empty when the hosts could not be made (not root): the figures say "not measured".
    let v: serde_json::Value = match text.is_empty() {
        true => serde_json::Value::Null,
        false => serde_json::from_str(&text)?,
    };
    let note = "the release app under Xvfb on test host A (its built-in IPFS node in LAN mode), \
                headless peers on hosts B and C: B's invitation opened as a link, Join";
    r.add(
        "desktop app across hosts: user actions, first window to joined",
        v["actions"].as_f64(),
        "actions",
        "≤ 3",
        note,
    );
    r.add(
        "desktop app across hosts: first window to joined",
        v["to_joined_s"].as_f64(),
        "s",
        "within the 60 s",
        note,
    );
    r.add(
        "desktop app across hosts: first window to content added on B pinned in the app",
        v["to_pinned_s"].as_f64(),
        "s",
        "≤ 60 s",
        "then content added on B with replication -1 (`ipfs-cluster-ctl add`) until the app's \
         Pins view shows it pinned (A's IPFS node holds it)",
    );
    Ok(())
}
