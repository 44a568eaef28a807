use super::sources::{closest, edit_distance};
use super::*;
use proptest::strategy::Strategy as _;
use serde_json::Value;
use std::collections::HashMap;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("config.json");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_use_memory_backend() {
    let c = Config::load_from(None, env(&[])).unwrap();
    assert!(!c.uses_redis());
    assert_eq!(c.endpoint().unwrap(), None);
    assert_eq!(c.key_prefix, "cache:");
    assert_eq!(c.default_ttl, Some(Duration::from_secs(3600)));
    assert_eq!(c.describe_backend(), "memory");
}

#[test]
fn precedence_file_then_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"{"redis": {"enabled": true, "host": "filehost", "port": 6380, "db": 2,
            "password": null, "max_connections": 10, "default_ttl": 60, "key_prefix": "xcore:"}}"#,
    );
    let c = Config::load_from(Some((path.clone(), true)), env(&[])).unwrap();
    assert_eq!(c.describe_backend(), "redis://filehost:6380/2");
    assert_eq!(c.key_prefix, "xcore:");
    assert_eq!(c.default_ttl, Some(Duration::from_secs(60)));
    assert_eq!(c.max_connections, 10);

    let c = Config::load_from(
        Some((path.clone(), true)),
        env(&[
            ("REDIS_PORT", "7000"),
            ("REDIS_PASSWORD", "p@ss:w/rd"),
            ("REDIS_DEFAULT_TTL", "0"),
        ]),
    )
    .unwrap();
    assert_eq!(c.describe_backend(), "redis://***@filehost:7000/2");
    let endpoint = c.endpoint().unwrap().unwrap();
    assert_eq!(endpoint.password.unwrap().expose(), "p@ss:w/rd");
    assert_eq!(c.default_ttl, None);

    let c = Config::load_from(
        Some((path, true)),
        env(&[("REDIS_URL", "redis://envhost:1/3")]),
    )
    .unwrap();
    assert_eq!(c.describe_backend(), "redis://envhost:1/3");
}

#[test]
fn env_host_beats_file_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, r#"{"redis": {"url": "redis://fileurl:1/0"}}"#);
    let c = Config::load_from(Some((path, true)), env(&[("REDIS_HOST", "envhost")])).unwrap();
    // Only the host changes: the URL's port (and db, credentials) stay.
    assert_eq!(c.describe_backend(), "redis://envhost:1/0");
}

