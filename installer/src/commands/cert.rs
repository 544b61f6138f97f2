//! `cert renew`: argv → `service::acme::renew` under the instance's operation lock, the printed
//! result, exit 13 when no certificate could be obtained (the served one is unchanged).

use std::process::ExitCode;

use anyhow::Result;
use manifests::Exit;

use crate::cli::{Cert, CertCommand};
use crate::error::fail;
use crate::service::acme::{self, Renewal};

pub fn command(c: Cert) -> Result<ExitCode> {
    let CertCommand::Renew(r) = c.cmd;
    let inst = crate::instance::open(&r.root, r.instance.as_deref())?;
    let (l, d) = (&inst.layout, &inst.deployment);
    if !d.ssl.acme {
        return Err(fail(
            Exit::Usage,
            format!(
                "instance {} does not use ACME: set `acme = true` and `acme_email` under [ssl] in {} and run \
                 `vikunja-installer install` (nothing was changed)",
                l.instance,
                l.deployment_file().display()
            ),
        ));
    }
    // Not while an update or restore rewrites the site or reloads nginx.
    let _lock = crate::instance::lock::take(l, "cert renew")?;
    match acme::renew(l, d, inst.init, r.force) {
        Ok(Renewal::Kept { days_left }) => {
            println!(
                "The certificate of {} is valid for {days_left} more days; it is renewed when fewer than {} remain \
                 (--force renews now).",
                d.network.domain,
                acme::RENEW_DAYS
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Renewal::Reloaded { days_left }) => {
            println!(
                "The certificate of {} (valid for {days_left} more days) was renewed by a run that did not finish; \
                 nginx serves it now (reloaded gracefully).",
                d.network.domain
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Renewal::Renewed { not_after }) => {
            println!(
                "New certificate for {} from {}, valid until {}; nginx serves it (reloaded gracefully).",
                d.network.domain,
                d.ssl.acme_directory,
                manifests::time::format_rfc3339(not_after)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let serving = match acme::days_left(l, manifests::time::now_unix()) {
                Some(days) => format!("the current certificate keeps serving ({days} days left)"),
                None => "the self-signed certificate keeps serving".to_string(),
            };
            Err(fail(Exit::Certificate, format!("{e}\n{serving}")))
        }
    }
}
