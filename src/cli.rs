//! Command-line types (clap derive). No logic here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run npm install scripts and other untrusted commands in a Linux sandbox, and say what they
/// tried.
#[derive(Debug, Parser)]
#[command(
    name = "ringfence",
    version,
    about,
    long_about = None,
    after_help = "Exit status:\n  0      everything ran as npm would have it; no finding at or above --fail-on\n  1      a finding at or above --fail-on (default high); with --strict also a skipped,\n         failed optional, timed-out or partial script\n  1-255  install/ci: a required script failed (its status, as npm); run: the command's\n         status (128 + signal if killed, 137 after a timeout)\n  2      ringfence could not do its job (bad input or policy, no usable sandbox); the\n         --report file says why"
)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a fresh sandbox and exit with its status (128+signal if killed).
    Run(RunArgs),
    /// `npm install`, with every lifecycle script replayed in its own sandbox.
    Install(InstallArgs),
    /// `npm ci`, with every lifecycle script replayed in its own sandbox.
    Ci(InstallArgs),
    /// Forensic replay of suspect packages: install them alone into scratch projects, as on a
    /// developer machine and as in CI, with every recording on; report both and what differed.
    Replay(ReplayArgs),
    /// Show which isolation mechanisms this kernel offers and which tier `run` would use.
    Doctor(DoctorArgs),
    /// Approve packages' install scripts as they behaved in the last install: writes what each
    /// did (hosts, secrets, credential variables, programs, writes) into
    /// `ringfence-approvals.json`. A later version that does the same or less stays approved; one
    /// that does more is a `behaviour-changed` finding.
    Approve(ApproveArgs),
    /// Allow a package's scripts something the sandbox refused, by editing the project's
    /// `ringfence.toml` in place (comments and order kept): a write inside the project
    /// (`--write .git/hooks/`) or a longer wall-clock limit (`--timeout 30m`).
    Allow(AllowArgs),
    /// Show the policy an install in this project uses (the built-in default or --profile,
    /// then the project's ringfence.toml), where each value came from, the allowlists found
    /// and the approvals.
    Config(ConfigArgs),
    /// The build cache of sandboxed script outputs: list, prune to a size, or clear it.
    Cache(CacheArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout: `ringfence man > ringfence.1`.
    Man,
    /// List the findings catalogue: every code with its class, default severity and meaning.
    Findings(FindingsArgs),
    /// Prepare this machine for the full tier.
    #[command(subcommand)]
    Setup(SetupCommand),
}

/// `ringfence setup`.
#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// Ubuntu 23.10 and later refuse user namespaces to programs without an AppArmor profile
    /// granting `userns` (kernel.apparmor_restrict_unprivileged_userns = 1), so ringfence falls
    /// back to the landlock tier there. This prints such a profile for the ringfence binary (as
    /// Ubuntu ships for bwrap: `userns` granted, nothing else confined) and, run as root,
    /// installs it into /etc/apparmor.d and loads it.
    Apparmor(ApparmorArgs),
}

/// `ringfence setup apparmor`.
#[derive(Debug, Args)]
pub struct ApparmorArgs {
    /// Only print the profile on stdout (also the default when not root).
    #[arg(long)]
    pub print: bool,
    /// The binary the profile is for (default: this one). The profile attaches by path: a
    /// ringfence installed elsewhere later needs its own.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<std::path::PathBuf>,
    /// Where to install it (as root).
    #[arg(long, value_name = "FILE", default_value = "/etc/apparmor.d/ringfence")]
    pub file: std::path::PathBuf,
}

/// `ringfence approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// Approve every dependency script of the report, except those with high or critical
    /// findings (name those explicitly to approve them).
    #[arg(long, conflicts_with = "packages")]
    pub all: bool,
    /// The install report to approve from (default: the last `install`/`ci` of this project).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Package names to approve.
    #[arg(value_name = "PKG", required_unless_present = "all")]
    pub packages: Vec<String>,
}

/// `ringfence allow`.
#[derive(Debug, Args)]
pub struct AllowArgs {
    /// The package (as npm installed it: `husky`, `@prisma/client`).
    #[arg(value_name = "PKG")]
    pub package: String,
    /// A path relative to the project root its scripts may write (a trailing `/` names a
    /// directory); repeatable.
    #[arg(long, value_name = "PATH", required_unless_present = "timeout")]
    pub write: Vec<String>,
    /// Wall-clock limit for its scripts (`"90s"`, `"30m"`).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Why it needs this (required with `--write`): reviewers read it.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// `ringfence config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Use this profile instead of the built-in default.
    #[arg(long, value_name = "FILE", env = "RINGFENCE_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ringfence cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// `ls`, `prune` or `clear`.
    #[arg(value_parser = ["ls", "prune", "clear"])]
    pub action: String,
    /// `prune`: keep the most recently used entries within this size (`2GiB`).
    #[arg(long, value_name = "SIZE", default_value = "2GiB")]
    pub max_size: String,
    /// The cache's directory (default as for `install`).
    #[arg(long, value_name = "DIR", env = "RINGFENCE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// `ringfence completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `ringfence findings`.
#[derive(Debug, Args)]
pub struct FindingsArgs {
    /// Print the catalogue as Markdown (what `docs/findings.md` holds).
    #[arg(long)]
    pub markdown: bool,
}

/// `ringfence replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Tier and outputs.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Write the combined JSON report (both modes' runs and the differences).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Keep the evidence here: reports and each package directory as its scripts left it.
    #[arg(long, value_name = "DIR")]
    pub evidence: Option<PathBuf>,
    /// Use this profile instead of the built-in default.
    #[arg(long, value_name = "FILE", env = "RINGFENCE_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Exit 1 when a finding in any mode is at least this severe (or `never`).
    #[arg(long, value_name = "SEVERITY", default_value = "high")]
    pub fail_on: String,
    /// Wall-clock limit per script, in seconds: a payload that waits longer shows as a timeout.
    #[arg(long, value_name = "SECS", default_value_t = 120.0)]
    pub timeout: f64,
    /// Replay only in this mode: `dev` (no CI variables) or `ci` (CI=true); repeatable.
    #[arg(long = "mode", value_name = "MODE", value_parser = ["dev", "ci"])]
    pub modes: Vec<String>,
    /// Packages: registry specs (`name@1.2.3`), tarballs, or package directories (copied and
    /// packed without running any script).
    #[arg(required = true, value_name = "PACKAGE")]
    pub specs: Vec<String>,
}

