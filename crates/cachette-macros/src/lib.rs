//! Attribute macros for [cachette](https://docs.rs/cachette): `#[cached]`, `#[cache_put]`,
//! `#[cache_evict]` and `#[cached_property]`.
//!
//! Use them through the `cachette` crate (`use cachette::{cached, cache_evict};`), which
//! re-exports them. They only parse and expand: each rewrites the function body *in place*
//! (keeping generics, `impl Trait` arguments and receivers, like `tracing::instrument`) into
//! calls to the documented `cachette::runtime` API, where all caching logic lives.
//!
//! # Errors at compile time
//!
//! Syntax errors in the options stop at the first one (like `syn`); everything else — unknown
//! placeholders, conflicting options, bad `ttl` values, signature problems — is accumulated
//! and reported together, each at the offending token, with the function emitted unchanged
//! next to the errors so that no follow-up errors appear. Type errors (an argument that is not
//! `Serialize`, an `unless` with the wrong signature, a `cache` that is not a manager) are
//! reported by the compiler at the argument or option they concern.
//!
//! # Debugging
//!
//! `CACHETTE_MACRO_DEBUG=1 cargo build` prints every expansion to stderr
//! (`CACHETTE_MACRO_DEBUG=get_user` only those of functions named `get_user`). Cargo does not
//! rebuild when only the variable changes: touch the source file.

mod expand;
mod item;
mod options;
mod template;

use proc_macro::TokenStream;
use proc_macro2::Span;
use syn::Ident;

use crate::options::Macro;

/// Accumulated errors, emitted together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The original item followed by the errors.
    fn emit_with(self, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
        let mut out = item;
        if let Some(errors) = self.0 {
            out.extend(errors.to_compile_error());
        }
        out
    }
}

