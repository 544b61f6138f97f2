//! `metrics`: print the instance's Prometheus metrics, write them (`--write PATH`), run the timer's
//! job (`--tick`), or install/remove that timer: a systemd timer and oneshot service rendered like
//! the backup schedule's (`render::render_backup_timer` with the metrics templates).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use manifests::Exit;

use crate::cli::Metrics;
use crate::error::fail;
use crate::instance::layout::Layout;
use crate::render::{render_backup_timer, BackupTimerSpec};
use crate::service::init::Init;
use crate::service::schedule::systemctl;

/// The timer's two unit files: (name, where systemd reads it).
fn files(l: &Layout) -> [(String, PathBuf); 2] {
    ["service", "timer"].map(|s| {
        let name = format!("vikunja-{}-metrics.{s}", l.instance);
        let path = l.system(&format!("/etc/systemd/system/{name}"));
        (name, path)
    })
}

/// Renders (service, timer) running `metrics --tick` every `every_minutes`.
pub fn render(l: &Layout, installer: &Path, every_minutes: u32) -> Result<[String; 2]> {
    let mut exec = vec![installer.to_string_lossy().into_owned(), "metrics".into(), "--tick".into()];
    exec.extend(["--instance".into(), l.instance.clone()]);
    if l.root != Path::new("/") {
        exec.extend(["--root".into(), l.root.to_string_lossy().into_owned()]);
    }
    let spec = BackupTimerSpec {
        unit: format!("vikunja-{}-metrics", l.instance),
        description: format!("Metrics and notifications of Vikunja instance {}", l.instance),
        exec,
        on_calendar: if every_minutes >= 60 && every_minutes.is_multiple_of(60) {
            format!("*-*-* 00/{}:00:00", every_minutes / 60)
        } else {
            format!("*-*-* *:00/{every_minutes}:00")
        },
        randomized_delay_s: 0,
    };
    let t = |n| crate::render::templates::load(n).map_err(anyhow::Error::from);
    let (service, timer) =
        render_backup_timer(&t("systemd/metrics.service.tmpl")?, &t("systemd/metrics.timer.tmpl")?, &spec)?;
    Ok([service, timer])
}

pub fn command(m: Metrics) -> Result<ExitCode> {
    let inst = crate::instance::open(&m.root, m.instance.as_deref())?;
    let l = &inst.layout;
    if m.enable_timer || m.disable_timer {
        if m.enable_timer && m.disable_timer || m.tick || m.write.is_some() {
            return Err(fail(Exit::Usage, "--enable-timer and --disable-timer take no other options; choose one"));
        }
        if inst.init != Init::Systemd {
            return Err(fail(
                Exit::Prerequisite,
                format!(
                    "instance {} runs under --init process, and timers need systemd; nothing was changed. Without \
                     systemd, have cron run `vikunja-installer metrics --tick --instance {}` instead",
                    l.instance, l.instance
                ),
            ));
        }
        let f = files(l);
        if m.disable_timer {
            let _ = systemctl(&["disable", "--now", &f[1].0]);
            for (name, path) in &f {
                for p in [path.clone(), l.units_dir().join(name)] {
                    manifests::atomic::remove_if_present(&p).map_err(|e| anyhow!("remove {}: {e}", p.display()))?;
                }
            }
            systemctl(&["daemon-reload"])?;
            println!("The metrics timer of instance {} is removed.", l.instance);
            return Ok(ExitCode::SUCCESS);
        }
        let texts = render(l, &crate::service::schedule::installer_path(l)?, inst.deployment.metrics.every_minutes)?;
        for ((name, path), text) in f.iter().zip(&texts) {
            for p in [l.units_dir().join(name), path.clone()] {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| anyhow!("create {}: {e}", dir.display()))?;
                }
                manifests::atomic::write_atomic(&p, text.as_bytes(), 0o644)
                    .map_err(|e| anyhow!("write {}: {e}", p.display()))?;
            }
        }
        systemctl(&["daemon-reload"])?;
        systemctl(&["enable", "--now", &f[1].0])?;
        println!(
            "Every {} min the timer {} writes the metrics to {} and sends what [notify] asks for.",
            inst.deployment.metrics.every_minutes,
            f[1].0,
            crate::commands::observe::textfile(&inst).display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if m.tick {
        crate::commands::observe::tick(&inst, m.write.as_deref())?;
    } else if let Some(p) = &m.write {
        crate::commands::observe::put(&inst, crate::commands::observe::gather(&inst), Some(p), true)?;
    } else {
        let f = crate::commands::observe::gather(&inst);
        print!("{}", crate::service::metrics::render(&f));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_runs_metrics_tick_for_this_instance_at_the_interval() {
        let l = Layout::new(Path::new("/"), "main");
        let [service, timer] = render(&l, Path::new("/usr/local/bin/vikunja-installer"), 5).unwrap();
        assert!(
            service.contains("ExecStart=/usr/local/bin/vikunja-installer metrics --tick --instance main\n"),
            "{service}"
        );
        assert!(timer.contains("OnCalendar=*-*-* *:00/5:00\n"), "{timer}");
        assert!(timer.contains("Unit=vikunja-main-metrics.service"), "{timer}");
        let [_, hourly] = render(&l, Path::new("/x"), 120).unwrap();
        assert!(hourly.contains("OnCalendar=*-*-* 00/2:00:00\n"), "{hourly}");
        for cal in ["*-*-* *:00/5:00", "*-*-* 00/2:00:00"] {
            let out = std::process::Command::new("systemd-analyze").args(["calendar", cal]).output().unwrap();
            assert!(out.status.success(), "{cal}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
