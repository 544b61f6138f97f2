//! Certificates from an ACME CA (Let's Encrypt) with the HTTP-01 challenge, served by the
//! instance's own nginx on its HTTP port (`/.well-known/acme-challenge/`, files in
//! `Layout::acme_challenge_dir`). The protocol is instant-acme's; its HTTP goes through manifests'
//! ureq agent, so the CA is verified against the same roots as every download (webpki, or
//! `SSL_CERT_FILE` alone) and verification cannot be turned off.
//!
//! A new certificate replaces the served one only after it was issued and `nginx -t` accepted it,
//! by a graceful reload (`nginx::start_or_reload`: new workers take new connections while the
//! old ones finish theirs); any failure before that leaves the old files byte for byte.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType, HttpClient,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use manifests::atomic::write_atomic;

use crate::instance::config::Deployment;
use crate::instance::layout::Layout;
use crate::instance::tls;
use crate::service::init::Init;
use crate::service::nginx::{self, NginxError};

/// A certificate with fewer days left than this is renewed (Let's Encrypt's own advice for
/// 90-day certificates: renew with a third of the lifetime left).
pub const RENEW_DAYS: i64 = 30;
const DAY: i64 = 86_400;
/// The largest answer read from the CA (a chain is a few KiB).
const MAX_BODY: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("the ACME directory {url} could not be used: {detail}; check ssl.acme_directory, the network and the proxy settings (HTTPS_PROXY, SSL_CERT_FILE)")]
    Directory { url: String, detail: String },
    #[error("the CA refused a request ({step}) with a rate limit: {detail}; wait until the limit resets (see the CA's rate-limit documentation) and run `vikunja-installer cert renew` again")]
    RateLimited { step: &'static str, detail: String },
    #[error("the CA could not validate {domain}: {detail}; make sure {domain} resolves to this container from the internet and that port 80 reaches its nginx (http://{domain}/.well-known/acme-challenge/ must serve the token), then run `vikunja-installer cert renew`")]
    Challenge { domain: String, detail: String },
    #[error("nginx does not serve the ACME challenge directory {} at http://{domain}:{port}/.well-known/acme-challenge/ ({detail}); nothing was asked of the CA. Is the instance running (`vikunja-installer start`)? `nginx -t` and the instance's nginx error log say more", dir.display())]
    SelfCheck { domain: String, port: u16, dir: PathBuf, detail: String },
    #[error("the CA failed the order ({step}): {detail}")]
    Ca { step: &'static str, detail: String },
    #[error("{action} {}: {err}", path.display())]
    Io { action: &'static str, path: PathBuf, err: std::io::Error },
    #[error("the new certificate was not taken into service: {0}")]
    Nginx(NginxError),
}

/// What a renewal did.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Nothing to do: this many whole days remain.
    Kept { days_left: i64 },
    /// The certificate was already renewed but nginx had not loaded it; now it serves.
    Reloaded { days_left: i64 },
    /// A new certificate serves, valid until this time (Unix seconds).
    Renewed { not_after: i64 },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AcmeError + 'a {
    move |err| AcmeError::Io { action, path: path.to_path_buf(), err }
}

/// Days left on the ACME certificate (negative once expired), None when there is none or it
/// cannot be read.
pub fn days_left(l: &Layout, now: i64) -> Option<i64> {
    let pem = std::fs::read_to_string(tls::acme_paths(l).cert).ok()?;
    Some((tls::not_after(&pem)? - now).div_euclid(DAY))
}

/// Whether an ACME certificate serves that names the domain (of any age).
pub fn fits(l: &Layout, d: &Deployment) -> bool {
    tls::acme_obtained(l, d)
        .and_then(|p| std::fs::read_to_string(p.cert).ok())
        .is_some_and(|pem| covers(&pem, &d.network.domain))
}

/// Renews when forced, when no ACME certificate serves yet, when it names another domain, or
/// when fewer than [`RENEW_DAYS`] remain. Records the attempt for `status`/`health`.
pub fn renew(l: &Layout, d: &Deployment, init: Init, force: bool) -> Result<Renewal, AcmeError> {
    let now = manifests::time::now_unix();
    if let (false, true, Some(days_left)) = (force, fits(l, d), days_left(l, now)) {
        if days_left >= RENEW_DAYS {
            // A renewal killed after its rename left nginx on the previous pair: reload now.
            if std::fs::read_to_string(served_record(l)).ok() != served_id(l) && nginx::is_running(l, init) {
                take_into_service(l, d, init).map_err(AcmeError::Nginx)?;
                return Ok(Renewal::Reloaded { days_left });
            }
            return Ok(Renewal::Kept { days_left });
        }
    }
    let result = obtain(l, d).and_then(|(chain, key)| install(l, d, init, &chain, &key));
    record(l, now, &result);
    result
}

/// The last attempt's outcome: `(unix time, None when it succeeded or the error text)`.
pub fn last_attempt(l: &Layout) -> Option<(i64, Option<String>)> {
    let text = std::fs::read_to_string(status_file(l)).ok()?;
    let field = |k: &str| text.lines().find_map(|x| x.strip_prefix(k)?.strip_prefix(" = ")).map(str::to_string);
    let at = field("attempt")?.parse().ok()?;
    Some((at, field("error")))
}

fn status_file(l: &Layout) -> PathBuf {
    l.state_dir().join("acme-last-attempt")
}

fn record(l: &Layout, now: i64, result: &Result<Renewal, AcmeError>) {
    let mut text = format!("attempt = {now}\n");
    if let Err(e) = result {
        text.push_str(&format!("error = {}\n", e.to_string().replace('\n', " ")));
    }
    // Only a report: failing to write it must not turn a renewal into a failure.
    let _ = write_atomic(&status_file(l), text.as_bytes(), 0o644);
}

/// Orders a certificate for the domain: account (made once per directory and kept, 0600),
/// order, HTTP-01 token in the challenge directory, validation, finalisation. Returns the PEM
/// chain and its new private key; nothing served is touched.
fn obtain(l: &Layout, d: &Deployment) -> Result<(String, String), AcmeError> {
    let directory = d.ssl.acme_directory.clone();
    let domain = d.network.domain.clone();
    let agent = manifests::fetch::api_agent(&format!("vikunja-installer/{}", env!("CARGO_PKG_VERSION")))
        .map_err(|e| AcmeError::Directory { url: directory.clone(), detail: e.to_string() })?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(|err| AcmeError::Io {
        action: "start the ACME runtime for",
        path: l.acme_dir(),
        err,
    })?;
    std::fs::create_dir_all(l.acme_dir()).map_err(io("create", &l.acme_dir()))?;
    set_mode(&l.acme_dir(), 0o700)?;
    let challenges = l.acme_challenge_dir();
    std::fs::create_dir_all(&challenges).map_err(io("create", &challenges))?;
    set_mode(&challenges, 0o755)?;
    self_check(l, d)?;
    let mut tokens = Vec::new();
    let out = rt.block_on(async {
        let account = account(l, d, &directory, agent).await?;
        let ids = [Identifier::Dns(domain.clone())];
        let mut order =
            account.new_order(&NewOrder::new(&ids)).await.map_err(|e| ca_error("new order", &directory, e))?;
        let mut authzs = order.authorizations();
        while let Some(a) = authzs.next().await {
            let mut a = a.map_err(|e| ca_error("authorization", &directory, e))?;
            match a.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(AcmeError::Challenge {
                        domain: domain.clone(),
                        detail: format!("authorization is {other:?}"),
                    })
                }
            }
            let mut ch = a.challenge(ChallengeType::Http01).ok_or_else(|| AcmeError::Ca {
                step: "authorization",
                detail: "the CA offers no http-01 challenge for this name".into(),
            })?;
            let token = challenges.join(&ch.token);
            if ch.token.is_empty() || ch.token.contains(['/', '.']) {
                return Err(AcmeError::Ca { step: "challenge", detail: format!("unusable token {:?}", ch.token) });
            }
            write_atomic(&token, ch.key_authorization().as_str().as_bytes(), 0o644).map_err(io("write", &token))?;
            tokens.push(token);
            ch.set_ready().await.map_err(|e| ca_error("challenge", &directory, e))?;
        }
        let policy = RetryPolicy::new().timeout(Duration::from_secs(90));
        // An order that turned invalid comes back as the CA's problem: the validation's own error.
        let status = order.poll_ready(&policy).await.map_err(|e| match ca_error("validation", &directory, e) {
            AcmeError::Ca { detail, .. } => AcmeError::Challenge { domain: domain.clone(), detail },
            other => other,
        })?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::Challenge { domain: domain.clone(), detail: why_invalid(&mut order).await });
        }
        let key = order.finalize().await.map_err(|e| ca_error("finalize", &directory, e))?;
        let chain = order.poll_certificate(&policy).await.map_err(|e| ca_error("certificate", &directory, e))?;
        Ok((chain, key))
    });
    for t in tokens {
        let _ = std::fs::remove_file(t);
    }
    out
}

