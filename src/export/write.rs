//! Writing an export: JSONL per split, `swebench.jsonl`, token shards and `manifest.json`, all
//! into a temporary directory beside `--out` that replaces it only when everything is written.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::chat::texts_for;
use super::shards::{self, TokenizerDir};
use super::{Example, ExportError, ExportOptions, Manifest, TokenCounts, TokenizerInfo};
use crate::progress::Progress;

fn io(path: &Path) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |e| ExportError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Refuse an existing non-empty output directory unless `force`.
pub fn check_out_dir(out: &Path, force: bool) -> Result<(), ExportError> {
    if force {
        return Ok(());
    }
    match std::fs::read_dir(out) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(ExportError::OutputExists {
                path: out.to_path_buf(),
            }),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(out)(e)),
    }
}

/// A position in a seeded shuffle: the same id and seed always rank the same.
pub fn seeded_rank(id: &str, seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 31;
    h.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

fn write_jsonl<T: serde::Serialize>(path: &Path, items: &[&T]) -> Result<(), ExportError> {
    let file = std::fs::File::create(path).map_err(io(path))?;
    let mut w = std::io::BufWriter::new(file);
    for item in items {
        serde_json::to_writer(&mut w, item).map_err(|e| io(path)(e.into()))?;
        w.write_all(b"\n").map_err(io(path))?;
    }
    w.flush().map_err(io(path))
}

/// Write everything into a temporary directory, then put it in place of `options.out`.
pub fn write_all(
    examples: &[Example],
    manifest: &mut Manifest,
    options: &ExportOptions,
    progress: &dyn Progress,
) -> Result<(), ExportError> {
    let out = &options.out;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".lore-export-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let dir = tmp.path();
    for split in ["train", "val"] {
        let items: Vec<&Example> = examples.iter().filter(|e| e.split == split).collect();
        write_jsonl(&dir.join(format!("{split}.jsonl")), &items)?;
    }
    if options.swebench {
        let records: Vec<&serde_json::Value> = examples
            .iter()
            .filter_map(|e| e.swebench.as_ref())
            .collect();
        write_jsonl(&dir.join("swebench.jsonl"), &records)?;
    }
    if let Some(tok_dir) = &options.tokenizer {
        let tok = TokenizerDir::load(tok_dir)?;
        manifest.tokenizer = Some(TokenizerInfo {
            path: tok_dir.display().to_string(),
            sha256: tok.hash.clone(),
            chat_template: tok.chat_template.is_some(),
        });
        manifest.tokens = Some(write_shards(
            &tok,
            examples,
            options.seq_len,
            dir,
            progress,
        )?);
    }
    let manifest_path = dir.join("manifest.json");
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| io(&manifest_path)(e.into()))?;
    std::fs::write(&manifest_path, text + "\n").map_err(io(&manifest_path))?;
    // Everything is written: put it in place of the output directory. The old one is moved
    // aside first and removed only once the new one is in place, so a failure loses neither.
    let old = out
        .exists()
        .then(|| parent.join(format!(".lore-export-old-{}", std::process::id())));
    if let Some(old) = &old {
        std::fs::rename(out, old).map_err(io(out))?;
    }
    let kept: PathBuf = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, out) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, out);
        }
        let _ = std::fs::remove_dir_all(&kept);
        return Err(io(out)(e));
    }
    if let Some(old) = &old {
        std::fs::remove_dir_all(old).map_err(io(old))?;
    }
    Ok(())
}

/// Tokenize, fit and pack each split, and write its shards.
fn write_shards(
    tok: &TokenizerDir,
    examples: &[Example],
    seq_len: usize,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<TokenCounts, ExportError> {
    let mut counts = TokenCounts::default();
    progress.phase("tokenizing", Some(examples.len() as u64));
    let all: Vec<&Example> = examples.iter().collect();
    let texts = texts_for(tok, &all, progress);
    let tokens = shards::tokenize(tok, &texts)?;
    progress.advance(examples.len() as u64);
    progress.done();
    for split in ["train", "val"] {
        // Each kept token list with its example's index in `examples` (the manifest's order).
        let (of_split, example_index): (Vec<shards::Tokens>, Vec<i32>) = tokens
            .iter()
            .zip(examples)
            .enumerate()
            .filter(|(_, (_, e))| e.split == split)
            .map(|(i, (t, _))| (t.clone(), i as i32))
            .unzip();
        let (docs, fit) = shards::fit(&of_split, seq_len);
        counts.truncated += fit.truncated;
        counts.dropped += fit.dropped;
        let lengths: Vec<usize> = docs.iter().map(|d| d.1.len()).collect();
        let rows = shards::pack(&lengths, seq_len);
        let total: u64 = lengths.iter().map(|l| *l as u64).sum();
        if split == "train" {
            counts.train_tokens = total;
            counts.train_rows = rows.len() as u64;
        } else {
            counts.val_tokens = total;
            counts.val_rows = rows.len() as u64;
        }
        for (k, chunk) in rows.chunks(shards::ROWS_PER_SHARD).enumerate() {
            let laid: Vec<Vec<shards::Doc<'_>>> = chunk
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|&d| (docs[d].1.as_slice(), docs[d].2, example_index[docs[d].0]))
                        .collect()
                })
                .collect();
            let arrays = shards::arrays(&laid, seq_len, tok.pad_id);
            let path = shards::shard_path(dir, split, k);
            shards::write_shard(&path, &arrays, seq_len)?;
            counts.shards.push(
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    Ok(counts)
}

/// Token counts without writing anything (`--dry-run`).
pub fn token_counts(
    tok: &TokenizerDir,
    examples: &[Example],
    seq_len: usize,
    progress: &dyn Progress,
) -> Result<TokenCounts, ExportError> {
    let all: Vec<&Example> = examples.iter().collect();
    let texts = texts_for(tok, &all, progress);
    let tokens = shards::tokenize(tok, &texts)?;
    let (docs, fit) = shards::fit(&tokens, seq_len);
    let mut counts = TokenCounts {
        truncated: fit.truncated,
        dropped: fit.dropped,
        ..TokenCounts::default()
    };
    for (i, ids, _) in &docs {
        if examples[*i].split == "val" {
            counts.val_tokens += ids.len() as u64;
        } else {
            counts.train_tokens += ids.len() as u64;
        }
    }
    Ok(counts)
}
