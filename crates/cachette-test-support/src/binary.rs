//! Locating the `redis-server` and `redis-cli` binaries.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::{SpawnError, SpawnErrorKind};

/// Environment variable naming the `redis-server` binary to use.
pub(crate) const SERVER_ENV: &str = "REDIS_SERVER_BIN";
/// Environment variable naming the `redis-cli` binary to use.
pub(crate) const CLI_ENV: &str = "REDIS_CLI_BIN";

const INSTALL_HINT: &str = "install redis-server, e.g. `apt-get install redis-server`, or point \
                            REDIS_SERVER_BIN at the binary";

/// Whether a `redis-server` binary can be found and runs (`redis-server --version` succeeds).
///
/// Looks at `REDIS_SERVER_BIN`, then `PATH`, like [`RedisServer::spawn`](crate::RedisServer::spawn).
/// The answer is computed once per process.
#[must_use]
pub fn redis_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        server_binary().is_ok_and(|bin| {
            Command::new(bin)
                .arg("--version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
    })
}

/// The `redis-server` binary: `REDIS_SERVER_BIN`, else `redis-server` on `PATH`.
pub(crate) fn server_binary() -> Result<PathBuf, SpawnError> {
    if let Some(bin) = env::var_os(SERVER_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&bin);
        return if is_executable(&path) || path.components().count() == 1 {
            // A bare name is left to `Command`'s own PATH lookup.
            Ok(path)
        } else {
            Err(SpawnError::new(
                SpawnErrorKind::BinaryNotFound,
                format!(
                    "{SERVER_ENV}={} is not an executable file; {INSTALL_HINT}",
                    path.display()
                ),
            ))
        };
    }
    find_on_path("redis-server").ok_or_else(|| {
        SpawnError::new(
            SpawnErrorKind::BinaryNotFound,
            format!("redis-server not found on PATH; {INSTALL_HINT}"),
        )
    })
}

/// The `redis-cli` binary: `REDIS_CLI_BIN`, else next to `server`, else `redis-cli` on `PATH`,
/// else the bare name (so the spawn error names it).
pub(crate) fn cli_binary(server: &Path) -> PathBuf {
    if let Some(bin) = env::var_os(CLI_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(bin);
    }
    if let Some(dir) = server.parent().filter(|d| !d.as_os_str().is_empty()) {
        let sibling = dir.join("redis-cli");
        if is_executable(&sibling) {
            return sibling;
        }
    }
    find_on_path("redis-cli").unwrap_or_else(|| PathBuf::from("redis-cli"))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path: OsString = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}
