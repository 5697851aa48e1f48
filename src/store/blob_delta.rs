//! File versions stored as changes against an earlier version of the same file.
//!
//! A commit usually changes a few definitions of a file; the others keep their names,
//! signatures and docs and move by the same number of lines and bytes. So a version whose
//! previous version is stored is kept as a [`BlobDelta`]: runs of the base version's symbols
//! copied with one line shift and one byte shift, and the symbols that changed written out.
//! A chain of deltas is at most [`MAX_DEPTH`] long; the next version is stored whole again,
//! so reading any version decodes at most that many deltas and one whole record.
//!
//! In the `blobs` table a value is either a whole [`StoredBlob`] as the codec writes it
//! (first byte 1 or 2), or [`DELTA_MARKER`] followed by a codec record of a [`BlobDelta`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::records::{BlobStatus, StoredBlob, StoredSymbol};
use super::{StoreError, StrId};

/// The first byte of a delta value (codec records start with 1 or 2).
pub const DELTA_MARKER: u8 = 0x44;

/// The longest chain of deltas before a version is stored whole again.
pub const MAX_DEPTH: usize = 16;

/// A file version as changes against `base`, an earlier blob (a smaller local id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobDelta {
    pub base: u64,
    pub sha: Vec<u8>,
    pub lang: Option<StrId>,
    pub status: BlobStatus,
    pub runs: Vec<SymbolRun>,
    /// `None`: the base's imports.
    pub imports: Option<Vec<StrId>>,
}

/// A piece of the new symbol list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SymbolRun {
    /// The base's symbols `from..from + count`, moved by `lines` lines and `bytes` bytes.
    /// A copied symbol's parent is where the base's parent was copied to.
    Copy {
        from: u32,
        count: u32,
        lines: i32,
        bytes: i32,
    },
    /// A symbol as it is.
    New(StoredSymbol),
    /// Base symbol `from` with changed positions (each field the base's plus its change),
    /// and with a new signature, doc or parent where given. Its children can still be copied.
    Changed {
        from: u32,
        start_line: i32,
        end_line: i32,
        leading_line: i32,
        start_byte: i32,
        end_byte: i32,
        signature: Option<StrId>,
        doc: Option<Option<StrId>>,
        parent: Option<u32>,
    },
}

fn moved(v: u32, by: i32) -> Option<u32> {
    u32::try_from(i64::from(v) + i64::from(by)).ok()
}

/// How far a symbol's positions move: (start line, end line, leading line) and (start byte,
/// end byte).
type Moves = ([i32; 3], [i32; 2]);

/// `base` with its positions moved, and the signature, doc and parent given. `None` when a
/// position would leave `u32`.
fn moved_symbol(
    base: &StoredSymbol,
    ([start_line, end_line, leading_line], [start_byte, end_byte]): Moves,
    signature: StrId,
    doc: Option<StrId>,
    parent: Option<u32>,
) -> Option<StoredSymbol> {
    Some(StoredSymbol {
        kind: base.kind,
        name: base.name,
        qualified_name: base.qualified_name,
        start_byte: moved(base.start_byte, start_byte)?,
        end_byte: moved(base.end_byte, end_byte)?,
        start_line: moved(base.start_line, start_line)?,
        end_line: moved(base.end_line, end_line)?,
        signature,
        doc,
        leading_line: moved(base.leading_line, leading_line)?,
        parent,
    })
}

/// `base` moved by `lines` and `bytes`, its parent looked up in `placed` (where each base
/// symbol went in the new list). `None` when a position would leave `u32` or the parent
/// was not carried over.
fn carried(
    base: &StoredSymbol,
    lines: i32,
    bytes: i32,
    placed: &[Option<u32>],
) -> Option<StoredSymbol> {
    let parent = match base.parent {
        None => None,
        Some(p) => Some((*placed.get(p as usize)?)?),
    };
    let moves = ([lines; 3], [bytes; 2]);
    moved_symbol(base, moves, base.signature, base.doc, parent)
}

fn change(from: u32, to: u32) -> Option<i32> {
    i32::try_from(i64::from(to) - i64::from(from)).ok()
}

