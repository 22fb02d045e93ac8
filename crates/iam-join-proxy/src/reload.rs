//! Token policy hot reload: on a change in the policy's directory (debounced) and on demand
//! (SIGHUP in the binary).
//!
//! The **directory** is watched, not the file: editors replace files by renaming, and Kubernetes
//! updates a mounted ConfigMap by swapping the `..data` symlink, so a watch on the file itself
//! would be left on a deleted inode. A reload is atomic: a file that does not load leaves the old
//! policy in force, is logged as an error and counted as
//! `iam_join_policy_reloads_total{result="error"}`.
//!
//! Reloads are serialized ([`PolicyReloader`]): the file watcher and SIGHUP may ask at the same
//! time, and a reload that read the files before an edit must not finish after one that read
//! them after it and put the old policy back. Holding one lock from reading the files to
//! swapping the policy means the reload that reads last also stores last, so the newest files
//! always win.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use iam_join_tower::IamJoinLayer;
use notify::{Event, EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{AssertionKeys, AssertionSettings};
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

/// Re-reads the assertion key files into `layer`'s signer, keeping the old keys on error;
/// counted in `iam_join_key_reloads_total{result}`. Rotation: publish the new key (second file),
/// reload, wait for upstream JWKS caches; then make it `signing_key`, reload; drop the old later.
pub fn reload_assertion_keys(layer: &IamJoinLayer, settings: &AssertionSettings, reason: &str) {
    match layer.reload_assertion_keys(|| settings.load_keys()) {
        Some(Ok(())) => tracing::info!(reason, "assertion keys reloaded"),
        Some(Err(error)) => tracing::error!(
            reason,
            %error,
            "assertion key reload failed; keeping the previous keys"
        ),
        None => {}
    }
}

/// Reloads one policy path into one layer, one reload at a time. Cheap to clone; clones share
/// the lock.
#[derive(Clone, Debug)]
pub struct PolicyReloader {
    layer: IamJoinLayer,
    path: PathBuf,
    assertion: Option<AssertionSettings>,
    serial: Arc<Mutex<()>>,
}

impl PolicyReloader {
    /// A reloader of `path` into `layer`.
    pub fn new(layer: IamJoinLayer, path: PathBuf) -> Self {
        Self {
            layer,
            path,
            assertion: None,
            serial: Arc::new(Mutex::new(())),
        }
    }

    /// Also re-reads the assertion key files on every reload (a generated key is kept).
    pub fn with_assertion_keys(mut self, settings: Option<AssertionSettings>) -> Self {
        self.assertion = settings.filter(|s| matches!(s.keys, AssertionKeys::Files(_)));
        self
    }

    /// The token file or directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reloads now, after any reload already running (blocking: call it off the async
    /// workers). See [`reload_policy`].
    pub fn reload(&self, reason: &str) -> Result<usize, iam_join_core::policy::PolicyError> {
        let _one_at_a_time = self.serial.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(settings) = &self.assertion {
            reload_assertion_keys(&self.layer, settings, reason);
        }
        reload_policy(&self.layer, &self.path, reason)
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
    pub fn start(reloader: PolicyReloader) -> Result<Self, ProxyError> {
        let path = reloader.path().to_owned();
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
                let reloader = reloader.clone();
                let _ = tokio::task::spawn_blocking(move || reloader.reload("file change")).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const TOKEN: &str = "kind: token\nversion: v2\nmetadata:\n  name: NAME\nspec:\n  roles: [Node]\n  join_method: iam\n  allow:\n    - aws_account: \"111111111111\"\n";

    fn policy(name: &str) -> String {
        TOKEN.replace("NAME", name)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_reload_of_old_files_never_overwrites_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token.yaml");
        std::fs::write(&path, policy("first")).expect("write");
        let layer = IamJoinLayer::builder()
            .audience("reload.example.com")
            .policy(iam_join_core::policy::TokenPolicy::load(&path).expect("policy"))
            .build()
            .expect("layer");
        let reloader = PolicyReloader::new(layer.clone(), path.clone());

        // The first reload reads a FIFO: it blocks until the test writes the old policy into
        // it, so it is slow exactly when the test wants.
        let fifo = dir.path().join("slow.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        std::fs::rename(&fifo, &path).expect("fifo in place");
        let slow = {
            let r = reloader.clone();
            std::thread::spawn(move || r.reload("slow, read before the edit"))
        };
        // Opening the write end waits until the slow reload has opened the read end.
        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open fifo");

        // The edit, then a second reload that reads it.
        let tmp = dir.path().join("token.tmp");
        std::fs::write(&tmp, policy("edited")).expect("write edit");
        std::fs::rename(&tmp, &path).expect("edit in place");
        let fresh = std::thread::spawn(move || reloader.reload("after the edit"));
        // Give the second reload time to finish if nothing holds it back (as before the fix).
        std::thread::sleep(Duration::from_millis(300));

        // Now the slow reload gets the old files' contents and finishes.
        writer
            .write_all(policy("stale").as_bytes())
            .expect("feed fifo");
        drop(writer);
        slow.join()
            .expect("slow thread")
            .expect("slow reload loads");
        fresh
            .join()
            .expect("fresh thread")
            .expect("fresh reload loads");

        let now = layer.policy().load();
        assert!(
            now.get("edited").is_some(),
            "the newest files must win, got {:?}",
            now.tokens()
                .map(|t| t.name().to_owned())
                .collect::<Vec<_>>()
        );
    }
}
