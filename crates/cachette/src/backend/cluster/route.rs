//! Single-slot routing: a command (or a pipeline of one slot's commands) sent to the owner of
//! its slot, following `MOVED` and `ASK`, retrying `TRYAGAIN`, refreshing the topology on
//! `READONLY`/`CLUSTERDOWN` and when the owner's connection fails (see the module docs of
//! [`super`]).

use std::time::{Duration, Instant};

use redis::{Cmd, Value};

use super::{
    convert, key_slot, on_node, sort_reply, to_value_error, Answer, ClusterBackend, Reply,
    MAX_REDIRECTS,
};
use crate::backend::RedisBackend;
use crate::error::{Error, ErrorKind, Result};

impl ClusterBackend {
    /// Runs a single-slot command on the owner of `slot`, following redirections.
    pub(super) async fn route(&self, slot: u16, cmd: &Cmd, payload: usize) -> Result<Value> {
        self.bounded(
            "redis cluster command",
            self.route_unbounded(slot, cmd, payload),
        )
        .await
    }

    pub(super) async fn route_unbounded(
        &self,
        slot: u16,
        cmd: &Cmd,
        payload: usize,
    ) -> Result<Value> {
        self.route_request(slot, Request::One(cmd), payload)
            .await
            .map(|(value, _)| value)
    }

    /// Runs a single-slot request on the owner of `slot`, following redirections; with the
    /// node that answered (`host:port`).
    async fn route_request(
        &self,
        slot: u16,
        request: Request<'_>,
        payload: usize,
    ) -> Result<(Value, String)> {
        let mut target: Option<(String, bool)> = None;
        let mut refreshed = false;
        for _ in 0..=MAX_REDIRECTS {
            let (node, addr, asking) = match &target {
                Some((addr, asking)) => (self.node(addr)?, addr.clone(), *asking),
                None => {
                    let topology = self.topology().await?;
                    let Some(owner) = topology.owner(slot) else {
                        if !refreshed {
                            refreshed = true;
                            self.refresh(Instant::now()).await?;
                            continue;
                        }
                        return Err(Error::new(
                            ErrorKind::Backend,
                            format!("slot {slot} is served by no Redis Cluster node"),
                        ));
                    };
                    (owner.node.clone(), owner.addr.clone(), false)
                }
            };
            match request.on(&node, asking, payload).await {
                Ok(Ok(value)) => return Ok((value, addr)),
                Ok(Err(e)) => match sort_reply(&e) {
                    Reply::Moved(to) => {
                        self.refresh_soon();
                        target = Some((to, false));
                    }
                    Reply::Ask(to) => target = Some((to, true)),
                    Reply::TryAgain => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Reply::Refresh => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        self.refresh(Instant::now()).await?;
                        target = None;
                    }
                    Reply::Fail => return Err(Error::from(e)),
                },
                Err(e) if e.kind() == ErrorKind::Connection && !refreshed => {
                    // The node is gone: a failover may have moved its slots.
                    refreshed = true;
                    self.refresh(Instant::now()).await?;
                    let topology = self.topology().await?;
                    match topology.owner(slot) {
                        Some(owner) if owner.addr != addr => target = None,
                        _ => return Err(e),
                    }
                }
                Err(e) => {
                    if e.kind() == ErrorKind::Timeout {
                        self.refresh_soon();
                    }
                    return Err(e);
                }
            }
        }
        Err(Error::new(
            ErrorKind::Backend,
            format!("slot {slot}: more than {MAX_REDIRECTS} redirections"),
        ))
    }

    /// `GET` and `PTTL` of `key` in one round trip (for the near cache), with the node that
    /// answered (`host:port`): the value, and its remaining time in milliseconds (`-1` none,
    /// `-2` gone).
    pub(crate) async fn get_with_ttl(&self, key: &str) -> Result<(Option<Vec<u8>>, i64, String)> {
        let commands = [
            redis::cmd("GET").arg(key).clone(),
            redis::cmd("PTTL").arg(key).clone(),
        ];
        let (value, addr) = self
            .bounded(
                "redis cluster command",
                self.route_request(key_slot(key), Request::Pipe(&commands), 0),
            )
            .await?;
        let (value, ttl): (Option<Vec<u8>>, i64) = convert(value)?;
        Ok((value, ttl, addr))
    }

    pub(super) async fn route_key<T: redis::FromRedisValue>(
        &self,
        key: &str,
        cmd: &Cmd,
        payload: usize,
    ) -> Result<T> {
        convert(self.route(key_slot(key), cmd, payload).await?)
    }
}

/// What [`ClusterBackend::route_request`] sends: one command, or commands of one slot in one
/// pipeline.
#[derive(Clone, Copy)]
enum Request<'a> {
    One(&'a Cmd),
    /// Answered with an array of their replies, or the first error reply among them (they
    /// share a slot, so a redirection redirects them all).
    Pipe(&'a [Cmd]),
}

impl Request<'_> {
    async fn on(self, node: &RedisBackend, asking: bool, payload: usize) -> Result<Answer> {
        let commands = match self {
            Request::One(cmd) => return on_node(node, cmd, asking, payload).await,
            Request::Pipe(commands) => commands,
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for cmd in commands {
            // `ASKING` lets only the next command in: one before each.
            if asking {
                pipe.cmd("ASKING");
            }
            pipe.add_command(cmd.clone());
        }
        let replies: Vec<Value> = node
            .exec("redis cluster pipeline", payload, |mut conn| {
                let pipe = &pipe;
                async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
            })
            .await?;
        let mut replies: Vec<Value> = if asking {
            replies.into_iter().skip(1).step_by(2).collect()
        } else {
            replies
        };
        if let Some(i) = replies
            .iter()
            .position(|v| matches!(v, Value::ServerError(_)))
        {
            return Ok(to_value_error(replies.swap_remove(i)));
        }
        Ok(Ok(Value::Array(replies)))
    }
}
