//! Vikunja's own `config.yml`. Written without secrets (they reach Vikunja as
//! `VIKUNJA_*_FILE` paths in the unit) and with absolute paths, because Vikunja resolves relative
//! ones against `service.rootpath`, which is the config directory here.

use crate::instance::config::{DbType, Deployment};
use crate::instance::layout::Layout;

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn render(l: &Layout, d: &Deployment) -> String {
    let mut y = String::new();
    y.push_str(&format!(
        "# Vikunja configuration of instance {}, written by vikunja-installer; edits are replaced on the next\n\
         # install or update: change deployment.toml instead. Secrets come from VIKUNJA_*_FILE in the units.\n",
        d.instance.name
    ));
    y.push_str("service:\n");
    y.push_str(&format!("  publicurl: {}\n", q(&d.public_url())));
    y.push_str(&format!("  rootpath: {}\n", q(&l.config_dir().to_string_lossy())));
    // nginx on 127.0.0.1 is the only proxy whose X-Real-IP is believed.
    y.push_str("  ipextractionmethod: \"realip\"\n");
    y.push_str("  trustedproxies: \"127.0.0.1/32,::1/128\"\n");
    y.push_str(&format!("  enableregistration: {}\n", d.vikunja.registration));
    y.push_str("database:\n");
    match d.database.kind {
        DbType::Sqlite => {
            y.push_str("  type: \"sqlite\"\n");
            y.push_str(&format!("  path: {}\n", q(&l.sqlite_path().to_string_lossy())));
        }
        DbType::Postgres | DbType::Mysql => {
            let t = if d.database.kind == DbType::Postgres { "postgres" } else { "mysql" };
            y.push_str(&format!("  type: \"{t}\"\n"));
            y.push_str(&format!("  host: {}\n", q(&format!("{}:{}", d.database.host, d.database.port))));
            y.push_str(&format!("  user: {}\n", q(&d.database.user)));
            y.push_str(&format!("  database: {}\n", q(&d.database.name)));
            y.push_str(&format!("  sslmode: {}\n", q(&d.database.sslmode)));
        }
    }
    y.push_str("files:\n");
    y.push_str(&format!("  basepath: {}\n", q(&l.files_dir().to_string_lossy())));
    y.push_str(&format!("  maxsize: \"{}MB\"\n", d.files.max_size_mb));
    y.push_str("cors:\n  enable: true\n");
    y
}