/// An identifier for the expansion's own locals, invisible to the user's code.
fn mixed(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// An identifier for a user's name (`r#type` included).
fn make_ident(name: &str, span: Span) -> Ident {
    match name.strip_prefix("r#") {
        Some(raw) => Ident::new_raw(raw, span),
        None => Ident::new(name, span),
    }
}

/// Caches the result of an `async fn` or method.
///
/// On a call the key is computed from the arguments; a cached value is returned without
/// running the body; otherwise the body runs and its value is stored (see "Return types").
/// Values are stored as JSON by default (the manager's codec), so
/// `T: Serialize + DeserializeOwned`.
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `ttl = 300` | seconds; `ttl = None`: no expiry; `ttl = <expr>`: a `Duration`, `Option<Duration>` or `cachette::Ttl` (evaluated on each call, may use the arguments). Absent: the manager's default TTL. |
/// | `key = "user:{user_id}"` | a key template: `{arg}`, `{arg.field}`, `{self.field}` are written with `Display`, escaping `%` and `:` (`{{`/`}}` for literal braces). An unknown name is a compile error. |
/// | `key_builder = path` | a function (or closure) called as `path("fn_name", &arg1, &arg2, ...)` with every non-skipped argument except `self`, by reference, returning `impl Into<String>`. Its signature is checked by the compiler. |
/// | `unless = path` | called with `&T`, the value about to be cached (the `Ok` of a `Result`, the inner value of a `Some`, the whole `Option` with `cache_none`); `true` returns it without caching. `fn(&T) -> bool` or a closure. |
/// | `fallback_on_error = true` | the default: a cache failure (down, timeout, undecodable value, key that cannot be built) runs the body uncached, logged with `tracing::warn!`. `false`: the failure is returned as `Err(E::from(error))`; only for functions returning `Result<T, E>` with `E: From<cachette::Error>`. |
/// | `cache = expr` | the `CacheManager` to use: any expression of type `CacheManager`, `&CacheManager`, `Arc<CacheManager>`, `LazyLock<CacheManager>` (anything that derefs to one), evaluated before the body; it may borrow `self` or an argument. Absent: [`cachette::default_manager()`](https://docs.rs/cachette/latest/cachette/fn.default_manager.html). In `&mut self`/`self` methods, write `cache = self.cache.clone()`. |
/// | `skip(arg, ...)` | leaves arguments (a DB handle, a request context, the manager itself) out of the default key and the `key_builder` call. |
/// | `cache_none = true` | for `Option<T>` functions: cache `None` too. |
/// | `name = "get_user"` | the function name used in the default key and given to `key_builder` (to share entries between functions, e.g. with `#[cache_put]`). |
/// | `tags = ["user:{user_id}", "users"]` | tag templates (written and escaped like `key`), rendered per call: the value is stored with these tags and served only while none of them was invalidated (`CacheManager::invalidate_tag`, `#[cache_evict(tags = [...])]`, O(1) whatever the number of entries). A hit reads the tag versions in the same round trip as the value. See the README section "Tags". Also on `#[cache_put]`. |
///
/// ## Stampede and resilience options
///
/// Each maps to the [`LoadOptions`](https://docs.rs/cachette/latest/cachette/struct.LoadOptions.html)
/// setter of the same name (`early_refresh` sets `beta`, `jitter` sets `jitter_percent`), as
/// `CacheManager::get_or_load` takes them. A **duration** is written like `ttl`: an integer
/// literal is whole seconds (`stale_ttl = 60`), anything else is a `Duration` expression
/// (`soft_timeout = Duration::from_millis(200)`, a constant, or an expression evaluated on each
/// call before the body, which may use the arguments). When every option of the attribute
/// (`ttl` included) is a literal, the options are a `static` built at compile time; otherwise
/// they are built on each call. Only `#[cached]` takes them.
///
/// | option | meaning |
/// |---|---|
/// | `coalesce = false` | turn off in-process coalescing (on by default: concurrent misses of one key in one manager run the body once, the others get its outcome without running theirs: its value; its `None`; its `Err` cloned when `E: Clone + Send + Sync + 'static`, else `E::from` an `ErrorKind::Loader` error when `E: From<cachette::Error>`; otherwise, or after a panic, they run the body one at a time). |
/// | `lock = true` | coalesce across processes too, through a lease `{key}#lock{T}` (in the key's cluster slot) in the backend (two more round trips per miss). |
/// | `lock_ttl = 10` | duration of the lease, renewed while the body runs (default 10 s; positive). Needs `lock = true`. |
/// | `lock_wait = 5` | how long a caller waits for another process's lease before serving its stale copy or running the body itself (default 5 s; `0` = do not wait). Needs `lock = true`. |
/// | `early_refresh = 1.0` | XFetch factor (`beta`), a float literal, finite and not negative: one caller refreshes the value shortly before it expires (that caller waits for its body), the others keep getting the cached one. `1.0` is the usual setting, larger refreshes earlier. |
/// | `stale_ttl = 60` | keep a stale copy this long after the TTL, served when the body fails (an `Err`, a `None`) or is too slow (`soft_timeout`, `hard_timeout`). Positive. |
/// | `soft_timeout = Duration::from_millis(200)` | callers that find a stale copy wait at most this long for a reload running in another call (or process) and then get the stale copy; the call running the body still waits for it (up to `hard_timeout`). Needs `stale_ttl`; shorter than `hard_timeout`. |
/// | `hard_timeout = 5` | the body is cancelled after this long: the call returns the stale copy if there is one, otherwise `Err(E::from(error))` with an `ErrorKind::Timeout` error — also under the default `fallback_on_error = true`, since the body is what failed, not the cache. Only for functions returning `Result<T, E>` with `E: From<cachette::Error>`. See "Hard timeout" below. |
/// | `jitter = 10` | shorten each stored TTL by a random 0–10 % (an integer 0 to 100), so that keys written together do not expire together. |
///
/// `early_refresh` and `stale_ttl` store a small metadata key `{key}#meta{T}` beside the value and
/// read both with one `MGET` on a hit. They, and `jitter`, need a finite TTL: with
/// `ttl = None` they are a compile error; with a manager whose default TTL is "no expiry"
/// they do nothing. Other combinations that would silently do nothing (`soft_timeout` without
/// `stale_ttl`, `lock_ttl`/`lock_wait` without `lock = true`, a `soft_timeout` not shorter than
/// the `hard_timeout`) are compile errors too, reported at the option.
///
/// ### Hard timeout
///
/// A `hard_timeout` bounds each run of the body through the cache: on a miss, and when the
/// cache fails and the body runs uncached. Past it the body is dropped and the call returns
/// the stale copy, or the timeout error through `E: From<cachette::Error>`; callers that were
/// waiting for that run get the same error instead of starting their own. A function without
/// such an error type (`Option<T>`, plain values, an `E` without the conversion) is rejected
/// at compile time, because it would have nothing to return at the deadline. A call that
/// bypasses the cache (no default manager, or a disabled one) runs the body as if undecorated.
///
/// # Return types
///
/// Judged by the last path segment of the written return type, so aliases such as
/// `io::Result<T>` or `anyhow::Result<T>` count as `Result`:
///
/// - `Result<T, E>`: only `Ok(T)` is cached; errors are returned and never stored.
/// - `Option<T>`: only `Some(T)` is cached (the stored value is `T`), unless `cache_none`.
/// - any other `T`: always cached.
///
/// # Default key
///
/// `{prefix}{module}:{function}:{args_hash}`, and `{prefix}{module}:{Type}.{method}:{args_hash}`
/// for methods, where `{module}` is `module_path!()` with `::` written `.`, `{Type}` is the last
/// segment of `std::any::type_name::<Self>()` without generics, and `{args_hash}` is the
/// xxh3-128 (32 hex digits) of a canonical encoding of the non-skipped arguments, `self`
/// excluded. The format is fixed and versioned: see `cachette::key`. Every hashed argument
/// must implement `serde::Serialize` (checked at compile time, at the argument).
///
/// # Statistics
///
/// Each decorated function counts its hits, misses, writes and errors:
/// `cachette::runtime::function_stats()`.
///
/// # Examples
///
/// ```
/// use cachette::{cached, CacheManager};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// struct User {
///     id: u64,
///     admin: bool,
/// }
///
/// fn is_admin(user: &User) -> bool {
///     user.admin
/// }
///
/// // The manager is an argument left out of the key; a service would usually rely on the
/// // process-wide default manager (`cachette::install`) or a field (`cache = self.cache`).
/// #[cached(cache = cache, skip(cache), ttl = 300, key = "user:{id}", unless = is_admin)]
/// async fn get_user(cache: &CacheManager, id: u64) -> Result<User, std::io::Error> {
///     Ok(User { id, admin: id == 0 })
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = CacheManager::memory();
/// assert_eq!(get_user(&cache, 7).await?.id, 7);
/// assert!(cache.exists("user:7").await?);
/// get_user(&cache, 0).await?; // an admin: not cached
/// assert!(!cache.exists("user:0").await?);
/// # Ok(())
/// # }
/// ```
///
/// Under load: one body run across processes, refreshed before expiry, a stale copy when the
/// body is slow or failing, and a bound on how long a call can take:
///
/// ```
/// use std::time::Duration;
/// use cachette::{cached, CacheManager, ErrorKind};
///
/// #[derive(Debug)]
/// enum AppError {
///     Cache(cachette::Error),
/// }
///
/// impl From<cachette::Error> for AppError {
///     fn from(e: cachette::Error) -> Self {
///         AppError::Cache(e)
///     }
/// }
///
/// #[cached(
///     cache = cache,
///     skip(cache),
///     ttl = 300,
///     lock = true,
///     early_refresh = 1.0,
///     stale_ttl = 60,
///     soft_timeout = Duration::from_millis(50),
///     hard_timeout = Duration::from_millis(100),
///     jitter = 10,
/// )]
/// async fn report(cache: &CacheManager, slow: bool) -> Result<String, AppError> {
///     if slow {
///         tokio::time::sleep(Duration::from_secs(60)).await;
///     }
///     Ok("report".to_owned())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = CacheManager::memory();
/// // No stale copy yet: the call gives up after 100 ms.
/// let Err(AppError::Cache(e)) = report(&cache, true).await else { panic!() };
/// assert_eq!(e.kind(), ErrorKind::Timeout);
/// assert_eq!(report(&cache, false).await.unwrap(), "report");
/// # }
/// ```
///
/// Methods, with the manager in a field:
///
/// ```
/// use cachette::{cached, CacheManager};
///
/// struct UserService {
///     cache: CacheManager,
/// }
///
/// impl UserService {
///     #[cached(cache = self.cache, ttl = 60)]
///     async fn user_count(&self) -> u64 {
///         42
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let service = UserService { cache: CacheManager::memory() };
/// assert_eq!(service.user_count().await, 42);
/// let keys = service.cache.keys("*").await?;
/// assert_eq!(keys, [format!(
///     "{}:UserService.user_count:99aa06d3014798d86001c324468d497f",
///     module_path!().replace("::", ".")
/// )]);
/// # Ok(())
/// # }
/// ```
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Macro::Cached, attr.into(), item.into()).into()
}