/// `s` as a change of base symbol `from`, `b`, where its kind and names are the same.
fn changed(from: u32, b: &StoredSymbol, s: &StoredSymbol) -> Option<SymbolRun> {
    if (b.kind, b.name, b.qualified_name) != (s.kind, s.name, s.qualified_name) {
        return None;
    }
    Some(SymbolRun::Changed {
        from,
        start_line: change(b.start_line, s.start_line)?,
        end_line: change(b.end_line, s.end_line)?,
        leading_line: change(b.leading_line, s.leading_line)?,
        start_byte: change(b.start_byte, s.start_byte)?,
        end_byte: change(b.end_byte, s.end_byte)?,
        signature: (s.signature != b.signature).then_some(s.signature),
        doc: (s.doc != b.doc).then_some(s.doc),
        parent: s.parent,
    })
}

/// `new` as changes against `base` (stored under local id `base_id`).
pub fn diff(base_id: u64, base: &StoredBlob, new: &StoredBlob) -> BlobDelta {
    let mut by_name: HashMap<StrId, Vec<u32>> = HashMap::new();
    for (j, s) in base.symbols.iter().enumerate() {
        by_name.entry(s.qualified_name).or_default().push(j as u32);
    }
    let mut placed: Vec<Option<u32>> = vec![None; base.symbols.len()];
    let mut runs: Vec<SymbolRun> = Vec::new();
    for (i, s) in new.symbols.iter().enumerate() {
        let i = i as u32;
        // The next base symbol, with the same shift as the run before it.
        if let Some(SymbolRun::Copy {
            from,
            count,
            lines,
            bytes,
        }) = runs.last_mut()
        {
            let j = (*from + *count) as usize;
            if let Some(b) = base.symbols.get(j) {
                if carried(b, *lines, *bytes, &placed).as_ref() == Some(s) {
                    *count += 1;
                    placed[j] = Some(i);
                    continue;
                }
            }
        }
        let mut found = None;
        for &j in by_name
            .get(&s.qualified_name)
            .map_or(&[][..], |v| v.as_slice())
        {
            let b = &base.symbols[j as usize];
            let lines = i64::from(s.start_line) - i64::from(b.start_line);
            let bytes = i64::from(s.start_byte) - i64::from(b.start_byte);
            let (Ok(lines), Ok(bytes)) = (i32::try_from(lines), i32::try_from(bytes)) else {
                continue;
            };
            if carried(b, lines, bytes, &placed).as_ref() == Some(s) {
                found = Some((j, lines, bytes));
                break;
            }
        }
        if let Some((j, lines, bytes)) = found {
            placed[j as usize] = Some(i);
            runs.push(SymbolRun::Copy {
                from: j,
                count: 1,
                lines,
                bytes,
            });
            continue;
        }
        // The same definition, changed: the first base symbol of its name not carried over.
        let same = by_name
            .get(&s.qualified_name)
            .map_or(&[][..], |v| v.as_slice())
            .iter()
            .filter(|&&j| placed[j as usize].is_none())
            .find_map(|&j| Some((j, changed(j, &base.symbols[j as usize], s)?)));
        match same {
            Some((j, run)) => {
                placed[j as usize] = Some(i);
                runs.push(run);
            }
            None => runs.push(SymbolRun::New(s.clone())),
        }
    }
    BlobDelta {
        base: base_id,
        sha: new.sha.clone(),
        lang: new.lang,
        status: new.status.clone(),
        runs,
        imports: (new.imports != base.imports).then(|| new.imports.clone()),
    }
}

