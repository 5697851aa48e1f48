//! Record encoding. Every value the store writes goes through here: one version byte, then the
//! record in postcard. Changing the encoding means a new version byte, never a silent change.

use serde::{de::DeserializeOwned, Serialize};

use super::StoreError;

/// The record encoding version written as the first byte of every record.
pub const RECORD_VERSION: u8 = 1;

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    // Serialising our own plain structs into a Vec cannot fail.
    let body = postcard::to_stdvec(record).expect("record serialisation is infallible");
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