/// Always runs the function and stores its result under the key `#[cached]` would use with
/// the same options (beyond the spec: a write-through "refresh").
///
/// Takes the options of [`macro@cached`]; `Result` functions store `Ok` values, `Option`
/// functions `Some` values (or `None` too with `cache_none`), others every value. A failed
/// write is logged and ignored, or returned as `Err(E::from(error))` with
/// `fallback_on_error = false`.
///
/// # Examples
///
/// ```
/// use cachette::{cache_put, cached, CacheManager};
///
/// #[cached(cache = cache, skip(cache), key = "price:{item}")]
/// async fn price(cache: &CacheManager, item: u32) -> u64 {
///     100
/// }
///
/// #[cache_put(cache = cache, skip(cache), key = "price:{item}")]
/// async fn set_price(cache: &CacheManager, item: u32, cents: u64) -> u64 {
///     cents // written to the database here, then to the cache
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = CacheManager::memory();
/// assert_eq!(price(&cache, 1).await, 100);
/// set_price(&cache, 1, 250).await;
/// assert_eq!(price(&cache, 1).await, 250); // a hit on the refreshed value
/// # }
/// ```
#[proc_macro_attribute]
pub fn cache_put(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Macro::Put, attr.into(), item.into()).into()
}

/// Deletes cache entries when the function runs. Several `#[cache_evict]` attributes may
/// decorate one function.
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `key = "user:{id}"` | a key template, as in [`macro@cached`] (values `Display`ed, `%` and `:` escaped). |
/// | `keys = ["user:list", "user:{id}"]` | several key templates, deleted in one round trip. |
/// | `tags = ["user:{id}", "users"]` | tag templates: every entry stored with one of these tags is invalidated, in one command per tag whatever their number (`CacheManager::invalidate_tags`). |
/// | `pattern = "user:*"` | a Redis glob template; values substituted into it are also glob-escaped, so an id of `*` only matches the literal `*`. |
/// | `before = true` | evict before the body runs (default: after). |
/// | `always = true` | evict after the body even when it returned `Err` (default: only after `Ok`; functions not returning `Result` always evict). |
/// | `fallback_on_error = false` | a failed eviction is returned as `Err(E::from(error))` (before: the body does not run); default: logged and ignored. |
/// | `cache = expr` | the manager, as in [`macro@cached`]. |
///
/// Keys and patterns are relative to the manager's prefix, and computed from the arguments
/// before the body runs.
///
/// # Examples
///
/// ```
/// use cachette::{cache_evict, CacheManager, Ttl};
///
/// #[cache_evict(cache = cache, pattern = "user:{id}:*")]
/// #[cache_evict(cache = cache, keys = ["user:list", "user:{id}"])]
/// async fn update_user(cache: &CacheManager, id: u64) -> Result<(), std::io::Error> {
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = CacheManager::memory();
/// for key in ["user:list", "user:1", "user:1:posts", "user:2"] {
///     cache.set(key, &1, Ttl::Default).await?;
/// }
/// update_user(&cache, 1).await?;
/// assert_eq!(cache.keys("*").await?, ["user:2"]);
/// # Ok(())
/// # }
/// ```
#[proc_macro_attribute]
pub fn cache_evict(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Macro::Evict, attr.into(), item.into()).into()
}

