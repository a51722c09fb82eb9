//! What ringfence leaves on disk if it is interrupted: nothing. Temporary directories that hold
//! sandbox-written data or canaries (decoy homes, preload logs) are registered here while they
//! exist; SIGINT, SIGTERM or SIGHUP removes every registered one (through the hardened remover:
//! whatever a script planted there) before ringfence exits with 128 + the signal. The
//! sandboxes die with it (their init has the parent-death signal).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Remember `path` for removal on interruption.
pub fn register(path: &Path) {
    if let Ok(mut live) = LIVE.lock() {
        live.push(path.to_path_buf());
    }
}

/// Forget `path` (it is being removed normally).
pub fn unregister(path: &Path) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|p| p != path);
    }
}

/// Start the watcher unless it runs already (a warning if it cannot start). `install`, `ci`
/// and `replay` start it before anything is created; `run`, which must stay single-threaded
/// until its sandbox is forked, right after the fork (`pipeline::execute`).
pub fn watch_once() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        if let Err(e) = watch() {
            tracing::warn!("interruption cleanup unavailable: {e}");
        }
    });
}

/// Start the watcher: a thread that waits for a termination signal, removes every registered
/// directory and exits.
fn watch() -> std::io::Result<()> {
    let fd = crate::sys::termination_pipe()?;
    std::thread::Builder::new()
        .name("ringfence-signals".into())
        .spawn(move || {
            let mut pipe = std::fs::File::from(fd);
            let mut sig = [0u8; 1];
            if pipe.read_exact(&mut sig).is_err() {
                return;
            }
            let paths: Vec<PathBuf> = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
            let mut removed = 0usize;
            for p in &paths {
                if crate::untrusted::remove_tree(p).is_ok_and(|r| r.left.is_empty()) {
                    removed += 1;
                }
            }
            // layer-check: may print (the one line before exiting on a signal)
            eprintln!(
                "ringfence: interrupted (signal {}); removed {removed} of {} temporary director{}",
                sig[0],
                paths.len(),
                if paths.len() == 1 { "y" } else { "ies" }
            );
            #[allow(clippy::exit, reason = "the process was asked to terminate")]
            std::process::exit(128 + i32::from(sig[0]));
        })?;
    Ok(())
}
