//! Notifications to one receiver (`[notify]`): the request for each format is built here without
//! I/O (`request`), then sent with a short-timeout ureq agent (`send`). Formats: "json" (a generic
//! webhook: event, instance, version, message, time), ntfy (publish: the message as body, Title,
//! Priority and Tags headers, an access token as Bearer) and Gotify (POST /message?token=… with
//! JSON title, message, priority). Mail is left out: `lettre` with TLS adds a second TLS stack
//! and dozens of crates for what a webhook to a mail relay (or ntfy/Gotify's own mail) does.

use std::time::Duration;

use serde::Serialize;

use crate::instance::observe::{read_secret, url_allowed, Notify};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    UpdateFailed,
    UpdateRolledBack,
    BackupFailed,
    Unhealthy,
    Recovered,
    CertificateExpiring,
    ReleaseAvailable,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::UpdateFailed => "update_failed",
            Event::UpdateRolledBack => "update_rolled_back",
            Event::BackupFailed => "backup_failed",
            Event::Unhealthy => "unhealthy",
            Event::Recovered => "healthy_again",
            Event::CertificateExpiring => "certificate_expiring",
            Event::ReleaseAvailable => "release_available",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Event::UpdateFailed => "update failed",
            Event::UpdateRolledBack => "update failed and was rolled back",
            Event::BackupFailed => "backup failed",
            Event::Unhealthy => "instance unhealthy",
            Event::Recovered => "instance healthy again",
            Event::CertificateExpiring => "certificate expires soon",
            Event::ReleaseAvailable => "new Vikunja release",
        }
    }
    /// ntfy's 1-5 and Gotify's 0-10 scales.
    fn priority(self) -> (u8, u8) {
        match self {
            Event::UpdateFailed | Event::UpdateRolledBack | Event::BackupFailed | Event::Unhealthy => (4, 8),
            Event::CertificateExpiring => (4, 6),
            Event::Recovered => (3, 5),
            Event::ReleaseAvailable => (2, 3),
        }
    }
    fn tags(self) -> &'static str {
        match self {
            Event::UpdateFailed | Event::BackupFailed | Event::Unhealthy => "rotating_light,vikunja",
            Event::UpdateRolledBack | Event::CertificateExpiring => "warning,vikunja",
            Event::Recovered => "white_check_mark,vikunja",
            Event::ReleaseAvailable => "package,vikunja",
        }
    }
}

/// What one notification says; `time` is RFC 3339.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    #[serde(serialize_with = "event_name")]
    pub event: Event,
    pub instance: String,
    pub version: String,
    pub message: String,
    pub time: String,
}

fn event_name<S: serde::Serializer>(e: &Event, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(e.name())
}

impl Message {
    pub fn title(&self) -> String {
        format!("Vikunja {}: {}", self.instance, self.event.title())
    }
}

/// One HTTP request: POST to `url` with these headers and body.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The request `n.format` makes of `m`; `token` is the content of `n.token_file`.
pub fn request(n: &Notify, token: Option<&str>, m: &Message) -> Request {
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap_or_default();
    let (ntfy_priority, gotify_priority) = m.event.priority();
    match n.format.as_str() {
        "ntfy" => {
            let mut headers = vec![
                ("Title", m.title()),
                ("Priority", ntfy_priority.to_string()),
                ("Tags", m.event.tags().to_string()),
            ];
            if let Some(t) = token {
                headers.push(("Authorization", format!("Bearer {t}")));
            }
            Request { url: n.url.clone(), headers, body: m.message.clone().into_bytes() }
        }
        "gotify" => {
            let base = n.url.trim_end_matches('/');
            Request {
                url: format!("{base}/message?token={}", token.unwrap_or("")),
                headers: vec![("Content-Type", "application/json".into())],
                body: json(serde_json::json!({
                    "title": m.title(),
                    "message": m.message,
                    "priority": gotify_priority,
                    "extras": {"vikunja-pve": {"event": m.event.name(), "instance": m.instance, "version": m.version}},
                })),
            }
        }
        _ => Request {
            url: n.url.clone(),
            headers: vec![("Content-Type", "application/json".into())],
            body: json(serde_json::json!({
                "event": m.event.name(),
                "instance": m.instance,
                "version": m.version,
                "message": m.message,
                "time": m.time,
                "title": m.title(),
            })),
        },
    }
}

