//! ringfence: run npm install-time lifecycle scripts, each in its own Linux sandbox, and record
//! what they tried.
//!
//! Layers, outermost first (docs/architecture.md): [`cli`] (flags) → [`settings`] (validated
//! once) → [`commands`] (one per subcommand; the exit status) → [`pipeline`] (one package script:
//! [`policy`] request → [`observe`] instrumentation → [`sandbox`] run → findings) with [`npm`]
//! for what npm would run → [`findings`] (stable codes) → [`report`] (data) → [`output`]
//! (printers). [`sandbox`] applies a pure-data [`sandbox::plan`] as one ordered list of named
//! steps and knows nothing of the layers above it.
#![deny(unsafe_code)]

pub mod approvals;
pub mod cache;
pub mod cleanup;
pub mod cli;
pub mod commands;
pub mod doctor;
pub mod error;
pub mod findings;
pub mod logging;
pub mod npm;
pub mod observe;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod sandbox;
pub mod settings;
#[allow(unsafe_code)]
pub mod sys;
pub mod untrusted;
pub mod util;
