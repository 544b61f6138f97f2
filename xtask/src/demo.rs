//! `cargo xtask demo`: the main job end to end on this machine. Builds and signs a release, serves
//! it from a local HTTPS release server (nginx with a throw-away CA, GitHub's URL layout), and runs
//! the real one-liner `curl … | sh` against it; the installer answers from its verified bundle. It
//! installs a Vikunja stand-in into a sandbox root, updates it blue-green to a newer one and rolls
//! it back, each through the one-liner as an admin on a host without the installer would.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use vikunja_e2e::load::Target;

use crate::serve::{build_and_serve, Served, OWNER, REPO};

/// Runs the one-liner with `installer_args`, its output going straight to the terminal.
fn run_one_liner(s: &Served, state: &Path, installer_args: &str) -> Result<()> {
    let line = s.one_liner(installer_args);
    let status =
        Command::new("bash").args(["-o", "pipefail", "-c", &line]).envs(s.env(state)).status().context("run bash")?;
    if !status.success() {
        bail!("the one-liner `{line}` failed with {status}");
    }
    Ok(())
}

/// The stand-in releases the demo's download site serves: installed first, then updated to.
const OLD: &str = "v2.4.0";
const NEW: &str = "v2.5.0";

pub fn run(root: &Path) -> Result<()> {
    crate::prereq::ensure(crate::prereq::DEMO_TOOLS)?;
    println!("== 1. build and sign a release (static binaries, throw-away key)");
    let s = build_and_serve(root, "demo", Vec::new())?;
    println!("   assets: {}", s.assets.display());
    println!("== 2. local HTTPS release server: {} (test CA {})", s.server.base_url(), s.ca.ca_pem.display());
    let zips = vikunja_e2e::sandbox::standin_zips(&[OLD, NEW])?;
    for v in [OLD, NEW] {
        let dl = s.server.www.join("vikunja").join(v);
        std::fs::create_dir_all(&dl)?;
        let zip = format!("vikunja-{v}-linux-amd64-full.zip");
        std::fs::copy(zips.join(v).join(&zip), dl.join(&zip))?;
        println!("   serving the Vikunja stand-in (a test double) as {zip}");
    }
    let sandbox = vikunja_e2e::sandbox::Sandbox::new("demo-root")?;
    let config = sandbox.root.join("deployment.toml");
    std::fs::write(&config, sandbox.config("demo", OLD, &format!("{}/vikunja", s.server.base_url()), ""))?;
    let state = s.assets.parent().context("demo dir")?.join("state");
    let r = sandbox.root.display();
    let args = format!("install --root {r} --init process --config {} --yes", config.display());
    println!(
        "== 3. the one-liner, as a Proxmox admin runs it (here into the sandbox root {r}):\n   {}\n",
        s.one_liner(&args)
    );
    run_one_liner(&s, &state, &args)?;
    let p = sandbox.ports;
    let cert = sandbox.instance_dir("demo").join("config/ssl/cert.pem");
    let target = Target::new("vikunja.test", p.https, cert.clone());
    let url = format!("{}/api/v1/info", target.base);
    println!("\n== 4. Vikunja answers through nginx over TLS: curl --cacert {} {url}", cert.display());
    let (code, body) = target.request("GET", "/api/v1/info", None);
    println!("   {}", body.trim());
    if code != 200 {
        bail!("curl through nginx answered {code}: {body}");
    }
    let task = "written before the update";
    let (code, body) = target.create_task(task);
    if !(200..300).contains(&code) {
        bail!("creating a task through nginx answered {code}: {body}");
    }
    println!("   a task is stored through nginx: PUT /api/v1/projects/1/tasks {{\"title\":\"{task}\"}} -> {code}");

    let args = format!("update --version {NEW} --root {r}");
    println!(
        "\n== 5. blue-green update to {NEW}: writes frozen, database backed up, green started and health-gated, \
         then traffic switched:\n   {}\n",
        s.one_liner(&args)
    );
    run_one_liner(&s, &state, &args)?;
    show_status(&s, &state, &r.to_string())?;
    check_serves(&target, NEW, task)?;

    let args = format!("rollback --yes --root {r}");
    println!(
        "\n== 6. rollback to {OLD} ({NEW} migrated the database, so its pre-update backup is restored):\n   {}\n",
        s.one_liner(&args)
    );
    run_one_liner(&s, &state, &args)?;
    show_status(&s, &state, &r.to_string())?;
    check_serves(&target, OLD, task)?;

    let pass = sandbox.root.join("backup-passphrase");
    std::fs::write(&pass, "demo passphrase: four random words\n")?;
    let args = format!("backup --encrypt --passphrase-file {} --root {r}", pass.display());
    println!(
        "\n== 7. encrypted backup (age): database dump, attachments, config with its secrets, state, with a \
         sha256 manifest:\n   {}\n",
        s.one_liner(&args)
    );
    run_one_liner(&s, &state, &args)?;
    let backups = sandbox.instance_dir("demo").join("backups");
    let file = std::fs::read_dir(&backups)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz.age"))
        .max()
        .context("no encrypted backup was written")?;
    let (code, body) = target.create_task("written after the backup");
    if !(200..300).contains(&code) {
        bail!("creating a task answered {code}: {body}");
    }
    let args = format!("restore {} --yes --passphrase-file {} --root {r}", file.display(), pass.display());
    println!(
        "\n== 8. restore it: verified completely first, then stopped, swapped, started and health-checked:\n   {}\n",
        s.one_liner(&args)
    );
    run_one_liner(&s, &state, &args)?;
    show_status(&s, &state, &r.to_string())?;
    check_serves(&target, OLD, task)?;
    if target.task_titles().map_err(anyhow::Error::msg)?.iter().any(|t| t == "written after the backup") {
        bail!("the restore should have brought back the state of the backup, without the later task");
    }

    self_upgrade(root, &s, &state, &sandbox.root)?;

    println!("\n== done: install.sh checked the bootstrap's sha256, the bootstrap verified the signed release and");
    println!("   handed off; the installer verified the Vikunja zip, deployed it behind nginx with TLS and checked");
    println!("   its health, updated it blue-green to {NEW} and rolled it back to {OLD}; the task written before");
    println!("   the update survived both; an encrypted backup was restored; the installer then upgraded itself");
    println!("   to a second signed release.");
    println!("   The sandbox's services are stopped now.");
    Ok(())
}