/// Caches the value of an `async fn name(&self) -> T` per instance, with a TTL: the spec's
/// `@cached_property(ttl=60)`.
///
/// The value lives in a `cachette::CachedProperty<T>` field of the struct, by default the field
/// with the same name as the method (`field = other` names another). Concurrent first callers
/// compute the value once; it is recomputed after the TTL; it is freed with the instance.
/// `T: Clone` (the method returns a clone; use `Arc<T>` for large values). A method returning
/// `Result<T, E>` keeps only `Ok` values.
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `ttl = 60` | seconds; `None`: never expires; or a `Duration` expression. Absent: the field's own TTL (`CachedProperty::with_ttl`), none by default. |
/// | `field = name` | the `CachedProperty<T>` field to use. |
///
/// # Examples
///
/// ```
/// use cachette::{cached_property, CachedProperty};
///
/// #[derive(Default)]
/// struct DataProcessor {
///     raw: Vec<u32>,
///     processed_data: CachedProperty<Vec<u32>>,
/// }
///
/// impl DataProcessor {
///     #[cached_property(ttl = 300)]
///     async fn processed_data(&self) -> Vec<u32> {
///         self.raw.iter().map(|x| x * 2).collect()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let p = DataProcessor { raw: vec![1, 2], ..Default::default() };
/// assert_eq!(p.processed_data().await, [2, 4]);
/// assert!(p.processed_data.is_fresh());
/// # }
/// ```
#[proc_macro_attribute]
pub fn cached_property(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(Macro::Property, attr.into(), item.into()).into()
}
