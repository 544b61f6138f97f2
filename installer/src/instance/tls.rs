//! The certificate nginx serves: the user's, or a self-signed one made once and kept (a new one on
//! every run would make browsers complain again each time) until it nears expiry or the names it
//! must cover change.
//!
//! The self-signed one is what browsers accept after one warning: CN = the domain; SANs = the
//! domain, the container's addresses (so browsing by IP matches too) and `localhost`; valid for 825
//! days at most (Apple's limit for TLS server certificates). Beside it, `self-signed.meta` records
//! its names and expiry, so `install` renews it without parsing X.509.

use std::io;
use std::path::PathBuf;

use manifests::atomic::write_atomic;

use crate::instance::config::Deployment;
use crate::instance::layout::Layout;

pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub self_signed: bool,
}

const DAY: i64 = 86_400;
pub const VALIDITY_DAYS: i64 = 825;
/// A certificate with less left than this is replaced by the next `install`.
const RENEW_DAYS: i64 = 30;

/// Where the ACME certificate and its key live: one 0600 file, key first, then the chain
/// (`service::acme` replaces it with one rename, so the pair always matches).
pub fn acme_paths(l: &Layout) -> CertPaths {
    let file = l.acme_dir().join("certificate.pem");
    CertPaths { cert: file.clone(), key: file, self_signed: false }
}

/// The ACME pair once one was obtained; until then (`[ssl] acme` before its first certificate,
/// or a failure with `acme_fallback_self_signed`) the site serves the self-signed one.
pub fn acme_obtained(l: &Layout, d: &Deployment) -> Option<CertPaths> {
    let p = acme_paths(l);
    (d.ssl.acme && p.cert.is_file()).then_some(p)
}

pub fn ensure(l: &Layout, d: &Deployment) -> io::Result<(CertPaths, bool)> {
    if let (Some(cert), Some(key)) = (&d.ssl.cert_path, &d.ssl.key_path) {
        return Ok((CertPaths { cert: cert.clone(), key: key.clone(), self_signed: false }, false));
    }
    if let Some(p) = acme_obtained(l, d) {
        return Ok((p, false));
    }
    let cert = l.ssl_dir().join("cert.pem");
    let key = l.ssl_dir().join("key.pem");
    let meta = l.ssl_dir().join("self-signed.meta");
    let paths = CertPaths { cert: cert.clone(), key: key.clone(), self_signed: true };
    let names = names(d, &local_addresses());
    let now = manifests::time::now_unix();
    if cert.is_file()
        && key.is_file()
        && !needs_renewal(&std::fs::read_to_string(&meta).unwrap_or_default(), &names, now)
    {
        return Ok((paths, false));
    }
    let made = make(&d.network.domain, &names, now)?;
    write_atomic(&key, made.key.as_bytes(), 0o600)?;
    write_atomic(&cert, made.cert.as_bytes(), 0o644)?;
    write_atomic(&meta, format!("not_after = {}\nnames = {}\n", made.not_after, names.join(",")).as_bytes(), 0o644)?;
    Ok((paths, true))
}

/// The names the certificate covers: the domain, the given addresses, localhost.
fn names(d: &Deployment, addresses: &[String]) -> Vec<String> {
    let mut v = vec![d.network.domain.clone()];
    if let Some(a) = d.network.ip_address.split('/').next().filter(|a| a.parse::<std::net::IpAddr>().is_ok()) {
        v.push(a.to_string());
    }
    for a in addresses {
        if !v.contains(a) {
            v.push(a.clone());
        }
    }
    v.push("localhost".into());
    v
}

/// No record (a certificate from before it was kept), other names, or near its end.
fn needs_renewal(meta: &str, names: &[String], now: i64) -> bool {
    let field = |k: &str| meta.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix(" = ")).map(str::trim);
    let Some(not_after) = field("not_after").and_then(|v| v.parse::<i64>().ok()) else { return true };
    field("names") != Some(names.join(",").as_str()) || not_after - now < RENEW_DAYS * DAY
}

struct Made {
    cert: String,
    key: String,
    not_after: i64,
}

fn ymd(t: i64) -> (i32, u8, u8) {
    let s = manifests::time::format_rfc3339(t);
    let n = |r: std::ops::Range<usize>| -> i32 { s.get(r).and_then(|x| x.parse().ok()).unwrap_or(1) };
    (n(0..4), n(5..7) as u8, n(8..10) as u8)
}