#[test]
fn bad_values_name_source_and_field() {
    let e = Config::load_from(None, env(&[("REDIS_PORT", "abc")])).unwrap_err();
    assert!(e.is_config());
    assert!(e.to_string().contains("REDIS_PORT"), "{e}");
    let e = Config::load_from(None, env(&[("REDIS_DEFAULT_TTL", "-5")])).unwrap_err();
    assert!(e.to_string().contains("REDIS_DEFAULT_TTL"), "{e}");
    assert!(e.to_string().contains("negative"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, r#"{"redis": {"port": "x"}"#);
    let e = Config::load_from(Some((path.clone(), true)), env(&[])).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
    assert!(e.to_string().contains("JSON"), "{e}");
    let path = write(&dir, r#"{"redis": {"default_ttl": -1}}"#);
    let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
    assert!(e.to_string().contains("redis.default_ttl"), "{e}");

    let e = Config::load_from(Some((dir.path().join("missing.json"), true)), env(&[])).unwrap_err();
    assert!(e.to_string().contains("missing.json"), "{e}");
    // An absent ./config.json is fine.
    Config::load_from(Some((dir.path().join("missing.json"), false)), env(&[])).unwrap();
}

#[test]
fn password_never_printed() {
    let c = Config::load_from(
        None,
        env(&[
            ("REDIS_HOST", "h"),
            ("REDIS_PASSWORD", "hunter2"),
            ("REDIS_USERNAME", "app"),
        ]),
    )
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!c.describe_backend().contains("hunter2"));
    let c = Config::load_from(None, env(&[("REDIS_URL", "redis://app:hunter2@h:1/0")])).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!c.describe_backend().contains("hunter2"));
}

#[test]
fn circuit_breaker_settings() {
    let c = Config::load_from(None, env(&[])).unwrap();
    assert_eq!(c.breaker_failures, 5);
    assert_eq!(c.breaker_open, Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"{"redis": {"breaker_failures": 3, "breaker_open_ms": 250}}"#,
    );
    let c = Config::load_from(Some((path.clone(), true)), env(&[])).unwrap();
    assert_eq!(c.breaker_failures, 3);
    assert_eq!(c.breaker_open, Duration::from_millis(250));
    let c = Config::load_from(
        Some((path, true)),
        env(&[
            ("CACHETTE_BREAKER_FAILURES", "0"),
            ("CACHETTE_BREAKER_OPEN_MS", "40"),
        ]),
    )
    .unwrap();
    assert_eq!(c.breaker_failures, 0);
    assert_eq!(c.breaker_open, Duration::from_millis(40));
    let e = Config::load_from(None, env(&[("CACHETTE_BREAKER_FAILURES", "-1")])).unwrap_err();
    assert!(e.to_string().contains("CACHETTE_BREAKER_FAILURES"), "{e}");
    let e = Config::load_from(None, env(&[("CACHETTE_BREAKER_OPEN_MS", "0")])).unwrap_err();
    assert!(e.to_string().contains("CACHETTE_BREAKER_OPEN_MS"), "{e}");
    let path = write(&dir, r#"{"redis": {"breaker_open_ms": "x"}}"#);
    let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
    assert!(e.to_string().contains("redis.breaker_open_ms"), "{e}");
}

#[test]
fn disabled_mode_and_port_only() {
    let c = Config::load_from(
        None,
        env(&[("REDIS_ENABLED", "false"), ("REDIS_PORT", "7001")]),
    )
    .unwrap();
    assert!(!c.enabled);
    assert_eq!(c.describe_backend(), "redis://localhost:7001/0");
    let e = Config::load_from(None, env(&[("REDIS_ENABLED", "maybe")])).unwrap_err();
    assert!(e.to_string().contains("REDIS_ENABLED"));
}

/// Issue 9 item 8: environment > file holds part by part beside a URL in the file.
#[test]
fn env_parts_override_a_file_url_part_by_part() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"{"redis": {"url": "redis://fileuser:filepw@filehost:6390/5"}}"#,
    );
    let load = |vars: &[(&str, &str)]| {
        let c = Config::load_from(Some((path.clone(), true)), env(vars)).unwrap();
        let e = c.endpoint().unwrap().unwrap();
        (c, e)
    };
    let (c, e) = load(&[]);
    assert_eq!(c.url, None, "a loaded URL is decomposed");
    assert_eq!(
        (c.host.as_deref(), c.port, c.db),
        (Some("filehost"), Some(6390), 5)
    );
    assert_eq!(e.username.as_deref(), Some("fileuser"));
    assert_eq!(e.password.as_ref().map(Secret::expose), Some("filepw"));

    let (c, e) = load(&[("REDIS_DB", "3")]);
    assert_eq!(c.db, 3);
    assert_eq!(e.db, 3);
    assert_eq!(e.password.as_ref().map(Secret::expose), Some("filepw"));
    assert_eq!(c.describe_backend(), "redis://***@filehost:6390/3");

    let (_, e) = load(&[("REDIS_PASSWORD", "envpw")]);
    assert_eq!(e.password.as_ref().map(Secret::expose), Some("envpw"));
    assert_eq!((e.username.as_deref(), e.db), (Some("fileuser"), 5));

    let (_, e) = load(&[("REDIS_USERNAME", "envuser")]);
    assert_eq!(e.username.as_deref(), Some("envuser"));
    assert_eq!(e.password.as_ref().map(Secret::expose), Some("filepw"));

    let (c, e) = load(&[("REDIS_PORT", "7000")]);
    assert_eq!(c.describe_backend(), "redis://***@filehost:7000/5");
    assert_eq!(e.password.as_ref().map(Secret::expose), Some("filepw"));

    let (c, _) = load(&[("REDIS_HOST", "envhost")]);
    assert_eq!(c.describe_backend(), "redis://***@envhost:6390/5");

    // A URL in the environment replaces the file's endpoint as a whole; the parts named
    // beside it in the environment override its parts.
    let (c, e) = load(&[("REDIS_URL", "redis://envurl:1/2"), ("REDIS_DB", "4")]);
    assert_eq!(c.describe_backend(), "redis://envurl:1/4");
    assert_eq!((e.username, e.password), (None, None));

    // Within the file too: separate parts override the file's URL.
    let path2 = write(
        &dir,
        r#"{"redis": {"url": "redis://:pw@h:1/5", "db": 6, "port": 2}}"#,
    );
    let c = Config::load_from(Some((path2, true)), env(&[])).unwrap();
    assert_eq!(c.describe_backend(), "redis://***@h:2/6");
}

