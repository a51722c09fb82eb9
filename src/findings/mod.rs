//! Findings: what a script tried, as data. Every finding has a stable [`Code`] from the
//! [`catalog`], which also gives its class and default severity; observation builds them with
//! [`Finding::new`], the report stores them, printers show them.

pub mod catalog;

/// The detail of a refused write that was the creation of a directory (its allowance is then
/// the directory's, with a trailing `/`).
pub const CREATE_DIRECTORY: &str = "a directory it tried to create";

use serde::{Deserialize, Serialize};

pub use catalog::Code;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing (legitimate noise such as a binary downloader's attempt).
    Info,
    /// Unusual but commonly benign.
    Low,
    /// Suspicious.
    Medium,
    /// Behaviour of malware: credential access, persistence, survivors.
    High,
    /// A secret (canary) left, or tried to leave, the sandbox.
    Critical,
}

impl Severity {
    /// The name used in reports and on the command line (`high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "info" => Ok(Severity::Info),
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            "never" => Err("never".into()),
            other => Err(format!(
                "unknown severity `{other}` (info, low, medium, high, critical)"
            )),
        }
    }
}

/// The class of behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A decoy secret was opened or read.
    SecretRead,
    /// A canary value was seen leaving (DNS name, payload).
    Exfiltration,
    /// A connection or DNS attempt.
    NetworkAttempt,
    /// A write to a persistence location (shell rc, autostart, agent configs).
    PersistenceAttempt,
    /// A write attempted on other packages or the project.
    TamperAttempt,
    /// A denied privileged operation.
    EscapeAttempt,
    /// A process outlived the script.
    Survivor,
    /// Probing the environment (CI detection, metadata).
    Fingerprinting,
    /// An approved package did more than its approval records.
    BehaviourChange,
    /// A script used more of a bounded resource than its sandbox allows (disk in its HOME or
    /// TMPDIR, output) and was stopped.
    ResourceAbuse,
}

impl FindingKind {
    /// The name used in reports (`secret-read`).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::SecretRead => "secret-read",
            FindingKind::Exfiltration => "exfiltration",
            FindingKind::NetworkAttempt => "network-attempt",
            FindingKind::PersistenceAttempt => "persistence-attempt",
            FindingKind::TamperAttempt => "tamper-attempt",
            FindingKind::EscapeAttempt => "escape-attempt",
            FindingKind::Survivor => "survivor",
            FindingKind::Fingerprinting => "fingerprinting",
            FindingKind::BehaviourChange => "behaviour-change",
            FindingKind::ResourceAbuse => "resource-abuse",
        }
    }
}

/// One observed behaviour, attributed to the script run it is stored in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule that produced it: stable across runs and versions ([`catalog`]).
    pub code: Code,
    /// Class (the code's).
    pub kind: FindingKind,
    /// Severity.
    pub severity: Severity,
    /// One line for humans.
    pub summary: String,
    /// The path, host:port, canary id or process concerned.
    pub target: String,
    /// Supporting detail (never a real secret value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The process that did it, when the mechanism that saw it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Actor>,
    /// When it happened (milliseconds since the Unix epoch), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_unix_ms: Option<u64>,
}

/// A process inside the sandbox, as a finding names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// pid in the sandbox's own pid namespace (the numbering `survivors` use); 1 is ringfence's
    /// init, the script's own shell is 2 or more.
    pub pid: u32,
    /// Its command line (truncated to 16 arguments of 200 bytes), when it could be read.
    pub argv: Vec<String>,
}

impl Finding {
    /// A finding of rule `code` at its default class and severity.
    pub fn new(code: Code, summary: impl Into<String>, target: impl Into<String>) -> Finding {
        Finding {
            code,
            kind: code.kind(),
            severity: code.default_severity(),
            summary: summary.into(),
            target: target.into(),
            detail: None,
            process: None,
            at_unix_ms: None,
        }
    }

    /// With this severity (the evidence raised or lowered it).
    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }

    /// With supporting detail (never a real secret value).
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Finding {
        self.detail = Some(detail.into());
        self
    }

    /// With the process that did it.
    #[must_use]
    pub fn process(mut self, process: Option<Actor>) -> Finding {
        self.process = process;
        self
    }

    /// With when it happened.
    #[must_use]
    pub fn at(mut self, at_unix_ms: Option<u64>) -> Finding {
        self.at_unix_ms = at_unix_ms;
        self
    }
}

/// Put findings in report order: most severe first; within a class, in the order things
/// happened (unknown times last).
pub fn order(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity.cmp(&a.severity).then(a.kind.cmp(&b.kind)).then(
            a.at_unix_ms
                .unwrap_or(u64::MAX)
                .cmp(&b.at_unix_ms.unwrap_or(u64::MAX)),
        )
    });
}

/// The most severe finding, if any.
pub fn worst(findings: &[Finding]) -> Option<Severity> {
    findings.iter().map(|f| f.severity).max()
}
