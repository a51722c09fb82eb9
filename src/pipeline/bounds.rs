//! What a script may fill besides its package directory, watched while it runs. In the full
//! tier without recording HOME and `/tmp` are size-limited tmpfs mounts; but the decoy HOME
//! of a recorded run, and HOME and TMPDIR in the landlock tier, are host directories, and
//! captured output goes to host temporary files. The supervisor measures them every
//! [`EVERY`] and stops the whole tree, as at a timeout, when one passes its limit.

use std::path::PathBuf;
use std::time::Duration;

use crate::findings::{Code, Finding};
use crate::sandbox::spec::{SandboxSpec, Tier};
use crate::untrusted::{self, Budget};

/// How often the supervisor measures.
pub const EVERY: Duration = Duration::from_millis(250);

/// Most entries counted in one watched directory; more is itself over the limit (a script
/// exhausting the host's inodes, or hiding bytes beyond what a measurement can count).
/// One measurement lists at most this many entries, so it stays short.
const MAX_ENTRIES: usize = 50_000;

/// Most bytes of output (stdout and stderr each) a script may print into its capture files.
pub const MAX_OUTPUT: u64 = 256 << 20;

/// A host directory a script writes besides its own, with its limit.
#[derive(Debug, Clone)]
pub struct Bounded {
    /// The host directory.
    pub path: PathBuf,
    /// Most bytes allocated in it.
    pub limit: u64,
    /// What it is to the script (`HOME`, `TMPDIR`).
    pub what: &'static str,
    /// The profile key that sets the limit.
    pub key: &'static str,
}

/// The host directories `spec` lets its script write besides its package directory.
pub fn bounded_dirs(spec: &SandboxSpec) -> Vec<Bounded> {
    let mut out = Vec::new();
    let home = spec
        .home_source
        .clone()
        .or_else(|| (spec.tier == Tier::Landlock).then(|| spec.home.clone()));
    if let Some(path) = home {
        out.push(Bounded {
            path,
            limit: spec.home_size,
            what: "HOME",
            key: "home-size",
        });
    }
    if spec.tier == Tier::Landlock {
        if let Some(tmp) = &spec.private_tmp {
            out.push(Bounded {
                path: tmp.clone(),
                limit: spec.tmp_size,
                what: "TMPDIR",
                key: "tmp-size",
            });
        }
    }
    out
}

/// Measure `dirs` and the capture files; why the run must stop, if it must.
pub fn check(dirs: &[Bounded], outputs: &[&std::fs::File]) -> Result<(), String> {
    for d in dirs {
        let budget = Budget {
            max_entries: MAX_ENTRIES,
            max_depth: 4096,
            ..Budget::default()
        };
        let Ok(w) = untrusted::walk(&d.path, &budget, &|_| true) else {
            continue;
        };
        if w.entries.len() >= MAX_ENTRIES {
            return Err(format!(
                "made more than {MAX_ENTRIES} files and directories in its {}",
                d.what
            ));
        }
        let used: u64 = w.entries.iter().map(|e| e.allocated).sum();
        if used > d.limit {
            return Err(format!(
                "filled its {} past {} ([limits] {} = {})",
                d.what,
                mib(used),
                d.key,
                mib(d.limit)
            ));
        }
    }
    for f in outputs {
        if f.metadata().is_ok_and(|m| m.len() > MAX_OUTPUT) {
            return Err(format!("printed more than {}", mib(MAX_OUTPUT)));
        }
    }
    Ok(())
}

/// The finding for a run [`check`] stopped.
pub fn finding(why: &str) -> Finding {
    Finding::new(
        Code::LimitExceeded,
        format!("{why}; the whole process tree was stopped"),
        why,
    )
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &std::path::Path, limit: u64) -> Bounded {
        Bounded {
            path: path.to_path_buf(),
            limit,
            what: "HOME",
            key: "home-size",
        }
    }

    /// Allocated bytes count, not sizes: a sparse file costs nothing; a written one does, in
    /// a chmod-000 directory too.
    #[test]
    fn allocated_bytes_past_the_limit_stop_the_run() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let sparse = std::fs::File::create(t.path().join("sparse")).unwrap();
        sparse.set_len(8 << 30).unwrap();
        assert_eq!(check(&[dir(t.path(), 1 << 20)], &[]), Ok(()));
        let hidden = t.path().join("hidden");
        std::fs::create_dir(&hidden).unwrap();
        std::fs::write(hidden.join("fill"), vec![1u8; 2 << 20]).unwrap();
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o000)).unwrap();
        let why = check(&[dir(t.path(), 1 << 20)], &[]).unwrap_err();
        assert!(why.starts_with("filled its HOME past"), "{why}");
        assert!(why.contains("[limits] home-size = 1 MiB"), "{why}");
        assert_eq!(check(&[dir(t.path(), 4 << 20)], &[]), Ok(()));
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn too_many_entries_stop_the_run() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..MAX_ENTRIES {
            std::fs::File::create(t.path().join(i.to_string())).unwrap();
        }
        let why = check(&[dir(t.path(), u64::MAX)], &[]).unwrap_err();
        assert!(why.contains("more than 50000 files"), "{why}");
    }

    #[test]
    fn output_past_its_limit_stops_the_run() {
        let f = tempfile::tempfile().unwrap();
        assert_eq!(check(&[], &[&f]), Ok(()));
        f.set_len(MAX_OUTPUT + 1).unwrap();
        assert_eq!(check(&[], &[&f]), Err("printed more than 256 MiB".into()));
    }
}