fn make(domain: &str, names: &[String], now: i64) -> io::Result<Made> {
    let err = |e: rcgen::Error| io::Error::other(format!("self-signed certificate: {e}"));
    let mut p = rcgen::CertificateParams::new(names.to_vec()).map_err(err)?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, domain);
    // From yesterday (clocks differ a little), at most VALIDITY_DAYS in all.
    let start = now - DAY;
    let end = start + (VALIDITY_DAYS - 1) * DAY;
    let (y, m, d) = ymd(start);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(end);
    p.not_after = rcgen::date_time_ymd(y, m, d);
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = p.self_signed(&key).map_err(err)?;
    Ok(Made { cert: cert.pem(), key: key.serialize_pem(), not_after: end - end.rem_euclid(DAY) })
}

/// The container's own addresses (not loopback, not link-local), for the certificate's SANs.
fn local_addresses() -> Vec<String> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocated into `head`, which we only read and then give
    // back to freeifaddrs exactly once; every ifa_addr is checked for null and its family before it
    // is read as the sockaddr type that family guarantees.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let a = (*p).ifa_addr;
            if !a.is_null() {
                match i32::from((*a).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(a as *const libc::sockaddr_in);
                        let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                        if !ip.is_loopback() && !ip.is_link_local() {
                            out.push(ip.to_string());
                        }
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(a as *const libc::sockaddr_in6);
                        let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                        if !ip.is_loopback() && (ip.segments()[0] & 0xffc0) != 0xfe80 {
                            out.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
            p = (*p).ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out.dedup();
    out
}

/// SHA-256 of the first certificate in a PEM text, as browsers show it (AB:CD:…).
pub fn fingerprint(pem: &str) -> Option<String> {
    let der = first_der(pem)?;
    let hex = manifests::hash::sha256_hex(&der).to_ascii_uppercase();
    Some(hex.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":"))
}

/// The DER bytes of the first certificate in a PEM text.
pub fn first_der(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64(b64.trim())
}

/// When the served certificate ends (Unix time): the notAfter of the ACME certificate once one was
/// obtained or of the first certificate in the user's PEM (read from its DER, no X.509 library
/// needed for one field), else the self-signed one's record.
pub fn expiry(l: &Layout, d: &Deployment) -> Option<i64> {
    if let Some(acme) = acme_obtained(l, d) {
        return not_after(&std::fs::read_to_string(acme.cert).ok()?);
    }
    match &d.ssl.cert_path {
        Some(p) => not_after(&std::fs::read_to_string(p).ok()?),
        None => {
            let meta = std::fs::read_to_string(l.ssl_dir().join("self-signed.meta")).ok()?;
            meta.lines().find_map(|x| x.strip_prefix("not_after = ")).and_then(|v| v.trim().parse().ok())
        }
    }
}

/// notAfter of the first certificate in a PEM text: Certificate → tbsCertificate → (optional [0]
/// version), serial, signature, issuer, validity → notAfter (UTCTime or GeneralizedTime).
pub fn not_after(pem: &str) -> Option<i64> {
    let der = first_der(pem)?;
    // (tag, contents, rest) of one DER element.
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let v = b[..n].iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
            b = &b[n..];
            v
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let (_, cert, _) = tlv(&der)?;
    let (_, tbs, _) = tlv(cert)?;
    let (tag, _, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        rest = tlv(rest)?.2; // the version came first; now the serial
    }
    let rest = tlv(rest)?.2; // signature algorithm
    let rest = tlv(rest)?.2; // issuer
    let (_, validity, _) = tlv(rest)?;
    let (_, _, after) = tlv(validity)?;
    let (tag, t, _) = tlv(after)?;
    let t = std::str::from_utf8(t).ok()?.strip_suffix('Z')?;
    let full = match (tag, t.len()) {
        (0x17, 12) => format!("{}{t}", if t[..2].parse::<u32>().ok()? >= 50 { "19" } else { "20" }),
        (0x18, 14) => t.to_string(),
        _ => return None,
    };
    let rfc =
        format!("{}-{}-{}T{}:{}:{}Z", &full[..4], &full[4..6], &full[6..8], &full[8..10], &full[10..12], &full[12..14]);
    manifests::time::parse_rfc3339(&rfc).ok()
}

pub(crate) fn base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | u32::from(val(c)?);
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn openssl(args: &[&str], input: &Path) -> String {
        let o = Command::new("openssl").args(args).arg("-in").arg(input).output().expect("openssl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    #[test]
    fn self_signed_names_the_domain_and_addresses_lasts_at_most_825_days_and_is_renewed_near_its_end() {
        let dir = std::env::temp_dir().join(format!("tls-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let l = Layout::new(&dir, "main");
        std::fs::create_dir_all(l.ssl_dir()).unwrap();
        let mut d = Deployment::default();
        d.network.domain = "tasks.example.org".into();
        d.network.ip_address = "192.0.2.10/24".into();
        let (p, new) = ensure(&l, &d).unwrap();
        assert!(new && p.self_signed);
        let text = openssl(&["x509", "-noout", "-text"], &p.cert);
        assert!(
            text.contains("Subject: CN=tasks.example.org") || text.contains("Subject: CN = tasks.example.org"),
            "{text}"
        );
        for san in ["DNS:tasks.example.org", "IP Address:192.0.2.10", "DNS:localhost"] {
            assert!(text.contains(san), "{san} missing:\n{text}");
        }
        let dates = openssl(&["x509", "-noout", "-startdate", "-enddate"], &p.cert);
        let epoch = |k: &str| {
            let v = dates.lines().find_map(|l| l.strip_prefix(k)).unwrap();
            let o = Command::new("date").args(["-u", "-d", v, "+%s"]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse::<i64>().unwrap()
        };
        let days = (epoch("notAfter=") - epoch("notBefore=")) / DAY;
        assert!((800..=VALIDITY_DAYS).contains(&days), "{days} days");
        // The fingerprint is the one openssl computes.
        let want = openssl(&["x509", "-noout", "-fingerprint", "-sha256"], &p.cert);
        assert_eq!(
            Some(want.trim().split('=').nth(1).unwrap().to_string()),
            fingerprint(&std::fs::read_to_string(&p.cert).unwrap())
        );

        // Kept while nothing changes; renewed for another domain, near its end, or without a record.
        let before = std::fs::read(&p.cert).unwrap();
        assert!(!ensure(&l, &d).unwrap().1);
        assert_eq!(before, std::fs::read(&p.cert).unwrap());
        let meta = l.ssl_dir().join("self-signed.meta");
        let m = std::fs::read_to_string(&meta).unwrap();
        let now = manifests::time::now_unix();
        let names: Vec<String> =
            m.lines().find_map(|l| l.strip_prefix("names = ")).unwrap().split(',').map(String::from).collect();
        assert!(!needs_renewal(&m, &names, now));
        assert!(needs_renewal(&m, &names, now + (VALIDITY_DAYS - 20) * DAY), "20 days before its end");
        assert!(needs_renewal(&m, &["other.example.org".to_string()], now));
        std::fs::remove_file(&meta).unwrap();
        assert!(ensure(&l, &d).unwrap().1, "a certificate without its record is replaced");
        assert_ne!(before, std::fs::read(&p.cert).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn base64_and_fingerprint_refuse_garbage() {
        assert_eq!(base64("TWFu").unwrap(), b"Man");
        assert_eq!(base64("TWE=").unwrap(), b"Ma");
        assert_eq!(base64("TQ==").unwrap(), b"M");
        assert_eq!(base64("TQ=").map(|_| ()), None);
        assert_eq!(fingerprint("no pem here"), None);
    }

    #[test]
    fn not_after_is_the_end_openssl_reads_for_utc_and_generalized_times() {
        let dir = std::env::temp_dir().join(format!("tls-notafter-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 3 days: UTCTime; past 2049 (30000 days): GeneralizedTime.
        for days in ["3", "30000"] {
            let (cert, key) = (dir.join(format!("c{days}.pem")), dir.join(format!("k{days}.pem")));
            let o = Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-subj",
                    "/CN=t",
                ])
                .args(["-days", days, "-out"])
                .arg(&cert)
                .arg("-keyout")
                .arg(&key)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let want = openssl(&["x509", "-noout", "-enddate", "-dateopt", "iso_8601"], &cert);
            let want = want.trim().strip_prefix("notAfter=").unwrap().replace(' ', "T");
            let got = not_after(&std::fs::read_to_string(&cert).unwrap()).unwrap();
            assert_eq!(manifests::time::format_rfc3339(got), want, "{days} days");
        }
        assert_eq!(not_after("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
