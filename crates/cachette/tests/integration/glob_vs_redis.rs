//! Fuzzing the memory backend's glob matcher against a real `redis-server`: the same key set,
//! the same patterns, `KEYS pattern` on the server vs [`cachette::glob::Pattern`] (and
//! `MemoryBackend::keys` for UTF-8 keys). Patterns and keys are drawn from the bytes that glob
//! syntax cares about, plus non-UTF-8 and NUL bytes. Bounded: 96 cases of 12 keys x 6 patterns.

use std::collections::BTreeSet;

use cachette::backend::{Backend, MemoryBackend};
use cachette::glob::Pattern;
use cachette_test_support::RedisServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn glob_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(b"ab*?[]^-\\!\x00\x80\xff".to_vec()),
        0..8,
    )
}

fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(b"ab*?[]^-\\\x00\x80\xff".to_vec()),
        0..6,
    )
}

#[test]
fn memory_glob_matches_what_redis_keys_returns() {
    let server = RedisServer::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt.block_on(async {
        redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    });
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::btree_set(key_bytes(), 1..12),
        prop::collection::vec(glob_bytes(), 1..6),
    );
    let result = runner.run(&strategy, |(keys, patterns)| {
        let memory = MemoryBackend::default();
        let mut conn = conn.clone();
        let server_sets = rt.block_on(async {
            let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("SET").arg(k.as_slice()).arg(1).ignore();
                if let Ok(k) = std::str::from_utf8(k) {
                    memory
                        .set(k, bytes::Bytes::from_static(b"1"), None)
                        .await
                        .unwrap();
                }
            }
            let _: () = pipe.query_async(&mut conn).await.unwrap();
            let mut out = Vec::new();
            for p in &patterns {
                let found: Vec<Vec<u8>> = redis::cmd("KEYS")
                    .arg(p.as_slice())
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                out.push(found.into_iter().collect::<BTreeSet<_>>());
            }
            out
        });
        for (p, on_server) in patterns.iter().zip(server_sets) {
            let pattern = Pattern::from_bytes(p);
            let here: BTreeSet<Vec<u8>> = keys
                .iter()
                .filter(|k| pattern.is_match_bytes(k))
                .cloned()
                .collect();
            prop_assert_eq!(
                &here,
                &on_server,
                "pattern {:?}",
                String::from_utf8_lossy(p)
            );
            // The memory backend's own listing agrees for the UTF-8 part (its keys are strings).
            if let Ok(p) = std::str::from_utf8(p) {
                let listed: BTreeSet<Vec<u8>> = rt
                    .block_on(memory.keys(p))
                    .unwrap()
                    .into_iter()
                    .map(String::into_bytes)
                    .collect();
                let utf8: BTreeSet<Vec<u8>> = on_server
                    .iter()
                    .filter(|k| std::str::from_utf8(k).is_ok())
                    .cloned()
                    .collect();
                prop_assert_eq!(listed, utf8, "memory keys({:?})", p);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
