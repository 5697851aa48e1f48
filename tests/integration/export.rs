//! `lore export` on the fixture: exact counts per template, a golden example per template, no
//! leakage, identical bytes on two runs, `--new-since-last`, token shards that decode back to
//! the JSONL, and bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lore::export::{Context, ExportOptions, Split, Template};
use lore::kb::Kb;
use lore::progress::{Progress, Silent};
use lore::store::{hex, NodeKind, Rel};
use safetensors::SafeTensors;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::common::{fixtures_dir, git_in};
use crate::queries::fixture_kb;

fn options(out: &Path) -> ExportOptions {
    ExportOptions {
        name: "test".into(),
        out: out.to_path_buf(),
        force: false,
        tokenizer: None,
        seq_len: 512,
        split: Split::Fraction { val: 0.34 },
        context: Context::Oracle { tokens: 1536 },
        min_quality: 0.0,
        newer_than: None,
        dry_run: false,
        seed: 0,
        swebench: false,
    }
}

fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every example of an export directory, train then val.
fn examples(dir: &Path) -> Vec<serde_json::Value> {
    let mut all = read_jsonl(&dir.join("train.jsonl"));
    all.extend(read_jsonl(&dir.join("val.jsonl")));
    all
}

#[test]
fn each_template_gives_its_exact_examples_and_golden_text() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("issue_fix", "issues", 6, "issue#7"),
        ("issue_answer", "issues", 7, "issue#7"),
        ("classify_issue", "issues", 12, "issue#7"),
        ("commit_message", "commits", 29, ""),
        ("code_qa", "functions", 25, ""),
        // #22 duplicates #7 ("yes"); its nearest earlier issue outside that group, "no".
        ("duplicate", "issues", 2, "pair:#22:#7"),
    ];
    let bless = std::env::var_os("LORE_BLESS").is_some();
    let mut failures = Vec::new();
    for (name, query, count, golden_id) in cases {
        let template = Template::built_in(name).unwrap();
        let out = dir.path().join(name);
        let report = kb
            .export(query, &template, &options(&out), false, &Silent)
            .unwrap();
        let c = &report.manifest.counts;
        assert_eq!(c.train + c.val, count, "{name}: {c:?}");
        let all = examples(&out);
        assert_eq!(all.len() as u64, count, "{name}");
        // The golden example: a fixed one, or the oldest.
        let golden = all
            .iter()
            .filter(|e| golden_id.is_empty() || e["id"] == golden_id)
            .min_by_key(|e| {
                (
                    e["created_at"].as_i64(),
                    e["id"].as_str().map(str::to_string),
                )
            })
            .unwrap();
        let text = format!(
            "id: {}\n--- prompt\n{}\n--- completion\n{}\n",
            golden["id"].as_str().unwrap(),
            golden["prompt"].as_str().unwrap(),
            golden["completion"].as_str().unwrap()
        );
        let file = fixtures_dir().join("export").join(format!("{name}.txt"));
        if bless {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &text).unwrap();
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
            failures.push(format!(
                "{name}: differs from {} (LORE_BLESS=1 rewrites)",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_prompt_holds_its_fix_a_later_commit_or_a_later_comment() {
    let (fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fix");
    let late = add_late_comment(&kb, dir.path());
    let template = Template::built_in("issue_fix").unwrap();
    kb.export("issues", &template, &options(&out), false, &Silent)
        .unwrap();
    let read = kb.read().unwrap();
    let all = examples(&out);
    assert_eq!(all.len(), 6);
    let mut checked_lines = 0;
    for e in &all {
        let prompt = e["prompt"].as_str().unwrap();
        let number: u64 = e["id"].as_str().unwrap()["issue#".len()..].parse().unwrap();
        let issue = read.issue_by_number(number).unwrap().unwrap();
        let record = read.issue(issue).unwrap();
        // The fix's commits, from the links; the first one's time is the cut.
        let mut fixes = Vec::new();
        for c in read.targets_of(issue, Rel::FixedBy).unwrap() {
            if c.kind() == Some(NodeKind::Commit) {
                fixes.push(read.commit(c).unwrap());
            }
        }
        fixes.sort_by_key(|c| c.author.time);
        let cut = fixes[0].author.time;
        let parent = hex(&fixes[0].parents[0]);
        // Lines the fix added that were nowhere in the file before it (git is the oracle).
        let completion = e["completion"].as_str().unwrap();
        let mut before = String::new();
        for line in completion.lines() {
            if let Some(paths) = line.strip_prefix("diff --git a/") {
                let old = paths.split(" b/").next().unwrap();
                let shown = std::process::Command::new("git")
                    .current_dir(fixture.repo())
                    .args(["show", &format!("{parent}:{old}")])
                    .output()
                    .unwrap();
                before = String::from_utf8_lossy(&shown.stdout).into_owned();
                continue;
            }
            let Some(added) = line.strip_prefix('+') else {
                continue;
            };
            if line.starts_with("+++") || added.trim().len() < 12 || before.contains(added.trim()) {
                continue;
            }
            checked_lines += 1;
            assert!(
                !prompt.contains(added.trim()),
                "#{number}: the prompt holds the fix's line {added:?}"
            );
        }
        // No commit at or after the fix is quoted.
        for (_, c) in read.all_commits().unwrap() {
            let subject = c.message.lines().next().unwrap_or("");
            if c.author.time >= cut && subject.len() >= 15 {
                assert!(
                    !prompt.contains(subject),
                    "#{number}: a later commit {subject:?}"
                );
            }
        }
        // No comment written at or after the fix.
        for comment in &record.comments {
            if comment.created_at.is_none_or(|t| t >= cut) && comment.body.trim().len() >= 10 {
                assert!(
                    !prompt.contains(comment.body.trim()),
                    "#{number}: a later comment"
                );
            }
        }
    }
    assert!(
        checked_lines >= 10,
        "only {checked_lines} added lines checked"
    );
    // The late comment is in the file, and reached no prompt (checked above).
    let seven = read
        .issue(read.issue_by_number(7).unwrap().unwrap())
        .unwrap();
    assert!(seven.comments.iter().any(|c| c.body == late));
}

/// Give issue #7 a comment written long after its fix (re-importing it, as a newer dump
/// would); returns the comment.
fn add_late_comment(kb: &Kb, dir: &Path) -> &'static str {
    let late = "Confirmed fixed in the 0.2 release: the refcount check now stops the double free.";
    let read = kb.read().unwrap();
    let i = read
        .issue(read.issue_by_number(7).unwrap().unwrap())
        .unwrap();
    let time = |t: i64| jiff::Timestamp::from_second(t).unwrap().to_string();
    let mut comments: Vec<serde_json::Value> = i
        .comments
        .iter()
        .map(|c| serde_json::json!({"author": c.author, "created_at": c.created_at.map(time), "body": c.body}))
        .collect();
    comments.push(
        serde_json::json!({"author": "bob", "created_at": "2025-06-01T00:00:00Z", "body": late}),
    );
    let record = serde_json::json!({
        "number": 7, "title": i.title, "body": i.body, "state": "closed", "author": i.author,
        "labels": i.labels, "created_at": i.created_at.map(time), "closed_at": i.closed_at.map(time),
        "updated_at": "2025-06-01T00:00:00Z", "comments": comments,
        "url": "https://github.com/minillm/minillm/issues/7",
    });
    drop(read);
    let dump = dir.join("late.jsonl");
    std::fs::write(&dump, format!("{record}\n")).unwrap();
    let import = lore::ingest::issues::ImportOptions {
        format: lore::ingest::issues::Format::Jsonl,
        repo: Some("minillm/minillm".into()),
        comments: None,
        git: None,
        szz: false,
    };
    kb.import_issues(&dump, &import, false, &Silent).unwrap();
    late
}

/// Every file of a directory, by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// A byte-level BPE tokenizer trained on the fixture's issues, with `<|endoftext|>` as its end
/// token (and, with `chat`, a chat template in `tokenizer_config.json`).
fn tokenizer_dir(dir: &Path, chat: bool) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let corpus = dir.join("corpus.txt");
    std::fs::copy(fixtures_dir().join("issues/github.json"), &corpus).unwrap();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(600)
        .special_tokens(vec![AddedToken::from("<|endoftext|>", true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer: tokenizers::TokenizerImpl<
        BPE,
        tokenizers::NormalizerWrapper,
        ByteLevel,
        tokenizers::PostProcessorWrapper,
        ByteLevel,
    > = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .with_normalizer(None)
        .with_post_processor(None)
        .build()
        .unwrap();
    tokenizer
        .train_from_files(&mut trainer, vec![corpus.to_string_lossy().into_owned()])
        .unwrap();
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
    let mut config = serde_json::json!({ "eos_token": "<|endoftext|>" });
    if chat {
        config["chat_template"] = serde_json::json!(
            "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
        );
    }
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    dir.to_path_buf()
}

/// A [`Progress`] that keeps the warnings.
#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);
impl Progress for Warnings {
    fn warn(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

#[test]
fn two_runs_write_identical_bytes_and_shards_decode_to_the_jsonl() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tok_dir = tokenizer_dir(&dir.path().join("tok"), false);
    let template = Template::built_in("issue_fix").unwrap();
    let mut opts = options(&dir.path().join("a"));
    opts.tokenizer = Some(tok_dir.clone());
    opts.seq_len = 4096;
    let warnings = Warnings::default();
    kb.export("issues", &template, &opts, false, &warnings)
        .unwrap();
    // No chat template: said once, not once per example.
    let said = warnings.0.lock().unwrap().clone();
    assert!(
        said.len() == 1 && said[0].contains("no chat template"),
        "{said:?}"
    );
    opts.out = dir.path().join("b");
    kb.export("issues", &template, &opts, false, &Silent)
        .unwrap();
    let (a, b) = (files(&dir.path().join("a")), files(&dir.path().join("b")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs between two runs");
    }
    assert!(a.contains_key("train-00000.safetensors"), "{:?}", a.keys());

    // Decode each document of each row and find it in the JSONL.
    let tokenizer = Tokenizer::from_file(tok_dir.join("tokenizer.json")).unwrap();
    let eos = tokenizer.token_to_id("<|endoftext|>").unwrap();
    for split in ["train", "val"] {
        let jsonl = read_jsonl(&dir.path().join("a").join(format!("{split}.jsonl")));
        let expected: Vec<(String, String)> = jsonl
            .iter()
            .map(|e| {
                (
                    e["prompt"].as_str().unwrap().to_string(),
                    e["completion"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let bytes = &a[&format!("{split}-00000.safetensors")];
        let st = SafeTensors::deserialize(bytes).unwrap();
        let ids = st.tensor("input_ids").unwrap();
        let (rows, seq) = (ids.shape()[0], ids.shape()[1]);
        assert_eq!(seq, 4096);
        assert_eq!(
            st.tensor("labels").unwrap().dtype(),
            safetensors::Dtype::I64
        );
        let i32s = |name: &str| -> Vec<i32> {
            st.tensor(name)
                .unwrap()
                .data()
                .chunks(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let input = i32s("input_ids");
        let positions = i32s("position_ids");
        let lengths = i32s("document_lengths");
        let doc_examples = i32s("document_examples");
        let manifest: serde_json::Value = serde_json::from_slice(&a["manifest.json"]).unwrap();
        let manifest_ids: Vec<&str> = manifest["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        let labels: Vec<i64> = st
            .tensor("labels")
            .unwrap()
            .data()
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let max_docs = lengths.len() / rows;
        let mut found = 0;
        for r in 0..rows {
            let mut at = r * seq;
            for (d, &len) in lengths[r * max_docs..(r + 1) * max_docs].iter().enumerate() {
                let len = len as usize;
                if len == 0 {
                    continue;
                }
                let doc: Vec<u32> = input[at..at + len].iter().map(|&t| t as u32).collect();
                // Positions restart at every document.
                assert_eq!(
                    positions[at..at + len]
                        .iter()
                        .map(|&p| p as usize)
                        .collect::<Vec<_>>(),
                    (0..len).collect::<Vec<_>>()
                );
                assert_eq!(labels[at], -100, "a document's first token is not a label");
                assert_eq!(*doc.last().unwrap(), eos);
                let text = tokenizer.decode(&doc, false).unwrap();
                let at_example = expected
                    .iter()
                    .position(|(p, c)| text == format!("{p}\n{c}<|endoftext|>"))
                    .unwrap_or_else(|| {
                        panic!("row {r} holds a document that is in no {split} example")
                    });
                let (prompt, completion) = &expected[at_example];
                // document_examples names the manifest entry of the example decoded here.
                let named = doc_examples[r * max_docs + d];
                assert_eq!(
                    manifest_ids[named as usize],
                    jsonl[at_example]["id"].as_str().unwrap()
                );
                // Labels: -100 on the prompt, the tokens themselves on the completion.
                let prompt_len = tokenizer
                    .encode(prompt.as_str(), true)
                    .unwrap()
                    .get_ids()
                    .len();
                assert!(labels[at..at + prompt_len].iter().all(|&l| l == -100));
                for k in prompt_len.max(1)..len {
                    assert_eq!(labels[at + k], i64::from(doc[k]));
                }
                assert!(completion.len() > 1);
                found += 1;
                at += len;
            }
            // Padding is never a label.
            assert!(labels[at..(r + 1) * seq].iter().all(|&l| l == -100));
        }
        assert_eq!(
            found,
            expected.len(),
            "{split}: every example is in the shards once"
        );
    }
}

#[test]
fn a_chat_template_frames_the_conversation() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tok_dir = tokenizer_dir(&dir.path().join("tok"), true);
    let mut opts = options(&dir.path().join("out"));
    opts.tokenizer = Some(tok_dir.clone());
    opts.seq_len = 4096;
    let warnings = Warnings::default();
    let template = Template::built_in("classify_issue").unwrap();
    kb.export("issues", &template, &opts, false, &warnings)
        .unwrap();
    assert!(warnings.0.lock().unwrap().is_empty());
    let st_bytes = std::fs::read(dir.path().join("out/train-00000.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&st_bytes).unwrap();
    let ids: Vec<u32> = st
        .tensor("input_ids")
        .unwrap()
        .data()
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as u32)
        .collect();
    let lengths: Vec<i32> = st
        .tensor("document_lengths")
        .unwrap()
        .data()
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let tokenizer = Tokenizer::from_file(tok_dir.join("tokenizer.json")).unwrap();
    let first = tokenizer
        .decode(&ids[..lengths[0] as usize], false)
        .unwrap();
    assert!(
        first.starts_with("<|user|>\nRepository: minillm/minillm"),
        "{first}"
    );
    assert!(first.contains("\n<|assistant|>\nlabels: "), "{first}");
    assert!(first.ends_with("<|endoftext|>\n"), "{first}");
}

#[test]
fn new_since_last_exports_exactly_what_is_new() {
    let (fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let template = Template::built_in("issue_fix").unwrap();
    let mut opts = options(&dir.path().join("first"));
    kb.export("issues", &template, &opts, true, &Silent)
        .unwrap();
    assert_eq!(examples(&dir.path().join("first")).len(), 6);
    drop(kb);

    // A new issue and the commit that fixes it.
    let repo = fixture.repo();
    let file = repo.join("minillm/worker/memory_utils.py");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "return len(self.free_list)",
            "return max(0, len(self.free_list))",
        ),
    )
    .unwrap();
    git_in(
        &repo,
        &[
            "commit",
            "-q",
            "-am",
            "Never report a negative free block count\n\nFixes #40",
        ],
    );
    let when = "2025-02-01T00:00:00Z";
    let dump = dir.path().join("new.jsonl");
    std::fs::write(&dump, format!("{}\n", serde_json::json!({
        "number": 40, "title": "Negative free block count after preemption",
        "body": "get_num_free_blocks returned -1 after a preempted sequence was resumed.",
        "state": "closed", "author": "grace", "labels": ["bug"], "created_at": "2024-12-30T00:00:00Z",
        "closed_at": when, "url": "https://github.com/minillm/minillm/issues/40",
    }))).unwrap();
    let kb = Kb::open(&path).unwrap();
    kb.ingest(&repo, &Default::default(), &Silent).unwrap();
    let import = lore::ingest::issues::ImportOptions {
        format: lore::ingest::issues::Format::Jsonl,
        repo: Some("minillm/minillm".into()),
        comments: None,
        git: None,
        szz: true,
    };
    kb.import_issues(&dump, &import, true, &Silent).unwrap();

    opts.out = dir.path().join("second");
    let report = kb
        .export("issues", &template, &opts, true, &Silent)
        .unwrap();
    let ids: Vec<String> = examples(&dir.path().join("second"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["issue#40"]);
    assert_eq!(report.manifest.counts.not_new, 6);
    // Nothing new since: an export with no examples, and the record keeps its watermark.
    opts.out = dir.path().join("third");
    let report = kb
        .export("issues", &template, &opts, true, &Silent)
        .unwrap();
    assert_eq!(report.manifest.counts.train + report.manifest.counts.val, 0);
    assert_eq!(report.manifest.counts.not_new, 7);
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let fix = Template::built_in("issue_fix").unwrap();
    let err = |e: lore::Error| e.to_string();
    let e = err(kb
        .export(
            "issues where number = 999",
            &fix,
            &options(&out),
            false,
            &Silent,
        )
        .err()
        .unwrap());
    assert!(e.contains("no rows"), "{e}");
    let e = err(kb
        .export("commits", &fix, &options(&out), false, &Silent)
        .err()
        .unwrap());
    assert!(
        e.contains("takes issues, but the query gives commits"),
        "{e}"
    );
    let mut opts = options(&out);
    opts.tokenizer = Some(dir.path().join("no-such-tokenizer"));
    let e = err(kb
        .export("issues", &fix, &opts, false, &Silent)
        .err()
        .unwrap());
    assert!(e.contains("tokenizer.json"), "{e}");
    assert!(!out.exists(), "nothing is written when an export fails");
    // An existing non-empty directory is kept unless --force.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("mine.txt"), "keep me").unwrap();
    let e = err(kb
        .export("issues", &fix, &options(&out), false, &Silent)
        .err()
        .unwrap());
    assert!(e.contains("--force"), "{e}");
    assert_eq!(
        std::fs::read_to_string(out.join("mine.txt")).unwrap(),
        "keep me"
    );
    let mut forced = options(&out);
    forced.force = true;
    kb.export("issues", &fix, &forced, false, &Silent).unwrap();
    assert!(!out.join("mine.txt").exists() && out.join("train.jsonl").exists());
    // A row too long for --seq-len is cut from its prompt or dropped, and counted.
    let tok = tokenizer_dir(&dir.path().join("tok"), false);
    let mut short = options(&dir.path().join("short"));
    short.tokenizer = Some(tok);
    short.seq_len = 64;
    let report = kb.export("issues", &fix, &short, false, &Silent).unwrap();
    let t = report.manifest.tokens.unwrap();
    assert_eq!(t.truncated + t.dropped, 6, "{t:?}");
    assert!(t.dropped >= 1, "{t:?}");
}

#[test]
fn locate_context_and_swebench_records() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&dir.path().join("out"));
    opts.context = Context::parse("locate", 1536).unwrap();
    opts.swebench = true;
    let template = Template::built_in("issue_fix").unwrap();
    kb.export("issues", &template, &opts, false, &Silent)
        .unwrap();
    let all = examples(&dir.path().join("out"));
    assert_eq!(all.len(), 6);
    // The ranking found code for the issues, shown as it stood at the fix's parent.
    let with_code = all
        .iter()
        .filter(|e| e["prompt"].as_str().unwrap().contains("\nCode:\n"))
        .count();
    assert!(with_code >= 4, "{with_code} of 6 prompts show located code");
    let records = read_jsonl(&dir.path().join("out/swebench.jsonl"));
    assert_eq!(records.len(), 6);
    for r in &records {
        for key in [
            "instance_id",
            "repo",
            "base_commit",
            "problem_statement",
            "hints_text",
            "created_at",
            "patch",
            "test_patch",
        ] {
            assert!(r.get(key).is_some(), "{key} missing: {r}");
        }
        assert!(r["instance_id"]
            .as_str()
            .unwrap()
            .starts_with("minillm__minillm-"));
        assert_eq!(r["base_commit"].as_str().unwrap().len(), 40);
        assert!(r["patch"].as_str().unwrap().starts_with("diff --git a/"));
    }
    // The double-free fix came with a test: it is the test patch, not the patch.
    let seven = records
        .iter()
        .find(|r| r["instance_id"] == "minillm__minillm-7")
        .unwrap();
    assert!(
        seven["test_patch"].as_str().unwrap().contains("test_"),
        "{seven}"
    );
    assert!(
        !seven["patch"].as_str().unwrap().contains("tests/"),
        "{seven}"
    );
}

#[test]
fn duplicate_pairs_have_an_earlier_hard_negative_outside_the_group() {
    let (_fixture, path) = fixture_kb();
    let kb = Kb::open(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dup");
    let template = Template::built_in("duplicate").unwrap();
    kb.export("issues", &template, &options(&out), false, &Silent)
        .unwrap();
    let read = kb.read().unwrap();
    let created = |n: u64| {
        let id = read.issue_by_number(n).unwrap().unwrap();
        read.issue(id).unwrap().created_at.unwrap()
    };
    let mut answers: Vec<(String, String)> = examples(&out)
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["completion"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    answers.sort();
    assert_eq!(answers.len(), 2);
    let (negative, no) = &answers[0];
    assert_eq!(no, "no");
    assert_eq!(answers[1], ("pair:#22:#7".to_string(), "yes".to_string()));
    let other: u64 = negative.rsplit('#').next().unwrap().parse().unwrap();
    assert!(other != 7 && other != 22);
    assert!(
        created(other) < created(22),
        "the negative was opened before #22"
    );
}

#[test]
fn a_reader_that_stops_early_ends_lore_quietly() {
    // `lore … | head -1`: the pipe is closed while lore still has lines to write. Here it is
    // closed before lore writes anything, so every command meets it.
    let (_fixture, path) = fixture_kb();
    let out = std::env::temp_dir().join(format!("lore-pipe-{}", std::process::id()));
    for args in [
        vec!["show", "issue", "7"],
        vec!["locate", "7"],
        vec![
            "export",
            "--query",
            "commits",
            "-t",
            "commit_message",
            "-o",
            out.to_str().unwrap(),
            "--dry-run",
        ],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lore"))
            .args(["--kb", path.to_str().unwrap()])
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert!(
            done.status.success() && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}