/// Issue 9 item 3: an empty (or blank) variable is unset, REDIS_KEY_PREFIX included; an
/// empty prefix cannot come from the file.
#[test]
fn empty_variables_are_unset_and_the_file_cannot_empty_the_prefix() {
    let all_empty: Vec<(&str, &str)> = ENV_VARS.iter().map(|v| (*v, "")).collect();
    let c = Config::load_from(None, env(&all_empty)).unwrap();
    assert_eq!(c, Config::default());
    let c = Config::load_from(None, env(&[("REDIS_KEY_PREFIX", "  ")])).unwrap();
    assert_eq!(c.key_prefix, "cache:");
    let c = Config::load_from(None, env(&[("REDIS_KEY_PREFIX", "app:")])).unwrap();
    assert_eq!(c.key_prefix, "app:");

    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, r#"{"redis": {"key_prefix": ""}}"#);
    let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
    assert!(e.is_config());
    assert!(e.to_string().contains("redis.key_prefix"), "{e}");
    assert!(e.to_string().contains("empty"), "{e}");
}

/// Issue 9 item 9: invalid values are errors at load time naming the source and field.
#[test]
fn load_errors_name_the_source_and_field() {
    for (var, value, what) in [
        ("REDIS_URL", "not a url", "not a URL"),
        ("REDIS_URL", "http://h:1/0", "scheme"),
        ("REDIS_URL", "redis://h:99999/0", "port"),
        ("REDIS_URL", "redis://h:1/zero", "database"),
        ("REDIS_HOST", "a b", "host"),
        ("REDIS_HOST", "h/x", "host"),
    ] {
        let e = Config::load_from(None, env(&[(var, value)])).unwrap_err();
        let text = e.to_string();
        assert!(e.is_config(), "{text}");
        assert!(
            text.contains(&format!("environment variable {var}")),
            "{text}"
        );
        assert!(text.contains(what), "{var}={value}: {text}");
    }
    let dir = tempfile::tempdir().unwrap();
    for (json, field, what) in [
        ("[]", "JSON", "top level must be an object"),
        ("42", "JSON", "top level must be an object"),
        (
            r#"{"redis": {"hots": "h"}}"#,
            "redis.hots",
            "did you mean \"host\"",
        ),
        (
            r#"{"redis": {"near_cache": 0}}"#,
            "redis.near_cache",
            "expected true, false, null or an object",
        ),
        (
            r#"{"redis": {"near_cache": {"max_entrys": 5}}}"#,
            "redis.near_cache.max_entrys",
            "unknown field",
        ),
        (
            r#"{"redis": {"key_prefx": "a:"}}"#,
            "redis.key_prefx",
            "\"key_prefix\"",
        ),
        (
            r#"{"redis": {"zzzzzz": 1}}"#,
            "redis.zzzzzz",
            "known: enabled",
        ),
        (r#"{"redis": {"url": "redis://h:0"}}"#, "redis.url", "port"),
        (r#"{"redis": {"url": 5}}"#, "redis.url", "string"),
        (r#"{"redis": {"host": "a b"}}"#, "redis.host", "host"),
    ] {
        let path = write(&dir, json);
        let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
        let text = e.to_string();
        assert!(e.is_config(), "{text}");
        assert!(text.contains("config.json"), "{json}: {text}");
        assert!(text.contains(field), "{json}: {text}");
        assert!(text.contains(what), "{json}: {text}");
    }
    // Other top-level keys belong to the application; a BOM is not an error.
    let path = write(&dir, "\u{feff}{\"app\": 1, \"redis\": {\"port\": 7000}}");
    let c = Config::load_from(Some((path, true)), env(&[])).unwrap();
    assert_eq!(c.port, Some(7000));
}

#[test]
fn suggestions_pick_the_closest_field() {
    assert_eq!(closest("hots", JSON_FIELDS), Some("host"));
    assert_eq!(closest("PORT", JSON_FIELDS), Some("port"));
    assert_eq!(closest("passwort", JSON_FIELDS), Some("password"));
    assert_eq!(
        closest("max_conections", JSON_FIELDS),
        Some("max_connections")
    );
    assert_eq!(closest("qqqqqqqq", JSON_FIELDS), None);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

fn arbitrary_text() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::prop_oneof![
        proptest::string::string_regex("[ -~]{0,24}").unwrap(),
        proptest::string::string_regex("[0-9 :/@%-]{0,12}").unwrap(),
        proptest::prelude::any::<String>(),
    ]
}

fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        arbitrary_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map(arbitrary_text(), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Fuzzing the environment: any values never panic, and a rejection names the variable
    /// it came from.
    #[test]
    fn any_environment_loads_or_names_the_variable(
        values in proptest::collection::vec(
            (proptest::sample::select(ENV_VARS), arbitrary_text()), 0..6)
    ) {
        let vars: Vec<(&str, &str)> =
            values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match Config::load_from(None, env(&vars)) {
            Ok(c) => { let _ = (format!("{c:?}"), c.describe_backend(), c.endpoint()); }
            Err(e) => {
                proptest::prop_assert!(e.is_config());
                let text = e.to_string();
                proptest::prop_assert!(
                    values.iter().any(|(k, _)| text.contains(&format!("environment variable {k}"))),
                    "{}", text
                );
            }
        }
    }

    /// Fuzzing the file: any JSON (known and unknown fields of any type) never panics, and
    /// a rejection names the file and the field.
    #[test]
    fn any_config_file_loads_or_names_the_field(
        fields in proptest::collection::vec(
            (proptest::prop_oneof![
                proptest::sample::select(JSON_FIELDS).prop_map(str::to_owned),
                arbitrary_text(),
            ], arbitrary_json()), 0..5),
        top in arbitrary_json(),
        wrap in proptest::prelude::any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let doc = if wrap {
            let section: serde_json::Map<String, Value> = fields.into_iter().collect();
            serde_json::json!({ "redis": section }).to_string()
        } else {
            top.to_string()
        };
        let path = write(&dir, &doc);
        match Config::load_from(Some((path, true)), env(&[])) {
            Ok(c) => { let _ = (format!("{c:?}"), c.describe_backend(), c.endpoint()); }
            Err(e) => {
                proptest::prop_assert!(e.is_config());
                let text = e.to_string();
                proptest::prop_assert!(text.contains("config.json"), "{}", text);
                proptest::prop_assert!(
                    text.contains("invalid redis") || text.contains("invalid JSON"),
                    "{}", text
                );
            }
        }
    }
}

#[cfg(feature = "tls")]
#[test]
fn tls_settings_from_file_and_environment_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        r#"{"redis": {"url": "rediss://cache.internal:6380/0", "tls_ca_file": "/file/ca.pem",
            "tls_cert_file": "/file/client.pem", "tls_key_file": "/file/client.key",
            "tls_insecure": false}}"#,
    );
    let c = Config::load_from(Some((path.clone(), true)), env(&[])).unwrap();
    assert!(c.tls);
    assert_eq!(c.tls_options.ca_file, Some(PathBuf::from("/file/ca.pem")));
    assert_eq!(
        c.tls_options.cert_file,
        Some(PathBuf::from("/file/client.pem"))
    );
    assert_eq!(
        c.tls_options.key_file,
        Some(PathBuf::from("/file/client.key"))
    );
    assert!(!c.tls_options.insecure);
    let endpoint = c.endpoint().unwrap().unwrap();
    assert_eq!(endpoint.tls_options, c.tls_options);

    // The environment replaces only the fields it names; a URL leaves them alone.
    let c = Config::load_from(
        Some((path.clone(), true)),
        env(&[
            ("REDIS_TLS_CA_FILE", "/env/ca.pem"),
            ("REDIS_TLS_INSECURE", "true"),
            ("REDIS_URL", "rediss://other:6380/0"),
        ]),
    )
    .unwrap();
    assert_eq!(c.tls_options.ca_file, Some(PathBuf::from("/env/ca.pem")));
    assert_eq!(
        c.tls_options.cert_file,
        Some(PathBuf::from("/file/client.pem"))
    );
    assert!(c.tls_options.insecure);
    assert_eq!(c.describe_backend(), "rediss://other:6380/0");

    let c = Config::load_from(
        None,
        env(&[
            ("REDIS_TLS_CERT_FILE", "/env/c.pem"),
            ("REDIS_TLS_KEY_FILE", "/env/c.key"),
        ]),
    )
    .unwrap();
    assert_eq!(c.tls_options.cert_file, Some(PathBuf::from("/env/c.pem")));
    assert_eq!(c.tls_options.key_file, Some(PathBuf::from("/env/c.key")));
    // Without a Redis server they are not used, and not an error.
    assert!(c.validate().is_ok());
}