/// The installer installs itself into the sandbox root, then upgrades itself to a second release
/// signed with the same key, published as the new `latest`.
fn self_upgrade(root: &Path, s: &Served, state: &Path, sandbox: &Path) -> Result<()> {
    let r = sandbox.display();
    let args = format!("upgrade --root {r}");
    println!(
        "\n== 9. the installer installs itself (versioned, under {r}/opt/vikunja-pve):\n   {}\n",
        s.one_liner(&args)
    );
    run_one_liner(s, state, &args)?;
    let v2 = "0.2.0";
    println!("\n== 10. build and sign release {v2} with the same key and publish it as the latest");
    let assets = crate::serve::second_release(root, s, "demo-release-2", v2)?;
    let tag = format!("v{v2}");
    s.server.publish(OWNER, REPO, &tag, &assets)?;
    s.server.set_latest(&tag)?;
    let installed = sandbox.join("usr/local/bin/vikunja-installer");
    let run = |args: &[&str]| -> Result<std::process::ExitStatus> {
        println!("   $ {} {}", installed.display(), args.join(" "));
        let mut c = Command::new(&installed);
        c.args(args).envs(s.env(state));
        if args.first() == Some(&"upgrade") {
            c.arg("--root").arg(sandbox);
        }
        c.status().with_context(|| format!("run {}", installed.display()))
    };
    println!("\n== 11. the installed installer checks for, then performs, its own upgrade:");
    let st = run(&["upgrade", "--check"])?;
    if st.code() != Some(20) {
        bail!("upgrade --check should report an available upgrade (exit 20), got {st}");
    }
    if !run(&["upgrade"])?.success() {
        bail!("the self-upgrade failed");
    }
    let out = Command::new(&installed).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    print!("   $ {} --version\n   {text}", installed.display());
    if !text.starts_with(&format!("vikunja-installer {v2} ")) {
        bail!("after the upgrade the installer reports {text:?}, not {v2}");
    }
    Ok(())
}

fn show_status(s: &Served, state: &Path, root: &str) -> Result<()> {
    println!("\n   the status screen afterwards (`status --root {root}`):\n");
    run_one_liner(s, state, &format!("status --root {root}"))
}

/// What the user would check by hand: the version nginx serves, and that the task is still there.
fn check_serves(t: &Target, version: &str, task: &str) -> Result<()> {
    let (code, body) = t.request("GET", "/api/v1/info", None);
    if code != 200 || !body.contains(&format!("\"version\":\"{version}\"")) {
        bail!("after the operation, nginx should serve Vikunja {version}, but /api/v1/info answered {code}: {body}");
    }
    let titles = t.task_titles().map_err(anyhow::Error::msg)?;
    if !titles.iter().any(|x| x == task) {
        bail!("the task {task:?} written before the update is missing after it; tasks listed: {titles:?}");
    }
    println!("   through nginx: version {version}, and the task {task:?} is still listed");
    Ok(())
}

