//! What a program of the project asks of the operating system when it starts.

/// Raises the soft limit on open files to the hard limit, as Go programs (IPFS Cluster, Kubo)
/// do at start: a peer holds a descriptor per connection, per database connection and per
/// file being added, and the usual soft limit of 1,024 is reached long before the machine's.
/// Returns the (old, new) soft limits, or `None` when they could not be read or changed.
pub fn raise_open_files_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limits into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let old = lim.rlim_cur;
    if old >= lim.rlim_max {
        return Some((old, old));
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads the struct; raising the soft limit up to the hard one is
    // always allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return None;
    }
    Some((old, lim.rlim_cur))
}

/// Runs `open` again while the process or the machine is out of file descriptors, for up to
/// a minute: running out is transient (connections close, the swarm sheds strangers), and a
/// snapshot file that cannot be opened for that reason must delay Raft, not stop it.
pub(crate) async fn when_descriptors_free<T, F, Fut>(mut open: F) -> std::io::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut wait = std::time::Duration::from_millis(10);
    loop {
        match open().await {
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!("out of file descriptors, waiting: {e}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(1));
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        super::raise_open_files_limit().expect("limits readable");
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