/// The version `delta` describes, given its base.
pub fn apply(base: &StoredBlob, delta: BlobDelta) -> Result<StoredBlob, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "blob delta",
        detail,
    };
    let mut placed: Vec<Option<u32>> = vec![None; base.symbols.len()];
    let mut symbols = Vec::new();
    for run in delta.runs {
        match run {
            SymbolRun::Copy {
                from,
                count,
                lines,
                bytes,
            } => {
                let end = from as usize + count as usize;
                if end > base.symbols.len() {
                    return Err(corrupt(format!(
                        "copies symbols {from}..{end} of a base with {}",
                        base.symbols.len()
                    )));
                }
                for j in from as usize..end {
                    let s = carried(&base.symbols[j], lines, bytes, &placed).ok_or_else(|| {
                        corrupt(format!("cannot carry symbol {j} of its base over"))
                    })?;
                    placed[j] = Some(symbols.len() as u32);
                    symbols.push(s);
                }
            }
            SymbolRun::New(s) => symbols.push(s),
            SymbolRun::Changed {
                from,
                start_line,
                end_line,
                leading_line,
                start_byte,
                end_byte,
                signature,
                doc,
                parent,
            } => {
                let b = base.symbols.get(from as usize).ok_or_else(|| {
                    corrupt(format!(
                        "changes symbol {from} of a base with {}",
                        base.symbols.len()
                    ))
                })?;
                let moves = ([start_line, end_line, leading_line], [start_byte, end_byte]);
                let signature = signature.unwrap_or(b.signature);
                let s = moved_symbol(b, moves, signature, doc.unwrap_or(b.doc), parent)
                    .ok_or_else(|| corrupt(format!("moves symbol {from} out of range")))?;
                placed[from as usize] = Some(symbols.len() as u32);
                symbols.push(s);
            }
        }
    }
    Ok(StoredBlob {
        sha: delta.sha,
        lang: delta.lang,
        status: delta.status,
        symbols,
        imports: delta.imports.unwrap_or_else(|| base.imports.clone()),
    })
}

/// The bytes stored for `new`: a delta against `base` when one is given, its chain is short
/// enough and the delta is smaller than the whole record; the whole record otherwise. Also
/// returns the new version's chain length (0 when stored whole).
pub fn encode_version(
    new: &StoredBlob,
    base: Option<(u64, usize, &StoredBlob)>,
) -> (Vec<u8>, usize) {
    let whole = encode(new);
    let Some((base_id, base_depth, base)) = base else {
        return (whole, 0);
    };
    if base_depth >= MAX_DEPTH {
        return (whole, 0);
    }
    let delta = diff(base_id, base, new);
    let mut bytes = vec![DELTA_MARKER];
    bytes.extend_from_slice(&encode(&delta));
    // A delta that would not read back as `new` is never stored (diff and apply share
    // `carried`, so this only guards against a future change breaking that).
    if bytes.len() >= whole.len() || apply(base, delta).ok().as_ref() != Some(new) {
        return (whole, 0);
    }
    (bytes, base_depth + 1)
}

