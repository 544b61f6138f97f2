//! The container questions of `create` on a terminal: defaults shown, every answer checked on the
//! spot. Reads and writes through a Prompter so tests can drive it without a terminal.

use std::io;

use crate::config::{Deployment, Instance};

pub use crate::wizard::Prompter;

/// Facts of the host the questions offer as choices.
pub struct Choices {
    pub next_id: u32,
    pub storages: Vec<String>,
}

fn field_ok(d: &Deployment, field: &str) -> Result<(), String> {
    let mut errs = super::create::container_errors(d);
    if let Err(crate::config::ConfigError::Invalid(e)) = d.validate() {
        errs.extend(e);
    }
    match errs.iter().find(|e| e.field == field) {
        Some(e) => Err(format!("not valid: allowed: {}", e.allowed)),
        None => Ok(()),
    }
}

/// Asks one setting: shows `get(d)`, checks the answer by setting it on a copy and validating `field`.
fn setting(
    p: &mut Prompter,
    d: &mut Deployment,
    label: &str,
    field: &str,
    get: impl Fn(&Deployment) -> String,
    set: impl Fn(&mut Deployment, &str) -> Result<(), String>,
) -> io::Result<()> {
    let current = get(d);
    let a = p.ask(label, &current, |v| {
        let mut t = d.clone();
        set(&mut t, v)?;
        field_ok(&t, field)
    })?;
    set(d, &a).map_err(io::Error::other)
}

fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| "a whole number".to_string())
}

fn opt(v: &str) -> String {
    if v == "-" {
        String::new()
    } else {
        v.to_string()
    }
}

