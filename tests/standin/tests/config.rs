//! Version detection, config file lookup, environment variables and
//! `*_FILE` indirection, and the fatal configuration errors (vikunja.md §3.2).

mod common;

use std::time::Duration;

use common::*;

#[test]
fn version_from_file_name_then_env_then_fallback() {
    let sb = Sandbox::new("version");
    let named = sb.release("v1.2.3");
    let out = run(&named, &sb.root(), &["version"], &[("VIKUNJA_STANDIN_VERSION", "v9.9.9")], None);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("Vikunja api version v1.2.3"), "the file name wins over the env");
    let built = lines.next().unwrap();
    assert!(built.starts_with("Built with ") && built.ends_with("(vikunja-standin test double)"), "{built}");

    let plain = std::path::Path::new(BIN);
    let out = run(plain, &sb.root(), &["version"], &[("VIKUNJA_STANDIN_VERSION", "v2.4.0")], None);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Vikunja api version v2.4.0\n"));
    let out = run(plain, &sb.root(), &["version"], &[], None);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Vikunja api version v0.0.0-standin\n"));

    let out = run(plain, &sb.root(), &["frobnicate"], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("unknown command \"frobnicate\""));
}

#[test]
fn missing_publicurl_is_fatal_since_1_0_0_rc2() {
    let sb = Sandbox::new("publicurl");
    for (version, code) in [("v2.5.0", 1), ("v1.0.0-rc2", 1), ("v1.0.0-rc1", 0), ("v0.24.6", 0)] {
        let bin = sb.release(version);
        let out = run(&bin, &sb.root(), &["healthcheck"], &[], None);
        assert_eq!(out.status.code(), Some(code), "{version}: {}", text(&out));
        if code == 1 {
            assert!(text(&out).contains("service.publicurl is required when cors.enable is true"), "{}", text(&out));
        }
    }
    // With CORS off, no publicurl is needed.
    let bin = sb.release("v2.5.0");
    let out = run(&bin, &sb.root(), &["healthcheck"], &[("VIKUNJA_CORS_ENABLE", "false")], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("API server is healthy"));

    let out = run(&bin, &sb.root(), &["healthcheck"], &[("VIKUNJA_SERVICE_PUBLICURL", "todo.example.com")], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("must include http:// or https:// scheme"), "{}", text(&out));
}

#[test]
fn config_file_in_rootpath_with_env_taking_precedence() {
    let sb = Sandbox::new("cfgfile");
    let bin = sb.release("v2.5.0");
    std::fs::write(
        sb.root().join("config.yml"),
        "service:\n  interface: \"127.0.0.1:0\"\n  publicurl: https://from-file.example\n  motd: \"hello # not a comment\"\n  \
         trustedproxies:\n  - 10.0.0.0/8\nfiles:\n  maxsize: 5MB\n",
    )
    .unwrap();
    let mut srv = Server::spawn_plain(&bin, &sb.root(), &[("VIKUNJA_SERVICE_PUBLICURL", "https://from-env.example")]);
    let port = srv.wait_bound(Duration::from_secs(20));
    srv.wait_healthy(Duration::from_secs(20));
    let info = get(port, "/api/v1/info").unwrap().json();
    assert_eq!(info["frontend_url"], "https://from-env.example/", "env beats the file");
    assert_eq!(info["motd"], "hello # not a comment");
    assert_eq!(info["max_file_size"], "5MB");
    let log = srv.log_text();
    assert!(log.contains(&format!("Using config file: {}", sb.root().join("config.yml").display())), "{log}");
    assert!(log.contains("Trusted proxies: 10.0.0.0/8"), "{log}");
    srv.stop();
}

#[test]
fn unparsable_config_file_is_ignored_like_viper_does() {
    let sb = Sandbox::new("badyaml");
    let bin = sb.release("v2.5.0");
    std::fs::write(sb.root().join("config.yml"), "service:\n  publicurl: \"unterminated\n").unwrap();
    let out = run(&bin, &sb.root(), &["healthcheck"], &[("VIKUNJA_SERVICE_PUBLICURL", "http://x")], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("Using default config."), "{}", text(&out));
}

#[test]
fn file_indirection_from_env_and_yaml() {
    let sb = Sandbox::new("fileenv");
    let bin = sb.release("v2.5.0");
    let secrets = sb.dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("url"), "https://from-a-file.example\n").unwrap();
    std::fs::write(secrets.join("secret"), "s3cr3t\n").unwrap();
    let url_file = secrets.join("url");

    let srv = Server::start(&bin, &sb.root(), &[("VIKUNJA_SERVICE_PUBLICURL_FILE", url_file.to_str().unwrap())]);
    assert_eq!(get(srv.port, "/api/v1/info").unwrap().json()["frontend_url"], "https://from-a-file.example/");
    srv.stop();

    // `key.file:` in YAML, relative to rootpath; a stable secret gives a
    // stable fingerprint across restarts, a generated one does not.
    std::fs::write(sb.root().join("motd.txt"), "from yaml file\n").unwrap();
    std::fs::write(
        sb.root().join("config.yml"),
        format!("service:\n  motd.file: motd.txt\n  secret:\n    file: {}\n", secrets.join("secret").display()),
    )
    .unwrap();
    let fingerprint = |srv: &Server| {
        let log = srv.log_text();
        let line = log.lines().find(|l| l.contains("service.secret fingerprint")).unwrap().to_owned();
        line.rsplit(' ').next().unwrap().to_owned()
    };
    let a = Server::start(&bin, &sb.root(), &[]);
    assert_eq!(get(a.port, "/api/v1/info").unwrap().json()["motd"], "from yaml file");
    assert!(!a.log_text().contains("service.secret is not set"), "{}", a.log_text());
    let fa = fingerprint(&a);
    a.stop();
    let b = Server::start(&bin, &sb.root(), &[]);
    assert_eq!(fingerprint(&b), fa, "the secret from the file is the same on every start");
    b.stop();

    std::fs::remove_file(sb.root().join("config.yml")).unwrap();
    let c = Server::start(&bin, &sb.root(), &[]);
    assert!(c.log_text().contains("service.secret is not set"));
    let d = Server::start(&bin, &sb.root(), &[]);
    assert_ne!(fingerprint(&c), fingerprint(&d), "a generated secret changes per start");
    c.stop();
    d.stop();

    // The deprecated JWTSecret is used when secret is unset.
    let out = run(
        &bin,
        &sb.root(),
        &["healthcheck"],
        &[("VIKUNJA_SERVICE_PUBLICURL", "http://x"), ("VIKUNJA_SERVICE_JWTSECRET", "old")],
        None,
    );
    assert!(!text(&out).contains("service.secret is not set"), "{}", text(&out));
}

