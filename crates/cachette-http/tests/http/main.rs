//! The HTTP cache over real HTTP: an axum server on a loopback port, hyper's HTTP/1.1
//! client (and raw TCP for the exact bytes), each rule on the memory backend and on a real
//! `redis-server`.

mod rules;
mod support;
mod tags;
