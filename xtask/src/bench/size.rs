//! What the bootstrap is made of: sums the input sections of the linker map written by the musl
//! build (`dist::build_musl_bootstrap`) by where they come from. With fat LTO all Rust code is one
//! object, so Rust code is split by the crate in its symbol name (a generic instantiation counts
//! under the crate whose function was instantiated, `<T as Trait>` impls and anonymous constants
//! under "unattributed").

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

/// (part, bytes), largest first; only sections that take space in the file.
pub fn parts(map: &Path) -> Result<Vec<(String, u64)>> {
    let text = std::fs::read_to_string(map).with_context(|| format!("read {}", map.display()))?;
    Ok(parts_of(&text))
}

fn parts_of(text: &str) -> Vec<(String, u64)> {
    let mut sums: BTreeMap<String, u64> = BTreeMap::new();
    let Some(start) = text.find("Linker script and memory map") else { return Vec::new() };
    let mut out_section = String::new();
    let mut pending: Option<String> = None;
    for line in text[start..].lines() {
        if !line.starts_with(' ') {
            if let Some(name) = line.split_whitespace().next() {
                if name.starts_with('.') {
                    out_section = name.to_string();
                }
            }
            pending = None;
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, rest) = match f.as_slice() {
            [n] if n.starts_with('.') => {
                pending = Some(n.to_string());
                continue;
            }
            [n, a, s, file @ ..] if (n.starts_with('.') || *n == "*fill*") && a.starts_with("0x") => {
                (n.to_string(), (*s, file.join(" ")))
            }
            [a, s, file @ ..] if a.starts_with("0x") && s.starts_with("0x") && pending.is_some() => {
                (pending.take().unwrap_or_default(), (*s, file.join(" ")))
            }
            _ => continue,
        };
        if !in_file(&out_section) {
            continue;
        }
        let Ok(size) = u64::from_str_radix(rest.0.trim_start_matches("0x"), 16) else { continue };
        *sums.entry(part(&out_section, &name, &rest.1)).or_default() += size;
    }
    let mut v: Vec<(String, u64)> = sums.into_iter().filter(|(_, n)| *n > 0).collect();
    v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    v
}

/// Output sections that take bytes in a stripped binary.
fn in_file(section: &str) -> bool {
    !section.is_empty()
        && ![".bss", ".tbss", ".comment", ".symtab", ".strtab", ".shstrtab", ".note.GNU-stack"].contains(&section)
        && !section.starts_with(".debug")
}

fn part(out_section: &str, section: &str, file: &str) -> String {
    let p = |s: &str| s.to_string();
    if section == "*fill*" {
        return p("alignment padding");
    }
    if out_section.starts_with(".rela") {
        return p("relocations (static-pie)");
    }
    if out_section.starts_with(".eh_frame") || out_section == ".gcc_except_table" {
        return p("unwind tables (.eh_frame)");
    }
    if file.contains("libc.a(") {
        return p("musl libc");
    }
    if file.contains("libunwind") {
        return p("libunwind");
    }
    if file.contains("libgcc") {
        return p("libgcc");
    }
    if file.contains("libring") || file.contains("ring_core") {
        return p("ring (C and assembly)");
    }
    if file.starts_with("/usr/lib/") && file.ends_with(".o") {
        return p("C start files");
    }
    match symbol_crate(section).as_deref() {
        Some(
            "std"
            | "core"
            | "alloc"
            | "compiler_builtins"
            | "panic_abort"
            | "panic_immediate_abort"
            | "hashbrown"
            | "std_detect"
            | "adler2"
            | "memchr"
            | "rustc_demangle"
            | "addr2line"
            | "gimli"
            | "object"
            | "miniz_oxide_std",
        ) => p("Rust std"),
        Some("ring" | "untrusted" | "getrandom") => p("ring (Rust)"),
        Some("rustls" | "webpki" | "rustls_pki_types" | "subtle" | "zeroize") => p("rustls + webpki"),
        Some("webpki_roots") => p("webpki-roots (CA certificates)"),
        Some(
            "ureq" | "ureq_proto" | "http" | "httparse" | "percent_encoding" | "base64" | "utf8_zero" | "log" | "bytes"
            | "itoa",
        ) => p("ureq + http"),
        Some("flate2" | "miniz_oxide" | "simd_adler32" | "crc32fast" | "tar" | "filetime" | "minisign_verify") => {
            p("flate2, tar, minisign-verify")
        }
        Some("manifests" | "vikunja_bootstrap") => p("our code (manifests, bootstrap)"),
        Some("signal_hook" | "signal_hook_registry" | "libc" | "errno" | "once_cell" | "thiserror") => {
            p("signal-hook, libc, small crates")
        }
        Some(other) => format!("Rust, other: {other}"),
        None => p("Rust, unattributed (trait impls, anonymous constants)"),
    }
}