/// Fetches a file of our own from the challenge location as the CA will (plain HTTP, the
/// domain as Host), so a stopped or misconfigured nginx fails here and not as a failed
/// validation, which the CA counts against the account's limits.
fn self_check(l: &Layout, d: &Deployment) -> Result<(), AcmeError> {
    let dir = l.acme_challenge_dir();
    let seed = format!("{:?} {} {}", std::time::SystemTime::now(), std::process::id(), l.base.display());
    let value = manifests::hash::sha256_hex(seed.as_bytes());
    let name = format!("self-check-{}", &value[..16]);
    let file = dir.join(&name);
    write_atomic(&file, value.as_bytes(), 0o644).map_err(io("write", &file))?;
    let addr = crate::service::probe::reach(&d.network.listen_address, d.network.http_port);
    let got = crate::service::probe::get_host(
        addr,
        &d.network.domain,
        &format!("/.well-known/acme-challenge/{name}"),
        Duration::from_secs(5),
    );
    let _ = std::fs::remove_file(&file);
    let fail = |detail: String| AcmeError::SelfCheck {
        domain: d.network.domain.clone(),
        port: d.network.http_port,
        dir: dir.clone(),
        detail,
    };
    match got {
        Ok(r) if r.status == 200 && r.body == value.as_bytes() => Ok(()),
        Ok(r) => Err(fail(format!("it answered {} instead of the file", r.status))),
        Err(e) => Err(fail(e)),
    }
}

