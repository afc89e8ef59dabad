fn main() {
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
