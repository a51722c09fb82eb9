//! What a script run did, as an approval records it: sets of normalised strings that stay the
//! same when the same build runs again (no pids, no temp paths, no canary values, no times).

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::findings::{Code, Finding, Severity};
use crate::report::ScriptRun;

/// A run's behaviour. Each field is a sorted set, so the lock file diffs line by line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Behaviour {
    /// Network destinations: DNS names and `host:port` (a DNS name carrying encoded data is
    /// kept as `*.` its last two labels).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub network: BTreeSet<String>,
    /// Secret paths read or probed (`~/.npmrc`, `.env`), and key-agent or credential-helper use.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub secrets: BTreeSet<String>,
    /// Credential-like environment variables looked up.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub credential_variables: BTreeSet<String>,
    /// Programs run (base names: `node`, `sh`, `make`, `cc1`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub commands: BTreeSet<String>,
    /// Writes outside the package's directory, refused or allowed by a policy (project-relative
    /// or `~/` paths).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub writes: BTreeSet<String>,
    /// Every other finding, as `code` or `code target` (survivors, escape attempts, ...).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub other: BTreeSet<String>,
}

impl Behaviour {
    /// The behaviour of `run`, a script of the package in `package_dir`, in `project`. `home` is
    /// the path the throwaway home had in the run (targets under it are written `~/…`).
    pub fn of(run: &ScriptRun, project: &Path, package_dir: &Path) -> Behaviour {
        let mut b = Behaviour::default();
        let paths = Paths {
            project,
            package_dir,
            home: &run.view.home,
        };
        for f in &run.findings {
            b.add_finding(f, &paths);
        }
        for s in &run.spawned {
            if let Some(program) = s.argv.first() {
                let base = program.rsplit('/').next().unwrap_or(program);
                if !base.is_empty() {
                    b.commands.insert(clip(base));
                }
            }
        }
        b
    }

    fn add_finding(&mut self, f: &Finding, paths: &Paths<'_>) {
        let target = f.target.strip_suffix(" (more)").unwrap_or(&f.target);
        match f.code {
            Code::DnsLookup
            | Code::Connection
            | Code::UnservedConnection
            | Code::LoopbackConnection
            | Code::TcpExfiltration
            | Code::DatagramExfiltration => {
                self.network.insert(clip(&target.to_ascii_lowercase()));
            }
            Code::DnsTunnel | Code::DnsExfiltration => {
                self.network.insert(tunnel_domain(target));
            }
            // Probes that found nothing are info: not behaviour worth binding an approval to.
            _ if f.severity == Severity::Info => {}
            Code::DecoyRead
            | Code::SecretPathProbe
            | Code::ProjectSecretProbe
            | Code::KeyAgentSocket
            | Code::CredentialHelper
            | Code::SecretStaged => {
                self.secrets.insert(paths.normalise(target));
            }
            Code::CredentialVariableLookup => {
                let name = target.strip_prefix("env:").unwrap_or(target);
                self.credential_variables.insert(clip(name));
            }
            Code::WriteRefused
            | Code::CacheWrite
            | Code::HomePersistence
            | Code::HomeExecutable
            | Code::SchedulerPersistence
            | Code::ManifestRewritten
            | Code::ExecutedFileRewritten
            | Code::ShippedFileChanged
            | Code::HomeLinkPlanted => {
                self.writes.insert(paths.normalise(target));
            }
            // Already an approval's own verdict; never part of a record.
            Code::BehaviourChanged => {}
            // Pids and sandbox-internal paths vary between runs: the code alone.
            Code::Survivor
            | Code::EnvironRead
            | Code::RecordingDegraded
            | Code::RecordingEvaded => {
                self.other.insert(f.code.as_str().to_string());
            }
            _ => {
                self.other
                    .insert(format!("{} {}", f.code.as_str(), paths.normalise(target)));
            }
        }
    }

    /// What `self` holds that `approved` does not.
    pub fn beyond(&self, approved: &Behaviour) -> Behaviour {
        let diff = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> BTreeSet<String> {
            a.difference(b).cloned().collect()
        };
        Behaviour {
            network: diff(&self.network, &approved.network),
            secrets: diff(&self.secrets, &approved.secrets),
            credential_variables: diff(&self.credential_variables, &approved.credential_variables),
            commands: diff(&self.commands, &approved.commands),
            writes: diff(&self.writes, &approved.writes),
            other: diff(&self.other, &approved.other),
        }
    }

    /// Nothing at all.
    pub fn is_empty(&self) -> bool {
        self.categories().iter().all(|(_, s)| s.is_empty())
    }