/// `ringfence run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Tier and outputs.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Make PATH visible and writable at its real path (repeatable).
    #[arg(long, value_name = "PATH")]
    pub rw: Vec<PathBuf>,
    /// Make PATH visible read-only at its real path (repeatable).
    #[arg(long, value_name = "PATH")]
    pub ro: Vec<PathBuf>,
    /// Kill the whole process tree after SECS seconds of wall time (default: the profile's).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// Write a JSON report of what was enforced and how the command ended.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Use this profile instead of the built-in default (sandbox-profiles/README.md).
    #[arg(long, value_name = "FILE", env = "RINGFENCE_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Pass NAME from your environment, or set NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,
    /// Working directory inside the sandbox (must be visible there).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Print the resolved sandbox plan as JSON and exit without running anything.
    #[arg(long)]
    pub show_plan: bool,
    /// Containment only: no decoy secrets, canaries or network sinkhole (nothing is recorded).
    #[arg(long)]
    pub no_record: bool,
    /// Forensic recording: also record every file the command opens for reading (seccomp
    /// notification on all opens; slower for builds that open many files), so that reads of
    /// secrets by any program, not only node, are attributed.
    #[arg(long, conflicts_with = "no_record")]
    pub forensic: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `ringfence doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ringfence install` / `ringfence ci`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Stream NDJSON events to FILE as scripts start and finish.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Tier and outputs.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Write a JSON report of every script run.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Scripts of one phase run in up to N parallel sandboxes (default: the CPU count).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Use this profile instead of the built-in default.
    #[arg(long, value_name = "FILE", env = "RINGFENCE_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Containment only: no decoy secrets, canaries or network sinkhole (nothing is recorded).
    #[arg(long)]
    pub no_record: bool,
    /// Forensic recording: also record every file the command opens for reading (seccomp
    /// notification on all opens; slower for builds that open many files), so that reads of
    /// secrets by any program, not only node, are attributed.
    #[arg(long, conflicts_with = "no_record")]
    pub forensic: bool,
    /// Exit 1 when any finding is at least this severe: info, low, medium, high, critical, or
    /// never.
    #[arg(long, value_name = "SEVERITY", default_value = "high")]
    pub fail_on: String,
    /// Exit 1 also when a script exited 0 but is probably incomplete (`partial`: a write it
    /// needed was refused, or a download it needed could not happen), when a script was
    /// skipped (denied by an allowlist, or unreviewed under `--only-approved`), and when an
    /// optional dependency's script failed or timed out (npm removes it and goes on). For CI;
    /// `[install] strict = true` in ringfence.toml does the same.
    #[arg(long)]
    pub strict: bool,
    /// Run only the dependency scripts that are approved: by an allowlist the project already
    /// has (npm `allowScripts`, pnpm `allowBuilds`/`onlyBuiltDependencies`, LavaMoat, Bun
    /// `trustedDependencies`) or by `ringfence-approvals.json`. The others are listed as
    /// skipped (`--strict` makes that exit 1).
    #[arg(long)]
    pub only_approved: bool,
    /// Do not use the build cache (every script runs).
    #[arg(long)]
    pub no_build_cache: bool,
    /// The build cache's directory (default `$XDG_CACHE_HOME/ringfence/builds`, else
    /// `~/.cache/ringfence/builds`).
    #[arg(long, value_name = "DIR", env = "RINGFENCE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print only scripts with findings, failures, refusals and skips (no status line, no
    /// list of quiet packages).
    #[arg(short, long)]
    pub quiet: bool,
    /// Arguments for npm (package specs, `--omit=dev`, ...).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "NPM ARGS"
    )]
    pub npm_args: Vec<String>,
}

/// Flags of every command that runs scripts: the isolation tier and the machine-readable outputs.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Isolation tier: `full` (namespaces), `landlock` (no namespaces: for containers and
    /// hosts without usable user namespaces), or `auto` (full where it works).
    #[arg(
        long,
        value_name = "TIER",
        env = "RINGFENCE_TIER",
        default_value = "auto"
    )]
    pub tier: String,
    /// Refuse to run (exit 2) unless at least this tier is available: `full` or `landlock`.
    #[arg(long, value_name = "TIER", env = "RINGFENCE_REQUIRE_TIER")]
    pub require_tier: Option<String>,
    /// Also write the findings as SARIF 2.1.0 (code scanning: GitHub, GitLab, Azure DevOps).
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
    /// Also write the findings as a GitLab Code Quality report.
    #[arg(long, value_name = "FILE")]
    pub gitlab_codequality: Option<PathBuf>,
}
