//! Renders the unit and nginx templates and checks them with the real tools: strict
//! `systemd-analyze verify`, `systemd-analyze security`, `nginx -t`, and a live nginx on loopback
//! ports in front of a tiny std backend, probed with curl.
//!
//! Needs nginx, openssl, curl and systemd-analyze (Debian: `apt-get install nginx openssl curl
//! systemd`); a missing tool fails the test rather than skipping it.

// `render::templates` (loading the bundle's copies) comes along with the folder but is the
// binary's, not this test's.
#[path = "../src/render/mod.rs"]
#[allow(dead_code)]
mod render;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use render::{
    builtin, render_backup_timer, render_nginx_main, render_site, render_unit, render_upstreams, BackupTimerSpec,
    MainSpec, RenderError, ServiceSpec, SiteSpec, Upstreams,
};

// Not 1: that is nginx's default, and the 413 check must prove the directive took effect.
const MAX_BODY_MB: u32 = 2;

// ---------------------------------------------------------------------------------------------
// helpers

/// Removed when the test ends, passed or failed; kept (and printed) with `VIKUNJA_KEEP_TEST_DIRS`
/// set, for a post-mortem.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("vikunja-render-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // nginx workers run as nobody when the tests run as root; they must reach the prefix.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        vikunja_e2e::remove_test_dir(&self.0);
    }
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// systemd