#[test]
fn unreadable_file_indirection_exits_1() {
    let sb = Sandbox::new("filemissing");
    let bin = sb.release("v2.5.0");
    let missing = sb.dir.join("no-such-secret");
    let out = run(
        &bin,
        &sb.root(),
        &["healthcheck"],
        &[("VIKUNJA_SERVICE_PUBLICURL", "http://x"), ("VIKUNJA_DATABASE_PASSWORD_FILE", missing.to_str().unwrap())],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("Failed to read the config file at") && t.contains("database.password.file"), "{t}");

    // The web command fails the same way before it listens.
    let mut srv = Server::spawn(&bin, &sb.root(), &[("VIKUNJA_SERVICE_SECRET_FILE", "missing/relative")]);
    let st = srv.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(st.code(), Some(1));
    assert!(srv.log_text().contains(&sb.root().join("missing/relative").display().to_string()), "{}", srv.log_text());
}

#[test]
fn credentials_directory_expansion_needs_2_3_0() {
    let sb = Sandbox::new("credexp");
    let creds = sb.dir.join("creds");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("url"), "https://cred.example").unwrap();
    let env = [
        ("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()),
        ("VIKUNJA_SERVICE_PUBLICURL_FILE", "$CREDENTIALS_DIRECTORY/url"),
    ];
    let out = run(&sb.release("v2.3.0"), &sb.root(), &["healthcheck"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&sb.release("v2.2.0"), &sb.root(), &["healthcheck"], &env, None);
    assert_eq!(out.status.code(), Some(1), "before 2.3.0 the $VAR is taken literally: {}", text(&out));
}

/// An older release reads only the keys it had: before v2.3.0 `service.secret` is ignored (a
/// random secret per start unless the old `service.JWTSecret` is set), before v1.0.0 a `_FILE`
/// variable is an unknown setting (a missing file is then no error). The newer release next to
/// each is the control.
#[test]
fn older_releases_ignore_the_keys_they_did_not_have() {
    let sb = Sandbox::new("oldkeys");
    let base = [("VIKUNJA_SERVICE_PUBLICURL", "http://x")];
    let secret = [base[0], ("VIKUNJA_SERVICE_SECRET", "shared")];
    let out = run(&sb.release("v2.3.0"), &sb.root(), &["healthcheck"], &secret, None);
    assert!(!text(&out).contains("service.secret is not set"), "{}", text(&out));
    let out = run(&sb.release("v2.2.0"), &sb.root(), &["healthcheck"], &secret, None);
    assert!(text(&out).contains("service.secret is not set"), "v2.2.0 has no service.secret: {}", text(&out));
    let old_name = [base[0], ("VIKUNJA_SERVICE_JWTSECRET", "shared")];
    let out = run(&sb.release("v2.2.0"), &sb.root(), &["healthcheck"], &old_name, None);
    assert!(!text(&out).contains("service.secret is not set"), "{}", text(&out));

    let missing = sb.dir.join("no-such-file");
    let file = [base[0], ("VIKUNJA_DATABASE_PASSWORD_FILE", missing.to_str().unwrap())];
    let out = run(&sb.release("v1.0.0"), &sb.root(), &["healthcheck"], &file, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = run(&sb.release("v0.24.6"), &sb.root(), &["healthcheck"], &file, None);
    assert_eq!(out.status.code(), Some(0), "v0.24.6 has no _FILE variables: {}", text(&out));
}

#[test]
fn mysql_is_refused() {
    let sb = Sandbox::new("mysql");
    let bin = sb.release("v2.5.0");
    let out = run(
        &bin,
        &sb.root(),
        &["healthcheck"],
        &[("VIKUNJA_SERVICE_PUBLICURL", "http://x"), ("VIKUNJA_DATABASE_TYPE", "mysql")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not supported by the stand-in"), "{}", text(&out));
}

#[test]
fn database_path_and_files_basepath_are_relative_to_rootpath() {
    let sb = Sandbox::new("paths");
    let bin = sb.release("v2.5.0");
    std::fs::create_dir_all(sb.root().join("db")).unwrap();
    let env = [("VIKUNJA_DATABASE_PATH", "db/tasks.sqlite"), ("VIKUNJA_FILES_BASEPATH", "uploads")];
    let srv = Server::start(&bin, &sb.root(), &env);
    create_task(srv.port, 1, "t");
    assert_eq!(upload(srv.port, 1, "f", b"data").status, 201);
    srv.stop();
    assert!(sb.root().join("db/tasks.sqlite").is_file());
    assert_eq!(std::fs::read(sb.root().join("uploads/1")).unwrap(), b"data");
}
