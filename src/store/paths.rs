//! Repository paths as the store keeps them. git paths are bytes; the store keeps text. A path
//! that is UTF-8 without a backslash is kept as it is (nearly every path); in any other path a
//! backslash is written `\\` and each byte that is not part of UTF-8 text `\xNN`. The mapping
//! is one-to-one, so `x\xff.py` and `x\xfe.py` stay two files, and [`to_git`] gives back the
//! exact bytes to look the path up in git. The escaped form is also how the path is shown and
//! how a query names it.

use std::borrow::Cow;
use std::fmt::Write;

/// The stored text of a git path.
pub fn from_git(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.contains('\\') => Cow::Borrowed(s),
        _ => Cow::Owned(escape(bytes)),
    }
}

fn escape(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    while !bytes.is_empty() {
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, &bytes[bytes.len()..]),
            Err(e) => {
                let (ok, rest) = bytes.split_at(e.valid_up_to());
                let text = std::str::from_utf8(ok).unwrap_or_default();
                (text, rest)
            }
        };
        out.push_str(&valid.replace('\\', "\\\\"));
        if let Some((&bad, after)) = rest.split_first() {
            let _ = write!(out, "\\x{bad:02x}");
            bytes = after;
        } else {
            bytes = rest;
        }
    }
    out
}

/// The git bytes of a stored path (the inverse of [`from_git`]).
pub fn to_git(stored: &str) -> Cow<'_, [u8]> {
    if !stored.contains('\\') {
        return Cow::Borrowed(stored.as_bytes());
    }
    let mut out = Vec::with_capacity(stored.len());
    let mut chars = stored.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.peek() {
            Some((_, '\\')) => {
                chars.next();
                out.push(b'\\');
            }
            Some((_, 'x')) => {
                let hex = stored
                    .get(i + 2..i + 4)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        chars.next();
                        chars.next();
                        chars.next();
                    }
                    None => out.push(b'\\'),
                }
            }
            // Not written by `from_git`; kept literally.
            _ => out.push(b'\\'),
        }
    }
    Cow::Owned(out)
}

/// A stored path as a file-system path, for git's tree lookups.
#[cfg(unix)]
pub fn to_git_path(stored: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(&to_git(stored)).into()
}

/// A stored path as a file-system path, for git's tree lookups.
#[cfg(not(unix))]
pub fn to_git_path(stored: &str) -> std::path::PathBuf {
    String::from_utf8_lossy(&to_git(stored)).into_owned().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_kept_and_odd_ones_round_trip() {
        assert!(matches!(
            from_git(b"src/lib.rs"),
            Cow::Borrowed("src/lib.rs")
        ));
        for bytes in [
            &b"x\xff.py"[..],
            b"x\xfe.py",
            b"a\\b",
            b"a\\xff",
            b"caf\xc3\xa9/\xe9t\xe9",
            b"\\",
            b"\xff\xfe\\x",
            b"trailing\xc3",
        ] {
            let stored = from_git(bytes);
            assert_eq!(&*to_git(&stored), bytes, "{stored}");
        }
        assert_eq!(from_git(b"x\xff.py"), "x\\xff.py");
        assert_ne!(from_git(b"x\xff.py"), from_git(b"x\xfe.py"));
        // A real backslash followed by `xff` is not the byte 0xff.
        assert_ne!(from_git(b"a\\xff"), from_git(b"a\xff"));
        // Only two hex digits make a byte: `\x+f` is not 0x0f.
        assert_eq!(&*to_git("a\\x+f"), b"a\\x+f");
    }

    #[test]
    fn every_short_byte_string_round_trips() {
        for a in 0..=255u8 {
            for b in [0u8, b'\\', b'x', b'f', 0x80, 0xc3, 0xa9, 0xff] {
                let bytes = [a, b, b'f'];
                assert_eq!(&*to_git(&from_git(&bytes)), &bytes);
            }
        }
    }
}