#[test]
fn bad_tls_settings_name_source_and_field() {
    let dir = tempfile::tempdir().unwrap();
    for (json, field) in [
        (r#"{"redis": {"tls_ca_file": 3}}"#, "redis.tls_ca_file"),
        (r#"{"redis": {"tls_cert_file": ""}}"#, "redis.tls_cert_file"),
        (
            r#"{"redis": {"tls_insecure": "yes"}}"#,
            "redis.tls_insecure",
        ),
    ] {
        let path = write(&dir, json);
        let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
        assert!(e.is_config());
        assert!(e.to_string().contains(field), "{e}");
    }
    let path = write(&dir, r#"{"redis": {"tls_ca_flie": "/x"}}"#);
    let e = Config::load_from(Some((path, true)), env(&[])).unwrap_err();
    assert!(
        e.to_string().contains("did you mean \"tls_ca_file\""),
        "{e}"
    );
    let e = Config::load_from(None, env(&[("REDIS_TLS_INSECURE", "maybe")])).unwrap_err();
    assert!(e.to_string().contains("REDIS_TLS_INSECURE"), "{e}");
    // TLS settings for a plain server are refused, naming the setting.
    let c = Config::load_from(
        None,
        env(&[
            ("REDIS_URL", "redis://h:1/0"),
            ("REDIS_TLS_CA_FILE", "/ca.pem"),
        ]),
    )
    .unwrap();
    let e = c.validate().unwrap_err();
    assert!(e.to_string().contains("tls_ca_file"), "{e}");
    assert!(e.to_string().contains("rediss://"), "{e}");
}

#[test]
fn every_json_field_and_env_var_for_tls_is_listed() {
    for field in [
        "tls_ca_file",
        "tls_cert_file",
        "tls_key_file",
        "tls_insecure",
    ] {
        assert!(JSON_FIELDS.contains(&field), "{field}");
    }
    for var in [
        "REDIS_TLS_CA_FILE",
        "REDIS_TLS_CERT_FILE",
        "REDIS_TLS_KEY_FILE",
        "REDIS_TLS_INSECURE",
    ] {
        assert!(ENV_VARS.contains(&var), "{var}");
    }
}
