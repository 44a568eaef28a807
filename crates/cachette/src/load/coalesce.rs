//! In-process request coalescing ("single flight").
//!
//! The first caller that misses a key becomes its **leader** and runs the loader; callers that
//! miss the same key meanwhile become **waiters** of the leader's [`Flight`] and receive its
//! outcome as encoded bytes (so the value type need not be `Clone`, and a waiter may decode it
//! into its own type). The registry is touched only on a miss, never on a hit.
//!
//! The leader holds a [`Lead`] guard. Whatever happens to the leader — success, error, panic
//! (caught by the caller of [`Lead::finish`]) or cancellation (the guard is dropped) — the
//! flight leaves the registry and its waiters are woken: no state outlives a flight.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::error::{Error, ErrorKind};

/// Number of independently locked shards of the registry.
const SHARDS: usize = 16;

/// The keys being loaded right now, each with its flight.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    shards: [Mutex<HashMap<String, Arc<Flight>>>; SHARDS],
}

/// A failed leader's outcome in a form its waiters can rebuild their own from (`#[cached]`
/// functions: a `None`, or a clone of the body's `Err`).
pub(crate) type Payload = Arc<dyn Any + Send + Sync>;

/// Where a read-through call of a decorated function puts its body's failed outcome when it
/// leads (`outgoing`), and finds the leader's when it waited (`incoming`).
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    pub(crate) outgoing: Mutex<Option<Payload>>,
    pub(crate) incoming: Mutex<Option<Payload>>,
}

/// What a flight's waiters receive.
#[derive(Debug, Clone)]
pub(crate) enum Shared {
    /// The loader's value, encoded with the manager's codec.
    Value(Bytes),
    /// The loader failed (or timed out, or panicked): waiters get an error of this kind, or
    /// their stale copy.
    Failed {
        kind: ErrorKind,
        message: Arc<str>,
        /// The leader's outcome, when its caller could share it (see [`Handoff`]).
        payload: Option<Payload>,
    },
    /// The leader was cancelled before it finished: waiters start over (one of them leads).
    Abandoned,
}

impl Shared {
    pub(crate) fn failed(kind: ErrorKind, message: impl Into<Arc<str>>) -> Shared {
        Shared::Failed {
            kind,
            message: message.into(),
            payload: None,
        }
    }

    /// The error a waiter without a stale copy returns for a failed flight.
    pub(crate) fn error(kind: ErrorKind, message: &str, key: &str) -> Error {
        Error::new(kind, message.to_owned()).with_key(key)
    }
}

/// One load in progress.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    result: Mutex<Option<Shared>>,
    done: Notify,
}

impl Flight {
    /// Waits for the leader's outcome.
    pub(crate) async fn wait(&self) -> Shared {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(result) = self.result.lock().clone() {
                return result;
            }
            notified.await;
        }
    }

    /// The outcome, if the leader has finished.
    #[cfg(test)]
    fn outcome(&self) -> Option<Shared> {
        self.result.lock().clone()
    }
}

/// A caller's role for one key.
#[derive(Debug)]
pub(crate) enum Join {
    /// Run the loader and [`Lead::finish`].
    Lead(Lead),
    /// Another caller is loading: wait for its [`Flight`].
    Wait(Arc<Flight>),
}

impl Flights {
    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Arc<Flight>>> {
        // The low bits of xxh3 are well mixed; `SHARDS` is a power of two.
        let h = xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as usize;
        &self.shards[h & (SHARDS - 1)]
    }

    /// Leads the flight for `key`, or joins the one in progress.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Join {
        let mut map = self.shard(key).lock();
        if let Some(flight) = map.get(key) {
            return Join::Wait(flight.clone());
        }
        let flight = Arc::new(Flight::default());
        map.insert(key.to_owned(), flight.clone());
        Join::Lead(Lead {
            flights: self.clone(),
            key: key.to_owned(),
            flight,
            finished: false,
        })
    }

    /// Leads the flight for `key` only if none is in progress (early refreshes never wait).
    pub(crate) fn try_lead(self: &Arc<Self>, key: &str) -> Option<Lead> {
        match self.join(key) {
            Join::Lead(lead) => Some(lead),
            Join::Wait(_) => None,
        }
    }

    /// How many flights are in progress (for leak tests).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// The leader's handle on its flight; finishing or dropping it ends the flight.
#[derive(Debug)]
pub(crate) struct Lead {
    flights: Arc<Flights>,
    key: String,
    flight: Arc<Flight>,
    finished: bool,
}

impl Lead {
    /// Ends the flight with `result` and wakes its waiters.
    pub(crate) fn finish(mut self, result: Shared) {
        self.end(result);
    }

    fn end(&mut self, result: Shared) {
        if self.finished {
            return;
        }
        self.finished = true;
        {
            // Leave the registry first: a caller arriving from now on reads the cache (where a
            // successful leader has already stored its value) or leads a new flight.
            let mut map = self.flights.shard(&self.key).lock();
            if map
                .get(self.key.as_str())
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(self.key.as_str());
            }
        }
        *self.flight.result.lock() = Some(result);
        self.flight.done.notify_waiters();
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        // Cancelled (or unwound) before finishing: hand the key to the waiters.
        self.end(Shared::Abandoned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_get_the_leaders_bytes_and_nothing_leaks() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(lead) = flights.join("k") else {
            panic!("first caller leads")
        };
        let Join::Wait(flight) = flights.join("k") else {
            panic!("second caller waits")
        };
        assert!(flights.try_lead("k").is_none());
        let waiter = tokio::spawn(async move { flight.wait().await });
        tokio::task::yield_now().await;
        lead.finish(Shared::Value(Bytes::from_static(b"42")));
        match waiter.await.unwrap() {
            Shared::Value(b) => assert_eq!(b.as_ref(), b"42"),
            other => panic!("{other:?}"),
        }
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn dropping_the_lead_abandons_the_flight() {
        let flights = Arc::new(Flights::default());
        let Join::Lead(lead) = flights.join("k") else {
            panic!()
        };
        let Join::Wait(flight) = flights.join("k") else {
            panic!()
        };
        drop(lead);
        assert!(matches!(flight.outcome(), Some(Shared::Abandoned)));
        assert!(matches!(flight.wait().await, Shared::Abandoned));
        assert_eq!(flights.len(), 0);
        assert!(flights.try_lead("k").is_some());
        assert_eq!(flights.len(), 0);
    }
}
