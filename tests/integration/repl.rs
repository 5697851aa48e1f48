//! The REPL driven through a pseudo-terminal (`script` allocates it): type a query with Tab
//! completion, read the table, use dot commands, leave with `.quit`.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::queries::fixture_kb;

pub(crate) struct Session {
    pub(crate) child: std::process::Child,
    stdin: std::process::ChildStdin,
    pub(crate) output: Arc<Mutex<String>>,
}

impl Session {
    pub(crate) fn start(kb: &std::path::Path, history: &std::path::Path) -> Session {
        let cmd = format!("{} --kb {} repl", env!("CARGO_BIN_EXE_lore"), kb.display());
        let mut child = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("LORE_HISTORY", history)
            .env("TERM", "xterm")
            .env("COLUMNS", "120")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run `script` (util-linux) to give the REPL a terminal");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Session {
            child,
            stdin,
            output,
        }
    }

    /// Wait until the output holds `needle` (after position `from`); returns where it ends.
    pub(crate) fn wait_for(&self, needle: &str, from: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            {
                let out = self.output.lock().unwrap();
                if let Some(i) = out[from.min(out.len())..].find(needle) {
                    return from + i + needle.len();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the REPL did not print {needle:?}; output so far:\n{}",
                self.output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn send(&mut self, keys: &str) {
        self.stdin.write_all(keys.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }
}

#[test]
fn repl_completes_runs_queries_and_keeps_history() {
    let (fixture, kb) = fixture_kb();
    let history = fixture.dir.path().join("history");
    let mut s = Session::start(&kb, &history);
    let at = s.wait_for("lore> ", 0);
    // `memory_u` + Tab completes to `memory_utils` (a file stem from the lore file).
    s.send("issues fixed_by commit touching memory_u\t");
    let at = s.wait_for("memory_utils", at);
    s.send("\r");
    let at = s.wait_for("(2 rows)", at);
    {
        let out = s.output.lock().unwrap();
        assert!(
            out.contains("#7      closed  Double free in free_blocks when sequences fork"),
            "{out}"
        );
        assert!(
            out.contains("#20     closed  CUDA out of memory when the block table grows"),
            "{out}"
        );
    }
    let at = s.wait_for("lore> ", at);
    s.send(".timer on\r");
    let at = s.wait_for("lore> ", at);
    s.send("commits count\r");
    let at = s.wait_for("time: ", at);
    let at = s.wait_for("lore> ", at);
    // An error keeps the session going.
    s.send("issues fixd_by commit\r");
    let at = s.wait_for("did you mean `fixed_by`?", at);
    let at = s.wait_for("lore> ", at);
    // A query continued on a second line.
    s.send("issues where state = open \\\r");
    s.send("count\r");
    let at = s.wait_for("(1 row)", at);
    assert!(
        s.output.lock().unwrap()[..at].ends_with("2\r\n(1 row)"),
        "two open issues (#25 and #30; the stub #3's state is unknown)"
    );
    s.wait_for("lore> ", at);
    s.send(".quit\r");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(Instant::now() < deadline, "the REPL did not leave on .quit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let saved = std::fs::read_to_string(&history).expect("history file written");
    assert!(
        saved.contains("issues fixed_by commit touching memory_utils"),
        "{saved}"
    );
    assert!(saved.contains("commits count"), "{saved}");
}

#[test]
fn the_repl_reads_the_new_file_after_a_compaction_replaced_it() {
    let (fixture, kb) = fixture_kb();
    let k = kb.to_str().unwrap();
    let history = fixture.dir.path().join("history");
    let mut s = Session::start(&kb, &history);
    let at = s.wait_for("lore> ", 0);
    s.send("issues where number = 90 count\r");
    let at = s.wait_for("(1 row)", at);
    assert!(s.output.lock().unwrap()[..at].ends_with("0\r\n(1 row)"));
    let at = s.wait_for("lore> ", at);
    // While the REPL has the file open: compact it (a new file takes its place), then add an
    // issue to the new file.
    let out = crate::common::lore(&["--kb", k, "compact"]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    let dump = fixture.dir.path().join("one-issue.json");
    let issue = serde_json::json!([{
        "number": 90, "title": "Added after a compaction", "body": "", "state": "open",
        "created_at": "2025-02-01T00:00:00Z", "user": {"login": "x"}, "labels": []
    }]);
    std::fs::write(&dump, issue.to_string()).unwrap();
    let out = crate::common::lore(&[
        "--kb",
        k,
        "-q",
        "import",
        "issues",
        dump.to_str().unwrap(),
        "--format",
        "github",
        "--repo",
        "minillm/minillm",
        "--no-szz",
    ]);
    assert!(out.status.success(), "{}", crate::common::stderr(&out));
    s.send("issues where number = 90 count\r");
    let at = s.wait_for("(1 row)", at);
    assert!(
        s.output.lock().unwrap()[..at].ends_with("1\r\n(1 row)"),
        "the REPL still reads the file the compaction replaced"
    );
    s.wait_for("lore> ", at);
    s.send(".quit\r");
    let _ = s.child.wait();
}
