//! The MCP component's health: a real MCP client round trip over streamable HTTP on loopback,
//! `initialize`, `notifications/initialized`, `tools/list`, then the session is ended. A port that
//! accepts connections proves nothing here: the bridge listens before its stdio server has started
//! (or after it died), and only a `tools/list` answer shows that the server behind it works.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The protocol revision we ask for; servers answer with the one they speak.
const PROTOCOL: &str = "2025-03-26";

struct Reply {
    status: u16,
    session: Option<String>,
    /// The JSON-RPC response with the request's id, from a JSON body or an SSE `data:` event.
    message: Option<Value>,
}

/// `initialize` + `tools/list` against `http://127.0.0.1:{port}/mcp`; Ok names the server and how
/// many tools it offers.
pub fn round_trip(port: u16, timeout: Duration) -> Result<String, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let init = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "vikunja-installer-health", "version": manifests::build_info::version()}
        }
    });
    let r = post(addr, &init, None, timeout)?;
    let result = result_of(&r, "initialize")?;
    let server = result["serverInfo"]["name"].as_str().unwrap_or("(unnamed)").to_string();
    let version = result["protocolVersion"].as_str().unwrap_or(PROTOCOL).to_string();
    let session = r.session.clone();
    let outcome = (|| {
        let note = serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let n = post(addr, &note, Some((session.as_deref(), &version)), timeout)?;
        if !(200..300).contains(&n.status) {
            return Err(format!("notifications/initialized answered HTTP {}", n.status));
        }
        let list = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
        let r = post(addr, &list, Some((session.as_deref(), &version)), timeout)?;
        let tools = result_of(&r, "tools/list")?["tools"]
            .as_array()
            .map(Vec::len)
            .ok_or_else(|| "tools/list answered without a tools array".to_string())?;
        Ok(format!("MCP server {server:?} answers initialize and tools/list ({tools} tools)"))
    })();
    if let Some(s) = &session {
        // Each session holds state in the bridge; the check must not leave one behind per run.
        let _ = request(addr, "DELETE", None, Some((Some(s), &version)), timeout);
    }
    outcome
}

fn result_of<'a>(r: &'a Reply, method: &str) -> Result<&'a Value, String> {
    if r.status != 200 {
        return Err(format!("{method} answered HTTP {} (not an MCP streamable-HTTP endpoint at /mcp?)", r.status));
    }
    let m = r.message.as_ref().ok_or_else(|| format!("{method} answered HTTP 200 without a JSON-RPC response"))?;
    if let Some(e) = m.get("error") {
        return Err(format!("{method} failed: {e}"));
    }
    m.get("result").ok_or_else(|| format!("{method} answered without a result: {m}"))
}

fn post(addr: SocketAddr, body: &Value, session: Option<(Option<&str>, &str)>, t: Duration) -> Result<Reply, String> {
    request(addr, "POST", Some(body), session, t)
}

fn request(
    addr: SocketAddr,
    method: &str,
    body: Option<&Value>,
    session: Option<(Option<&str>, &str)>,
    timeout: Duration,
) -> Result<Reply, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let id = serde_json::from_str::<Value>(&body).ok().and_then(|v| v.get("id").cloned());
    let mut head = format!(
        "{method} /mcp HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: vikunja-installer-health\r\nConnection: close\r\n\
         Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some((s, version)) = session {
        if let Some(s) = s {
            head.push_str(&format!("Mcp-Session-Id: {s}\r\n"));
        }
        head.push_str(&format!("MCP-Protocol-Version: {version}\r\n"));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .map_err(|e| format!("send to {addr}: {e}"))?;
    // An SSE answer may stay open after the response event: stop as soon as it has arrived.
    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{addr}: no complete answer to {method} within {timeout:?}"));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(format!("{addr}: no complete answer to {method} within {timeout:?}"))
            }
            Err(e) => return Err(format!("read from {addr}: {e}")),
        };
        if n > 0 {
            raw.extend_from_slice(&buf[..n]);
        }
        if raw.len() > 4 * 1024 * 1024 {
            return Err(format!("{addr}: answer to {method} larger than 4 MiB"));
        }
        if let Some(r) = parse(&raw, id.as_ref()) {
            if n == 0 || r.message.is_some() || id.is_none() {
                return Ok(r);
            }
        } else if n == 0 {
            return Err(format!("{addr}: {method} /mcp got no HTTP response"));
        }
    }
}

/// What `raw` holds so far: status, session header, and the response with `id` if it is there.
fn parse(raw: &[u8], id: Option<&Value>) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let mut body = raw[end + 4..].to_vec();
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        body = dechunk_complete(&body);
    }
    let text = String::from_utf8_lossy(&body);
    let sse = header("content-type").is_some_and(|v| v.starts_with("text/event-stream"));
    let message = id.and_then(|id| {
        let candidates: Vec<Value> = if sse {
            sse_data(&text).iter().filter_map(|d| serde_json::from_str(d).ok()).collect()
        } else {
            serde_json::from_str::<Value>(&text).ok().into_iter().collect()
        };
        candidates
            .into_iter()
            .flat_map(|v| if let Value::Array(a) = v { a } else { vec![v] })
            .find(|m| m.get("id") == Some(id))
    });
    Some(Reply { status, session: header("mcp-session-id").map(str::to_string), message })
}

/// The `data` of every complete SSE event (one ended by a blank line), multi-line data joined.
fn sse_data(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    let mut events: Vec<&str> = text.split("\n\n").collect();
    events.pop(); // not yet ended by a blank line
    for ev in events {
        let data: Vec<&str> =
            ev.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
        if !data.is_empty() {
            out.push(data.join("\n"));
        }
    }
    out
}

/// The chunks that have fully arrived.
fn dechunk_complete(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..nl])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size.filter(|s| *s > 0) else { break };
        let Some(chunk) = b.get(nl + 2..nl + 2 + size) else { break };
        out.extend_from_slice(chunk);
        b = b.get(nl + 2 + size + 2..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_response_in_json_sse_and_chunked_sse() {
        let id = Value::from(1);
        let json = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: abc\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}";
        let r = parse(json, Some(&id)).unwrap();
        assert_eq!((r.status, r.session.as_deref()), (200, Some("abc")));
        assert!(r.message.is_some());
        let sse = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\r\n\r\n\
                   event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}\r\n\r\n";
        let chunked = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{sse}\r\n",
            sse.len()
        );
        let r = parse(chunked.as_bytes(), Some(&id)).unwrap();
        assert_eq!(r.message.unwrap()["result"]["tools"], serde_json::json!([]));
        // The event not yet ended by its blank line does not count, nor does another id.
        let cut = &chunked[..chunked.len() - 10];
        assert!(parse(cut.as_bytes(), Some(&id)).unwrap().message.is_none());
        assert!(parse(chunked.as_bytes(), Some(&Value::from(2))).unwrap().message.is_none());
    }

    /// A listener that answers HTTP but not MCP (the old health check's "accepts connections"),
    /// and one that never answers, are both unhealthy.
    #[test]
    fn an_open_port_without_an_mcp_answer_is_unhealthy() {
        use std::net::TcpListener;
        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = http.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut s in http.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
            }
        });
        let e = round_trip(port, Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("initialize answered HTTP 404"), "{e}");

        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let started = Instant::now();
        let e = round_trip(port, Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("no complete answer to POST within"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2), "the timeout was not kept");
        drop(silent);
    }
}
