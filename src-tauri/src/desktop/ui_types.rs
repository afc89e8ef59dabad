//! The window's TypeScript types, generated from the serde types the backend sends (ts-rs):
//! the server, `ipfs-cluster-ctl` and the window share one definition of each shape, so a
//! field renamed in Rust breaks the UI's type check instead of its users.
//!
//! `ui/src/lib/bindings.ts` is [`typescript`]'s output, committed so that the UI builds
//! without Rust; a test fails when it is stale, and
//! `UPDATE_UI_TYPES=1 cargo test -p ipfs-cluster --lib ui_types` writes it anew.

use ts_rs::{Config, TS};

use super::add::{AddProgress, Added};
use super::history::{Charts, Sample};
use super::{
    Health, InvitationView, IpfsSource, IpfsStatus, Pending, PinsOrder, PinsPage, PinsQuery,
    SearchIn, SettingsView, Snapshot, UiError,
};
use crate::types::{
    Alert, Cid, ConnectGraph, GlobalPinInfo, Id, IpfsId, Metric, PeerRole, Pin, PinInfoShort,
    PinKey, PinMode, PinOptions, PinSummary, PinType, StatusSummary, TrackerStatus,
};

/// Where the generated file lives, from this crate's folder.
pub const BINDINGS: &str = "../ui/src/lib/bindings.ts";

fn decl<T: TS + 'static>(cfg: &Config, out: &mut String) {
    if let Some(docs) = T::docs() {
        out.push_str(&docs);
    }
    out.push_str("export ");
    out.push_str(&T::decl(cfg));
    out.push_str("\n\n");
}

/// Every type the window receives or sends, in TypeScript.
pub fn typescript() -> String {
    // JSON numbers: counts and sizes fit a double far beyond what a peer holds.
    let cfg = Config::new().with_large_int("number");
    let mut out = String::from(
        "// Generated from the Rust types by src-tauri/src/desktop/ui_types.rs: do not edit.\n\
         // UPDATE_UI_TYPES=1 cargo test -p ipfs-cluster --lib ui_types writes it anew.\n\n",
    );
    let o = &mut out;
    decl::<Cid>(&cfg, o);
    decl::<PinKey>(&cfg, o);
    decl::<TrackerStatus>(&cfg, o);
    decl::<PeerRole>(&cfg, o);
    decl::<PinType>(&cfg, o);
    decl::<PinMode>(&cfg, o);
    decl::<PinOptions>(&cfg, o);
    decl::<Pin>(&cfg, o);
    decl::<PinInfoShort>(&cfg, o);
    decl::<PinSummary>(&cfg, o);
    decl::<GlobalPinInfo>(&cfg, o);
    decl::<StatusSummary>(&cfg, o);
    decl::<IpfsId>(&cfg, o);
    decl::<Id>(&cfg, o);
    decl::<Metric>(&cfg, o);
    decl::<Alert>(&cfg, o);
    decl::<ConnectGraph>(&cfg, o);
    decl::<IpfsSource>(&cfg, o);
    decl::<IpfsStatus>(&cfg, o);
    decl::<Snapshot>(&cfg, o);
    decl::<Pending>(&cfg, o);
    decl::<PinsQuery>(&cfg, o);
    decl::<SearchIn>(&cfg, o);
    decl::<PinsOrder>(&cfg, o);
    decl::<PinsPage>(&cfg, o);
    decl::<InvitationView>(&cfg, o);
    decl::<Health>(&cfg, o);
    decl::<AddProgress>(&cfg, o);
    decl::<Added>(&cfg, o);
    decl::<Sample>(&cfg, o);
    decl::<Charts>(&cfg, o);
    decl::<SettingsView>(&cfg, o);
    decl::<super::settings::Settings>(&cfg, o);
    decl::<super::settings::LogLevel>(&cfg, o);
    decl::<super::settings::Notify>(&cfg, o);
    decl::<super::logs::LogLine>(&cfg, o);
    decl::<UiError>(&cfg, o);
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_types_are_generated_from_the_rust_ones() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(BINDINGS);
        let want = typescript();
        if std::env::var_os("UPDATE_UI_TYPES").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is not what the Rust types generate: run \
             UPDATE_UI_TYPES=1 cargo test -p ipfs-cluster --lib ui_types",
            path.display()
        );
    }
}