fn service_spec(root: &Path) -> ServiceSpec {
    // A space and a `%` in the path make verify fail unless quoting and specifier escaping work.
    let bin_dir = root.join("bin dir%i");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("vikunja");
    std::fs::copy("/bin/true", &bin).unwrap();
    for d in ["data", "lo gs"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    ServiceSpec {
        unit: "vikunja-main-backend-blue".into(),
        description: "Vikunja backend (instance main, blue, 100%)".into(),
        exec: vec![
            s(&bin).into(),
            "web".into(),
            "--config".into(),
            "/etc/vikunja main/config.yml".into(),
            "$HOME".into(),
            ";".into(),
            "it's".into(),
            String::new(),
        ],
        working_dir: root.to_path_buf(),
        user: "vikunja".into(),
        group: "vikunja".into(),
        env: vec![
            ("VIKUNJA_SERVICE_INTERFACE".into(), "127.0.0.1:8080".into()),
            ("VIKUNJA_DATABASE_PASSWORD_FILE".into(), "/opt/vikunja-main/config/.db-password".into()),
            ("QUOTED".into(), r#"a "b" \c 5%"#.into()),
        ],
        read_write_paths: vec![root.join("data"), root.join("lo gs")],
        kill_signal: "SIGINT".into(),
        stop_timeout_s: 20,
        restart_sec: 5,
    }
}

/// `verify` reports unknown or unparsable settings only as warnings with rc 0, so any output
/// at all counts as a failure.
fn verify_strict(unit: &Path) -> (bool, String) {
    let (ok, out) = run("systemd-analyze", &["verify", "--man=no", s(unit)]);
    (ok && out.trim().is_empty(), out)
}

fn exposure(unit: &Path) -> f64 {
    let (_, out) = run("systemd-analyze", &["security", "--offline=yes", s(unit)]);
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line in:\n{out}"));
    let after = line.rsplit_once(": ").unwrap().1;
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// `backup schedule`'s service and timer, for every kind of schedule it writes (daily, weekly and
/// converted cron expressions), pass strict verify together, the timer naming the service.
#[test]
fn backup_timer_and_service_pass_strict_verify() {
    let dir = TempDir::new("backup-timer");
    let bin_dir = dir.0.join("bin dir%i");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("vikunja-installer");
    std::fs::copy("/bin/true", &bin).unwrap();
    for calendar in [
        "*-*-* 03:00:00",
        "Sun *-*-* 03:00:00",
        "Mon,Tue,Wed,Thu,Fri *-*-* 01:15:00",
        "*-*-* *:00,15,30,45:00",
        "*-01,04,07,10-01 00:00:00",
    ] {
        let spec = BackupTimerSpec {
            unit: "vikunja-main-backup".into(),
            description: "Scheduled backup of Vikunja instance main (100%)".into(),
            exec: vec![
                s(&bin).into(),
                "backup".into(),
                "--instance".into(),
                "main".into(),
                "--passphrase-file".into(),
                "/root/pass phrase".into(),
            ],
            on_calendar: calendar.into(),
            randomized_delay_s: 1800,
        };
        let t = |n| builtin(n).unwrap();
        let (service, timer) =
            render_backup_timer(t("systemd/backup.service.tmpl"), t("systemd/backup.timer.tmpl"), &spec).unwrap();
        let (sp, tp) = (dir.0.join("vikunja-main-backup.service"), dir.0.join("vikunja-main-backup.timer"));
        std::fs::write(&sp, &service).unwrap();
        std::fs::write(&tp, &timer).unwrap();
        assert!(timer.lines().any(|l| l == format!("OnCalendar={calendar}")), "{timer}");
        assert!(timer.contains("Unit=vikunja-main-backup.service\n") && timer.contains("Persistent=true"), "{timer}");
        assert!(service.contains("Type=oneshot") && service.contains("\"/root/pass phrase\""), "{service}");
        for unit in [&sp, &tp] {
            let (ok, out) = verify_strict(unit);
            assert!(
                ok,
                "verify {} ({calendar}):\n{out}\n--- service ---\n{service}\n--- timer ---\n{timer}",
                unit.display()
            );
        }
    }
    // A value that would add a directive is refused, not rendered.
    let bad = BackupTimerSpec {
        unit: "vikunja-main-backup".into(),
        description: "x".into(),
        exec: vec![s(&bin).into()],
        on_calendar: "daily\nExecStartPre=/bin/sh".into(),
        randomized_delay_s: 0,
    };
    let t = |n| builtin(n).unwrap();
    assert!(matches!(
        render_backup_timer(t("systemd/backup.service.tmpl"), t("systemd/backup.timer.tmpl"), &bad),
        Err(RenderError::Invalid { .. })
    ));
}

#[test]
fn unit_passes_strict_verify_and_scores_at_most_2() {
    let started = Instant::now();
    let dir = TempDir::new("unit");
    let spec = service_spec(&dir.0);
    let unit = render_unit(builtin("systemd/service.tmpl").unwrap(), &spec).unwrap();
    let path = dir.0.join("vikunja-main-backend-blue.service");
    std::fs::write(&path, &unit).unwrap();

    let bin = s(&dir.0.join("bin dir%i/vikunja")).replace('%', "%%");
    let expected_exec =
        format!(r#"ExecStart="{bin}" web --config "/etc/vikunja main/config.yml" $$HOME ";" "it's" """#);
    let lines: Vec<&str> = unit.lines().collect();
    for want in [
        expected_exec.as_str(),
        "Type=simple",
        "KillSignal=SIGINT",
        "TimeoutStopSec=20",
        "Restart=on-failure",
        "RestartSec=5",
        "User=vikunja",
        "Group=vikunja",
        "UMask=0027",
        "Description=Vikunja backend (instance main, blue, 100%%)",
        "Environment=\"VIKUNJA_SERVICE_INTERFACE=127.0.0.1:8080\"",
        r#"Environment="QUOTED=a \"b\" \\c 5%%""#,
        &format!("ReadWritePaths={}", s(&dir.0.join("data"))),
        &format!("ReadWritePaths=\"{}\"", s(&dir.0.join("lo gs"))),
        "WantedBy=multi-user.target",
    ] {
        assert!(lines.contains(&want), "missing line {want:?} in:\n{unit}");
    }
    assert!(!unit.contains("{{") && !unit.contains("\n\n\n"), "{unit}");

    let (ok, out) = verify_strict(&path);
    assert!(ok, "systemd-analyze verify --man=no complained:\n{out}\n--- unit ---\n{unit}");

    let score = exposure(&path);
    println!("systemd-analyze security --offline=yes: exposure {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0");

    // Without environment lines or writable paths the placeholder lines vanish entirely.
    let bare = ServiceSpec { env: vec![], read_write_paths: vec![], ..service_spec(&dir.0) };
    let bare_unit = render_unit(builtin("systemd/service.tmpl").unwrap(), &bare).unwrap();
    assert!(!bare_unit.contains("Environment=") && !bare_unit.contains("ReadWritePaths="));
    assert!(!bare_unit.contains("Group=vikunja\n\n"), "{bare_unit}");
    println!("unit checks took {:?}", started.elapsed());
}

#[test]
fn strict_verify_catches_what_plain_verify_lets_through() {
    let dir = TempDir::new("unit-bad");
    let spec = service_spec(&dir.0);
    let typo = builtin("systemd/service.tmpl").unwrap().replace("Restart=on-failure", "Restartt=on-failure");
    let path = dir.0.join("typo.service");
    std::fs::write(&path, render_unit(&typo, &spec).unwrap()).unwrap();
    let (rc_ok, _) = run("systemd-analyze", &["verify", "--man=no", s(&path)]);
    let (strict_ok, out) = verify_strict(&path);
    assert!(rc_ok && !strict_ok, "a misspelled key must pass plain verify but fail the strict form: {out}");
    assert!(out.contains("Restartt"), "{out}");

    let missing = ServiceSpec { exec: vec!["/nonexistent/vikunja".into(), "web".into()], ..spec };
    let path = dir.0.join("missing.service");
    std::fs::write(&path, render_unit(builtin("systemd/service.tmpl").unwrap(), &missing).unwrap()).unwrap();
    let (ok, out) = verify_strict(&path);
    assert!(!ok, "a missing ExecStart binary must fail verify: {out}");
}

// ---------------------------------------------------------------------------------------------
// refusals

fn placeholder_of(e: &RenderError) -> &str {
    match e {
        RenderError::Missing { placeholder, .. } | RenderError::Invalid { placeholder, .. } => placeholder,
        RenderError::Syntax { .. } => panic!("unexpected syntax error: {e}"),
    }
}

fn site_spec(root: &Path) -> SiteSpec {
    SiteSpec {
        instance: "main".into(),
        domain: "localhost".into(),
        listen_addr: "127.0.0.1".into(),
        http_port: 18080,
        https_port: 18443,
        cert: root.join("tls/cert.pem"),
        key: root.join("tls/key.pem"),
        max_body_mb: MAX_BODY_MB,
        upstream_include: root.join("upstream.conf"),
        freeze_flag: root.join("writes-frozen"),
        static_frontend: None,
        mcp: false,
        mcp_auth: root.join("mcp-auth.conf"),
        access_log: root.join("access.log"),
        error_log: root.join("error.log"),
        acme_challenge_dir: root.join("acme-challenge"),
    }
}

#[test]
fn rendering_refuses_missing_values_and_unsafe_characters() {
    let root = Path::new("/opt/vikunja-main");
    let unit_tmpl = builtin("systemd/service.tmpl").unwrap();
    let spec = || ServiceSpec {
        unit: "vikunja-main-backend-blue".into(),
        description: "Vikunja backend".into(),
        exec: vec!["/opt/vikunja-main/bin/vikunja".into(), "web".into()],
        working_dir: root.into(),
        user: "vikunja".into(),
        group: "vikunja".into(),
        env: vec![],
        read_write_paths: vec![root.join("data")],
        kill_signal: "SIGINT".into(),
        stop_timeout_s: 20,
        restart_sec: 5,
    };

    let e = render_unit("[Service]\nExecStart={{exec_start}}\nNice={{ nice }}\n", &spec()).unwrap_err();
    assert!(matches!(e, RenderError::Missing { .. }), "{e:?}");
    assert_eq!(placeholder_of(&e), "nice");
    assert_eq!(e.to_string(), "template systemd/service.tmpl: no value for placeholder {{nice}}");

    let e = render_unit(unit_tmpl, &ServiceSpec { description: "two\nlines".into(), ..spec() }).unwrap_err();
    assert!(matches!(e, RenderError::Invalid { .. }) && placeholder_of(&e) == "description", "{e:?}");
    assert!(e.to_string().contains("line break") && e.to_string().contains("systemd/service.tmpl"), "{e}");

    let env = vec![("VIKUNJA_X".to_string(), "a\nExecStartPre=/bin/sh".to_string())];
    let e = render_unit(unit_tmpl, &ServiceSpec { env, ..spec() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "environment", "{e}");

    let e = render_unit(unit_tmpl, &ServiceSpec { exec: vec!["web".into(), "vikunja".into()], ..spec() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "exec_start", "{e}");
    let e = render_unit(unit_tmpl, &ServiceSpec { exec: vec![], ..spec() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "exec_start", "{e}");
    let e = render_unit(unit_tmpl, &ServiceSpec { user: "root\nUser=x".into(), ..spec() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "user", "{e}");
    let e = render_unit(unit_tmpl, &ServiceSpec { unit: "x.service".into(), ..spec() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "unit", "{e}");
    let e = render_unit(unit_tmpl, &ServiceSpec { working_dir: "relative".into(), ..spec() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "working_dir", "{e}");

    // nginx: one bare token per value, no directive terminators, blocks, quotes or variables.
    let site_tmpl = builtin("nginx/site.conf.tmpl").unwrap();
    let site = || site_spec(root);
    for (domain, _) in [("a.example;", ';'), ("a{", '{'), ("a}", '}'), ("\"a\"", '"'), ("$host", '$'), ("a b", ' ')] {
        let e = render_site(site_tmpl, &SiteSpec { domain: domain.into(), ..site() }).unwrap_err();
        assert_eq!(placeholder_of(&e), "domain", "{domain:?}: {e}");
    }
    let e = render_site(site_tmpl, &SiteSpec { domain: "a\nb".into(), ..site() }).unwrap_err();
    assert!(placeholder_of(&e) == "domain" && e.to_string().contains("line break"), "{e}");
    let e = render_site(site_tmpl, &SiteSpec { cert: "/etc/ssl/a;b.pem".into(), ..site() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "cert", "{e}");
    let e = render_site(site_tmpl, &SiteSpec { access_log: "logs/access.log".into(), ..site() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "access_log", "{e}");
    let e = render_site(site_tmpl, &SiteSpec { static_frontend: Some("/srv/x}".into()), ..site() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "static_frontend", "{e}");
    let e = render_site(site_tmpl, &SiteSpec { listen_addr: "localhost".into(), ..site() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "listen", "{e}");
    let e = render_site(site_tmpl, &SiteSpec { instance: "Main_1".into(), ..site() }).unwrap_err();
    assert_eq!(placeholder_of(&e), "instance", "{e}");
    let e = render_site("server { listen {{listen}}{{port}}; }", &site()).unwrap_err();
    assert_eq!(placeholder_of(&e), "port", "{e}");

    let e = render_upstreams(
        "{{mcp_upstream}} {{backend_port}}",
        &Upstreams { instance: "main".into(), backend_port: 8080, mcp_port: None },
    )
    .unwrap_err();
    assert!(matches!(e, RenderError::Syntax { line: 1, .. }), "a block must stand alone on its line: {e:?}");
    let e = render_nginx_main(
        "pid {{prefix}/nginx.pid;",
        &MainSpec {
            prefix: "/tmp/p".into(),
            temp_dir: "/tmp/p/temp".into(),
            site: "/tmp/p/site.conf".into(),
            error_log: "/tmp/p/error.log".into(),
            user: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e, RenderError::Syntax { .. }), "{e:?}");
    let e = render_nginx_main(
        builtin("nginx/nginx.conf.tmpl").unwrap(),
        &MainSpec {
            prefix: "/tmp/p".into(),
            temp_dir: "/tmp/p/temp".into(),
            site: "/tmp/p/site.conf".into(),
            error_log: "/tmp/p/error.log".into(),
            user: Some("nobody; daemon off".into()),
        },
    )
    .unwrap_err();
    assert_eq!(placeholder_of(&e), "user_directive", "{e}");

    for name in ["systemd/service.tmpl", "nginx/site.conf.tmpl", "nginx/upstream.conf.tmpl", "nginx/nginx.conf.tmpl"] {
        assert!(builtin(name).is_some_and(|t| t.contains("{{")), "{name}");
    }
    assert!(builtin("nginx/other.tmpl").is_none());
}

#[test]
fn upstream_names_are_per_instance() {
    let up = render_upstreams(
        builtin("nginx/upstream.conf.tmpl").unwrap(),
        &Upstreams { instance: "team-2".into(), backend_port: 8091, mcp_port: Some(3459) },
    )
    .unwrap();
    assert!(up.contains("upstream vikunja_team_2_backend {\n    server 127.0.0.1:8091;"), "{up}");
    assert!(up.contains("upstream vikunja_team_2_mcp {\n    server 127.0.0.1:3459;\n    keepalive 16;"), "{up}");
    // The backend keeps no idle connections: the write freeze waits for its connections to close.
    assert_eq!(up.matches("keepalive ").count(), 1, "{up}");

    let root = Path::new("/opt/vikunja-team-2");
    let site = render_site(
        builtin("nginx/site.conf.tmpl").unwrap(),
        &SiteSpec {
            instance: "team-2".into(),
            listen_addr: String::new(),
            http_port: 80,
            https_port: 443,
            mcp: true,
            ..site_spec(root)
        },
    )
    .unwrap();
    assert!(site.contains("proxy_pass http://vikunja_team_2_backend;"), "{site}");
    // The write freeze relies on both: the API is proxied unbuffered (the flag test and the backend
    // connect in one event-loop turn), and the flag is tested afresh on every write.
    let api = site.split("location /api/ {").nth(1).and_then(|r| r.split("\n    }").next()).unwrap_or_default();
    assert!(api.contains("proxy_request_buffering off;") && api.contains("open_file_cache off;"), "{api}");
    assert!(api.contains("if (-f $vikunja_team_2_freeze_flag)"), "{api}");
    assert!(site.contains("default /opt/vikunja-team-2/writes-frozen;"), "{site}");
    assert!(site.contains("proxy_pass http://vikunja_team_2_mcp;"), "{site}");
    assert!(site.contains("    listen 80;\n") && site.contains("    listen 443 ssl http2;\n"), "{site}");
    assert!(site.contains("return 301 https://$host$request_uri;"), "port 443 needs no suffix: {site}");
    assert!(site.contains("include /opt/vikunja-team-2/upstream.conf;"), "{site}");
    assert!(site.contains("client_max_body_size 2m;"), "{site}");

    let v6 = render_site(
        builtin("nginx/site.conf.tmpl").unwrap(),
        &SiteSpec { listen_addr: "::1".into(), ..site_spec(root) },
    )
    .unwrap();
    assert!(v6.contains("listen [::1]:18443 ssl http2;"), "{v6}");
}

// ---------------------------------------------------------------------------------------------
// nginx

struct Nginx {
    _dir: TempDir,
    prefix: PathBuf,
    conf: PathBuf,
    site: SiteSpec,
}

impl Nginx {
    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["-p", s(&self.prefix), "-c", s(&self.conf)];
        a.extend_from_slice(extra);
        a
    }

    fn test_config(&self) -> (bool, String) {
        run("nginx", &self.args(&["-t"]))
    }

    /// Starts the daemon; the returned guard stops it again, also when an assertion panics.
    fn start(&self) -> NginxGuard<'_> {
        let guard = NginxGuard(self);
        let (ok, out) = run("nginx", &self.args(&[]));
        assert!(ok, "nginx did not start: {out}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.site.https_port)).is_err() {
            assert!(Instant::now() < deadline, "nginx is not listening on {}", self.site.https_port);
            std::thread::sleep(Duration::from_millis(20));
        }
        guard
    }
}

struct NginxGuard<'a>(&'a Nginx);

impl Drop for NginxGuard<'_> {
    fn drop(&mut self) {
        let (ok, out) = run("nginx", &self.0.args(&["-s", "quit"]));
        if !ok {
            eprintln!("nginx -s quit failed: {out}");
            return;
        }
        let pid = self.0.prefix.join("nginx.pid");
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Setup<'a> {
    tag: &'a str,
    mcp: bool,
    static_frontend: bool,
    user: Option<&'a str>,
    backend_port: u16,
    mcp_port: Option<u16>,
    write_freeze: bool,
}

fn write_nginx(c: Setup) -> Nginx {
    let dir = TempDir::new(c.tag);
    let prefix = dir.0.clone();
    let tls = prefix.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let (ok, out) = run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            s(&tls.join("key.pem")),
            "-out",
            s(&tls.join("cert.pem")),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
    );
    assert!(ok, "openssl: {out}");

    let static_dir = prefix.join("frontend");
    if c.static_frontend {
        std::fs::create_dir_all(&static_dir).unwrap();
        std::fs::write(static_dir.join("index.html"), "<html>static frontend</html>\n").unwrap();
    }
    let site = SiteSpec {
        http_port: free_port(),
        https_port: free_port(),
        static_frontend: c.static_frontend.then_some(static_dir),
        mcp: c.mcp,
        ..site_spec(&prefix)
    };
    let upstreams = Upstreams { instance: "main".into(), backend_port: c.backend_port, mcp_port: c.mcp_port };
    // What instance::mcp::nginx_auth writes for the token "test-bearer".
    std::fs::write(
        &site.mcp_auth,
        "if ($http_authorization != \"Bearer test-bearer\") {\n    return 401;\n}\nproxy_set_header Authorization \"\";\n",
    )
    .unwrap();
    if c.write_freeze {
        std::fs::write(&site.freeze_flag, "").unwrap();
    }
    let main = MainSpec {
        prefix: prefix.clone(),
        temp_dir: prefix.clone(),
        site: prefix.join("site.conf"),
        error_log: prefix.join("nginx-error.log"),
        user: c.user.map(String::from),
    };
    std::fs::write(
        &site.upstream_include,
        render_upstreams(builtin("nginx/upstream.conf.tmpl").unwrap(), &upstreams).unwrap(),
    )
    .unwrap();
    std::fs::write(&main.site, render_site(builtin("nginx/site.conf.tmpl").unwrap(), &site).unwrap()).unwrap();
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, render_nginx_main(builtin("nginx/nginx.conf.tmpl").unwrap(), &main).unwrap()).unwrap();
    Nginx { _dir: dir, prefix, conf, site }
}

/// Answers every request with one line naming itself, the request and the proxy headers.
fn spawn_backend(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(name, stream));
        }
    });
    port
}

fn serve(name: &str, stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = std::collections::HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let h = |k: &str| headers.get(k).cloned().unwrap_or_default();
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let reply = format!(
            "{name} {method} {path} host={} proto={} real_ip={} upgrade={} connection={} body={len} authorization={}\n",
            h("host"),
            h("x-forwarded-proto"),
            h("x-real-ip"),
            h("upgrade"),
            h("connection").to_ascii_lowercase(),
            h("authorization"),
        );
        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n", reply.len());
        // No body for HEAD: left on a kept-alive connection, it would be read as the next response.
        let body = if method == "HEAD" { "" } else { reply.as_str() };
        if writer.write_all(head.as_bytes()).and_then(|_| writer.write_all(body.as_bytes())).is_err() {
            return;
        }
    }
}

/// `-k` only because the test certificate is self-signed; production code never does this.
fn curl(args: &[&str]) -> (bool, String) {
    let mut all = vec!["-sS", "-k", "--max-time", "10"];
    all.extend_from_slice(args);
    run("curl", &all)
}

fn https(n: &Nginx, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", n.site.https_port)
}

#[test]
fn nginx_t_accepts_every_variant() {
    let started = Instant::now();
    for (i, (mcp, static_frontend)) in
        [(false, false), (true, false), (false, true), (true, true)].into_iter().enumerate()
    {
        let n = write_nginx(Setup {
            tag: "variants",
            mcp,
            static_frontend,
            // Only a warning when not root, but it must parse either way.
            user: (i == 3).then_some("nobody nogroup"),
            backend_port: 8080,
            mcp_port: mcp.then_some(3456),
            write_freeze: false,
        });
        let (ok, out) = n.test_config();
        assert!(ok, "nginx -t failed for mcp={mcp} static={static_frontend}:\n{out}");
        let site = std::fs::read_to_string(n.prefix.join("site.conf")).unwrap();
        assert_eq!(site.contains("location /mcp"), mcp, "{site}");
        assert_eq!(site.contains("try_files $uri $uri/ /index.html;"), static_frontend, "{site}");
        assert!(!site.contains("{{") && !site.contains("\n\n\n"), "{site}");
    }
    println!("nginx -t x4 took {:?}", started.elapsed());
}

#[test]
fn broken_site_fails_nginx_t() {
    let n = write_nginx(Setup {
        tag: "broken",
        mcp: false,
        static_frontend: false,
        user: None,
        backend_port: 8080,
        mcp_port: None,
        write_freeze: false,
    });
    let missing = n.prefix.join("no-such-upstream.conf");
    let site = render_site(
        builtin("nginx/site.conf.tmpl").unwrap(),
        &SiteSpec { upstream_include: missing.clone(), ..site_spec(&n.prefix) },
    )
    .unwrap();
    std::fs::write(n.prefix.join("site.conf"), site).unwrap();
    let (ok, out) = n.test_config();
    assert!(!ok && out.contains(s(&missing)), "nginx -t must fail on a missing upstream include:\n{out}");

    // mcp on in the site but no mcp upstream: the two renderers must be fed consistently.
    let site =
        render_site(builtin("nginx/site.conf.tmpl").unwrap(), &SiteSpec { mcp: true, ..site_spec(&n.prefix) }).unwrap();
    std::fs::write(n.prefix.join("site.conf"), site).unwrap();
    let (ok, out) = n.test_config();
    assert!(!ok && out.contains("vikunja_main_mcp"), "nginx -t must fail on an undefined upstream:\n{out}");
}

#[test]
fn nginx_proxies_embedded_frontend_and_mcp() {
    let started = Instant::now();
    let backend = spawn_backend("backend");
    let mcp = spawn_backend("mcp");
    let n = write_nginx(Setup {
        tag: "live-embedded",
        mcp: true,
        static_frontend: false,
        user: None,
        backend_port: backend,
        mcp_port: Some(mcp),
        write_freeze: false,
    });
    let (ok, out) = n.test_config();
    assert!(ok, "{out}");
    let _running = n.start();
    let https_port = n.site.https_port;

    let (ok, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &format!("http://127.0.0.1:{}/api/v1/info?a=1", n.site.http_port),
    ]);
    assert!(ok, "{out}");
    assert_eq!(out, format!("301 https://127.0.0.1:{https_port}/api/v1/info?a=1"));

    let (ok, out) =
        curl(&["--tlsv1.3", "--tls-max", "1.3", "-D", "-", "-w", "%{http_version}", &https(&n, "/api/v1/info")]);
    assert!(ok, "TLS 1.3 must be accepted: {out}");
    assert!(out.contains("backend GET /api/v1/info host=127.0.0.1 proto=https real_ip=127.0.0.1"), "{out}");
    assert!(out.contains("connection= body=0"), "the keep-alive upstream must get no Connection header: {out}");
    assert!(out.contains("strict-transport-security: max-age=63072000"), "{out}");
    assert!(out.ends_with('2'), "HTTP/2 must be negotiated: {out}");

    let (ok, out) = curl(&["--tlsv1.2", "--tls-max", "1.2", &https(&n, "/")]);
    assert!(ok && out.starts_with("backend GET / "), "`/` goes to the backend (embedded frontend): {out}");

    // SECLEVEL=0 makes this client really offer TLS 1.1, so the refusal comes from the server.
    let (ok, out) = curl(&["--tlsv1.1", "--tls-max", "1.1", "--ciphers", "DEFAULT:@SECLEVEL=0", &https(&n, "/")]);
    assert!(!ok, "TLS 1.1 must be refused: {out}");

    let bearer = "Authorization: Bearer test-bearer";
    let (ok, out) = curl(&[
        "--http1.1",
        "-H",
        bearer,
        "-H",
        "Upgrade: websocket",
        "-H",
        "Connection: Upgrade",
        &https(&n, "/mcp/session"),
    ]);
    assert!(ok, "{out}");
    assert!(out.starts_with("mcp GET /mcp/session host=127.0.0.1 proto=https"), "{out}");
    assert!(out.contains("upgrade=websocket connection=upgrade"), "{out}");
    assert!(out.ends_with("authorization=\n"), "the bearer token must not reach the MCP server: {out}");
    // Attacks: no token, a wrong one, the right one without the scheme; each stops at nginx.
    for h in [
        "X-None: 1",
        "Authorization: Bearer test-bearex",
        "Authorization: test-bearer",
        "Authorization: Bearer test-bearer2",
    ] {
        let (ok, out) = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-H", h, &https(&n, "/mcp")]);
        assert!(ok && out == "401", "{h}: /mcp must answer 401, got {out}");
    }

    let limit = MAX_BODY_MB as usize * 1024 * 1024;
    let big = n.prefix.join("big.bin");
    std::fs::write(&big, vec![b'x'; limit + 1]).unwrap();
    let (ok, out) = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-binary",
        &format!("@{}", s(&big)),
        &https(&n, "/api/v1/tasks/1/attachments"),
    ]);
    assert!(ok && out == "413", "a body over client_max_body_size must get 413, got {out}");
    // Just under the limit: accepted, and buffered through the temp path inside the prefix.
    std::fs::write(&big, vec![b'x'; limit - 1024]).unwrap();
    let (ok, out) = curl(&["--data-binary", &format!("@{}", s(&big)), &https(&n, "/api/v1/tasks/1/attachments")]);
    assert!(ok && out.contains("backend POST /api/v1/tasks/1/attachments"), "{out}");
    assert!(out.contains(&format!("body={}", limit - 1024)), "{out}");

    let log = std::fs::read_to_string(&n.site.access_log).unwrap();
    assert!(log.contains("/api/v1/info"), "access log: {log}");
    println!("live nginx (embedded + mcp) took {:?}", started.elapsed());
}

#[test]
fn nginx_serves_static_frontend() {
    let started = Instant::now();
    let backend = spawn_backend("backend");
    let n = write_nginx(Setup {
        tag: "live-static",
        mcp: false,
        static_frontend: true,
        user: None,
        backend_port: backend,
        mcp_port: None,
        write_freeze: false,
    });
    let (ok, out) = n.test_config();
    assert!(ok, "{out}");
    let _running = n.start();

    for path in ["/", "/projects/1", "/mcp"] {
        let (ok, out) = curl(&[&https(&n, path)]);
        assert!(ok && out == "<html>static frontend</html>\n", "{path} must come from the static dir: {out}");
    }
    for path in ["/api/v1/info", "/health", "/dav/principals/"] {
        let (ok, out) = curl(&[&https(&n, path)]);
        assert!(ok && out.starts_with(&format!("backend GET {path} ")), "{path} must reach the backend: {out}");
    }
    println!("live nginx (static frontend) took {:?}", started.elapsed());
}

#[test]
fn a_write_freeze_answers_writes_503_with_retry_after_and_keeps_reads() {
    let backend = spawn_backend("backend");
    let n = write_nginx(Setup {
        tag: "live-freeze",
        mcp: false,
        static_frontend: false,
        user: None,
        backend_port: backend,
        mcp_port: None,
        write_freeze: true,
    });
    let (ok, out) = n.test_config();
    assert!(ok, "{out}");
    let _running = n.start();
    for method in ["-G", "-I"] {
        let (ok, out) = curl(&["-o", "/dev/null", "-w", "%{http_code}", method, &https(&n, "/api/v1/tasks/all")]);
        assert!(ok && out == "200", "{method} during the freeze: {out}");
    }
    for method in ["PUT", "POST", "DELETE", "PATCH"] {
        let (ok, out) = curl(&["-D", "-", "-X", method, "--data", "{}", &https(&n, "/api/v1/projects/1/tasks")]);
        assert!(ok && out.starts_with("HTTP/2 503"), "{method} during the freeze: {out}");
        let lower = out.to_ascii_lowercase();
        assert!(lower.contains("retry-after: 5") && lower.contains("strict-transport-security"), "{out}");
        assert!(out.contains("being updated") && !out.contains("backend "), "{out}");
    }
    // Outside /api/ nothing is frozen (the frontend's assets, health).
    let (ok, out) = curl(&["-X", "POST", &https(&n, "/other")]);
    assert!(ok && out.starts_with("backend POST /other"), "{out}");
    // Lifting the freeze is removing the flag: the same nginx, not reloaded, takes writes again,
    // and freezes them again as soon as the flag is back.
    std::fs::remove_file(&n.site.freeze_flag).unwrap();
    for http in ["--http1.1", "--http2"] {
        let (ok, out) = curl(&[http, "-X", "PUT", "--data", "{}", &https(&n, "/api/v1/projects/1/tasks")]);
        assert!(ok && out.starts_with("backend PUT /api/v1/projects/1/tasks"), "{http} after the flag went: {out}");
    }
    std::fs::write(&n.site.freeze_flag, "").unwrap();
    let (ok, out) = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", &https(&n, "/api/v1/x")]);
    assert!(ok && out == "503", "the flag is back: {out}");
}

/// `update --auto --schedule on`'s service and timer: one `OnCalendar=` per maintenance window,
/// the environment the schedule was made with, and both pass strict verify together.
#[test]
fn auto_update_timer_and_service_pass_strict_verify() {
    use render::autotimer::{render as render_auto, AutoTimerSpec, SERVICE_TEMPLATE, TIMER_TEMPLATE};
    let dir = TempDir::new("auto-timer");
    let bin = dir.0.join("vikunja-installer");
    std::fs::copy("/bin/true", &bin).unwrap();
    // As `update_policy::Window::on_calendar` writes them (its unit test checks that side).
    let calendars = ["Sun *-*-* 03:00:00", "Mon,Tue,Wed,Thu,Fri *-*-* 01:00:00", "Sat *-*-* 23:00:00"];
    let spec = |on_calendar: Vec<String>, env: Vec<(String, String)>| AutoTimerSpec {
        unit: "vikunja-main-autoupdate".into(),
        description: "Automatic update of Vikunja instance main".into(),
        command: "update --auto".into(),
        exec: vec![s(&bin).into(), "update".into(), "--auto".into(), "--instance".into(), "main".into()],
        env,
        on_calendar,
        randomized_delay_s: 900,
    };
    let env = vec![
        ("SSL_CERT_FILE".to_string(), "/etc/vikunja-pve/ca bundle%.pem".to_string()),
        ("HTTPS_PROXY".to_string(), "http://proxy.example:3128".to_string()),
    ];
    let t = |n| builtin(n).unwrap();
    let (service, timer) =
        render_auto(t(SERVICE_TEMPLATE), t(TIMER_TEMPLATE), &spec(calendars.map(String::from).to_vec(), env)).unwrap();
    for c in calendars {
        assert!(timer.lines().any(|l| l == format!("OnCalendar={c}")), "{timer}");
    }
    assert!(timer.contains("Unit=vikunja-main-autoupdate.service\n"), "{timer}");
    assert!(service.contains("Environment=\"SSL_CERT_FILE=/etc/vikunja-pve/ca bundle%%.pem\"\n"), "{service}");
    assert!(service.contains("Environment=HTTPS_PROXY=http://proxy.example:3128\n"), "{service}");
    assert!(service.contains(" update --auto --instance main\n") && service.contains("Type=oneshot"), "{service}");
    let (sp, tp) = (dir.0.join("vikunja-main-autoupdate.service"), dir.0.join("vikunja-main-autoupdate.timer"));
    std::fs::write(&sp, &service).unwrap();
    std::fs::write(&tp, &timer).unwrap();
    for unit in [&sp, &tp] {
        let (ok, out) = verify_strict(unit);
        assert!(ok, "verify {}:\n{out}\n--- service ---\n{service}\n--- timer ---\n{timer}", unit.display());
    }
    // Without environment the placeholder line goes, and the units still verify.
    let (service, _) =
        render_auto(t(SERVICE_TEMPLATE), t(TIMER_TEMPLATE), &spec(vec![calendars[0].into()], vec![])).unwrap();
    assert!(!service.contains("Environment=") && !service.contains("\n\n\n"), "{service}");
    // What would add a directive or name no time is refused, not rendered.
    for (cal, env) in [
        (vec!["daily\nExecStartPre=/bin/sh".to_string()], vec![]),
        (vec![], vec![]),
        (vec![calendars[0].to_string()], vec![("A=B".to_string(), "x".to_string())]),
        (vec![calendars[0].to_string()], vec![("A".to_string(), "x\nExecStartPre=/bin/sh".to_string())]),
    ] {
        let r = render_auto(t(SERVICE_TEMPLATE), t(TIMER_TEMPLATE), &spec(cal.clone(), env.clone()));
        assert!(matches!(r, Err(RenderError::Invalid { .. })), "{cal:?} {env:?}: {r:?}");
    }
}
