//! One test suite for tantivy directories, run against tantivy's RAM directory and lore's
//! redb-backed one, so the redb directory behaves as tantivy expects. Then what only the redb
//! directory promises: the index survives closing and reopening the file.

use std::path::Path;

use lore::index::text::RedbDirectory;
use lore::store::Db;
use tantivy::collector::TopDocs;
use tantivy::directory::error::{DeleteError, LockError, OpenReadError, OpenWriteError};
use tantivy::directory::{Directory, Lock, RamDirectory, TerminatingWrite};
use tantivy::query::QueryParser;
use tantivy::schema::{Schema, STORED, TEXT};
use tantivy::HasLen;
use tantivy::{doc, Index, TantivyDocument};

fn redb_directory(path: &Path) -> RedbDirectory {
    let db = redb::Database::create(path).unwrap();
    RedbDirectory::open(Db::from_database(db, path)).unwrap()
}

fn write_file(dir: &dyn Directory, path: &str, data: &[u8]) {
    use std::io::Write;
    let mut w = dir.open_write(Path::new(path)).unwrap();
    w.write_all(data).unwrap();
    w.terminate().unwrap();
}

/// The contract tantivy relies on.
fn directory_contract(dir: &dyn Directory) {
    let p = Path::new("seg.idx");
    assert!(!dir.exists(p).unwrap());
    assert!(matches!(
        dir.open_read(p),
        Err(OpenReadError::FileDoesNotExist(_))
    ));
    write_file(dir, "seg.idx", b"hello segment");
    assert!(dir.exists(p).unwrap());
    let slice = dir.open_read(p).unwrap();
    assert_eq!(slice.read_bytes().unwrap().as_slice(), b"hello segment");
    assert_eq!(
        slice.slice(6..13).read_bytes().unwrap().as_slice(),
        b"segment"
    );
    // Write once: a second writer for the same path is refused.
    assert!(matches!(
        dir.open_write(p),
        Err(OpenWriteError::FileAlreadyExists(_))
    ));
    // Deleting does not disturb a slice already open.
    dir.delete(p).unwrap();
    assert!(!dir.exists(p).unwrap());
    assert_eq!(slice.read_bytes().unwrap().as_slice(), b"hello segment");
    assert!(matches!(
        dir.delete(p),
        Err(DeleteError::FileDoesNotExist(_))
    ));
    // Atomic files replace their content whole.
    let meta = Path::new("meta.json");
    assert!(matches!(
        dir.atomic_read(meta),
        Err(OpenReadError::FileDoesNotExist(_))
    ));
    dir.atomic_write(meta, b"{\"v\":1}").unwrap();
    dir.atomic_write(meta, b"{\"v\":2}").unwrap();
    assert_eq!(dir.atomic_read(meta).unwrap(), b"{\"v\":2}");
    // Locks are exclusive until dropped.
    let lock = Lock {
        filepath: "writer.lock".into(),
        is_blocking: false,
    };
    let held = dir.acquire_lock(&lock).unwrap();
    assert!(matches!(dir.acquire_lock(&lock), Err(LockError::LockBusy)));
    drop(held);
    drop(dir.acquire_lock(&lock).unwrap());
    // An empty file is a file.
    write_file(dir, "empty", b"");
    assert_eq!(dir.open_read(Path::new("empty")).unwrap().len(), 0);
}

/// A whole index: write, commit, search, add more, search again, reopen, merge and collect
/// garbage.
fn index_round_trip(dir: Box<dyn Directory>) {
    let mut builder = Schema::builder();
    let title = builder.add_text_field("title", TEXT | STORED);
    let schema = builder.build();
    let index = Index::open_or_create(dir.box_clone(), schema.clone()).unwrap();
    let search = |index: &Index, text: &str| -> Vec<String> {
        let reader = index.reader().unwrap();
        let searcher = reader.searcher();
        let q = QueryParser::for_index(index, vec![title])
            .parse_query(text)
            .unwrap();
        let mut hits: Vec<String> = searcher
            .search(&q, &TopDocs::with_limit(10).order_by_score())
            .unwrap()
            .into_iter()
            .map(|(_, addr)| {
                let d: TantivyDocument = searcher.doc(addr).unwrap();
                d.get_first(title)
                    .and_then(|v| tantivy::schema::Value::as_str(&v))
                    .unwrap()
                    .to_string()
            })
            .collect();
        hits.sort();
        hits
    };
    {
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        writer
            .add_document(doc!(title => "double free in free_blocks"))
            .unwrap();
        writer
            .add_document(doc!(title => "cuda out of memory"))
            .unwrap();
        writer.commit().unwrap();
        assert_eq!(search(&index, "free"), ["double free in free_blocks"]);
        // Incremental: the next commit is visible to the next search.
        writer
            .add_document(doc!(title => "free the kv cache"))
            .unwrap();
        writer.commit().unwrap();
        assert_eq!(
            search(&index, "free"),
            ["double free in free_blocks", "free the kv cache"]
        );
        // Merge everything into one segment, then let tantivy delete the merged files.
        let ids = index.searchable_segment_ids().unwrap();
        writer.merge(&ids).wait().unwrap();
        writer.garbage_collect_files().wait().unwrap();
        writer.wait_merging_threads().unwrap();
    }
    let reopened = Index::open(dir).unwrap();
    assert_eq!(reopened.searchable_segment_ids().unwrap().len(), 1);
    assert_eq!(
        search(&reopened, "free"),
        ["double free in free_blocks", "free the kv cache"]
    );
    assert_eq!(search(&reopened, "memory"), ["cuda out of memory"]);
}

#[test]
fn ram_directory_passes_the_suite() {
    directory_contract(&RamDirectory::create());
    index_round_trip(Box::new(RamDirectory::create()));
}

#[test]
fn redb_directory_passes_the_suite() {
    let tmp = tempfile::tempdir().unwrap();
    directory_contract(&redb_directory(&tmp.path().join("a.redb")));
    index_round_trip(Box::new(redb_directory(&tmp.path().join("b.redb"))));
}

#[test]
fn redb_directory_survives_closing_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("kb.redb");
    {
        let dir = redb_directory(&path);
        let mut builder = Schema::builder();
        let title = builder.add_text_field("title", TEXT);
        let index = Index::create(dir, builder.build(), Default::default()).unwrap();
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        writer
            .add_document(doc!(title => "scheduler preemption"))
            .unwrap();
        writer.commit().unwrap();
        // A second commit left uncommitted: it must not be seen after reopening.
        writer
            .add_document(doc!(title => "never committed"))
            .unwrap();
    }
    // Tantivy's background threads let go of the directory shortly after the writer is dropped.
    let mut tries = 0;
    let db = loop {
        match redb::Database::open(&path) {
            Ok(db) => break db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if tries < 500 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("reopening: {e}"),
        }
    };
    let dir = RedbDirectory::open(Db::from_database(db, &path)).unwrap();
    let index = Index::open(dir).unwrap();
    let searcher = index.reader().unwrap().searcher();
    assert_eq!(searcher.num_docs(), 1);
}
