//! Host name resolution without glibc's NSS. A static glibc binary that calls getaddrinfo may
//! dlopen the host's `libnss_*.so` (with a second, possibly different libc) when nsswitch.conf
//! names modules beyond files and dns; on a newer Proxmox than the build machine that is undefined
//! behaviour. So the downloader resolves by itself: IP literals, `/etc/hosts`, then DNS (A, then
//! AAAA) over UDP to the `/etc/resolv.conf` servers, over TCP when the answer is truncated. The
//! addresses only choose where to connect: TLS still proves who answers.
//!
//! The bootstrap is static musl now, whose resolver needs no NSS, but this stays: the installer is
//! still static glibc and shares this downloader, and Debian bookworm's musl 1.2.3 does not retry
//! a truncated answer over TCP (musl does from 1.2.4 on); musl's hosts file, `search` and `ndots`
//! handling would cover the rest.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

#[derive(Debug, Clone)]
pub struct StaticResolver {
    pub hosts_file: PathBuf,
    pub resolv_conf: PathBuf,
    /// DNS server port; 53 except in tests.
    pub port: u16,
    pub timeout: Duration,
}

impl Default for StaticResolver {
    fn default() -> Self {
        StaticResolver {
            hosts_file: "/etc/hosts".into(),
            resolv_conf: "/etc/resolv.conf".into(),
            port: 53,
            timeout: Duration::from_secs(3),
        }
    }
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

impl StaticResolver {
    /// All addresses for `host`, IPv4 first (IPv6 is often unrouted on hosts and in containers).
    pub fn lookup(&self, host: &str) -> Vec<IpAddr> {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![ip];
        }
        let from_hosts = self.in_hosts_file(host);
        if !from_hosts.is_empty() {
            return from_hosts;
        }
        if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
            return vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
        }
        let (servers, search) = self.resolv_conf();
        let mut names = vec![host.to_string()];
        if !host.contains('.') {
            names.extend(search.iter().map(|d| format!("{host}.{d}")));
        }
        for name in names {
            let mut found = Vec::new();
            for qtype in [TYPE_A, TYPE_AAAA] {
                found.extend(servers.iter().find_map(|s| self.query(*s, &name, qtype)).unwrap_or_default());
            }
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }

    fn in_hosts_file(&self, host: &str) -> Vec<IpAddr> {
        let text = std::fs::read_to_string(&self.hosts_file).unwrap_or_default();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let Some(ip) = fields.next().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
            if fields.any(|n| n.eq_ignore_ascii_case(host)) {
                match ip {
                    IpAddr::V4(_) => v4.push(ip),
                    IpAddr::V6(_) => v6.push(ip),
                }
            }
        }
        v4.extend(v6);
        v4
    }

    fn resolv_conf(&self) -> (Vec<IpAddr>, Vec<String>) {
        let text = std::fs::read_to_string(&self.resolv_conf).unwrap_or_default();
        let mut servers = Vec::new();
        let mut search = Vec::new();
        for line in text.lines() {
            let mut f = line.split_whitespace();
            match f.next() {
                // glibc's limit; scoped IPv6 addresses (fe80::1%eth0) are skipped.
                Some("nameserver") if servers.len() < 3 => {
                    servers.extend(f.next().and_then(|a| a.parse::<IpAddr>().ok()))
                }
                Some("search") | Some("domain") => search = f.map(str::to_string).collect(),
                _ => {}
            }
        }
        if servers.is_empty() {
            servers.push(IpAddr::V4(Ipv4Addr::LOCALHOST)); // as glibc does without resolv.conf
        }
        (servers, search)
    }

    /// One question to one server: `None` when it did not answer usably, so the next one is tried.
    fn query(&self, server: IpAddr, name: &str, qtype: u16) -> Option<Vec<IpAddr>> {
        let id = random_id();
        let msg = encode_query(id, name, qtype)?;
        let addr = SocketAddr::new(server, self.port);
        let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
        let sock = UdpSocket::bind(bind).ok()?;
        sock.connect(addr).ok()?; // a connected socket drops datagrams from other sources
        sock.set_read_timeout(Some(self.timeout)).ok()?;
        let mut buf = [0u8; 1500];
        for _attempt in 0..2 {
            sock.send(&msg).ok()?;
            let Ok(n) = sock.recv(&mut buf) else { continue };
            match parse_answer(&buf[..n], id, qtype) {
                Answer::Truncated => return self.query_tcp(addr, &msg, id, qtype),
                Answer::Addrs(a) => return Some(a),
                Answer::Invalid => continue,
            }
        }
        None
    }

    fn query_tcp(&self, addr: SocketAddr, msg: &[u8], id: u16, qtype: u16) -> Option<Vec<IpAddr>> {
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).ok()?;
        s.set_read_timeout(Some(self.timeout)).ok()?;
        let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(msg);
        s.write_all(&framed).ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).ok()?;
        let mut resp = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut resp).ok()?;
        match parse_answer(&resp, id, qtype) {
            Answer::Addrs(a) => Some(a),
            _ => None,
        }
    }
}

fn random_id() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish() as u16
}

pub(crate) fn encode_query(id: u16, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // recursion desired, one question
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // class IN
    Some(m)
}

#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    Addrs(Vec<IpAddr>),
    Truncated,
    Invalid,
}

fn skip_name(m: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *m.get(i)? as usize;
        match len {
            0 => return Some(i + 1),
            l if l & 0xC0 == 0xC0 => return Some(i + 2),
            l => i += l + 1,
        }
    }
}

