//! What the CRDT's tests share: the wire vectors written by the independent writer
//! (`tests/fixtures/crdt/make_vectors.py`), and waiting on a condition with a deadline.

use std::time::Duration;

const VECTORS: &str = include_str!("../../../../tests/fixtures/crdt/vectors.txt");

/// The vector named `name` (the rest of its line in `vectors.txt`).
pub fn vector(name: &str) -> &'static str {
    VECTORS
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no vector {name}"))
}

/// Waits until `check` holds, failing the test after `secs` seconds.
pub async fn until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
