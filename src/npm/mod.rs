//! npm itself: find it, run `npm install|ci --ignore-scripts` outside the sandbox with the user's
//! own configuration and credentials (ringfence never reads them), and capture the environment npm
//! would have given its scripts.

pub mod bins;
pub mod buildkey;
pub mod env;
pub mod gyp;
pub mod manifest;
pub mod optional;
pub mod order;
pub mod project;
pub mod rollback;
pub mod scripts;
pub mod tree;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use thiserror::Error;

/// The preload that captures npm's environment (see the file's header).
const CAPTURE_JS: &str = include_str!("capture.js");

/// npm-related failures. All are exit code 2, and none leaves the project changed by us.
#[derive(Debug, Error)]
pub enum NpmError {
    /// `npm` is not on PATH.
    #[error("`npm` was not found on PATH")]
    NotFound,
    /// `node` is not on PATH.
    #[error("`node` was not found on PATH")]
    NodeNotFound,
    /// The npm found is not the JavaScript CLI we can drive.
    #[error("cannot locate npm's CLI script next to `{}`", .0.display())]
    CliNotFound(PathBuf),
    /// No package.json in the project.
    #[error("no `package.json` in `{}` or any parent directory", .0.display())]
    NoProject(PathBuf),
    /// A manifest or lockfile is not valid JSON.
    #[error("parsing `{}`: {message}", path.display())]
    Parse {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading a file failed.
    #[error("reading `{}`", path.display())]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// `ci` without a lockfile.
    #[error("`ringfence ci` needs a package-lock.json in `{}` (as `npm ci` does)", project.display())]
    CiNeedsLockfile {
        /// The project.
        project: PathBuf,
    },
    /// Creating a directory failed.
    #[error("creating `{}`", path.display())]
    CreateDir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("writing `{}`", path.display())]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Copying a package directory failed.
    #[error("copying `{}`", path.display())]
    Copy {
        /// Source directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Creating a temporary directory failed.
    #[error("creating a temporary directory in `{}`", path.display())]
    TempDir {
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Removing a directory failed.
    #[error("removing `{}`", path.display())]
    RemoveDir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Running npm failed to start.
    #[error("running `{command}`")]
    Spawn {
        /// Command line.
        command: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// npm exited non-zero.
    #[error("`{command}` failed with exit status {code}; no script was run")]
    Failed {
        /// Command line.
        command: String,
        /// Exit status.
        code: i32,
    },
    /// npm did not leave the environment capture behind.
    #[error("npm finished but its environment could not be captured: {0}")]
    Capture(String),
    /// A package name that would escape its directory.
    #[error("refusing package `{name}` at `{location}`: {why}")]
    BadPackage {
        /// Name as found.
        name: String,
        /// Lockfile location.
        location: String,
        /// Reason.
        why: String,
    },
}

/// Something about the installed tree the user should know, that does not stop the install
/// (commands turn these into report warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Stable kebab-case code.
    pub code: &'static str,
    /// Lockfile location of the package concerned.
    pub location: Option<String>,
    /// One line.
    pub message: String,
}

impl NpmError {
    /// What would fix it, when there is one thing to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            NpmError::NotFound => Some("install Node.js and npm, or put them on PATH".into()),
            _ => None,
        }
    }
}

/// The node and npm this machine runs.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The `npm` launcher on PATH.
    pub npm: PathBuf,
    /// npm's CLI entry (`…/npm/bin/npm-cli.js`), canonical.
    pub npm_cli: PathBuf,
    /// npm's package directory (`…/lib/node_modules/npm`), canonical.
    pub npm_dir: PathBuf,
    /// The `node` binary on PATH, canonical.
    pub node: PathBuf,
    /// node's install prefix (`/usr` for `/usr/bin/node`).
    pub node_prefix: PathBuf,
}

