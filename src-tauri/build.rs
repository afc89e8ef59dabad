fn main() {
    commit();
    // `sqlx::migrate!` embeds the migrations: a new file must rebuild the crate.
    println!("cargo:rerun-if-changed=migrations");
    // Only the desktop app needs Tauri's code generation (it embeds ui/dist and icons/).
    #[cfg(feature = "desktop")]
    {
        // The window is the UI project's build (Svelte + Vite, ui/): say how to make it
        // rather than let Tauri's code generation fail on a missing folder.
        let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist/index.html");
        println!("cargo:rerun-if-changed=../ui/dist");
        if !dist.exists() {
            panic!(
                "ui/dist is missing: build the window first with \
                 `npm ci --prefix ui && npm run --prefix ui build` (bash .ci/install does)"
            );
        }
        tauri_build::build();
    }
}

/// The commit this build is made from, as `IPFS_CLUSTER_COMMIT` for the code (`--version`,
/// `ID.commit`, the app's About), so that two builds of one version can be told apart:
/// `$IPFS_CLUSTER_COMMIT` when set (a build from a source archive), else git's HEAD, else
/// empty (no git at hand). Changes not committed are not marked: the build script runs again
/// only when HEAD moves, not at every edit.
fn commit() {
    println!("cargo:rerun-if-env-changed=IPFS_CLUSTER_COMMIT");
    let from_env = std::env::var("IPFS_CLUSTER_COMMIT").ok();
    let commit = from_env.unwrap_or_else(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .current_dir(&root)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        // HEAD moves with every commit and checkout: build again when it does.
        if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
            let dir = std::path::Path::new(&dir);
            println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
            if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
                println!("cargo:rerun-if-changed={}", dir.join(head).display());
            }
            println!(
                "cargo:rerun-if-changed={}",
                dir.join("packed-refs").display()
            );
        }
        git(&["rev-parse", "HEAD"]).unwrap_or_default()
    });
    println!("cargo:rustc-env=IPFS_CLUSTER_COMMIT={commit}");
}