    /// Add everything of `other`.
    pub fn extend(&mut self, other: &Behaviour) {
        self.network.extend(other.network.iter().cloned());
        self.secrets.extend(other.secrets.iter().cloned());
        self.credential_variables
            .extend(other.credential_variables.iter().cloned());
        self.commands.extend(other.commands.iter().cloned());
        self.writes.extend(other.writes.iter().cloned());
        self.other.extend(other.other.iter().cloned());
    }

    /// Each category with its name, in a fixed order.
    pub fn categories(&self) -> [(&'static str, &BTreeSet<String>); 6] {
        [
            ("network", &self.network),
            ("secrets", &self.secrets),
            ("credential variables", &self.credential_variables),
            ("commands", &self.commands),
            ("writes", &self.writes),
            ("other", &self.other),
        ]
    }

    /// One line: `network: a, b; secrets: ~/.npmrc`.
    pub fn describe(&self) -> String {
        self.categories()
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(name, s)| {
                format!(
                    "{name}: {}",
                    s.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

struct Paths<'a> {
    project: &'a Path,
    package_dir: &'a Path,
    home: &'a Path,
}

impl Paths<'_> {
    /// A path target made independent of where this run happened: `<package>/…` inside the
    /// package, project-relative inside the project, `~/…` in the throwaway home.
    fn normalise(&self, target: &str) -> String {
        let under = |base: &Path| -> Option<String> {
            let base = base.to_str()?.trim_end_matches('/');
            if base.is_empty() {
                return None;
            }
            if target == base {
                return Some(String::new());
            }
            target
                .strip_prefix(base)?
                .strip_prefix('/')
                .map(str::to_string)
        };
        let out = if let Some(rest) = under(self.package_dir) {
            format!("<package>/{rest}")
        } else if let Some(rest) = under(self.project) {
            if rest.is_empty() {
                ".".to_string()
            } else {
                rest
            }
        } else if let Some(rest) = under(self.home) {
            format!("~/{rest}")
        } else {
            target.to_string()
        };
        clip(&out)
    }
}

/// `*.` and the last two labels of a name that carries encoded data (each query differs).
fn tunnel_domain(name: &str) -> String {
    let name = name.trim_start_matches("*.").trim_end_matches('.');
    let labels: Vec<&str> = name.split('.').collect();
    let keep = labels.len().min(2);
    format!(
        "*.{}",
        labels[labels.len() - keep..].join(".").to_ascii_lowercase()
    )
}

/// Entries are bounded: a script controls these strings.
fn clip(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> Paths<'static> {
        Paths {
            project: Path::new("/home/u/app"),
            package_dir: Path::new("/home/u/app/node_modules/pkg"),
            home: Path::new("/home/u"),
        }
    }

    #[test]
    fn targets_are_normalised_against_package_project_and_home() {
        let p = paths();
        assert_eq!(p.normalise("/home/u/.npmrc"), "~/.npmrc");
        assert_eq!(
            p.normalise("/home/u/app/.git/hooks/pre-commit"),
            ".git/hooks/pre-commit"
        );
        assert_eq!(p.normalise("/home/u/app/node_modules/pkg/x"), "<package>/x");
        assert_eq!(p.normalise("/home/u/app"), ".");
        assert_eq!(p.normalise("/home/u/appx/y"), "~/appx/y");
        assert_eq!(p.normalise("/etc/passwd"), "/etc/passwd");
        assert_eq!(p.normalise("git credential"), "git credential");
    }

    #[test]
    fn tunnels_keep_only_the_domain() {
        assert_eq!(tunnel_domain("aGVsbG8.x1.Attacker.test"), "*.attacker.test");
        assert_eq!(tunnel_domain("*.attacker.test"), "*.attacker.test");
        assert_eq!(tunnel_domain("test"), "*.test");
    }

    #[test]
    fn beyond_is_the_set_difference_per_category() {
        let mut approved = Behaviour::default();
        approved
            .commands
            .extend(["node".to_string(), "sh".to_string()]);
        let mut now = approved.clone();
        assert!(now.beyond(&approved).is_empty());
        now.network.insert("evil.test".into());
        now.secrets.insert("~/.npmrc".into());
        let grew = now.beyond(&approved);
        assert_eq!(grew.describe(), "network: evil.test; secrets: ~/.npmrc");
        // Less than approved is not growth.
        assert!(Behaviour::default().beyond(&approved).is_empty());
    }

    #[test]
    fn long_entries_are_clipped_on_a_char_boundary() {
        let s = "é".repeat(300);
        let c = clip(&s);
        assert!(c.len() <= 204 && c.ends_with('…'), "{}", c.len());
    }
}
