//! Minimal HTTP/1.1 GET over TCP for health checks of services on this machine (plain HTTP on
//! loopback; TLS is nginx's job). Health is judged over HTTP because Vikunja keeps running, and its
//! unit stays "active", when it cannot bind its port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn get(port: u16, path: &str, timeout: Duration) -> Result<Response, String> {
    get_at(SocketAddr::from(([127, 0, 0, 1], port)), path, timeout)
}

/// GET from a given address: nginx may listen on one address only (`network.listen_address`).
pub fn get_at(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, String> {
    get_host(addr, &addr.to_string(), path, timeout)
}

/// [`get_at`] with the `Host` header a client of `host` sends (name-based virtual servers).
pub fn get_host(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: vikunja-installer-health\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    s.take(4 * 1024 * 1024).read_to_end(&mut raw).map_err(|e| format!("read from {addr}: {e}"))?;
    parse(&raw).ok_or_else(|| format!("{addr}{path}: not an HTTP response"))
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Response { status, body })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..nl]).ok()?.split(';').next()?.trim(), 16).ok()?;
        b = &b[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

pub fn tcp_open_at(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    TcpStream::connect_timeout(&addr, timeout).map(|_| ()).map_err(|e| format!("connect {addr}: {e}"))
}

/// Where to reach a server that listens on `listen` ("" or a wildcard: all addresses, so loopback).
pub fn reach(listen: &str, port: u16) -> SocketAddr {
    let ip: std::net::IpAddr = match listen.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() && ip.is_ipv6() => std::net::Ipv6Addr::LOCALHOST.into(),
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => std::net::Ipv4Addr::LOCALHOST.into(),
    };
    SocketAddr::new(ip, port)
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_plain_and_chunked_bodies() {
        let r = super::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "OK"));
        let r = super::parse(b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!((r.status, r.text().as_str()), (500, "abcde"));
        assert!(super::parse(b"garbage").is_none());
    }

    #[test]
    fn nginx_is_reached_where_it_listens() {
        assert_eq!(super::reach("", 443).to_string(), "127.0.0.1:443");
        assert_eq!(super::reach("0.0.0.0", 443).to_string(), "127.0.0.1:443");
        assert_eq!(super::reach("::", 443).to_string(), "[::1]:443");
        assert_eq!(super::reach("127.0.10.11", 8443).to_string(), "127.0.10.11:8443");
    }
}