/// The kept account for this directory, or a new one (its credentials saved 0600 before use).
async fn account(l: &Layout, d: &Deployment, directory: &str, agent: ureq::Agent) -> Result<Account, AcmeError> {
    let path = account_file(l, directory);
    let builder = Account::builder_with_http(Box::new(UreqClient(agent)));
    if let Ok(text) = std::fs::read_to_string(&path) {
        let creds: AccountCredentials = serde_json::from_str(&text).map_err(|e| AcmeError::Io {
            action: "read the ACME account",
            path: path.clone(),
            err: std::io::Error::other(format!("{e}; move the file aside and run again to register a new account")),
        })?;
        return builder.from_credentials(creds).await.map_err(|e| ca_error("account", directory, e));
    }
    let contact = format!("mailto:{}", d.ssl.acme_email);
    let (account, creds) = builder
        .create(
            &NewAccount { contact: &[&contact], terms_of_service_agreed: true, only_return_existing: false },
            directory.to_string(),
            None,
        )
        .await
        .map_err(|e| ca_error("new account", directory, e))?;
    let json = serde_json::to_vec(&creds).map_err(|e| AcmeError::Io {
        action: "serialise the ACME account for",
        path: path.clone(),
        err: std::io::Error::other(e),
    })?;
    write_atomic(&path, &json, 0o600).map_err(io("write", &path))?;
    Ok(account)
}

/// One account per directory URL: a staging account is unknown to production and vice versa.
fn account_file(l: &Layout, directory: &str) -> PathBuf {
    l.acme_dir().join(format!("account-{}.json", &manifests::hash::sha256_hex(directory.as_bytes())[..16]))
}