/// Read blob `id`, following its chain of deltas; `get` reads a value of the `blobs` table.
/// Returns the record and its chain length.
pub fn load(
    id: u64,
    mut get: impl FnMut(u64) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<(StoredBlob, usize), StoreError> {
    let mut deltas: Vec<BlobDelta> = Vec::new();
    let mut at = id;
    loop {
        let bytes = get(at)?.ok_or_else(|| StoreError::Corrupt {
            what: "blob",
            detail: if at == id {
                format!("no record for blob {id}")
            } else {
                format!("blob {id} is stored against blob {at}, which has no record")
            },
        })?;
        match bytes.split_first() {
            Some((&DELTA_MARKER, rest)) => {
                let delta: BlobDelta = decode("blob delta", rest)?;
                // Bases are stored first, so their ids are smaller: no cycles.
                if delta.base >= at || deltas.len() >= MAX_DEPTH {
                    return Err(StoreError::Corrupt {
                        what: "blob delta",
                        detail: format!(
                            "blob {at} is stored against blob {} at chain length {}",
                            delta.base,
                            deltas.len() + 1
                        ),
                    });
                }
                at = delta.base;
                deltas.push(delta);
            }
            _ => {
                let mut record: StoredBlob = decode("blob", &bytes)?;
                let depth = deltas.len();
                while let Some(delta) = deltas.pop() {
                    record = apply(&record, delta)?;
                }
                return Ok((record, depth));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::SymbolKind;

    fn sym(name: u32, line: u32, lines: u32, parent: Option<u32>) -> StoredSymbol {
        StoredSymbol {
            kind: SymbolKind::Function,
            name: StrId(name),
            qualified_name: StrId(name + 1000),
            start_byte: line * 40,
            end_byte: (line + lines) * 40,
            start_line: line,
            end_line: line + lines,
            signature: StrId(name + 2000),
            doc: None,
            leading_line: line,
            parent,
        }
    }

    fn blob(symbols: Vec<StoredSymbol>) -> StoredBlob {
        StoredBlob {
            sha: vec![7; 20],
            lang: Some(StrId(1)),
            status: BlobStatus::Parsed { error_bytes: 0 },
            symbols,
            imports: vec![StrId(5)],
        }
    }

    fn store(values: &HashMap<u64, Vec<u8>>, id: u64) -> Result<(StoredBlob, usize), StoreError> {
        load(id, |k| Ok(values.get(&k).cloned()))
    }

    #[test]
    fn an_edit_in_the_middle_stores_two_runs_and_one_change() {
        let mut symbols: Vec<StoredSymbol> = (0..40).map(|k| sym(k, 1 + k * 10, 8, None)).collect();
        symbols.push(sym(100, 500, 30, None));
        symbols.push(sym(101, 505, 3, Some(40)));
        let base = blob(symbols.clone());
        // Symbol 20 grows by two lines; everything after it moves down by two.
        let mut new = symbols;
        new[20].end_line += 2;
        new[20].end_byte += 80;
        for s in &mut new[21..] {
            s.start_line += 2;
            s.end_line += 2;
            s.leading_line += 2;
            s.start_byte += 80;
            s.end_byte += 80;
        }
        let new = blob(new);
        let delta = diff(1, &base, &new);
        assert_eq!(delta.runs.len(), 3, "{:?}", delta.runs);
        assert!(matches!(delta.runs[1], SymbolRun::Changed { from: 20, .. }));
        assert_eq!(apply(&base, delta).unwrap(), new);
        let (bytes, depth) = encode_version(&new, Some((1, 0, &base)));
        assert_eq!(depth, 1);
        assert_eq!(bytes[0], DELTA_MARKER);
        assert!(
            bytes.len() * 10 < encode(&new).len(),
            "{} bytes",
            bytes.len()
        );
    }

    #[test]
    fn parents_follow_where_their_symbol_went() {
        // A class moves below a new function; its method's parent index changes with it.
        let base = blob(vec![sym(1, 1, 20, None), sym(2, 3, 4, Some(0))]);
        let mut class = sym(1, 11, 20, None);
        class.start_byte = base.symbols[0].start_byte + 400;
        class.end_byte = base.symbols[0].end_byte + 400;
        let mut method = sym(2, 13, 4, Some(1));
        method.start_byte = base.symbols[1].start_byte + 400;
        method.end_byte = base.symbols[1].end_byte + 400;
        let new = blob(vec![sym(3, 1, 5, None), class, method]);
        let delta = diff(1, &base, &new);
        assert!(matches!(delta.runs[0], SymbolRun::New(_)));
        assert!(matches!(delta.runs[1], SymbolRun::Copy { count: 2, .. }));
        assert_eq!(apply(&base, delta).unwrap(), new);
    }

    #[test]
    fn members_of_a_changed_container_are_still_copied() {
        // An impl block with three methods; the second method grows by two lines, so the
        // block ends two lines later and the third method moves down.
        let base = blob(vec![
            sym(1, 1, 40, None),
            sym(2, 2, 10, Some(0)),
            sym(3, 13, 10, Some(0)),
            sym(4, 24, 10, Some(0)),
        ]);
        let mut new = base.clone();
        new.symbols[0].end_line += 2;
        new.symbols[0].end_byte += 80;
        new.symbols[2].end_line += 2;
        new.symbols[2].end_byte += 80;
        new.symbols[2].signature = StrId(4242);
        new.symbols[3].start_line += 2;
        new.symbols[3].end_line += 2;
        new.symbols[3].leading_line += 2;
        new.symbols[3].start_byte += 80;
        new.symbols[3].end_byte += 80;
        let delta = diff(1, &base, &new);
        assert!(
            matches!(
                delta.runs[..],
                [
                    SymbolRun::Changed { from: 0, .. },
                    SymbolRun::Copy {
                        from: 1,
                        count: 1,
                        lines: 0,
                        bytes: 0
                    },
                    SymbolRun::Changed {
                        from: 2,
                        signature: Some(StrId(4242)),
                        ..
                    },
                    SymbolRun::Copy {
                        from: 3,
                        count: 1,
                        lines: 2,
                        bytes: 80
                    },
                ]
            ),
            "{:?}",
            delta.runs
        );
        assert_eq!(apply(&base, delta).unwrap(), new);
    }

    #[test]
    fn chains_read_back_and_stop_at_the_longest_length() {
        let mut values = HashMap::new();
        let mut previous: Option<(u64, usize, StoredBlob)> = None;
        let mut versions = Vec::new();
        for v in 0..40u32 {
            let mut symbols: Vec<StoredSymbol> =
                (0..30).map(|k| sym(k, 1 + k * 10 + v, 8, None)).collect();
            symbols[(v % 30) as usize].signature = StrId(9000 + v);
            let mut record = blob(symbols);
            record.sha = vec![v as u8; 20];
            if v % 7 == 3 {
                record.imports.push(StrId(v));
            }
            let id = u64::from(v) + 1;
            let base = previous.as_ref().map(|(i, d, b)| (*i, *d, b));
            let (bytes, depth) = encode_version(&record, base);
            assert!(depth <= MAX_DEPTH);
            assert_eq!(depth == 0, v == 0 || v == 17 || v == 34, "version {v}");
            values.insert(id, bytes);
            previous = Some((id, depth, record.clone()));
            versions.push(record);
        }
        for (k, record) in versions.iter().enumerate() {
            let (read, depth) = store(&values, k as u64 + 1).unwrap();
            assert_eq!(&read, record, "version {k}");
            assert!(depth <= MAX_DEPTH);
        }
    }

    #[test]
    fn a_file_stores_each_version_against_the_previous_one() {
        use crate::store::records::{BlobRecord, SymbolRecord};
        use crate::store::{NodeId, Store};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&dir.path().join("k.lore")).unwrap();
        let version = |v: u32| BlobRecord {
            sha: vec![v as u8; 20],
            lang: Some("rust".into()),
            status: BlobStatus::Parsed { error_bytes: 0 },
            symbols: (0..20)
                .map(|k| SymbolRecord {
                    kind: SymbolKind::Function,
                    name: format!("f{k}"),
                    qualified_name: format!("m::f{k}"),
                    start_byte: (k + v) * 50,
                    end_byte: (k + v) * 50 + 40,
                    start_line: k * 3 + v + 1,
                    end_line: k * 3 + v + 2,
                    signature: format!("fn f{k}(x: u{})", if k == v { 64 } else { 32 }),
                    doc: (k % 3 == 0).then(|| format!("Does {k}.")),
                    leading_line: k * 3 + v + 1,
                    parent: None,
                })
                .collect(),
            imports: vec!["std::fmt".into()],
        };
        let ids: Vec<NodeId> = store
            .write(|tx| -> Result<Vec<NodeId>, StoreError> {
                let mut ids: Vec<NodeId> = Vec::new();
                for v in 0..20 {
                    let id = tx.insert_blob(&version(v), ids.last().copied())?;
                    ids.push(id);
                }
                // A version already stored keeps its id.
                assert_eq!(tx.insert_blob(&version(3), None)?, ids[3]);
                Ok(ids)
            })
            .unwrap();
        let read = store.read().unwrap();
        for (v, id) in ids.iter().enumerate() {
            assert_eq!(read.blob(*id).unwrap(), version(v as u32), "version {v}");
            let expected = if v == 17 { 0 } else { v % 17 };
            assert_eq!(
                read.blob_chain_length(*id).unwrap(),
                expected,
                "version {v}"
            );
        }
    }

    #[test]
    fn a_damaged_chain_is_an_error_not_a_panic() {
        let base = blob((0..10).map(|k| sym(k, 1 + k * 10, 8, None)).collect());
        let mut new = base.clone();
        new.symbols[4].signature = StrId(77);
        let (bytes, depth) = encode_version(&new, Some((1, 0, &base)));
        assert_eq!(depth, 1);
        let mut values = HashMap::new();
        values.insert(2, bytes.clone());
        // The base is missing.
        let e = store(&values, 2).unwrap_err().to_string();
        assert!(e.contains("blob 2 is stored against blob 1"), "{e}");
        // The base has fewer symbols than the delta copies.
        values.insert(1, encode(&blob(vec![sym(0, 1, 8, None)])));
        assert!(store(&values, 2).is_err());
        // A delta pointing at itself.
        let mut own: BlobDelta = decode("blob delta", &bytes[1..]).unwrap();
        own.base = 2;
        let mut looped = vec![DELTA_MARKER];
        looped.extend_from_slice(&encode(&own));
        values.insert(2, looped);
        assert!(store(&values, 2).is_err());
    }
}
