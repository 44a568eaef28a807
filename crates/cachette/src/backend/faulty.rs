//! A test backend: the memory backend with reads and/or writes failing (with a connection
//! error) while a switch is on, counting every call. Shared by the unit tests of the circuit
//! breaker and of the macro runtime.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Backend, KeyTtl, MemoryBackend, MemoryConfig, ScanPage};
use crate::backend::info::ServerInfo;
use crate::error::{Error, ErrorKind, Result};

#[derive(Debug)]
pub(crate) struct Faulty {
    inner: MemoryBackend,
    pub(crate) fail_reads: AtomicBool,
    pub(crate) fail_writes: AtomicBool,
    pub(crate) calls: AtomicU64,
}

impl Faulty {
    pub(crate) fn new() -> Faulty {
        Faulty {
            inner: MemoryBackend::new(MemoryConfig::default()),
            fail_reads: AtomicBool::new(false),
            fail_writes: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        }
    }

    /// Fails (or stops failing) every operation.
    pub(crate) fn set_down(&self, down: bool) {
        self.fail_reads.store(down, Ordering::SeqCst);
        self.fail_writes.store(down, Ordering::SeqCst);
    }

    fn check(&self, failing: &AtomicBool) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if failing.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Connection, "test backend is down"));
        }
        Ok(())
    }

    fn read(&self) -> Result<()> {
        self.check(&self.fail_reads)
    }

    fn write(&self) -> Result<()> {
        self.check(&self.fail_writes)
    }
}

#[async_trait]
impl Backend for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.read()?;
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.write()?;
        self.inner.set(key, value, ttl).await
    }
    async fn set_nx(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.write()?;
        self.inner.set_nx(key, value, ttl).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<u64> {
        self.write()?;
        self.inner.delete_many(keys).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.read()?;
        self.inner.exists(key).await
    }
    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.write()?;
        self.inner.expire(key, ttl).await
    }
    async fn persist(&self, key: &str) -> Result<bool> {
        self.write()?;
        self.inner.persist(key).await
    }
    async fn ttl(&self, key: &str) -> Result<KeyTtl> {
        self.read()?;
        self.inner.ttl(key).await
    }
    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage> {
        self.read()?;
        self.inner.scan(cursor, pattern, count).await
    }
    async fn info(&self) -> Result<ServerInfo> {
        self.read()?;
        self.inner.info().await
    }
    async fn ping(&self) -> Result<()> {
        self.read()
    }
}
