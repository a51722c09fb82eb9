//! Leaving the project as npm leaves it after a failed required script.

use std::path::Path;

/// State needed to restore the project after a failed required script.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// `node_modules` existed before the install (npm then keeps it).
    pub node_modules_existed: bool,
    /// package-lock.json's bytes before the install (`None`: there was none).
    pub package_lock: Option<Vec<u8>>,
}

/// What a rollback did, in words that are true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackReport {
    /// One clause per action taken.
    pub done: Vec<String>,
    /// One clause per action that failed, with the cause.
    pub failed: Vec<String>,
}

impl RollbackReport {
    /// One sentence for the user.
    pub fn message(&self) -> String {
        let mut s = self.done.join("; ");
        if !self.failed.is_empty() {
            if !s.is_empty() {
                s.push_str("; but ");
            }
            s.push_str(&self.failed.join("; "));
        }
        s
    }
}

impl Rollback {
    /// Restore package-lock.json; remove `node_modules` if the install created it (npm does
    /// the same after a failed install). Every step is reported as it really went.
    pub fn apply(&self, project: &Path) -> RollbackReport {
        let mut r = RollbackReport {
            done: Vec::new(),
            failed: Vec::new(),
        };
        let lock = project.join("package-lock.json");
        match &self.package_lock {
            Some(bytes) => match std::fs::write(&lock, bytes) {
                Ok(()) => r.done.push("package-lock.json was restored".into()),
                Err(e) => r
                    .failed
                    .push(format!("restoring `{}` failed: {e}", lock.display())),
            },
            None => match std::fs::remove_file(&lock) {
                Ok(()) => r
                    .done
                    .push("package-lock.json (created by this install) was removed".into()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => r
                    .failed
                    .push(format!("removing `{}` failed: {e}", lock.display())),
            },
        }
        let nm = project.join("node_modules");
        if self.node_modules_existed {
            r.done.push(
                "node_modules keeps the packages npm installed (with --ignore-scripts)".into(),
            );
        } else {
            match crate::untrusted::remove_tree(&nm) {
                Ok(_) => r.done.push(
                    "node_modules (created by this install) was removed, as npm does after a failed install".into(),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => r
                    .failed
                    .push(format!("removing `{}` failed: {e}", nm.display())),
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_says_what_happened() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("package-lock.json"), "new").unwrap();
        std::fs::create_dir_all(p.join("node_modules/x")).unwrap();
        let r = Rollback {
            node_modules_existed: false,
            package_lock: Some(b"old".to_vec()),
        }
        .apply(p);
        assert_eq!(std::fs::read(p.join("package-lock.json")).unwrap(), b"old");
        assert!(!p.join("node_modules").exists());
        assert_eq!(
            r.message(),
            "package-lock.json was restored; node_modules (created by this install) was removed, as npm does after a failed install"
        );
        // A lockfile that cannot be restored is said to have failed, never to be restored.
        let r = Rollback {
            node_modules_existed: true,
            package_lock: Some(b"old".to_vec()),
        }
        .apply(&p.join("missing-dir"));
        assert!(r.message().contains("restoring"), "{}", r.message());
        assert!(!r.message().contains("was restored"), "{}", r.message());
    }
}
