//! `about`: the hand-off contract made visible. The bootstrap passes the bundle directory and the
//! facts of the verified release in `VIKUNJA_*` variables; this prints them (and what the bundle
//! holds) so that users, support requests and tests can see what is running.

use std::path::PathBuf;

use manifests::build_info;

pub struct AboutInfo {
    pub version: &'static str,
    pub channel: &'static str,
    pub bundle_dir: Option<PathBuf>,
    pub release: Vec<(&'static str, String)>,
    pub templates: Vec<String>,
}

const RELEASE_VARS: [(&str, &str); 6] = [
    ("bootstrap_version", "VIKUNJA_BOOTSTRAP_VERSION"),
    ("release_version", "VIKUNJA_RELEASE_VERSION"),
    ("release_channel", "VIKUNJA_RELEASE_CHANNEL"),
    ("release_serial", "VIKUNJA_RELEASE_SERIAL"),
    ("release_key_id", "VIKUNJA_RELEASE_KEY_ID"),
    ("release_source", "VIKUNJA_RELEASE_SOURCE"),
];

pub fn gather() -> AboutInfo {
    let bundle_dir = std::env::var_os("VIKUNJA_BUNDLE_DIR").map(PathBuf::from);
    let mut templates = Vec::new();
    if let Some(dir) = &bundle_dir {
        if let Ok(rd) = std::fs::read_dir(dir.join("templates")) {
            templates = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            templates.sort();
        }
    }
    let release = RELEASE_VARS.iter().filter_map(|(k, var)| std::env::var(var).ok().map(|v| (*k, v))).collect();
    AboutInfo { version: build_info::version(), channel: build_info::channel(), bundle_dir, release, templates }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl AboutInfo {
    pub fn to_json(&self) -> String {
        let mut fields = vec![
            format!("\"version\":{}", json_str(self.version)),
            format!("\"channel\":{}", json_str(self.channel)),
            format!(
                "\"bundle_dir\":{}",
                self.bundle_dir.as_ref().map_or("null".into(), |d| json_str(&d.to_string_lossy()))
            ),
        ];
        fields.extend(self.release.iter().map(|(k, v)| format!("{}:{}", json_str(k), json_str(v))));
        let t: Vec<String> = self.templates.iter().map(|t| json_str(t)).collect();
        fields.push(format!("\"templates\":[{}]", t.join(",")));
        format!("{{{}}}", fields.join(","))
    }

    pub fn to_text(&self) -> String {
        let mut s = format!("vikunja-installer {} (channel {})\n", self.version, self.channel);
        match &self.bundle_dir {
            Some(d) => s.push_str(&format!("bundle: {}\n", d.display())),
            None => s.push_str("bundle: none (not started by vikunja-bootstrap)\n"),
        }
        for (k, v) in &self.release {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s
    }
}
