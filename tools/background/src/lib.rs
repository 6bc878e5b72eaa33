//! Work on a thread of its own at the lowest CPU priority: the second,
//! hashing read of a file being sent.
//!
//! On a 2-core machine an upload's hashing takes CPU from the transfer and
//! from the server at the other end. A hash needed only once the transfer
//! is over (to write md5sums.txt, or before an image is activated) can
//! take what CPU the transfer leaves instead; its read comes from the page
//! cache.

use tokio::sync::oneshot;

/// Run `work` on a thread named `name` at the lowest CPU priority; its
/// result arrives on the receiver. `work` is handed `unwanted`, true once
/// the receiver is dropped, so it can stop early. If no thread can be
/// started, the receiver says so (its sender is dropped).
pub fn spawn<T, F>(name: &str, work: F) -> oneshot::Receiver<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Fn() -> bool) -> T + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let _ = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let result = work(&|| tx.is_closed());
            let _ = tx.send(result);
        });
    rx
}

/// Best effort: at normal priority the work is only slower to get out of
/// the way, never wrong. Linux keeps a nice value per thread, set by its
/// id; elsewhere `setpriority` would renice the whole process, so it is
/// left alone.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on this thread's own id.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn work_runs_at_the_lowest_priority() {
        let nice = super::spawn("nice", |_| {
            // SAFETY: reads this thread's own nice value.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        })
        .await
        .unwrap();
        assert_eq!(nice, 19);
    }

    /// Dropping the receiver tells the work it is no longer wanted.
    #[tokio::test]
    async fn a_dropped_receiver_is_unwanted() {
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let rx = super::spawn("unwanted", move |unwanted| {
            seen_tx.send(unwanted()).unwrap();
            go_rx.recv().unwrap();
            seen_tx.send(unwanted()).unwrap();
        });
        assert!(!seen_rx.recv().unwrap());
        drop(rx);
        go_tx.send(()).unwrap();
        assert!(seen_rx.recv().unwrap());
    }
}
