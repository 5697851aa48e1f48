//! Large values kept in parts. redb gives a value a power-of-two run of pages, so one 6 MiB
//! value takes 8 MiB of the file; stored as parts of at most [`PART_BYTES`] (each in its own
//! 256 KiB run), the same value takes 6 MiB. A table of parts is keyed by `(name, part)`;
//! a value has at least one part, so an empty value is one empty part.

use redb::{ReadableTable, StorageError, Table, TableDefinition};

/// The largest part: a 256 KiB run of pages, less room for the key and the page header.
pub const PART_BYTES: usize = (256 << 10) - 512;

/// A table of values in parts: `(name, part number) -> bytes`.
pub type PartsTable = TableDefinition<'static, (&'static str, u32), &'static [u8]>;

/// A table of values in parts, opened for reading.
pub type ReadOnlyParts = redb::ReadOnlyTable<(&'static str, u32), &'static [u8]>;

/// The value `name`, its parts joined; `None` when it has no parts.
pub fn read(
    table: &impl ReadableTable<(&'static str, u32), &'static [u8]>,
    name: &str,
) -> Result<Option<Vec<u8>>, StorageError> {
    let mut out: Option<Vec<u8>> = None;
    for row in table.range((name, 0u32)..=(name, u32::MAX))? {
        let (_, part) = row?;
        out.get_or_insert_with(Vec::new)
            .extend_from_slice(part.value());
    }
    Ok(out)
}

/// Whether `name` has a value.
pub fn contains(
    table: &impl ReadableTable<(&'static str, u32), &'static [u8]>,
    name: &str,
) -> Result<bool, StorageError> {
    Ok(table
        .range((name, 0u32)..=(name, u32::MAX))?
        .next()
        .is_some())
}

/// Replace the value `name` by `bytes`.
pub fn write(
    table: &mut Table<'_, (&'static str, u32), &'static [u8]>,
    name: &str,
    bytes: &[u8],
) -> Result<(), StorageError> {
    remove(table, name)?;
    if bytes.is_empty() {
        table.insert((name, 0u32), &[][..])?;
    }
    for (i, part) in bytes.chunks(PART_BYTES).enumerate() {
        table.insert((name, i as u32), part)?;
    }
    Ok(())
}

/// Remove the value `name`; whether it had one.
pub fn remove(
    table: &mut Table<'_, (&'static str, u32), &'static [u8]>,
    name: &str,
) -> Result<bool, StorageError> {
    let mut had = false;
    table.retain_in((name, 0u32)..=(name, u32::MAX), |_, _| {
        had = true;
        false
    })?;
    Ok(had)
}

/// Every value's name and total length, in name order.
pub fn sizes(
    table: &impl ReadableTable<(&'static str, u32), &'static [u8]>,
) -> Result<Vec<(String, u64)>, StorageError> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for row in table.iter()? {
        let (key, part) = row?;
        let (name, _) = key.value();
        let len = part.value().len() as u64;
        match out.last_mut() {
            Some((last, total)) if last == name => *total += len,
            _ => out.push((name.to_string(), len)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, ReadableTableMetadata};

    const T: PartsTable = TableDefinition::new("t");

    #[test]
    fn values_split_and_join_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("p.redb")).unwrap();
        let big: Vec<u8> = (0..PART_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            write(&mut t, "a", &big).unwrap();
            write(&mut t, "b", b"").unwrap();
            write(&mut t, "c", b"short").unwrap();
            assert_eq!(t.len().unwrap(), 5);
            write(&mut t, "a", b"now small").unwrap();
            assert!(remove(&mut t, "c").unwrap());
            assert!(!remove(&mut t, "c").unwrap());
        }
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        assert_eq!(read(&t, "a").unwrap().as_deref(), Some(&b"now small"[..]));
        assert_eq!(read(&t, "b").unwrap().as_deref(), Some(&b""[..]));
        assert!(contains(&t, "b").unwrap());
        assert_eq!(read(&t, "c").unwrap(), None);
        assert_eq!(
            sizes(&t).unwrap(),
            vec![("a".to_string(), 9), ("b".to_string(), 0)]
        );
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            write(&mut t, "a", &big).unwrap();
        }
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        assert_eq!(read(&t, "a").unwrap(), Some(big));
    }
}