pub fn ask_all(mut d: Deployment, c: &Choices, p: &mut Prompter) -> io::Result<Deployment> {
    writeln!(p.output, "New Vikunja container: press Enter to keep the value in brackets, '-' to clear it.")?;
    let name = p.ask("Instance name", &d.instance.name.clone(), |v| {
        if crate::config::is_name(v, 31) {
            Ok(())
        } else {
            Err("use a-z, 0-9 and '-', starting with a letter".into())
        }
    })?;
    d = Deployment { instance: Instance { name, number: d.instance.number }, ..d };
    let s = &mut d;
    setting(
        p,
        s,
        "Domain (the address users type)",
        "network.domain",
        |d| d.network.domain.clone(),
        |d, v| {
            d.network.domain = v.into();
            Ok(())
        },
    )?;
    if s.container.id == 0 {
        s.container.id = c.next_id;
    }
    setting(
        p,
        s,
        "CT id",
        "container.id",
        |d| d.container.id.to_string(),
        |d, v| {
            d.container.id = num(v)?;
            Ok(())
        },
    )?;
    if s.container.hostname.is_empty() {
        s.container.hostname = format!("vikunja-{}", s.instance.name);
    }
    setting(
        p,
        s,
        "Hostname",
        "container.hostname",
        |d| d.container.hostname.clone(),
        |d, v| {
            d.container.hostname = v.into();
            Ok(())
        },
    )?;
    if s.container.storage.is_empty() {
        s.container.storage = c.storages.first().cloned().unwrap_or_default();
    }
    let storages = c.storages.clone();
    setting(
        p,
        s,
        &format!("Storage for the root disk ({})", c.storages.join(", ")),
        "container.storage",
        |d| d.container.storage.clone(),
        move |d, v| {
            if !storages.iter().any(|s| s == v) {
                return Err(format!("choose one of {}", storages.join(", ")));
            }
            d.container.storage = v.into();
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "CPU cores",
        "resources.cores",
        |d| d.resources.cores.to_string(),
        |d, v| {
            d.resources.cores = num(v)?;
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "Memory (MiB)",
        "resources.memory_mb",
        |d| d.resources.memory_mb.to_string(),
        |d, v| {
            d.resources.memory_mb = num(v)?;
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "Disk (GiB)",
        "resources.disk_gb",
        |d| d.resources.disk_gb.to_string(),
        |d, v| {
            d.resources.disk_gb = num(v)?;
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "Bridge",
        "container.bridge",
        |d| d.container.bridge.clone(),
        |d, v| {
            d.container.bridge = v.into();
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "IPv4: dhcp or address/prefix",
        "network.ip_address",
        |d| d.network.ip_address.clone(),
        |d, v| {
            d.network.ip_address = v.into();
            Ok(())
        },
    )?;
    if s.network.ip_address != "dhcp" {
        setting(
            p,
            s,
            "IPv4 gateway",
            "network.gateway",
            |d| d.network.gateway.clone(),
            |d, v| {
                d.network.gateway = opt(v);
                Ok(())
            },
        )?;
    } else {
        s.network.gateway.clear();
    }
    setting(
        p,
        s,
        "VLAN tag (empty: none)",
        "container.vlan",
        |d| d.container.vlan.map(|v| v.to_string()).unwrap_or_default(),
        |d, v| {
            d.container.vlan = if opt(v).is_empty() { None } else { Some(num(v)?) };
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "IPv6: empty, auto, dhcp or address/prefix",
        "container.ipv6",
        |d| d.container.ipv6.clone(),
        |d, v| {
            d.container.ipv6 = opt(v);
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "DNS server (empty: the host's)",
        "container.nameserver",
        |d| d.container.nameserver.clone(),
        |d, v| {
            d.container.nameserver = opt(v);
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "SSH public key file for root (empty: none)",
        "container.ssh_public_keys",
        |d| d.container.ssh_public_keys.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        |d, v| {
            d.container.ssh_public_keys = if opt(v).is_empty() { None } else { Some(v.into()) };
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "Tags (';' between them)",
        "container.tags",
        |d| d.container.tags.clone(),
        |d, v| {
            d.container.tags = opt(v);
            Ok(())
        },
    )?;
    setting(
        p,
        s,
        "Start on boot (yes/no)",
        "container.onboot",
        |d| if d.container.onboot { "yes".into() } else { "no".into() },
        |d, v| {
            d.container.onboot = match v {
                "yes" | "y" => true,
                "no" | "n" => false,
                _ => return Err("yes or no".into()),
            };
            Ok(())
        },
    )?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(answers: &str) -> (io::Result<Deployment>, String) {
        let mut input = io::Cursor::new(answers.as_bytes().to_vec());
        let mut out = Vec::new();
        let c = Choices { next_id: 104, storages: vec!["local-lvm".into(), "local".into()] };
        let r = ask_all(Deployment::default(), &c, &mut Prompter { input: &mut input, output: &mut out });
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn defaults_come_from_the_host_and_bad_answers_are_asked_again() {
        let (d, out) = drive(&"\n".repeat(17));
        let d = d.unwrap();
        assert!(
            out.contains("CT id [104]") && out.contains("Storage for the root disk (local-lvm, local) [local-lvm]"),
            "{out}"
        );
        assert_eq!((d.container.id, d.container.hostname.as_str()), (104, "vikunja-main"));
        let (d, out) = drive(
            "team\nteam.example.org\n42\n105\n\nnfs\nlocal\n\n\n\n\n10.0.0.5\n10.0.0.5/24\n10.0.0.1\n5000\n7\nauto\n\n/nonexistent\n\n\nmaybe\nno\n",
        );
        let d = d.unwrap();
        assert!(out.contains("a Proxmox CT id"), "{out}");
        assert!(out.contains("choose one of local-lvm, local"), "{out}");
        assert!(out.contains("dhcp or an IPv4 address"), "{out}");
        assert!(out.contains("1 to 4094"), "{out}");
        assert!(out.contains("an existing file"), "{out}");
        assert_eq!(d.container.id, 105);
        assert_eq!((d.network.ip_address.as_str(), d.network.gateway.as_str()), ("10.0.0.5/24", "10.0.0.1"));
        assert_eq!((d.container.vlan, d.container.ipv6.as_str(), d.container.onboot), (Some(7), "auto", false));
        assert_eq!(d.container.storage, "local");
    }
}