/// The crate of the Rust symbol in a section name (`.text._ZN6rustls6client…` → `rustls`,
/// `.text._RNvNtCs1a_5alloc7raw_vec…` → `alloc`): for v0 names the first crate root, which is
/// the crate of the item itself; None for legacy `<T as Trait>` impls and anonymous data.
fn symbol_crate(section: &str) -> Option<String> {
    if let Some(i) = section.find("_ZN") {
        let ident = length_prefixed(&section[i + 3..])?;
        return (!ident.starts_with("_$")).then(|| ident.to_string());
    }
    let sym = &section[section.find("._R")? + 3..];
    for (i, c) in sym.bytes().enumerate() {
        if c != b'C' {
            continue;
        }
        // Crate root: `C`, an optional disambiguator `s<base62>_`, then a length-prefixed name.
        let mut rest = &sym[i + 1..];
        if let Some(r) = rest.strip_prefix('s') {
            let Some(end) = r.find('_') else { continue };
            if !r[..end].bytes().all(|c| c.is_ascii_alphanumeric()) {
                continue;
            }
            rest = &r[end + 1..];
        }
        if let Some(ident) = length_prefixed(rest) {
            return Some(ident.to_string());
        }
    }
    None
}

/// `5alloc…` → `alloc`.
fn length_prefixed(s: &str) -> Option<&str> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: usize = s[..digits].parse().ok()?;
    s.get(digits..digits + n).filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_summed_by_origin() {
        let map = "Discarded input sections\n .text._ZN4core3fmt5write17h 0x0 0x999 /x/lto.rcgu.o\n\
                   Linker script and memory map\n\
                   .text           0x0000000000001000     0x5000\n \
                   .text._ZN6rustls6client4conn17h\n                0x0000000000001000      0x100 /t/deps/b-1.rcgu.o\n \
                   .text._ZN4core3fmt5write17h 0x0000000000001100 0x20 /t/deps/b-1.rcgu.o\n \
                   .text._RNvNtCs6CUNnHTagmC_5bytes5bytes17shallow_clone_vec 0x0000000000001120 0x10 /t/b.rcgu.o\n \
                   .text.unlikely._RNvMs4_NtCs7ZE7quEdNeU_5alloc7raw_vecNtB5_11RawVecInner11finish_growB7_\n \
                   0x0000000000001130 0x4 /t/b.rcgu.o\n\
                   .rela.dyn       0x0000000000000288     0x98\n \
                   .rela.text     0x0000000000000288       0x98 /usr/lib/x86_64-linux-musl/rcrt1.o\n\
                   .text2          0x0000000000001000     0x5000\n \
                   .text          0x0000000000001200       0x40 /usr/lib/x86_64-linux-musl/libc.a(memcpy.o)\n \
                   *fill*         0x0000000000001240        0x3 \n \
                   .text._ZN50_$LT$T$u20$as$u20$x$GT$3fmt17h\n                0x0000000000001250        0x8 /t/b.rcgu.o\n\
                   .bss            0x0000000000009000     0x100\n \
                   .bss           0x0000000000009000      0x100 /usr/lib/x86_64-linux-musl/libc.a(x.o)\n";
        let parts = parts_of(map);
        let get = |k: &str| parts.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("rustls + webpki"), Some(0x100));
        assert_eq!(get("Rust std"), Some(0x24), "the discarded section is not counted");
        assert_eq!(get("ureq + http"), Some(0x10));
        assert_eq!(get("relocations (static-pie)"), Some(0x98));
        assert_eq!(get("musl libc"), Some(0x40), ".bss takes no file bytes");
        assert_eq!(get("alignment padding"), Some(3));
        assert_eq!(get("Rust, unattributed (trait impls, anonymous constants)"), Some(8));
    }
}