impl Toolchain {
    /// Locate node and npm on `path`.
    pub fn locate(path: &str, cwd: &Path) -> Result<Self, NpmError> {
        let npm = crate::util::search_path(path, "npm", cwd).ok_or(NpmError::NotFound)?;
        let node_link =
            crate::util::search_path(path, "node", cwd).ok_or(NpmError::NodeNotFound)?;
        let node = std::fs::canonicalize(&node_link).map_err(|source| NpmError::Read {
            path: node_link.clone(),
            source,
        })?;
        let npm_real = std::fs::canonicalize(&npm).map_err(|source| NpmError::Read {
            path: npm.clone(),
            source,
        })?;
        // `npm` is a symlink to …/npm/bin/npm-cli.js on most installs; on others a shell
        // wrapper next to it.
        let npm_cli = if npm_real.file_name().is_some_and(|n| n == "npm-cli.js") {
            npm_real.clone()
        } else {
            let candidates = [
                npm_real.with_file_name("npm-cli.js"),
                node.parent()
                    .and_then(Path::parent)
                    .map(|p| p.join("lib/node_modules/npm/bin/npm-cli.js"))
                    .unwrap_or_default(),
            ];
            candidates
                .into_iter()
                .find(|c| c.is_file())
                .ok_or_else(|| NpmError::CliNotFound(npm.clone()))?
        };
        let npm_dir = npm_cli
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .ok_or_else(|| NpmError::CliNotFound(npm.clone()))?;
        let node_prefix = node
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/usr"));
        Ok(Toolchain {
            npm,
            npm_cli,
            npm_dir,
            node,
            node_prefix,
        })
    }

    /// The paths npm and npx run from, as a script's processes show them: the launchers on
    /// PATH (a node started by their shebang gets that path as its script) and the CLI scripts.
    pub fn run_paths(&self) -> Vec<PathBuf> {
        let bin = self.npm_dir.join("bin");
        let mut paths = vec![
            self.npm.clone(),
            self.npm.with_file_name("npx"),
            self.npm_cli.clone(),
            bin.join("npm-cli.js"),
            bin.join("npx-cli.js"),
        ];
        paths.sort();
        paths.dedup();
        paths
    }

    /// npm's `node-gyp-bin` shim directory, which npm puts on every script's PATH.
    pub fn node_gyp_bin(&self) -> PathBuf {
        self.npm_dir
            .join("node_modules/@npmcli/run-script/lib/node-gyp-bin")
    }

    /// The node headers directory to use as `nodedir`, when node's prefix ships them.
    pub fn nodedir(&self) -> Option<PathBuf> {
        self.node_prefix
            .join("include/node/common.gypi")
            .is_file()
            .then(|| self.node_prefix.clone())
    }
}

/// What the npm run left behind for the replay.
#[derive(Debug, Clone)]
pub struct Captured {
    /// npm's environment as its scripts would have received it (before per-script additions).
    pub env: BTreeMap<String, String>,
    /// npm's positional arguments (`["install", "left-pad"]`), when they could be parsed.
    pub remain: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct CaptureFile {
    env: BTreeMap<String, String>,
    remain: Option<Vec<String>>,
    #[serde(default)]
    error: Option<String>,
}

/// `install` or `ci`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command2 {
    /// `npm install`.
    Install,
    /// `npm ci`.
    Ci,
}

impl Command2 {
    /// The npm subcommand.
    pub fn as_str(self) -> &'static str {
        match self {
            Command2::Install => "install",
            Command2::Ci => "ci",
        }
    }
}