/// The challenge's own error, as the CA reported it.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut authzs = order.authorizations();
    let mut why = Vec::new();
    while let Some(Ok(a)) = authzs.next().await {
        for c in &a.challenges {
            if let Some(p) = &c.error {
                why.push(problem_text(p));
            }
        }
    }
    if why.is_empty() {
        "the order became invalid".into()
    } else {
        why.join("; ")
    }
}

fn problem_text(p: &instant_acme::Problem) -> String {
    let kind = p.r#type.as_deref().unwrap_or("").trim_start_matches("urn:ietf:params:acme:error:");
    let mut s = format!("{} ({kind})", p.detail.as_deref().unwrap_or("no detail"));
    if let Some(code) = p.status {
        s.push_str(&format!(", HTTP {code}"));
    }
    s
}

fn ca_error(step: &'static str, directory: &str, e: instant_acme::Error) -> AcmeError {
    match e {
        instant_acme::Error::Api(p) if p.r#type.as_deref().is_some_and(|t| t.ends_with(":rateLimited")) => {
            AcmeError::RateLimited { step, detail: problem_text(&p) }
        }
        instant_acme::Error::Api(p) => AcmeError::Ca { step, detail: problem_text(&p) },
        // No problem document: the URL is no ACME directory, or nothing answered there.
        other => AcmeError::Directory { url: directory.to_string(), detail: format!("{step}: {other}") },
    }
}

/// Puts the new pair into service. Key and chain share one 0600 file (nginx reads both from it),
/// so one rename switches them together: a run killed mid-way leaves the old pair or the new one,
/// never a key that does not match its certificate. Then the site points at it (the first time),
/// `nginx -t`, a graceful reload; any failure puts the file and the site back.
fn install(l: &Layout, d: &Deployment, init: Init, chain: &str, key: &str) -> Result<Renewal, AcmeError> {
    let not_after = tls::not_after(chain)
        .ok_or_else(|| AcmeError::Ca { step: "certificate", detail: "the CA sent no readable certificate".into() })?;
    let p = tls::acme_paths(l);
    let combined = format!("{}\n{}", key.trim_end(), chain);
    let old = std::fs::read(&p.cert).ok();
    let site_file = nginx::site_file(l);
    let old_site = std::fs::read_to_string(&site_file).ok();
    write_atomic(&p.cert, combined.as_bytes(), 0o600).map_err(io("write", &p.cert))?;
    crate::fault::kill_point("acme-certificate-written");
    if let Err(e) = take_into_service(l, d, init) {
        let _ = match &old {
            Some(b) => write_atomic(&p.cert, b, 0o600),
            None => std::fs::remove_file(&p.cert),
        };
        if let Some(text) = old_site {
            let _ = write_atomic(&site_file, text.as_bytes(), 0o644);
        }
        return Err(AcmeError::Nginx(e));
    }
    Ok(Renewal::Renewed { not_after })
}

/// Points the site at the ACME file (the first time), `nginx -t`, a graceful reload, and records
/// what nginx loaded in install's record (a hash of the certificate file and of the key file,
/// here the same one), so neither the next install nor the next renewal reloads for it again.
fn take_into_service(l: &Layout, d: &Deployment, init: Init) -> Result<(), NginxError> {
    let p = tls::acme_paths(l);
    let t = crate::render::templates::load("nginx/site.conf.tmpl").map_err(NginxError::Template)?;
    let site = crate::render::render_site(&t, &nginx::site_spec(l, d, &p)).map_err(NginxError::Render)?;
    // The site changes only the first time (self-signed → ACME); a renewal rewrites the same
    // path, so the check must run here too.
    if !nginx::replace_checked(l, init, &[(nginx::site_file(l), site)])? {
        nginx::check(l, init).map_err(|e| NginxError::Rejected(Box::new(e)))?;
    }
    nginx::start_or_reload(l, init)?;
    if let Some(h) = served_id(l) {
        let _ = write_atomic(&served_record(l), h.as_bytes(), 0o644);
    }
    Ok(())
}

fn served_record(l: &Layout) -> PathBuf {
    l.state_dir().join("served-certificate")
}

/// install's record of the ACME file as it is now.
fn served_id(l: &Layout) -> Option<String> {
    let h = manifests::hash::sha256_hex(&std::fs::read(tls::acme_paths(l).cert).ok()?);
    Some(format!("{h} {h}"))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), AcmeError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io("set the mode of", path))
}

