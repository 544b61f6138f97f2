//! Who listens on a TCP port of this machine, read from procfs: the listening sockets in
//! `/proc/net/tcp{,6}` and the processes whose descriptors point at them. Health uses it to prove
//! that the process answering on a colour's port is that colour's service (not a stranger or an
//! orphan), and `start` to name what holds a port before it starts anything.

use std::path::PathBuf;

/// A process that holds a listening socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub pid: i32,
    /// `/proc/PID/comm`: the short name `ps` shows.
    pub name: String,
    /// `/proc/PID/exe`, when readable.
    pub exe: Option<PathBuf>,
}

impl Holder {
    pub fn describe(&self) -> String {
        match &self.exe {
            Some(e) => format!("pid {} ({}, {})", self.pid, self.name, e.display()),
            None => format!("pid {} ({})", self.pid, self.name),
        }
    }
}

/// The socket inodes listening on `port` (any address, IPv4 or IPv6), from one table's text.
fn listening_in(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(f.get(1)?.rsplit_once(':')?.1, 16).ok()?;
            // State 0A is TCP_LISTEN.
            (local_port == port && *f.get(3)? == "0A").then(|| f.get(9)?.parse().ok())?
        })
        .filter(|inode| *inode != 0)
        .collect()
}

pub fn listening_inodes(port: u16) -> Vec<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| listening_in(&t, port))
        .collect()
}

fn holds(pid: i32, inodes: &[u64]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .ok()
            .and_then(|t| {
                let t = t.to_string_lossy().into_owned();
                t.strip_prefix("socket:[")?.strip_suffix(']')?.parse::<u64>().ok()
            })
            .is_some_and(|inode| inodes.contains(&inode))
    })
}

fn holder(pid: i32) -> Holder {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string();
    Holder { pid, name, exe: std::fs::read_link(format!("/proc/{pid}/exe")).ok() }
}

/// Every process holding a socket that listens on `port`. Empty when the port is free, and also
/// when the holders' descriptors cannot be read (not root): see `Listen::Unknown`.
pub fn holders(port: u16) -> Listen {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Listen::Free;
    }
    let mut found: Vec<Holder> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| holds(*pid, &inodes))
        .map(holder)
        .collect();
    found.sort_by_key(|h| h.pid);
    if found.is_empty() {
        Listen::Unknown
    } else {
        Listen::Held(found)
    }
}

/// The TCP connections with `port` at either end, from one table's text: (local, remote) as the
/// table writes them. Listening sockets and closed ones (TIME_WAIT, CLOSE) are left out; a
/// connection half-closed by one side (FIN_WAIT, CLOSE_WAIT, LAST_ACK) still counts, because its
/// server side is only closed once the request's handler has returned.
fn connections_in(table: &str, port: u16) -> Vec<(String, String)> {
    let port_of = |a: &str| a.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (*f.get(1)?, *f.get(2)?, *f.get(3)?);
            let ends = port_of(local) == Some(port) || port_of(remote) == Some(port);
            (ends && !matches!(state, "0A" | "06" | "07")).then(|| (local.to_string(), remote.to_string()))
        })
        .collect()
}

/// Every open TCP connection of this machine's network namespace to or from `port`.
pub fn connections(port: u16) -> Vec<(String, String)> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| connections_in(&t, port))
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub enum Listen {
    /// Nothing listens.
    Free,
    /// These processes hold the listening socket (a forked server: all that share it).
    Held(Vec<Holder>),
    /// Something listens, but its process cannot be seen (another user's, without root).
    Unknown,
}

/// The parent of `pid`, from `/proc/PID/stat` (the field after the parenthesised name).
pub fn parent(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is `ancestor` or one of its descendants.
pub fn descends_from(pid: i32, ancestor: i32) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        if p == ancestor {
            return true;
        }
        match parent(p) {
            Some(pp) if pp > 0 && pp != p => p = pp,
            _ => return false,
        }
    }
    false
}

/// Whether `pid` is alive (exists and is not a zombie waiting to be reaped).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:D3C4 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0\n";

    #[test]
    fn only_listening_sockets_on_the_port_count() {
        assert_eq!(listening_in(TABLE, 8080), vec![4242]);
        assert_eq!(listening_in(TABLE, 80), vec![77]);
        assert!(listening_in(TABLE, 443).is_empty());
    }

    #[test]
    fn connections_count_either_end_but_not_listeners_or_closed_ones() {
        let t = format!(
            "{TABLE}   3: 0100007F:D3C5 0100007F:1F90 06 00000000:00000000 00:00000000 00000000     0        0 0 1\n\
   4: 0100007F:D3C6 0100007F:1F90 08 00000000:00000000 00:00000000 00000000     0        0 99 1\n"
        );
        let c = connections_in(&t, 8080);
        assert_eq!(
            c,
            vec![
                ("0100007F:1F90".to_string(), "0100007F:D3C4".to_string()),
                ("0100007F:D3C6".to_string(), "0100007F:1F90".to_string())
            ]
        );
        assert!(connections_in(&t, 80).is_empty());
    }

    #[test]
    fn a_live_connection_is_seen_until_both_ends_are_closed() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(connections(port).is_empty());
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (s, _) = l.accept().unwrap();
        assert_eq!(connections(port).len(), 2, "client and server side");
        drop(c);
        // The server side is in CLOSE_WAIT until it closes too: still a request being handled.
        assert!(!connections(port).is_empty());
        drop(s);
        assert!(connections(port).is_empty());
    }

    #[test]
    fn a_listener_of_this_process_is_found_with_its_name() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id() as i32;
        match holders(port) {
            Listen::Held(h) => assert!(h.iter().any(|h| h.pid == me), "{h:?}"),
            // Without root another test binary's sockets may be unreadable, never our own.
            other => panic!("expected this process to hold port {port}: {other:?}"),
        }
        assert!(descends_from(me, me));
        assert!(parent(me).is_some_and(|p| descends_from(me, p)));
        assert!(alive(me));
        drop(l);
        assert_eq!(holders(port), Listen::Free);
    }
}
