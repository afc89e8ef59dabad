// The shapes the backend sends: generated from the Rust serde types (bindings.ts, written by
// src-tauri/src/desktop/ui_types.rs), never written by hand.
export type * from './bindings';
