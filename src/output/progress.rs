//! A live status line on a terminal while scripts run: how many are done, which are running and
//! for how long (a native build can take minutes with nothing else to see). Only when stderr is
//! a terminal and not `TERM=dumb`; redrawn in place, cleared before a foreground script takes
//! the terminal and when the install ends.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::npm::scripts::Job;
use crate::pipeline::{Events, ScriptOutcome};

/// Redraw period.
const TICK: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
struct State {
    total: usize,
    done: usize,
    /// Running scripts: (label, started).
    running: Vec<(String, Instant)>,
    /// A foreground script owns the terminal.
    paused: bool,
    stop: bool,
    /// Something is on the line that needs clearing.
    drawn: bool,
}

/// The status line. Dropping it clears the line and stops its thread.
#[derive(Debug)]
pub struct Progress {
    shared: Arc<(Mutex<State>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// A status line for `total` scripts, when stderr is a terminal that can redraw.
    pub fn on_terminal(total: usize) -> Option<Progress> {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if !std::io::stderr().is_terminal() || dumb || total == 0 {
            return None;
        }
        Some(Progress::start(total))
    }

    fn start(total: usize) -> Progress {
        let shared = Arc::new((
            Mutex::new(State {
                total,
                ..State::default()
            }),
            Condvar::new(),
        ));
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let (lock, cv) = &*s;
                let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
                while !st.stop {
                    if !st.paused {
                        draw(&mut st);
                    }
                    st = cv
                        .wait_timeout(st, TICK)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                clear(&mut st);
            })
            .ok();
        Progress { shared, thread }
    }

    fn with(&self, f: impl FnOnce(&mut State)) {
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut st);
        cv.notify_all();
    }
}

/// The line for `st`, at most `width` characters.
fn line(st: &State, now: Instant, width: usize) -> String {
    let running: Vec<String> = st
        .running
        .iter()
        .map(|(label, t0)| format!("{label} {}s", now.duration_since(*t0).as_secs()))
        .collect();
    let mut text = format!(
        "ringfence: [{}/{}] {}",
        st.done,
        st.total,
        if running.is_empty() {
            "…".to_string()
        } else {
            running.join(", ")
        }
    );
    if text.chars().count() > width {
        text = text.chars().take(width.saturating_sub(1)).collect();
        text.push('…');
    }
    text
}

fn draw(st: &mut State) {
    let width = terminal_width().saturating_sub(1).max(20);
    let text = line(st, Instant::now(), width);
    let mut e = std::io::stderr().lock();
    let _ = write!(e, "\r\x1b[2K{text}");
    let _ = e.flush();
    st.drawn = true;
}

fn clear(st: &mut State) {
    if st.drawn {
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r\x1b[2K");
        let _ = e.flush();
        st.drawn = false;
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}

fn label(job: &Job) -> String {
    super::human::terminal_safe(&format!("{}@{} {}", job.name, job.version, job.event)).into_owned()
}

impl Events for Progress {
    fn script_starting(&self, job: &Job) {
        self.with(|st| {
            if job.foreground {
                st.paused = true;
                clear(st);
            }
            st.running.push((label(job), Instant::now()));
        });
    }

    fn script_finished(&self, o: &ScriptOutcome) {
        let l = label(&o.job);
        self.with(|st| {
            if let Some(i) = st.running.iter().position(|(x, _)| *x == l) {
                st.running.remove(i);
            }
            st.done += 1;
            if o.job.foreground {
                st.paused = false;
            }
        });
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.with(|st| st.stop = true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_and_names_what_runs_within_the_width() {
        let t0 = Instant::now();
        let st = State {
            total: 12,
            done: 3,
            running: vec![
                ("better-sqlite3@9.0.0 install".into(), t0),
                ("esbuild@0.28.1 postinstall".into(), t0),
            ],
            ..State::default()
        };
        let l = line(&st, t0 + Duration::from_secs(52), 200);
        assert_eq!(
            l,
            "ringfence: [3/12] better-sqlite3@9.0.0 install 52s, esbuild@0.28.1 postinstall 52s"
        );
        let short = line(&st, t0, 30);
        assert_eq!(short.chars().count(), 30, "{short}");
        assert!(short.ends_with('…'));
    }
}
