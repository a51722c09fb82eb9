//! Phases of jobs: each phase's foreground jobs one by one, then its background jobs on up to
//! `--jobs` parallel sandboxes; a barrier between phases; once a required job has failed, no
//! further job starts (npm's first rejection fails the phase and the install).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Run one phase's `jobs` with `run`, keeping the jobs' order in the result. `foreground` jobs
/// run first, one at a time; `stops` says whether a result ends the phase (a required failure).
pub fn run_phase<J: Send, R: Send>(
    jobs: Vec<J>,
    parallel: usize,
    foreground: impl Fn(&J) -> bool,
    stops: impl Fn(&R) -> bool + Sync,
    run: impl Fn(J) -> R + Sync,
) -> Vec<R> {
    let (fg, bg): (Vec<J>, Vec<J>) = jobs.into_iter().partition(|j| foreground(j));
    let mut results = Vec::new();
    for job in fg {
        let r = run(job);
        let stop = stops(&r);
        results.push(r);
        if stop {
            return results;
        }
    }
    if bg.is_empty() {
        return results;
    }
    let workers = parallel.max(1).min(bg.len());
    let queue = Mutex::new(bg.into_iter().enumerate().collect::<VecDeque<_>>());
    let done = Mutex::new(Vec::<(usize, R)>::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while !stop.load(Ordering::SeqCst) {
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some((i, job)) = next else { break };
                    let r = run(job);
                    if stops(&r) {
                        stop.store(true, Ordering::SeqCst);
                    }
                    if let Ok(mut d) = done.lock() {
                        d.push((i, r));
                    }
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_default();
    done.sort_by_key(|(i, _)| *i);
    results.extend(done.into_iter().map(|(_, r)| r));
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreground_first_order_kept_and_a_failure_stops_the_phase() {
        // (id, foreground, fails)
        let jobs = vec![(0, false, false), (1, true, false), (2, false, false)];
        let out = run_phase(jobs, 2, |j| j.1, |r: &(i32, bool)| r.1, |j| (j.0, j.2));
        assert_eq!(out, vec![(1, false), (0, false), (2, false)]);
        let jobs = vec![(0, true, true), (1, true, false), (2, false, false)];
        let out = run_phase(jobs, 2, |j| j.1, |r: &(i32, bool)| r.1, |j| (j.0, j.2));
        assert_eq!(out, vec![(0, true)]);
        // One worker: nothing after the failing background job starts.
        let jobs = vec![(0, false, true), (1, false, false)];
        let out = run_phase(jobs, 1, |j| j.1, |r: &(i32, bool)| r.1, |j| (j.0, j.2));
        assert_eq!(out, vec![(0, true)]);
    }
}