/// `cargo xtask demo --containers`: the Proxmox host story, with TEST DOUBLES of pct, pveam, pvesm,
/// pvesh and pveversion backed by real LXC containers (systemd inside), when LXC can run here.
pub fn run_containers(root: &Path) -> Result<()> {
    if let Some(why) = crate::prereq::lxc_unavailable() {
        bail!(
            "`cargo xtask demo --containers` needs LXC, which this machine cannot run: {why}. \
             `cargo xtask demo` runs without containers."
        );
    }
    crate::prereq::ensure(crate::prereq::TEST_TOOLS)?;
    let s = build_and_serve(root, "demo-ct", Vec::new())?;
    let v = NEW;
    let zips = vikunja_e2e::sandbox::standin_zips(&[v])?;
    let dl = s.server.www.join("vikunja").join(v);
    std::fs::create_dir_all(&dl)?;
    let zip = format!("vikunja-{v}-linux-amd64-full.zip");
    std::fs::copy(zips.join(v).join(&zip), dl.join(&zip))?;
    let node = vikunja_e2e::scratch_dir("demo-containers")?;
    let p = vikunja_e2e::sandbox::Sandbox::new("demo-ct-ports")?.ports;
    let cfg = node.join("deployment.toml");
    let text = vikunja_e2e::sandbox::container_config(
        "demo",
        &format!("version = \"{v}\"\ndownload_base = \"{}/vikunja\"", s.server.base_url()),
        "127.0.30.1/8",
        &p,
        "\n[container]\nstorage = \"local-lvm\"\n",
    );
    std::fs::write(&cfg, text)?;
    let host_root = node.join("host-root");
    let pve = node.join("pve");
    let path = format!("{}:{}", root.join("tests/pve-doubles").display(), std::env::var("PATH").unwrap_or_default());
    let doubles_env = [
        ("PATH", path),
        ("PVE_DOUBLE_DIR", pve.display().to_string()),
        ("PVE_DOUBLE_CACHE", root.join("target/pve-doubles/cache").display().to_string()),
    ];
    println!(
        "== Proxmox host story with TEST DOUBLES of pct/pveam/pvesm/pvesh/pveversion backed by real LXC containers"
    );
    let state = node.join("state");
    let run = |line: &str| -> Result<()> {
        println!("\n$ {line}");
        let ok = Command::new("bash")
            .args(["-o", "pipefail", "-c", line])
            .envs(s.env(&state))
            .envs(doubles_env.clone())
            .status()?
            .success();
        if !ok {
            bail!("`{line}` failed");
        }
        Ok(())
    };
    let h = host_root.display();
    let result = (|| -> Result<()> {
        let line = s.one_liner(&format!("create --config {} --root {h}", cfg.display()));
        let screen = first_run_on_a_terminal(&line, |c| {
            c.envs(s.env(&state)).envs(doubles_env.clone());
        })?;
        if let Some(user) = screen.lines().map(str::trim).find(|l| l.contains(" user create -u admin ")) {
            let user = user.replace("CHOOSE-A-PASSWORD", "demo-password-1");
            println!("\n== the first user, with the command the last screen gave (registration is closed):");
            run(&user)?;
        }
        run(&s.one_liner(&format!("list --root {h}")))?;
        run(&s.one_liner(&format!("status --instance demo --root {h}")))?;
        run(&s.one_liner(&format!("destroy --instance demo --yes --root {h}")))
    })();
    for e in std::fs::read_dir(pve.join("lxc")).into_iter().flatten().flatten() {
        let _ = Command::new("lxc-stop").arg("-P").arg(pve.join("lxc")).arg("-n").arg(e.file_name()).arg("-k").output();
    }
    result
}

/// What the admin types at each question of the wizard, by the question's start; Enter (the
/// default) for every other one.
const ANSWERS: &[(&str, &str)] = &[
    ("Settings: 1) Default  2) Advanced", "2"),
    ("CPU cores", "1"),
    ("Memory (MiB)", "1536"),
    ("Open registration", "no"),
    ("Create the container and install Vikunja now?", "y"),
];

/// Runs `line` (the one-liner with no `--yes`) on a pseudo-terminal, as an admin does: the
/// installer's stdin is the pipe from curl, so it asks on the terminal. Every question, the answer
/// typed (echoed by the terminal) and the installer's output appear as they come, up to the last
/// screen, which is returned.
fn first_run_on_a_terminal(line: &str, env: impl FnOnce(&mut Command)) -> Result<String> {
    use std::time::Duration;
    println!("\n== the first run, as an admin meets it on the Proxmox host's terminal (questions asked on the");
    println!("   terminal while stdin is the pipe; the answers typed are echoed by the terminal):\n\n$ {line}");
    // `trap : INT`: like the admin's interactive shell, the shell on the terminal outlives a Ctrl-C.
    let mut t = vikunja_e2e::pty::Pty::start_live(&format!("trap : INT; {line}"), env).map_err(anyhow::Error::msg)?;
    let mut confirmed = false;
    // The bootstrap verifies the release before the first question; building the container after
    // the confirmation takes minutes.
    while let Some(q) = t.next_prompt(Duration::from_secs(900)).map_err(anyhow::Error::msg)? {
        let q = q.trim_start();
        let a = ANSWERS.iter().find(|(start, _)| q.starts_with(start)).map(|(_, a)| *a).unwrap_or("");
        if confirmed {
            bail!("the installer asked again after the confirmation: {q}");
        }
        confirmed = q.starts_with("Create the container and install Vikunja now?");
        t.send(&format!("{a}\r"));
    }
    let (code, screen) = t.try_finish_within(Duration::from_secs(30)).map_err(anyhow::Error::msg)?;
    if code != Some(0) || !confirmed {
        bail!("the first run on the terminal ended with {code:?} (confirmed: {confirmed})");
    }
    Ok(screen)
}
