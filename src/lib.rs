//! ringfence: run npm install-time lifecycle scripts, each in its own Linux sandbox, and record
//! what they tried.
//!
//! Layers, outermost first: [`cli`] (flags) → [`policy`] (profile + flags + host → a resolved
//! [`sandbox::spec::SandboxSpec`]) → [`sandbox::plan`] (pure data: ordered mount ops, Landlock
//! rules, seccomp table, rlimits) → [`sandbox::init`] (one ordered list of named steps that
//! applies the plan) → [`report`].
#![deny(unsafe_code)]

pub mod app;
pub mod cleanup;
pub mod cli;
pub mod doctor;
pub mod error;
pub mod findings;
pub mod install;
pub mod logging;
pub mod npm;
pub mod observe;
pub mod policy;
pub mod replay;
pub mod report;
pub mod sandbox;
#[allow(unsafe_code)]
pub mod sys;
pub mod untrusted;
