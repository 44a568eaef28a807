//! The process-wide default manager. Only this module uses it (every other test names its
//! manager with `cache = ...`), and only one test here installs it, because the test binary
//! runs every test as a thread of one process.

use std::sync::atomic::{AtomicUsize, Ordering};

use cachette::{cache_evict, cached, CacheManager};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = 60)]
async fn answer(question: &str) -> Result<u64, std::io::Error> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(question.len() as u64)
}

#[cache_evict(key = "config")]
async fn reset_config() -> bool {
    true
}

#[tokio::test]
async fn decorated_functions_without_cache_use_the_installed_default() {
    let prefix = crate::support::unique_prefix("default");
    let manager = CacheManager::builder()
        .key_prefix(prefix.clone())
        .build()
        .unwrap();
    cachette::install(manager.clone()).unwrap();
    let again = CacheManager::memory();
    assert!(cachette::install(again).is_err(), "installing twice fails");
    assert_eq!(cachette::default_manager().unwrap().prefix(), prefix);

    assert_eq!(answer("why?").await.unwrap(), 4);
    assert_eq!(answer("why?").await.unwrap(), 4);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    let key = cachette::key::DefaultKey::function(module_path!(), "answer")
        .arg("why?")
        .build()
        .unwrap();
    assert_eq!(manager.get::<u64>(&key).await.unwrap(), Some(4));

    manager
        .set("config", &1, cachette::Ttl::Default)
        .await
        .unwrap();
    assert!(reset_config().await);
    assert!(!manager.exists("config").await.unwrap());

    let stats = cachette::runtime::function_stats();
    let answer = stats
        .iter()
        .find(|s| s.name == format!("{}::answer", module_path!()))
        .unwrap();
    assert_eq!((answer.stats.misses, answer.stats.hits), (1, 1));
    let evict = stats
        .iter()
        .find(|s| s.name == format!("{}::reset_config", module_path!()))
        .unwrap();
    assert_eq!(evict.evicted, 1);
}
