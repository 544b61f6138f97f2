//! The installer's command line (argh). Usage errors exit 2, `--help` exits 0.

use std::path::PathBuf;

use argh::FromArgs;

/// Install and operate Vikunja in LXC containers on Proxmox VE. With no command: `create` on a
/// Proxmox host (asking on the terminal), otherwise what this is and how to start.
#[derive(FromArgs, Debug)]
pub struct Cli {
    /// print version, channel and build facts
    #[argh(switch, short = 'V')]
    pub version: bool,
    #[argh(subcommand)]
    pub cmd: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    About(About),
    Install(Install),
    Health(Health),
    Status(Status),
    Update(Update),
    Rollback(Rollback),
    Restart(Restart),
    Logs(Logs),
    Stop(Stop),
    Start(Start),
    Uninstall(Uninstall),
    SelfCmd(SelfCmd),
    Upgrade(Upgrade),
    Backup(Box<Backup>),
    Restore(Box<Restore>),
    Create(Create),
    List(List),
    Destroy(Destroy),
    Supervise(Supervise),
    Metrics(Metrics),
    Cert(Cert),
    Migrate(Migrate),
}

/// ACME certificates (`[ssl] acme = true`): `cert renew` obtains or renews the instance's
/// certificate; its timer runs it twice a day.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "cert")]
pub struct Cert {
    #[argh(subcommand)]
    pub cmd: CertCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum CertCommand {
    Renew(CertRenew),
}

/// Renew the ACME certificate when fewer than 30 days remain (or none was obtained yet); a
/// failure keeps the served certificate and exits 13.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "renew")]
pub struct CertRenew {
    /// renew now, however long the certificate still lasts
    #[argh(switch)]
    pub force: bool,
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// On a Proxmox cluster: move an instance's container to another node (restart migration, after
/// a backup; health checked after). Its URL and data stay the same; it is down while it moves.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "migrate")]
pub struct Migrate {
    /// the instance to move
    #[argh(option)]
    pub instance: String,
    /// the node to move it to
    #[argh(option)]
    pub to: String,
    /// print the commands that would run, in order, and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// the host's registry lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// On the Proxmox host: create an unprivileged LXC container (pct), install this installer into
/// it and deploy Vikunja there. Settings from --config, or asked on a terminal.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "create")]
pub struct Create {
    /// deployment settings (TOML) including the [container] table; without it, a terminal asks
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// never ask; take defaults for anything the config leaves out
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// print the commands that would run, in order, and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// the host's registry lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
    /// the cluster node to create the container on (default: this one; auto: the node with the most free memory and storage)
    #[argh(option)]
    pub node: Option<String>,
    /// register the container with the HA manager (ha-manager add ct:ID --state started); HA moves it only from shared storage
    #[argh(switch)]
    pub ha: bool,
    /// the HA group for --ha (HA groups exist up to PVE 8; PVE 9 has rules instead)
    #[argh(option)]
    pub ha_group: Option<String>,
}

/// On the Proxmox host: show every instance the installer made, with its container.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct List {
    /// machine-readable output
    #[argh(switch)]
    pub json: bool,
    /// the host's registry lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// On the Proxmox host: take a last backup, copy the backups out to the host, and destroy the
/// instance's container (after confirmation).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "destroy")]
pub struct Destroy {
    /// the instance to destroy
    #[argh(option)]
    pub instance: String,
    /// do not ask for confirmation
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// print the commands that would run, in order, and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// the host's registry lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Back up an instance into one archive: a consistent database dump, attachments, config (with
/// its secrets) and state, with a manifest of sha256 sums; keeps the newest retention.backups.
/// `backup list` shows the backups, `backup verify FILE` checks one without changing anything.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "backup")]
pub struct Backup {
    #[argh(subcommand)]
    pub cmd: Option<BackupCommand>,
    /// encrypt with age to a passphrase (from --passphrase-file, VIKUNJA_BACKUP_PASSPHRASE or the terminal)
    #[argh(switch)]
    pub encrypt: bool,
    /// encrypt with age to this X25519 public key (age1...) instead of a passphrase; repeatable
    #[argh(option)]
    pub recipient: Vec<String>,
    /// read the passphrase from the first line of this file (with --encrypt)
    #[argh(option)]
    pub passphrase_file: Option<PathBuf>,
    /// include the logs (not needed to restore)
    #[argh(switch)]
    pub include_logs: bool,
    /// write the backup into this directory instead of the instance's backups/
    #[argh(option)]
    pub output: Option<PathBuf>,
    /// machine-readable output: the file written (path, size, sha256)
    #[argh(switch)]
    pub json: bool,
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum BackupCommand {
    List(BackupList),
    Verify(BackupVerify),
    Schedule(BackupSchedule),
}

/// Back up on a schedule with a systemd timer (retention as for `backup`): --daily, --weekly or
/// --cron "MIN HOUR DOM MON DOW"; --off removes the timer. `status` shows the last and next run.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "schedule")]
pub struct BackupSchedule {
    /// every day at 03:00 (with up to 30 min of random delay)
    #[argh(switch)]
    pub daily: bool,
    /// every Sunday at 03:00 (with up to 30 min of random delay)
    #[argh(switch)]
    pub weekly: bool,
    /// a cron expression of five fields, like "30 2 * * 1-5"
    #[argh(option)]
    pub cron: Option<String>,
    /// remove the scheduled backup
    #[argh(switch)]
    pub off: bool,
    /// encrypt with age to a passphrase read from --passphrase-file when the timer runs
    #[argh(switch)]
    pub encrypt: bool,
    /// with --encrypt: the file the passphrase is read from at every run (keep it 0600)
    #[argh(option)]
    pub passphrase_file: Option<PathBuf>,
    /// encrypt with age to this X25519 public key (age1...); repeatable
    #[argh(option)]
    pub recipient: Vec<String>,
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// List the instance's backups, newest first.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct BackupList {
    /// the directory to list (default: the instance's backups/)
    #[argh(option)]
    pub output: Option<PathBuf>,
    /// machine-readable output
    #[argh(switch)]
    pub json: bool,
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Check a backup completely (decryption, every entry's size and sha256, the manifest) without
/// changing anything; exit 3 when it is damaged.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "verify")]
pub struct BackupVerify {
    /// the backup file (a bare name is also looked for in the instance's backups/)
    #[argh(positional)]
    pub file: PathBuf,
    /// read the passphrase from the first line of this file
    #[argh(option)]
    pub passphrase_file: Option<PathBuf>,
    /// age identity file (AGE-SECRET-KEY-1...) for a backup encrypted to recipient keys
    #[argh(option)]
    pub identity: Option<PathBuf>,
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Restore an instance from a backup: verified completely first (nothing changes if it is damaged
/// or the passphrase is wrong), then services stopped, data swapped, database restored, started
/// and health-checked; any failure puts the previous state back.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "restore")]
pub struct Restore {
    /// the backup file (a bare name is also looked for in the instance's backups/)
    #[argh(positional)]
    pub file: PathBuf,
    /// do not ask for confirmation
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// read the passphrase from the first line of this file
    #[argh(option)]
    pub passphrase_file: Option<PathBuf>,
    /// age identity file (AGE-SECRET-KEY-1...) for a backup encrypted to recipient keys
    #[argh(option)]
    pub identity: Option<PathBuf>,
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Update vikunja-installer itself from a signed release (the same checks as the bootstrap);
/// `--check` exits 20 when a newer release is available, 0 when up to date.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "upgrade")]
pub struct Upgrade {
    /// only report whether a newer release exists
    #[argh(switch)]
    pub check: bool,
    /// upgrade to this release (X.Y.Z) instead of the newest of the channel
    #[argh(option)]
    pub version: Option<String>,
    /// air-gapped: a bundle file with its .minisig beside it (and release.toml for more checks)
    #[argh(option)]
    pub bundle: Option<PathBuf>,
    /// go back to the version that ran before the last upgrade
    #[argh(switch)]
    pub rollback: bool,
    /// allow installing an older (still correctly signed) release
    #[argh(switch)]
    pub allow_downgrade: bool,
    /// with --bundle only: accept an expired release, with a warning
    #[argh(switch)]
    pub allow_expired: bool,
    /// accept releases of this channel (e.g. beta) instead of this installer's own channel
    #[argh(option)]
    pub channel: Option<String>,
    /// download from this mirror instead of GitHub (also VIKUNJA_INSTALLER_BASE_URL)
    #[argh(option)]
    pub base_url: Option<String>,
    /// unattended: upgrade only within --within of the installed version (what the timer runs)
    #[argh(switch)]
    pub auto: bool,
    /// with --auto: patch (default), minor or any; how far an unattended upgrade may go
    #[argh(option)]
    pub within: Option<String>,
    /// with --auto: on installs a daily systemd timer running `upgrade --auto`, off removes it (off by default)
    #[argh(option)]
    pub schedule: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Blue-green update to another Vikunja release: writes frozen, database backed up, the new
/// release started on the idle colour and health-checked, then traffic switched; exit 11 when it
/// was unhealthy and rolled back.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "update")]
pub struct Update {
    /// the Vikunja release to update to, like v2.5.0 (default: the newest on the download site)
    #[argh(option)]
    pub version: Option<String>,
    /// instance name (default: the only one installed); on the Proxmox host, runs in its container
    #[argh(option)]
    pub instance: Option<String>,
    /// on the Proxmox host: every instance, one after another, each health-checked; stops at the
    /// first failure
    #[argh(switch)]
    pub all: bool,
    /// on the Proxmox host: print the commands that would run (snapshot, update) and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
    /// offline: the release zip, copied here by hand, instead of a download (needs --version)
    #[argh(option)]
    pub artifact: Option<PathBuf>,
    /// the zip's expected sha256 (checked as for a download; default: its .sha256 beside it, if any)
    #[argh(option)]
    pub sha256: Option<String>,
    /// unattended: update to the newest release `[updates]` in deployment.toml allows, only inside
    /// its maintenance window, after a backup; what the timer runs
    #[argh(switch)]
    pub auto: bool,
    /// with --auto: allow again the versions whose automatic update failed
    #[argh(switch)]
    pub clear_skip: bool,
    /// with --auto: on installs a systemd timer that runs `update --auto` as each window opens, off
    /// removes it
    #[argh(option)]
    pub schedule: Option<String>,
}

/// Zero-downtime restart: the same version and settings start on the other colour, pass the
/// health gate and take the traffic; the old colour drains.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "restart")]
pub struct Restart {
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
    /// on the Proxmox host: print the command that would run and change nothing
    #[argh(switch)]
    pub dry_run: bool,
}

/// Show what a service of the instance wrote: the journal under systemd, its log file under
/// `--init process`. Default: the serving colour's backend, the last 50 lines.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "logs")]
pub struct Logs {
    /// backend (default), nginx or mcp
    #[argh(option, default = "String::from(\"backend\")")]
    pub component: String,
    /// blue or green (default: the colour that serves)
    #[argh(option)]
    pub colour: Option<String>,
    /// keep showing new lines until interrupted
    #[argh(switch, short = 'f')]
    pub follow: bool,
    /// how many of the last lines to show (default 50)
    #[argh(option, short = 'n', default = "50")]
    pub lines: u32,
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Stop the instance: both colours and its nginx. It stays stopped (also across `status`, `update`
/// and `restart`, which refuse) until `start`.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "stop")]
pub struct Stop {
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Start a stopped instance: the serving colour and nginx, then the health gate (exit 10 when
/// unhealthy, and it is stopped again).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "start")]
pub struct Start {
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Remove the instance from this machine after a last backup: services, nginx site, scheduled
/// backup, the service user (when no other instance uses it) and releases. Backups and data are
/// kept (a later `install` picks them up) unless --purge.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "uninstall")]
pub struct Uninstall {
    /// also delete the data, the configuration and every backup of the instance
    #[argh(switch)]
    pub purge: bool,
    /// do not ask for confirmation (required when stdin is not a terminal)
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// The installer itself on the Proxmox host: `self uninstall` removes it.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "self")]
pub struct SelfCmd {
    #[argh(subcommand)]
    pub cmd: SelfCommand,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum SelfCommand {
    Uninstall(SelfUninstall),
}

/// Remove vikunja-installer from this host (/opt/vikunja-pve, /usr/local/bin/vikunja-installer).
/// The instance registry and the backups copied out of containers are kept unless --purge; the
/// containers themselves are left alone (`destroy` removes one).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "uninstall")]
pub struct SelfUninstall {
    /// also delete the instance registry and the copied-out backups
    #[argh(switch)]
    pub purge: bool,
    /// do not ask for confirmation (required when stdin is not a terminal)
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Go back to the colour and version that served before the last update (restoring the
/// pre-update database backup if the schema changed, after asking).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rollback")]
pub struct Rollback {
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
    /// do not ask before restoring the database
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// on the Proxmox host: print the command that would run and change nothing
    #[argh(switch)]
    pub dry_run: bool,
}

/// Prometheus metrics of the instance (text format): printed, or written atomically as a
/// node_exporter textfile. `--tick` is what the timer runs: it also sends the notifications of
/// [notify] for a health change, a certificate near its end and a newer Vikunja release.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "metrics")]
pub struct Metrics {
    /// write the metrics atomically to this file instead of printing them
    #[argh(option)]
    pub write: Option<PathBuf>,
    /// the timer's run: notify what changed, then write the metrics (to --write, else [metrics] textfile)
    #[argh(switch)]
    pub tick: bool,
    /// install a systemd timer running `metrics --tick` every [metrics] every_minutes
    #[argh(switch)]
    pub enable_timer: bool,
    /// remove that timer
    #[argh(switch)]
    pub disable_timer: bool,
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
}

/// Show this installer's version and where it runs from (the bundle the bootstrap unpacked).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "about")]
pub struct About {
    /// machine-readable output
    #[argh(switch)]
    pub json: bool,
}

/// Install Vikunja on this machine (inside the container): release, user, config, units, nginx, TLS.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "install")]
pub struct Install {
    /// deployment settings (TOML); without it, a terminal asks, and otherwise defaults apply
    #[argh(option)]
    pub config: Option<PathBuf>,
    /// never ask; take defaults for anything the config leaves out
    #[argh(switch, short = 'y')]
    pub yes: bool,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
    /// systemd, process (supervised processes, for machines without systemd) or auto (default)
    #[argh(option, default = "String::from(\"auto\")")]
    pub init: String,
}

/// Check every component once (backend, frontend, MCP, database, nginx); exit 10 when unhealthy.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "health")]
pub struct Health {
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
    /// machine-readable output
    #[argh(switch)]
    pub json: bool,
    /// keep checking every health.interval_s until healthy or health.timeout_s passes
    #[argh(switch)]
    pub wait: bool,
}

/// Show the status screen of an instance.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
pub struct Status {
    /// instance name (default: the only one installed)
    #[argh(option)]
    pub instance: Option<String>,
    /// every path lives under this directory (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
    /// machine-readable output
    #[argh(switch)]
    pub json: bool,
    /// refresh every 10 seconds until interrupted
    #[argh(switch)]
    pub watch: bool,
}

/// Internal: run one unit file under supervision (used by --init process).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "supervise")]
pub struct Supervise {
    /// the root the unit belongs to
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub root: PathBuf,
    /// unit file to run
    #[argh(option)]
    pub unit_file: PathBuf,
    /// pid file to maintain
    #[argh(option)]
    pub pid_file: PathBuf,
}

pub enum Parsed {
    Run(Cli),
    /// Help text to print on stdout, exit 0.
    Help(String),
    /// A usage error to print on stderr, exit 2.
    Usage(String),
}

/// Printed when no command is given off a Proxmox host (on one, `create` runs instead).
pub const WELCOME: &str = "\
vikunja-installer: installs and operates Vikunja (self-hosted to-do lists) on Proxmox VE.

This machine is not a Proxmox VE host (no pveversion, no /etc/pve), so nothing was done. Either:

  Inside an LXC container or on any Debian machine, install Vikunja here:
      vikunja-installer install              (asks on a terminal; --config FILE or --yes for unattended)

  On the Proxmox VE host, make a container with Vikunja in it:
      vikunja-installer create               (the one-liner with no command does this on a host)

With the one-liner:  curl -fsSL …/install.sh | sh -s -- -- install
All commands:        vikunja-installer --help
";

pub fn parse(args: &[String]) -> Parsed {
    // `-h` is what people type first; argh knows only --help.
    let args: Vec<String> = args.iter().map(|a| if a == "-h" { "--help".to_string() } else { a.clone() }).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match Cli::from_args(&["vikunja-installer"], &argv) {
        Ok(cli) => Parsed::Run(cli),
        Err(e) if e.status.is_ok() => Parsed::Help(e.output),
        Err(e) => Parsed::Usage(e.output),
    }
}
