//! Printers: the only layer that formats reports and diagnostics for people (and, next, for CI
//! systems: SARIF, annotations, NDJSON).

pub mod human;

pub use human::terminal_safe;