/// Run `npm <cmd> --ignore-scripts <args>` in `project` with the caller's environment, and
/// capture npm's environment. npm's own output goes to our stderr/stdout as usual.
pub fn run_ignore_scripts(
    tool: &Toolchain,
    cmd: Command2,
    args: &[String],
    project: &Path,
    caller_env: &[(String, String)],
) -> Result<Captured, NpmError> {
    let dir = tempfile::Builder::new()
        .prefix("ringfence-npm-")
        .tempdir()
        .map_err(|source| NpmError::Read {
            path: std::env::temp_dir(),
            source,
        })?;
    let preload = dir.path().join("capture.js");
    let out = dir.path().join("env.json");
    let mut f = std::fs::File::create(&preload).map_err(|source| NpmError::Read {
        path: preload.clone(),
        source,
    })?;
    f.write_all(CAPTURE_JS.as_bytes())
        .map_err(|source| NpmError::Read {
            path: preload.clone(),
            source,
        })?;
    drop(f);

    let original_node_options = caller_env
        .iter()
        .find(|(k, _)| k == "NODE_OPTIONS")
        .map(|(_, v)| v.clone());
    let require = format!("--require {}", quote_node_option(&preload));
    let node_options = match &original_node_options {
        Some(o) if !o.is_empty() => format!("{o} {require}"),
        _ => require,
    };
    let display = format!(
        "npm {} --ignore-scripts{}",
        cmd.as_str(),
        args.iter().map(|a| format!(" {a}")).collect::<String>()
    );
    let status = Command::new(&tool.npm)
        .arg(cmd.as_str())
        .arg("--ignore-scripts")
        .args(args)
        .current_dir(project)
        .env_clear()
        .envs(caller_env.iter().map(|(k, v)| (k, v)))
        .env("NODE_OPTIONS", &node_options)
        .env("RINGFENCE_CAPTURE", &out)
        .status()
        .map_err(|source| NpmError::Spawn {
            command: display.clone(),
            source,
        })?;
    if !status.success() {
        return Err(NpmError::Failed {
            command: display,
            code: status.code().unwrap_or(1),
        });
    }
    let text = std::fs::read(&out).map_err(|e| NpmError::Capture(e.to_string()))?;
    let file: CaptureFile =
        serde_json::from_slice(&text).map_err(|e| NpmError::Capture(e.to_string()))?;
    if let Some(e) = &file.error {
        tracing::warn!("could not parse npm's arguments in the capture: {e}");
    }
    let mut env = file.env;
    // Undo what we added, and never leak our --ignore-scripts into replayed scripts (nested
    // `npm run` calls would inherit it).
    env.remove("RINGFENCE_CAPTURE");
    env.remove("npm_config_ignore_scripts");
    match env.get("NODE_OPTIONS") {
        Some(v) if *v == node_options => match original_node_options {
            Some(o) => {
                env.insert("NODE_OPTIONS".into(), o);
            }
            None => {
                env.remove("NODE_OPTIONS");
            }
        },
        // npm's `node-options` config replaced it: that is what scripts get.
        _ => {}
    }
    Ok(Captured {
        env,
        remain: file.remain,
    })
}

fn quote_node_option(p: &Path) -> String {
    let s = p.display().to_string();
    if s.contains([' ', '"', '\\']) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

/// The project directory npm uses: the nearest ancestor of `start` with a `package.json`.
pub fn find_project(start: &Path) -> Result<PathBuf, NpmError> {
    start
        .ancestors()
        .find(|d| d.join("package.json").is_file())
        .map(Path::to_path_buf)
        .ok_or_else(|| NpmError::NoProject(start.to_path_buf()))
}

/// Read and parse a JSON file, naming it in errors.
pub fn read_json(path: &Path) -> Result<serde_json::Value, NpmError> {
    let text = std::fs::read(path).map_err(|source| NpmError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // npm reads its JSON files with JSON.parse: what that accepts (a BOM, lone surrogate
    // escapes in a dependency's description copied into the lockfile) must not stop us.
    manifest::parse_lenient(&text).map_err(|message| NpmError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

/// `npm pack --ignore-scripts` of the package directory `dir` into `dest` (no lifecycle script
/// runs: `prepack`/`prepare` are what a suspect package would use). Returns the tarball.
pub fn pack_ignore_scripts(
    tool: &Toolchain,
    dir: &Path,
    dest: &Path,
    env: &[(String, String)],
) -> Result<PathBuf, NpmError> {
    let command = format!("npm pack --ignore-scripts --json (in {})", dir.display());
    let out = std::process::Command::new(&tool.node)
        .arg(&tool.npm_cli)
        .args(["pack", "--ignore-scripts", "--json", "--pack-destination"])
        .arg(dest)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| NpmError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(NpmError::Failed {
            command,
            code: out.status.code().unwrap_or(1),
        });
    }
    let parsed: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| NpmError::Parse {
            path: dir.to_path_buf(),
            message: format!("npm pack --json output: {e}"),
        })?;
    let name = parsed[0]["filename"]
        .as_str()
        .ok_or_else(|| NpmError::Parse {
            path: dir.to_path_buf(),
            message: "npm pack --json named no file".into(),
        })?;
    Ok(dest.join(name))
}
