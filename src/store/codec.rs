//! Record encoding. Every value the store writes goes through here: one version byte, then the
//! record in postcard. Changing the encoding means a new version byte, never a silent change.
//!
//! A record whose postcard body is [`COMPRESS_FROM`] bytes or more is stored LZ4-compressed
//! (version byte [`COMPRESSED_RECORD`]) when that saves at least a ninth: symbol lists of file
//! versions, line origins, long commit messages. Both forms read.

use serde::{de::DeserializeOwned, Serialize};

use super::StoreError;

/// The record encoding version written as the first byte of every uncompressed record.
pub const RECORD_VERSION: u8 = 1;
/// The first byte of a compressed record: then the body's length (u32 LE) and the body in
/// LZ4's block format.
pub const COMPRESSED_RECORD: u8 = 2;
/// Bodies shorter than this are stored as they are.
pub const COMPRESS_FROM: usize = 256;
/// The largest body a compressed record may claim (a damaged length is an error, not an
/// allocation).
const MAX_BODY: usize = 1 << 30;

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serialising our own plain structs into a Vec cannot fail.
    let body = postcard::to_stdvec(record).expect("record serialisation is infallible");
    if body.len() >= COMPRESS_FROM {
        let packed = lz4_flex::block::compress_prepend_size(&body);
        if packed.len() + packed.len() / 8 < body.len() {
            let mut out = Vec::with_capacity(1 + packed.len());
            out.push(COMPRESSED_RECORD);
            out.extend_from_slice(&packed);
            return out;
        }
    }
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&body);
    out
}

pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| StoreError::Corrupt {
                what,
                detail: e.to_string(),
            })
        }
        Some((&COMPRESSED_RECORD, packed)) => {
            let corrupt = |detail: String| StoreError::Corrupt { what, detail };
            let claimed = packed
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| corrupt("a compressed record without its length".into()))?;
            if claimed > MAX_BODY {
                return Err(corrupt(format!(
                    "a compressed record claims {claimed} bytes"
                )));
            }
            let body = lz4_flex::block::decompress_size_prepended(packed)
                .map_err(|e| corrupt(format!("a compressed record does not decompress: {e}")))?;
            postcard::from_bytes(&body).map_err(|e| corrupt(e.to_string()))
        }
        Some((v, _)) => Err(StoreError::Corrupt {
            what,
            detail: format!("unknown record version {v}"),
        }),
        None => Err(StoreError::Corrupt {
            what,
            detail: "empty record".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::{ChangeKind, EdgeDetail, EdgeMeta, Provenance, TouchStats};

    #[test]
    fn edge_meta_round_trips() {
        let meta = EdgeMeta {
            provenance: Provenance::GitDiff,
            confidence: 1.0,
            evidence: Some("a -> b".into()),
            detail: EdgeDetail::Touch(TouchStats {
                change: ChangeKind::Renamed,
                added: Some(3),
                removed: None,
                binary: false,
                old_path: Some(crate::store::StrId(7)),
                old_blob: None,
                new_blob: Some(vec![1; 20]),
            }),
        };
        let bytes = encode(&meta);
        assert_eq!(bytes[0], RECORD_VERSION);
        let back: EdgeMeta = decode("edge", &bytes).unwrap();
        assert_eq!(back, meta);
    }

    #[test]
    fn long_records_are_compressed_and_read_back() {
        let long: Vec<String> = (0..200)
            .map(|i| format!("crate::module::symbol_{i}"))
            .collect();
        let bytes = encode(&long);
        assert_eq!(bytes[0], COMPRESSED_RECORD);
        let plain = postcard::to_stdvec(&long).unwrap().len();
        assert!(bytes.len() * 2 < plain, "{} of {plain} bytes", bytes.len());
        assert_eq!(decode::<Vec<String>>("test", &bytes).unwrap(), long);
        // Short, or not worth it: stored as it is.
        assert_eq!(encode(&"short".to_string())[0], RECORD_VERSION);
        let noise: Vec<u8> = (0..600u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        assert_eq!(encode(&noise)[0], RECORD_VERSION);
        assert_eq!(decode::<Vec<u8>>("test", &encode(&noise)).unwrap(), noise);
        // Damage is an error naming the record, never a panic or a huge allocation.
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        assert!(decode::<Vec<String>>("test", &cut).is_err());
        let mut huge = bytes.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decode::<Vec<String>>("test", &huge)
            .unwrap_err()
            .to_string();
        assert!(err.contains("claims"), "{err}");
        assert!(decode::<Vec<String>>("test", &[COMPRESSED_RECORD, 1]).is_err());
    }

    #[test]
    fn unknown_version_is_an_error_not_garbage() {
        let mut bytes = encode(&1u32);
        bytes[0] = 99;
        let err = decode::<u32>("test", &bytes).unwrap_err();
        assert!(
            err.to_string().contains("unknown record version 99"),
            "{err}"
        );
        assert!(decode::<u32>("test", &[]).is_err());
    }
}
