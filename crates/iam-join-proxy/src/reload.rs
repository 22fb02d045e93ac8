//! Token policy hot reload: on a change in the policy's directory (debounced) and on demand
//! (SIGHUP in the binary).
//!
//! The **directory** is watched, not the file: editors replace files by renaming, and Kubernetes
//! updates a mounted ConfigMap by swapping the `..data` symlink, so a watch on the file itself
//! would be left on a deleted inode. A reload is atomic: a file that does not load leaves the old
//! policy in force, is logged as an error and counted as
//! `iam_join_policy_reloads_total{result="error"}`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use iam_join_tower::IamJoinLayer;
use notify::{Event, EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::ProxyError;

/// How long the directory must be quiet before a reload: an editor's save or a ConfigMap swap
/// is several events.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Reloads the policy from `path` into `layer`, logging the outcome. Returns the number of
/// tokens now loaded, or the error (the old policy stays).
pub fn reload_policy(
    layer: &IamJoinLayer,
    path: &Path,
    reason: &str,
) -> Result<usize, iam_join_core::policy::PolicyError> {
    match layer.reload_policy(path) {
        Ok(policy) => {
            tracing::info!(
                path = %path.display(),
                reason,
                tokens = policy.len(),
                "token policy reloaded"
            );
            for warning in policy.warnings() {
                tracing::warn!(path = %path.display(), %warning, "token policy warning");
            }
            Ok(policy.len())
        }
        Err(error) => {
            tracing::error!(
                path = %path.display(),
                reason,
                %error,
                "token policy reload failed; keeping the previous policy"
            );
            Err(error)
        }
    }
}

/// Watches a policy path and reloads on change, until dropped.
#[derive(Debug)]
pub struct PolicyWatcher {
    _watcher: notify::RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for PolicyWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PolicyWatcher {
    /// Starts watching `path` (a token file or directory) for `layer`. Must be called inside a
    /// Tokio runtime.
    ///
    /// # Errors
    ///
    /// The directory cannot be watched.
    pub fn start(path: PathBuf, layer: IamJoinLayer) -> Result<Self, ProxyError> {
        let is_dir = path.is_dir();
        let dir = if is_dir {
            path.clone()
        } else {
            match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            }
        };
        // For a single file, react to that file and to ConfigMap-style `..` entries only, not
        // to unrelated neighbours (e.g. the config file itself).
        let file_name = (!is_dir)
            .then(|| path.file_name().map(ToOwned::to_owned))
            .flatten();
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<Event>| match res {
                Ok(event) => {
                    if is_relevant(&event, file_name.as_deref()) {
                        // A full channel already means "reload pending".
                        let _ = tx.try_send(());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "token watch error"),
            })
            .map_err(|e| ProxyError::Watch(e.to_string()))?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| ProxyError::Watch(format!("{}: {e}", dir.display())))?;
        tracing::info!(dir = %dir.display(), "watching token policy for changes");

        let task = tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Wait for the burst of events to settle.
                loop {
                    match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                        Ok(Some(())) => {}
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let _ = reload_policy(&layer, &path, "file change");
            }
        });
        Ok(Self {
            _watcher: watcher,
            task,
        })
    }
}

fn is_relevant(event: &Event, file_name: Option<&std::ffi::OsStr>) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        _ => {}
    }
    let Some(name) = file_name else {
        return true;
    };
    event.paths.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n == name || n.to_string_lossy().starts_with(".."))
    })
}