/// Base name of the renewal service and timer.
pub fn timer_unit(l: &Layout) -> String {
    format!("vikunja-{}-cert-renew", l.instance)
}

/// Twice a day with up to six hours of jitter, as Let's Encrypt asks of clients.
pub const TIMER_CALENDAR: &str = "*-*-* 00,12:00:00";
pub const TIMER_JITTER_S: u32 = 6 * 3600;

/// The renewal's (service, timer) files: names and texts; `exe` is the installer as the timer runs it.
pub fn render_timer(l: &Layout, exe: &Path) -> Result<[(String, String); 2], String> {
    let mut exec = vec![exe.to_string_lossy().into_owned(), "cert".into(), "renew".into()];
    exec.extend(["--instance".into(), l.instance.clone()]);
    if l.root != Path::new("/") {
        exec.extend(["--root".into(), l.root.to_string_lossy().into_owned()]);
    }
    let spec = crate::render::BackupTimerSpec {
        unit: timer_unit(l),
        description: format!("Renew the ACME certificate of Vikunja instance {}", l.instance),
        exec,
        on_calendar: TIMER_CALENDAR.into(),
        randomized_delay_s: TIMER_JITTER_S,
    };
    let t = crate::render::templates::load;
    let (service, timer) = crate::render::render_cert_timer(
        &t("systemd/cert-renew.service.tmpl").map_err(|e| e.to_string())?,
        &t("systemd/cert-renew.timer.tmpl").map_err(|e| e.to_string())?,
        &spec,
    )
    .map_err(|e| e.to_string())?;
    let u = timer_unit(l);
    Ok([(format!("{u}.service"), service), (format!("{u}.timer"), timer)])
}

/// Installs and starts the renewal timer (systemd only: under `--init process` nothing would run
/// it, and `cert renew` from cron does the same). Returns whether a file changed.
pub fn schedule(l: &Layout, init: Init) -> anyhow::Result<bool> {
    if init != Init::Systemd {
        return Ok(false);
    }
    let exe = crate::service::schedule::installer_path(l)?;
    let mut changed = false;
    let files = render_timer(l, &exe).map_err(anyhow::Error::msg)?;
    for (name, text) in &files {
        for p in [l.units_dir().join(name), l.system(&format!("/etc/systemd/system/{name}"))] {
            if std::fs::read_to_string(&p).ok().as_deref() == Some(text.as_str()) {
                continue;
            }
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("create {}: {e}", dir.display()))?;
            }
            write_atomic(&p, text.as_bytes(), 0o644).map_err(|e| anyhow::anyhow!("write {}: {e}", p.display()))?;
            changed = true;
        }
    }
    if changed {
        crate::service::schedule::systemctl(&["daemon-reload"])?;
    }
    crate::service::schedule::systemctl(&["enable", "--now", &files[1].0])?;
    Ok(changed)
}

/// The HTTP client instant-acme calls: manifests' blocking agent, run inline (the runtime is
/// single-threaded and this is all it does).
struct UreqClient(ureq::Agent);

impl HttpClient for UreqClient {
    fn request(
        &self,
        req: ureq::http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let agent = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let req = ureq::http::Request::from_parts(parts, body.to_vec());
            let mut rsp = agent.run(req).map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut buf = Vec::new();
            rsp.body_mut()
                .as_reader()
                .take(MAX_BODY)
                .read_to_end(&mut buf)
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let (parts, _) = rsp.into_parts();
            Ok(BytesResponse::from(ureq::http::Response::from_parts(parts, Full::new(Bytes::from(buf)))))
        })
    }
}

