//! `ringfence cache ls|prune|clear`: the build cache of sandboxed script outputs.

use crate::cli::CacheArgs;
use crate::error::RunError;

use super::Exit;

/// `ringfence cache`.
pub fn run(args: &CacheArgs) -> Result<Exit, RunError> {
    let dir = args
        .cache_dir
        .clone()
        .or_else(crate::settings::default_cache_dir)
        .ok_or(RunError::InvalidArgument {
            flag: "--cache-dir",
            why: "no HOME or XDG_CACHE_HOME: name the cache with --cache-dir".into(),
        })?;
    let store = crate::cache::Store::open(&dir)?;
    match args.action.as_str() {
        "ls" => {
            let entries = store.list()?;
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            for e in &entries {
                println!(
                    "{}  {:>10} bytes  created {}  last used {}",
                    e.key,
                    e.bytes,
                    e.created_ms / 1000,
                    e.last_used_ms / 1000
                );
            }
            eprintln!(
                "ringfence: {} entr{} in {}, {total} bytes",
                entries.len(),
                if entries.len() == 1 { "y" } else { "ies" },
                dir.display()
            );
        }
        "prune" => {
            let max = crate::policy::file::parse_size(&args.max_size).ok_or(
                RunError::InvalidArgument {
                    flag: "--max-size",
                    why: format!("--max-size `{}` is not a size (e.g. 2GiB)", args.max_size),
                },
            )?;
            let r = store.prune(max)?;
            eprintln!(
                "ringfence: pruned {} entr{} ({} bytes); kept {} ({} bytes) in {}",
                r.removed.len(),
                if r.removed.len() == 1 { "y" } else { "ies" },
                r.freed_bytes,
                r.kept,
                r.kept_bytes,
                dir.display()
            );
        }
        _ => {
            let n = store.clear()?;
            eprintln!(
                "ringfence: removed {n} entr{} from {}",
                if n == 1 { "y" } else { "ies" },
                dir.display()
            );
        }
    }
    Ok(Exit::Clean)
}