/// Addresses of type `qtype` in the answer section of a response to query `id`. The answer may
/// hold a CNAME chain before them; other record types are skipped.
pub(crate) fn parse_answer(m: &[u8], id: u16, qtype: u16) -> Answer {
    let be16 = |i: usize| m.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (Some(rid), Some(flags), Some(qd), Some(an)) = (be16(0), be16(2), be16(4), be16(6)) else {
        return Answer::Invalid;
    };
    if rid != id || flags & 0x8000 == 0 {
        return Answer::Invalid;
    }
    if flags & 0x0200 != 0 {
        return Answer::Truncated;
    }
    if flags & 0x000F != 0 {
        return Answer::Addrs(Vec::new()); // NXDOMAIN, SERVFAIL…: nothing to connect to
    }
    let mut i = 12;
    for _ in 0..qd {
        let Some(j) = skip_name(m, i) else { return Answer::Invalid };
        i = j + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        let Some(j) = skip_name(m, i) else { return Answer::Invalid };
        let (Some(ty), Some(len)) = (be16(j), be16(j + 8)) else { return Answer::Invalid };
        let data = j + 10;
        let Some(rdata) = m.get(data..data + len as usize) else { return Answer::Invalid };
        match (ty, rdata.len()) {
            (t, 4) if t == qtype && t == TYPE_A => {
                out.push(IpAddr::from(<[u8; 4]>::try_from(rdata).unwrap_or_default()))
            }
            (t, 16) if t == qtype && t == TYPE_AAAA => {
                out.push(IpAddr::from(<[u8; 16]>::try_from(rdata).unwrap_or_default()))
            }
            _ => {}
        }
        i = data + len as usize;
    }
    Answer::Addrs(out)
}

impl Resolver for StaticResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().ok_or(ureq::Error::HostNotFound)?;
        let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("http") { 80 } else { 443 });
        let mut out = self.empty();
        for ip in self.lookup(host).into_iter().take(16) {
            out.push(SocketAddr::new(ip, port));
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A canned DNS server on loopback: answers A queries for `name` with a CNAME then an A record.
    fn serve_once(truncate: bool) -> (u16, std::thread::JoinHandle<()>) {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let h = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, peer) = udp.recv_from(&mut buf).unwrap();
            let q = &buf[..n];
            let answer = |tc: bool| {
                let mut r = q.to_vec();
                r[2] = 0x81 | if tc { 0x02 } else { 0 };
                r[3] = 0x80;
                r[7] = 2; // two answers
                r.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xC0, 12]); // CNAME
                r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]); // A
                r
            };
            udp.send_to(&answer(truncate), peer).unwrap();
            if truncate {
                let (mut s, _) = tcp.accept().unwrap();
                let mut len = [0u8; 2];
                s.read_exact(&mut len).unwrap();
                let mut q2 = vec![0u8; u16::from_be_bytes(len) as usize];
                s.read_exact(&mut q2).unwrap();
                let r = answer(false);
                s.write_all(&(r.len() as u16).to_be_bytes()).unwrap();
                s.write_all(&r).unwrap();
            }
        });
        (port, h)
    }

    fn resolver(dir: &std::path::Path, port: u16) -> StaticResolver {
        std::fs::write(dir.join("hosts"), "127.0.0.1 localhost\n10.1.2.3 pve1.lan pve1 # the host\n").unwrap();
        std::fs::write(dir.join("resolv.conf"), "search lan\nnameserver 127.0.0.1\n").unwrap();
        StaticResolver {
            hosts_file: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            port,
            timeout: Duration::from_secs(2),
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("resolve-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn literals_and_hosts_file_need_no_dns() {
        let r = resolver(&tmp("hosts"), 1);
        assert_eq!(r.lookup("192.0.2.1"), vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.lookup("[::1]"), vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert_eq!(r.lookup("PVE1"), vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn asks_the_resolv_conf_server_and_follows_cname_chains() {
        let (port, h) = serve_once(false);
        let r = resolver(&tmp("udp"), port);
        let got = r.query(IpAddr::V4(Ipv4Addr::LOCALHOST), "github.com", TYPE_A);
        h.join().unwrap();
        assert_eq!(got, Some(vec!["192.0.2.7".parse().unwrap()]));
    }

    #[test]
    fn retries_over_tcp_when_truncated() {
        let (port, h) = serve_once(true);
        let r = resolver(&tmp("tcp"), port);
        let got = r.query(IpAddr::V4(Ipv4Addr::LOCALHOST), "github.com", TYPE_A);
        h.join().unwrap();
        assert_eq!(got, Some(vec!["192.0.2.7".parse().unwrap()]));
    }

    #[test]
    fn rejects_answers_to_other_questions_and_garbage() {
        let q = encode_query(7, "example.org", TYPE_A).unwrap();
        let mut r = q.clone();
        r[2] = 0x81;
        assert_eq!(parse_answer(&r, 8, TYPE_A), Answer::Invalid, "wrong id accepted");
        assert_eq!(parse_answer(&q, 7, TYPE_A), Answer::Invalid, "a query is not an answer");
        assert_eq!(parse_answer(&r[..5], 7, TYPE_A), Answer::Invalid);
        r[3] = 0x83; // NXDOMAIN
        assert_eq!(parse_answer(&r, 7, TYPE_A), Answer::Addrs(vec![]));
        assert!(encode_query(1, "a..b", TYPE_A).is_none());
    }
}
