//! The process-wide default [`CacheManager`] that decorated functions use when they do not
//! name one with `cache = ...`.

use std::sync::OnceLock;

use crate::error::{Error, ErrorKind};
use crate::manager::CacheManager;

static DEFAULT: OnceLock<Option<CacheManager>> = OnceLock::new();

/// Installs `manager` as the process-wide default manager of decorated functions.
///
/// Call it once, early in `main`, before the first decorated call; without it the default is
/// built from the configuration on first use (see [`default_manager`]).
///
/// # Errors
/// [`ErrorKind::Config`] if a default manager is already installed, or was already built
/// from the configuration by an earlier decorated call. The manager in place is kept.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachette::Error> {
/// let manager = cachette::CacheManager::builder().key_prefix("myapp:").build()?;
/// cachette::install(manager)?;
/// assert_eq!(cachette::default_manager().unwrap().prefix(), "myapp:");
/// assert!(cachette::install(cachette::CacheManager::memory()).is_err());
/// # Ok(())
/// # }
/// ```
pub fn install(manager: CacheManager) -> Result<(), Error> {
    DEFAULT.set(Some(manager)).map_err(|_| {
        Error::new(
            ErrorKind::Config,
            "a default CacheManager is already installed (or was built from the configuration \
             by an earlier decorated call)",
        )
    })
}

/// The process-wide default manager: the one given to [`install`], or else the one described
/// by `config.json` and the environment ([`CacheManager::from_env`]), built on first use —
/// the embedded memory backend when no Redis server is named, a disabled manager (decorated
/// functions run uncached) with `enabled: false`.
///
/// `None` when the configuration is invalid or the manager could not be built (for example
/// outside a tokio runtime): the reason is logged once with `tracing::error!` and decorated
/// functions that rely on the default run uncached rather than fail.
///
/// The lazily built manager lives as long as the process; its Redis connections and the
/// memory backend's background expiry run on the tokio runtime of the first decorated call,
/// so in programs with several runtimes, build it in `main` and [`install`] it.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Without config.json or REDIS_* variables: the embedded memory backend.
/// let cache = cachette::default_manager().ok_or("invalid cache configuration")?;
/// println!("decorated functions cache in {}", cache.describe());
/// # Ok(())
/// # }
/// ```
pub fn default_manager() -> Option<&'static CacheManager> {
    DEFAULT.get_or_init(build_from_config).as_ref()
}

#[cold]
fn build_from_config() -> Option<CacheManager> {
    match CacheManager::from_env() {
        Ok(manager) => {
            tracing::debug!(
                backend = manager.describe(),
                "cachette: built the default manager from the configuration"
            );
            Some(manager)
        }
        Err(e) => {
            tracing::error!(error = %e, "cachette: cannot build the default cache manager; decorated functions without `cache = ...` run uncached");
            None
        }
    }
}
