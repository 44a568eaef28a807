//! Starts a 3-primary Redis Cluster on free loopback ports, prints its seeds on one line
//! (`127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`), and keeps it until its standard input closes;
//! then kills every node. `scripts/test` runs it so that every test process of a run can share
//! one cluster (`CACHETTE_TEST_CLUSTER`, see `RedisCluster::shared`).

use std::io::{Read, Write};

use cachette_test_support::RedisCluster;

fn main() {
    let cluster = match RedisCluster::spawn(3, 0) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("cachette-test-cluster: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout();
    if writeln!(out, "{}", cluster.seeds_csv())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(1);
    }
    // Until the parent closes our stdin (or exits): whatever it sends is ignored.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(cluster);
}