/// Whether the first certificate of a PEM chain names `domain` (a DNS SAN, as DER bytes).
fn covers(pem: &str, domain: &str) -> bool {
    let Some(der) = tls::first_der(pem) else { return false };
    // A dNSName in a SAN is context tag [2], primitive: 0x82, length, the name.
    let name = domain.as_bytes();
    der.windows(name.len() + 2).any(|w| w[0] == 0x82 && usize::from(w[1]) == name.len() && &w[2..] == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The renewal units, as `install` writes them, pass `systemd-analyze verify` with no remark:
    /// twice a day, jittered, persistent, the timer naming its service, `cert renew` the command.
    #[test]
    fn the_renewal_timer_and_service_pass_strict_verify() {
        let dir = std::env::temp_dir().join(format!("acme-timer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin dir")).unwrap();
        let exe = dir.join("bin dir/vikunja-installer");
        std::fs::copy("/bin/true", &exe).unwrap();
        let l = Layout::new(&dir.join("root"), "main");
        let [(sn, service), (tn, timer)] = render_timer(&l, &exe).unwrap();
        assert_eq!((sn.as_str(), tn.as_str()), ("vikunja-main-cert-renew.service", "vikunja-main-cert-renew.timer"));
        assert!(
            timer.contains("OnCalendar=*-*-* 00,12:00:00\n") && timer.contains("RandomizedDelaySec=21600\n"),
            "{timer}"
        );
        assert!(
            timer.contains("Persistent=true") && timer.contains("Unit=vikunja-main-cert-renew.service\n"),
            "{timer}"
        );
        assert!(service.contains("cert renew --instance main --root"), "{service}");
        let units = dir.join("units");
        std::fs::create_dir_all(&units).unwrap();
        for (name, text) in [(&sn, &service), (&tn, &timer)] {
            std::fs::write(units.join(name), text).unwrap();
        }
        for name in [&sn, &tn] {
            let o =
                Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(units.join(name)).output().unwrap();
            let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(o.status.success() && said.trim().is_empty(), "{name}: {said}\n{service}\n{timer}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Let's Encrypt's rate-limit problem (pebble has none to show) is told apart from other
    /// problems, and a failure without a problem document blames the directory URL.
    #[test]
    fn a_rate_limit_says_wait_and_other_failures_name_the_ca_or_the_directory() {
        let problem = |kind: &str| {
            instant_acme::Error::Api(
                serde_json::from_value(serde_json::json!({
                    "type": format!("urn:ietf:params:acme:error:{kind}"),
                    "detail": "too many certificates (5) already issued for this exact set of identifiers",
                    "status": 429
                }))
                .unwrap(),
            )
        };
        let e = ca_error("new order", "https://ca.example/dir", problem("rateLimited")).to_string();
        assert!(e.contains("rate limit") && e.contains("too many certificates") && e.contains("HTTP 429"), "{e}");
        assert!(e.contains("wait until the limit resets") && e.contains("cert renew"), "{e}");
        let e = ca_error("new order", "https://ca.example/dir", problem("malformed")).to_string();
        assert!(e.starts_with("the CA failed the order (new order)") && e.contains("(malformed)"), "{e}");
        let e = ca_error("new account", "https://ca.example/dir", instant_acme::Error::Str("no nonce")).to_string();
        assert!(e.contains("the ACME directory https://ca.example/dir could not be used"), "{e}");
    }

    #[test]
    fn not_after_and_names_match_what_openssl_reads() {
        let dir = std::env::temp_dir().join(format!("acme-der-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        for days in ["1", "400", "20000"] {
            let o = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
                .args(["-subj", "/CN=x", "-addext", "subjectAltName=DNS:tasks.example.org,DNS:b.example.org"])
                .arg("-days")
                .arg(days)
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let o = Command::new("openssl").args(["x509", "-noout", "-enddate", "-in"]).arg(&cert).output().unwrap();
            let end = String::from_utf8_lossy(&o.stdout).trim().trim_start_matches("notAfter=").to_string();
            let o = Command::new("date").args(["-u", "-d", &end, "+%s"]).output().unwrap();
            let want: i64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
            let pem = std::fs::read_to_string(&cert).unwrap();
            assert_eq!(tls::not_after(&pem), Some(want), "{days} days (UTCTime before 2050, GeneralizedTime after)");
            assert!(covers(&pem, "tasks.example.org") && covers(&pem, "b.example.org"));
            assert!(!covers(&pem, "example.org") && !covers(&pem, "c.example.org"));
        }
        assert_eq!(tls::not_after("garbage"), None);
        assert_eq!(tls::not_after("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
