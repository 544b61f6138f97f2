//! "Does the database answer?": checked before install changes anything, and by health checks.

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::instance::config::{DbType, Deployment};
use crate::instance::layout::Layout;

pub fn check(l: &Layout, d: &Deployment, password: Option<&str>, timeout: Duration) -> Result<(), String> {
    match d.database.kind {
        DbType::Sqlite => {
            let path = l.sqlite_path();
            if !path.exists() {
                return Ok(()); // created by Vikunja's first start
            }
            let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| format!("open {}: {e}", path.display()))?;
            conn.query_row("SELECT 1", [], |_| Ok(())).map_err(|e| format!("query {}: {e}", path.display()))
        }
        DbType::Postgres => {
            let mut cfg = postgres::Config::new();
            cfg.host(&d.database.host)
                .port(d.database.port)
                .user(&d.database.user)
                .dbname(&d.database.name)
                .connect_timeout(timeout);
            if let Some(pw) = password {
                cfg.password(pw);
            }
            let mut client = cfg.connect(postgres::NoTls).map_err(|e| {
                format!(
                    "PostgreSQL at {}:{} (database {}, user {}): {e}",
                    d.database.host, d.database.port, d.database.name, d.database.user
                )
            })?;
            client.simple_query("SELECT 1").map(|_| ()).map_err(|e| format!("PostgreSQL query: {e}"))
        }
        DbType::Mysql => {
            // Without a MySQL client library the check stops at the server greeting: it proves a
            // MySQL/MariaDB server listens there; credentials are checked by Vikunja's first start.
            let addr = (d.database.host.as_str(), d.database.port)
                .to_socket_addrs()
                .map_err(|e| format!("resolve {}: {e}", d.database.host))?
                .next()
                .ok_or_else(|| format!("{} has no address", d.database.host))?;
            let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("MySQL at {addr}: {e}"))?;
            s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            let mut head = [0u8; 5];
            s.read_exact(&mut head).map_err(|e| format!("MySQL at {addr}: no greeting: {e}"))?;
            if head[4] == 10 {
                Ok(())
            } else {
                Err(format!("{addr} does not greet like a MySQL/MariaDB server (protocol byte {})", head[4]))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A listener that sends `greeting` to the first client.
    fn server(greeting: &'static [u8]) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.write_all(greeting);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        port
    }

    fn mysql(port: u16) -> Result<(), String> {
        let mut d = Deployment::default();
        d.database.kind = DbType::Mysql;
        d.database.host = "127.0.0.1".into();
        d.database.port = port;
        let l = Layout::new(std::path::Path::new("/nonexistent"), "t");
        check(&l, &d, None, Duration::from_secs(2))
    }

    #[test]
    fn mysql_check_wants_a_protocol_10_greeting() {
        // length 3 bytes, sequence 0, protocol version 10, then a server version string
        assert_eq!(mysql(server(b"\x4a\x00\x00\x00\x0a10.11.6-MariaDB\x00")), Ok(()));
        let e = mysql(server(b"HTTP/1.1 400 Bad Request\r\n\r\n")).unwrap_err();
        assert!(e.contains("does not greet like a MySQL"), "{e}");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        assert!(mysql(closed).unwrap_err().contains("MySQL at 127.0.0.1"));
    }
}