/// Sends `m` to the configured receiver. Nothing configured is Ok(false); delivered is Ok(true).
/// The error names the receiver and what went wrong; it never carries the token.
pub fn send(n: &Notify, m: &Message) -> Result<bool, String> {
    if n.url.is_empty() {
        return Ok(false);
    }
    if !url_allowed(&n.url) {
        return Err(format!("notify.url {} is neither https:// nor http:// to this machine; not sent", n.url));
    }
    let token = n.token_file.as_deref().map(read_secret).transpose()?;
    let r = request(n, token.as_deref(), m);
    // The roots of the downloads (SSL_CERT_FILE replaces them), so a receiver behind an internal CA works.
    let tls = manifests::fetch::tls_config().map_err(|e| e.to_string())?;
    let config = ureq::Agent::config_builder()
        // url_allowed decided already: https anywhere, http to loopback only.
        .https_only(false)
        .tls_config(tls)
        .max_redirects(0)
        .user_agent(format!("vikunja-installer/{}", manifests::build_info::version()))
        .timeout_global(Some(Duration::from_secs(10)))
        .build();
    let agent = ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        manifests::resolve::StaticResolver::default(),
    );
    let mut req = agent.post(&r.url);
    for (k, v) in &r.headers {
        req = req.header(*k, v);
    }
    let shown = n.url.split('?').next().unwrap_or("");
    req.send(&r.body[..]).map(|_| true).map_err(|e| format!("{} notification to {shown} failed: {e}", m.event.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(event: Event) -> Message {
        Message {
            event,
            instance: "main".into(),
            version: "v2.5.0".into(),
            message: "the update to v2.5.0 never got healthy; v2.4.0 serves again".into(),
            time: "2026-11-27T18:00:00Z".into(),
        }
    }

    fn notify(format: &str, url: &str) -> Notify {
        Notify { url: url.into(), format: format.into(), ..Notify::default() }
    }

    #[test]
    fn generic_json_carries_event_instance_version_message_time() {
        let r = request(&notify("json", "https://hooks.example/x"), None, &msg(Event::UpdateRolledBack));
        assert_eq!(r.url, "https://hooks.example/x");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["event"], "update_rolled_back");
        assert_eq!(v["instance"], "main");
        assert_eq!(v["version"], "v2.5.0");
        assert_eq!(v["time"], "2026-11-27T18:00:00Z");
        assert!(v["message"].as_str().unwrap().contains("never got healthy"));
    }

    #[test]
    fn ntfy_puts_the_message_in_the_body_and_the_rest_in_headers() {
        let r = request(&notify("ntfy", "https://ntfy.sh/vikunja-alerts"), Some("tk_abc"), &msg(Event::BackupFailed));
        assert_eq!(r.url, "https://ntfy.sh/vikunja-alerts");
        assert!(String::from_utf8(r.body).unwrap().starts_with("the update"));
        let h = |k: &str| r.headers.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(h("Title"), "Vikunja main: backup failed");
        assert_eq!(h("Priority"), "4");
        assert!(h("Tags").contains("rotating_light"));
        assert_eq!(h("Authorization"), "Bearer tk_abc");
    }

    #[test]
    fn gotify_posts_json_to_message_with_the_token() {
        let r = request(&notify("gotify", "https://gotify.example/"), Some("AppTok"), &msg(Event::ReleaseAvailable));
        assert_eq!(r.url, "https://gotify.example/message?token=AppTok");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["title"], "Vikunja main: new Vikunja release");
        assert_eq!(v["priority"], 3);
        assert!(v["message"].is_string());
    }

    #[test]
    fn plain_http_elsewhere_is_not_sent_and_nothing_configured_is_no_error() {
        assert_eq!(send(&notify("json", ""), &msg(Event::Unhealthy)), Ok(false));
        let e = send(&notify("json", "http://example.com/hook"), &msg(Event::Unhealthy)).unwrap_err();
        assert!(e.contains("not sent"), "{e}");
    }
}
