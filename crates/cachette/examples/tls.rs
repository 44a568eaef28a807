//! TLS: a `CacheManager` on a `rediss://` server, with the CA (and, for mutual TLS, the client
//! certificate) from the environment or `config.json`:
//!
//! ```text
//! REDIS_URL=rediss://cache.internal:6380/0 \
//! REDIS_TLS_CA_FILE=/etc/cachette/redis-ca.pem \
//! REDIS_TLS_CERT_FILE=/etc/cachette/client.pem REDIS_TLS_KEY_FILE=/etc/cachette/client.key \
//!     cargo run -p cachette --features tls --example tls
//! ```
//!
//! When the configured server is not a `rediss://` one (no `REDIS_URL`, or a plain
//! `redis://` one), it says what it would need and exits successfully without connecting.

use cachette::Ttl;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = cachette::Config::load()?;
    let tls = config.endpoint()?.is_some_and(|e| e.is_tls());
    if !tls {
        println!(
            "the configured backend is {}, not a rediss:// server: nothing to show.\n\
             Set REDIS_URL=rediss://host:port/db and, for a private CA, REDIS_TLS_CA_FILE \
             (plus REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE for mutual TLS).",
            config.describe_backend()
        );
        return Ok(());
    }
    if !cfg!(feature = "tls") {
        println!("rediss:// needs the cachette feature \"tls\": cargo run --features tls ...");
        return Ok(());
    }
    let options = &config.tls_options;
    println!(
        "TLS to {}: CA {}, client certificate {}{}",
        config.describe_backend(),
        options
            .ca_file
            .as_ref()
            .map_or("the bundled public roots".to_owned(), |p| p
                .display()
                .to_string()),
        options
            .cert_file
            .as_ref()
            .map_or("none".to_owned(), |p| p.display().to_string()),
        if options.insecure {
            " (VERIFICATION OFF: development only)"
        } else {
            ""
        }
    );
    // Reads and checks the certificate files now: a bad one is a configuration error naming
    // the setting and the path.
    let cache = config.builder().build()?;
    // The first command connects (`ping` only says yes or no; `info` carries the error).
    match cache.info().await {
        Ok(_) => println!("connected: the server's certificate passed every check"),
        Err(e) if e.is_tls() => {
            // Which check failed: CA, host name, expiry, or the client certificate.
            return Err(format!("TLS handshake failed: {e}").into());
        }
        Err(e) => return Err(e.into()),
    }
    cache
        .set("tls-example:greeting", &"hello over TLS", Ttl::secs(60))
        .await?;
    let back: Option<String> = cache.get("tls-example:greeting").await?;
    println!("read back: {back:?}");
    cache.delete("tls-example:greeting").await?;
    Ok(())
}
