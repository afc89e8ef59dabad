fn main() {
    // Only the desktop app needs Tauri's code generation (it embeds ui/ and icons/).
    #[cfg(feature = "desktop")]
    tauri_build::build();
}
