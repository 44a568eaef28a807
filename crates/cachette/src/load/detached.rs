//! [`CacheManager::get_or_load_shared`](crate::CacheManager::get_or_load_shared): read-through with the loader in a spawned task, so
//! that early refreshes and slow reloads happen in the background.

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::load::coalesce::{Join, Shared};
use crate::load::leader::{Call, Read};
use crate::load::state::State;
use crate::load::{LoadError, LoadOptions};
use crate::stats::Counters;

impl State {
    /// What [`CacheManager::get_or_load_shared`](crate::CacheManager::get_or_load_shared) runs.
    pub(crate) async fn get_or_load_shared<T, E, F, Fut>(
        self: &Arc<Self>,
        key: &str,
        options: &LoadOptions,
        load: F,
    ) -> Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let full = match self.checked_key(key) {
            Ok(full) => full,
            Err(e) => {
                self.counters().error();
                if !options.fallback_on_error {
                    return Err(LoadError::Cache(e));
                }
                return load().await.map_err(LoadError::Loader);
            }
        };
        let call = Call {
            cache: self,
            full: full.into(),
            options,
            counters: None,
            handoff: None,
        };
        loop {
            let (stale, fallback) = match call.read::<T>().await {
                Read::Fresh(value) => return Ok(value),
                Read::Early(bytes, value) => {
                    let lead = if options.coalesce {
                        self.flights().try_lead(&call.full)
                    } else {
                        None
                    };
                    if lead.is_some() || !options.coalesce {
                        let task = Detached::new(&call);
                        tokio::spawn(async move {
                            let call = task.call();
                            // The outcome is in the cache and the stats.
                            let _ = call
                                .refresh_early_led(lead, bytes, |_: &T| true, load)
                                .await;
                        });
                    }
                    return Ok(value);
                }
                Read::Stale(value) => (Some(value), false),
                Read::Miss => (None, false),
                Read::Failed(e) => {
                    if !options.fallback_on_error {
                        return Err(LoadError::Cache(e));
                    }
                    tracing::warn!(error = %e, "cachette: cache read failed; running uncached");
                    (None, true)
                }
            };
            let lead = if options.coalesce {
                match self.flights().join(&call.full) {
                    Join::Lead(lead) => Some(lead),
                    Join::Wait(flight) => match call.wait_for(&flight, stale.is_some()).await {
                        Some(Shared::Value(bytes)) => {
                            if let Ok(value) = self.codec().decode::<T>(&call.full, &bytes) {
                                call.both(Counters::coalesced);
                                return Ok(value);
                            }
                            None
                        }
                        Some(Shared::Failed { kind, message, .. }) => {
                            return match stale {
                                Some(value) => Ok(call.serve_stale(value, &message).0),
                                None => {
                                    Err(LoadError::Cache(Shared::error(kind, &message, &call.full)))
                                }
                            };
                        }
                        Some(Shared::Abandoned) => continue,
                        None => match stale {
                            Some(value) => {
                                let why = "the reload exceeded the soft timeout";
                                return Ok(call.serve_stale(value, why).0);
                            }
                            None => continue,
                        },
                    },
                }
            } else {
                None
            };
            // Lead from a task of its own; wait for it here (or only until the soft timeout).
            let task = Detached::new(&call);
            let mut handle = tokio::spawn(async move {
                let call = task.call();
                call.lead(lead, load, |_: &T| true, None, fallback).await
            });
            let joined = match (&stale, options.soft_timeout) {
                (Some(_), Some(soft)) => match tokio::time::timeout(soft, &mut handle).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        // The task goes on and stores the value when it finishes.
                        let why = "the reload exceeded the soft timeout";
                        return stale
                            .map(|value| call.serve_stale(value, why).0)
                            .ok_or_else(|| LoadError::Cache(Error::timeout("the loader", soft)));
                    }
                },
                _ => handle.await,
            };
            return match joined {
                Ok(Ok((value, _))) => Ok(value),
                Ok(Err(e)) => match stale {
                    Some(value) => Ok(call.serve_stale(value, "the reload failed").0),
                    None => Err(e),
                },
                Err(join) => match join.try_into_panic() {
                    Ok(payload) => std::panic::resume_unwind(payload),
                    Err(_) => Err(LoadError::Cache(Error::new(
                        ErrorKind::Loader,
                        "the loader task was cancelled (runtime shutting down)",
                    ))),
                },
            };
        }
    }
}

/// What a spawned task needs to rebuild a [`Call`].
struct Detached {
    cache: Arc<State>,
    full: String,
    options: LoadOptions,
}

impl Detached {
    fn new(call: &Call<'_>) -> Detached {
        Detached {
            cache: call.cache.clone(),
            full: call.full.clone().into_owned(),
            options: call.options.clone(),
        }
    }

    fn call(&self) -> Call<'_> {
        Call {
            cache: &self.cache,
            full: std::borrow::Cow::Borrowed(&self.full),
            options: &self.options,
            counters: None,
            handoff: None,
        }
    }
}
