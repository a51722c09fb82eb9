//! `ringfence setup apparmor`: the AppArmor profile that lets Ubuntu 23.10+ give the ringfence
//! binary user namespaces (the full tier), printed, or installed and loaded as root.
//!
//! Ubuntu sets `kernel.apparmor_restrict_unprivileged_userns = 1`: an unprivileged process may
//! create a user namespace only if its AppArmor profile grants `userns`. Ubuntu ships such
//! profiles for bwrap, Chrome and others — `flags=(unconfined)` (AppArmor confines nothing
//! else) plus `userns,`. This writes the same for ringfence. What ringfence runs is confined by
//! its own sandbox, not by this profile.

use std::path::Path;
use std::process::Command;

use crate::cli::ApparmorArgs;
use crate::error::RunError;

use super::Exit;

/// `ringfence setup apparmor`.
pub fn apparmor(args: &ApparmorArgs) -> Result<Exit, RunError> {
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| RunError::Setup {
            what: format!("finding this program's path: {e}"),
            fix: "pass the installed binary with --binary PATH".into(),
        })?,
    };
    let binary = std::fs::canonicalize(&binary).unwrap_or(binary);
    let text = profile(&binary)?;
    let root = nix::unistd::geteuid().is_root();
    if args.print || !root {
        print!("{text}");
        if !args.print {
            eprintln!(
                "ringfence: not root: the profile is printed above, not installed. To install and load it:\n  ringfence setup apparmor --print | sudo tee {} >/dev/null && sudo apparmor_parser -r {}",
                args.file.display(),
                args.file.display()
            );
        }
        return Ok(Exit::Clean);
    }
    install(&text, &args.file)?;
    eprintln!(
        "ringfence: {} installed and loaded: `{}` may create user namespaces (check with `ringfence doctor`)",
        args.file.display(),
        binary.display()
    );
    Ok(Exit::Clean)
}

/// The profile for `binary`: `userns` granted, nothing else confined.
pub fn profile(binary: &Path) -> Result<String, RunError> {
    let path = attachment(binary)?;
    Ok(format!(
        "# AppArmor profile for ringfence, written by `ringfence setup apparmor`.\n\
         # Ubuntu 23.10+ lets a program create user namespaces only if its profile grants\n\
         # `userns` (kernel.apparmor_restrict_unprivileged_userns = 1). This grants it to the\n\
         # ringfence binary below and confines nothing else, as Ubuntu's profile for bwrap does;\n\
         # what ringfence runs is confined by ringfence's own sandbox.\n\
         abi <abi/4.0>,\n\
         include <tunables/global>\n\
         \n\
         profile ringfence {path} flags=(unconfined) {{\n\
         \x20 userns,\n\
         \n\
         \x20 # Site-specific additions and overrides. See local/README for details.\n\
         \x20 include if exists <local/ringfence>\n\
         }}\n"
    ))
}

/// The profile's attachment: the absolute path with AppArmor's glob characters escaped, quoted
/// when it holds a space.
fn attachment(binary: &Path) -> Result<String, RunError> {
    let refuse = |why: &str| {
        RunError::Setup {
        what: format!("`{}` cannot be named in an AppArmor profile: {why}", binary.display()),
        fix: "install ringfence at a plain absolute path (such as /usr/local/bin/ringfence) and pass it with --binary".into(),
    }
    };
    let s = binary.to_str().ok_or_else(|| refuse("it is not UTF-8"))?;
    if !binary.is_absolute() {
        return Err(refuse("it is not absolute"));
    }
    if s.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        return Err(refuse(
            "it holds a quote, a backslash or a control character",
        ));
    }
    let mut out = String::new();
    for c in s.chars() {
        if "*?[]{}^".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(if out.contains(' ') {
        format!("\"{out}\"")
    } else {
        out
    })
}

/// Write `text` to `file` and load it with `apparmor_parser -r`.
fn install(text: &str, file: &Path) -> Result<(), RunError> {
    if !Path::new("/sys/kernel/security/apparmor").exists() {
        return Err(RunError::Setup {
            what: "AppArmor is not enabled in this kernel (no /sys/kernel/security/apparmor)".into(),
            fix: "nothing to set up: without AppArmor, user namespaces are not restricted by it (see `ringfence doctor`)".into(),
        });
    }
    let parser = crate::util::search_path(
        "/usr/sbin:/sbin:/usr/bin:/bin",
        "apparmor_parser",
        Path::new("/"),
    )
    .ok_or_else(|| RunError::Setup {
        what: "apparmor_parser was not found".into(),
        fix: "install it (`apt-get install apparmor`), then run this again".into(),
    })?;
    crate::util::write_atomic(file, text.as_bytes()).map_err(|e| RunError::Setup {
        what: format!("writing `{}`: {e}", file.display()),
        fix: "run as root, or print the profile with --print and install it yourself".into(),
    })?;
    let out = Command::new(&parser)
        .arg("-r")
        .arg(file)
        .output()
        .map_err(|e| RunError::Setup {
            what: format!("running `{} -r {}`: {e}", parser.display(), file.display()),
            fix: "load it yourself with apparmor_parser -r".into(),
        })?;
    if !out.status.success() {
        return Err(RunError::Setup {
            what: format!(
                "`{} -r {}` failed: {}",
                parser.display(),
                file.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            fix: format!(
                "AppArmor 4 (Ubuntu 24.04+) is needed for `userns` rules; remove `{}` if this AppArmor is older",
                file.display()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_grants_userns_to_the_binary_and_confines_nothing_else() {
        let p = profile(Path::new("/usr/local/bin/ringfence")).unwrap();
        assert!(
            p.contains("abi <abi/4.0>,\ninclude <tunables/global>\n"),
            "{p}"
        );
        assert!(
            p.contains(
                "profile ringfence /usr/local/bin/ringfence flags=(unconfined) {\n  userns,\n"
            ),
            "{p}"
        );
        assert!(
            p.ends_with("  include if exists <local/ringfence>\n}\n"),
            "{p}"
        );
        // Spaces are quoted, glob characters escaped; quotes and relative paths refused.
        let p = profile(Path::new("/opt/my tools/ring*fence")).unwrap();
        assert!(
            p.contains("profile ringfence \"/opt/my tools/ring\\*fence\" flags"),
            "{p}"
        );
        assert!(profile(Path::new("/opt/a\"b")).is_err());
        assert!(profile(Path::new("bin/ringfence")).is_err());
        assert!(profile(Path::new("/opt/a\nb")).is_err());
    }
}
