//! Printers: the only layer that formats reports and diagnostics for people (and, next, for CI
//! systems: SARIF, annotations, NDJSON).

pub mod config;
pub mod github;
pub mod gitlab;
pub mod human;
pub mod ndjson;
pub mod progress;
pub mod sarif;

pub use human::terminal_safe;
