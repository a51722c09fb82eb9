//! Git sources as npm and pnpm read them: a spec or a lockfile's `resolved` parsed into the
//! repository (hosted ones by host, owner and project whatever the URL form) and the commit.

/// A git repository, as npm compares them: hosted ones by host, owner and project whatever
/// the URL form (`git+ssh://git@github.com/o/p.git`, `git+https://github.com/o/p`,
/// `github:o/p`, `o/p`), others by the URL without `git+` and without the fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GitRepo {
    /// github.com, gitlab.com, bitbucket.org.
    Hosted {
        /// Lowercase host.
        host: &'static str,
        /// Owner (gitlab: the group path).
        owner: String,
        /// Project without `.git`.
        project: String,
    },
    /// Any other git URL.
    Url(String),
}

/// A parsed git spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GitSpec {
    /// The repository.
    pub repo: GitRepo,
    /// The fragment after `#`, when not empty.
    pub committish: Option<String>,
}

/// Whether `spec` is written as a git spec npm-package-arg would read as git: `git+…`,
/// `git://…`, `git@host:path`, a hosted shorthand (`github:o/p`, `gitlab:`, `bitbucket:`),
/// or an https URL of a hosted repository.
pub(super) fn looks_like_git(spec: &str) -> bool {
    spec.starts_with("git+")
        || spec.starts_with("git:")
        || spec.starts_with("github:")
        || spec.starts_with("gitlab:")
        || spec.starts_with("bitbucket:")
        || is_scp_like(spec)
        || ((spec.starts_with("https://") || spec.starts_with("http://"))
            && matches!(
                parse_git(spec),
                Some(GitSpec {
                    repo: GitRepo::Hosted { .. },
                    ..
                })
            ))
}

/// `user@host.tld:path` (no scheme).
fn is_scp_like(spec: &str) -> bool {
    let Some((user, rest)) = spec.split_once('@') else {
        return false;
    };
    let Some((host, path)) = rest.split_once(':') else {
        return false;
    };
    !user.is_empty()
        && !user.contains(['/', ':'])
        && host.contains('.')
        && !host.contains('/')
        && !path.is_empty()
        && !path.starts_with("//")
}

const HOSTS: [&str; 3] = ["github.com", "gitlab.com", "bitbucket.org"];

/// Parse a git URL or shorthand (also a lockfile's `resolved`). `None` if it is not one.
pub(super) fn parse_git(spec: &str) -> Option<GitSpec> {
    let (url, frag) = match spec.split_once('#') {
        Some((u, f)) => (u, (!f.is_empty()).then(|| f.to_string())),
        None => (spec, None),
    };
    let url = url.strip_prefix("git+").unwrap_or(url);
    let hosted = |host: &str, path: &str| -> Option<GitRepo> {
        let host = host.to_ascii_lowercase();
        let host = HOSTS.iter().find(|h| **h == host)?;
        let path = path.trim_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        let (owner, project) = path.rsplit_once('/')?;
        let ok = !owner.is_empty()
            && !project.is_empty()
            && (*host == "gitlab.com" || !owner.contains('/'));
        ok.then(|| GitRepo::Hosted {
            host,
            owner: owner.to_string(),
            project: project.to_string(),
        })
    };
    // Hosted shorthands.
    for (prefix, host) in [
        ("github:", "github.com"),
        ("gitlab:", "gitlab.com"),
        ("bitbucket:", "bitbucket.org"),
    ] {
        if let Some(path) = url.strip_prefix(prefix) {
            return Some(GitSpec {
                repo: hosted(host, path)?,
                committish: frag,
            });
        }
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(scheme, "ssh" | "https" | "http" | "git" | "file") {
            return None;
        }
        // [user@]host[:port]/path, or [user@]host:path (scp form inside a URL). The user is
        // only looked for before the first `/`.
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let after_user = match rest[..authority_end].rfind('@') {
            Some(i) => &rest[i + 1..],
            None => rest,
        };
        let (authority, path) = match after_user.find(['/', ':']) {
            Some(i) if after_user.as_bytes()[i] == b':' => {
                let tail = &after_user[i + 1..];
                // `host:22/path` is a port; `host:owner/repo` is a path.
                let port_len = tail.bytes().take_while(u8::is_ascii_digit).count();
                if port_len > 0 && tail[port_len..].starts_with('/') {
                    (&after_user[..i], &tail[port_len..])
                } else {
                    (&after_user[..i], tail)
                }
            }
            Some(i) => (&after_user[..i], &after_user[i..]),
            None => (after_user, ""),
        };
        if authority.eq_ignore_ascii_case("codeload.github.com") {
            // pnpm's form for GitHub: /owner/project/tar.gz/<sha>
            let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
            if let [owner, project, "tar.gz", sha] = parts.as_slice() {
                return Some(GitSpec {
                    repo: GitRepo::Hosted {
                        host: "github.com",
                        owner: (*owner).to_string(),
                        project: (*project).to_string(),
                    },
                    committish: Some((*sha).to_string()),
                });
            }
            return None;
        }
        if let Some(repo) = hosted(authority, path) {
            return Some(GitSpec {
                repo,
                committish: frag,
            });
        }
        if matches!(scheme, "https" | "http") && !spec.starts_with("git+") {
            // A plain https URL of a non-hosted server is a tarball, not git.
            return None;
        }
        return Some(GitSpec {
            repo: GitRepo::Url(url.to_string()),
            committish: frag,
        });
    }
    if is_scp_like(url) {
        let (_, rest) = url.split_once('@')?;
        let (host, path) = rest.split_once(':')?;
        let repo = hosted(host, path).unwrap_or_else(|| GitRepo::Url(url.to_string()));
        return Some(GitSpec {
            repo,
            committish: frag,
        });
    }
    // `owner/project` is GitHub shorthand.
    let bare = url.split('/').collect::<Vec<_>>();
    if let [owner, project] = bare.as_slice() {
        let ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with(['.', '@', '~'])
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if ok(owner) && ok(project) {
            return Some(GitSpec {
                repo: hosted("github.com", url)?,
                committish: frag,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_forms_of_one_hosted_repo_are_equal() {
        let want = GitRepo::Hosted {
            host: "github.com",
            owner: "org".into(),
            project: "foo".into(),
        };
        for s in [
            "git+ssh://git@github.com/org/foo.git#abc",
            "git+https://github.com/org/foo.git",
            "git://github.com/org/foo",
            "https://github.com/org/foo",
            "ssh://git@github.com:org/foo.git",
            "git@github.com:org/foo.git",
            "github:org/foo",
            "org/foo#abc",
            "https://codeload.github.com/org/foo/tar.gz/abc",
            "git+ssh://git@GitHub.com:22/org/foo.git",
        ] {
            assert_eq!(parse_git(s).map(|g| g.repo), Some(want.clone()), "{s}");
        }
        assert_eq!(
            parse_git("git+ssh://git@github.com/org/foo.git#abc123").and_then(|g| g.committish),
            Some("abc123".into())
        );
    }

    #[test]
    fn other_git_urls_compare_as_urls() {
        assert_eq!(
            parse_git("git+ssh://git@example.com/org/foo.git#abc").map(|g| g.repo),
            Some(GitRepo::Url("ssh://git@example.com/org/foo.git".into()))
        );
        assert_eq!(parse_git("https://example.com/foo.tgz"), None);
        assert_eq!(parse_git("file:../bar"), None);
        assert_eq!(parse_git("esbuild"), None);
        assert_eq!(parse_git("./x/y"), None);
    }
}
