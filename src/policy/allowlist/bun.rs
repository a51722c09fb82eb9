//! Bun: `package.json#trustedDependencies`, an array of package names whose install scripts
//! Bun runs.
//!
//! ```json
//! { "trustedDependencies": ["esbuild", "sharp"] }
//! ```
//!
//! Names only: no versions, no globs (oven-sh/bun#12960 asks for them). Trust is not
//! transitive. A `file:`, `link:`, `git:` or `github:` dependency is trusted only when listed,
//! and listing its name is how it is listed, so a name here allows the package from any
//! source (unlike npm and pnpm, where a name approves only registry packages). Bun's built-in
//! default list (popular npm packages Bun trusts without being told) is not an allowlist the
//! project wrote and is not applied. An item with a version or a `*` is a name no package has:
//! it never matches (`allowlist-key-never-matches`).

use super::doc::{self, Doc};
use super::npm::valid_name;
use super::spec::{Matcher, NamePattern, Versions};
use super::{AllowlistError, Allowlists, Tool, Verdict};

/// The field read.
pub const FIELD: &str = "trustedDependencies";

/// Read `package.json#trustedDependencies` into `out`.
pub(super) fn read(d: &Doc, out: &mut Allowlists) -> Result<(), AllowlistError> {
    let Some(root) = &d.root else {
        return Ok(());
    };
    let Some(m) = doc::field(root, FIELD) else {
        return Ok(());
    };
    for (name, line) in super::string_list(d, m, "`trustedDependencies`")? {
        let matcher = if valid_name(name) {
            Matcher::Name {
                name: NamePattern::Exact(name.to_string()),
                versions: Versions::Any,
                any_source: true,
            }
        } else {
            out.warn(
                "allowlist-key-never-matches",
                d,
                line,
                format!(
                    "Bun never matches the `trustedDependencies` item `{name}`: it lists package names only (no versions, no wildcards)"
                ),
            );
            Matcher::Never
        };
        out.push(Tool::Bun, d, FIELD, line, name, Verdict::Allow, matcher);
    }
    Ok(())
}
