//! The backend of a disabled manager (`enabled: false`): stores nothing, finds nothing.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Backend, KeyTtl, ScanPage};
use crate::backend::info::ServerInfo;
use crate::error::{Error, ErrorKind, Result};

/// Stores nothing: reads miss, writes succeed without effect, `ping` fails with
/// [`ErrorKind::Disabled`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NullBackend;

#[async_trait]
impl Backend for NullBackend {
    fn name(&self) -> &'static str {
        "disabled"
    }
    async fn get(&self, _key: &str) -> Result<Option<Bytes>> {
        Ok(None)
    }
    async fn set(&self, _key: &str, _value: Bytes, _ttl: Option<Duration>) -> Result<()> {
        Ok(())
    }
    async fn set_nx(&self, _key: &str, _value: Bytes, _ttl: Option<Duration>) -> Result<bool> {
        Ok(false)
    }
    async fn delete_many(&self, _keys: &[String]) -> Result<u64> {
        Ok(0)
    }
    async fn exists(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }
    async fn expire(&self, _key: &str, _ttl: Duration) -> Result<bool> {
        Ok(false)
    }
    async fn persist(&self, _key: &str) -> Result<bool> {
        Ok(false)
    }
    async fn ttl(&self, _key: &str) -> Result<KeyTtl> {
        Ok(KeyTtl::Missing)
    }
    async fn scan(&self, _cursor: u64, _pattern: &str, _count: usize) -> Result<ScanPage> {
        Ok(ScanPage::default())
    }
    async fn info(&self) -> Result<ServerInfo> {
        let mut info = ServerInfo::default();
        info.sections.entry("server".into()).or_default().insert(
            "backend".into(),
            crate::backend::info::InfoValue::Text("disabled".into()),
        );
        Ok(info)
    }
    async fn ping(&self) -> Result<()> {
        Err(Error::new(
            ErrorKind::Disabled,
            "caching is disabled (enabled: false)",
        ))
    }
}
