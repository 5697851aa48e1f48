//! Progress bars for the library's [`lore::progress::Progress`] reports.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bar {
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
    /// `LORE_PROGRESS_LOG=FILE`: each phase's name is appended to FILE as it starts, then
    /// `NAME DONE/TOTAL` at every tenth of it (quiet or not), for scripts and tests that act on
    /// what lore is doing.
    log: Option<Mutex<PhaseLog>>,
}

/// The open progress log and the phase it is in: name, steps done, total.
struct PhaseLog {
    file: std::fs::File,
    phase: (String, u64, Option<u64>),
}

impl PhaseLog {
    fn line(&mut self, text: &str) {
        use std::io::Write;
        let _ = writeln!(self.file, "{text}");
        let _ = self.file.flush();
    }
}

impl Bar {
    pub fn new(quiet: bool) -> Bar {
        let log = std::env::var_os("LORE_PROGRESS_LOG").and_then(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
                .map(|file| {
                    Mutex::new(PhaseLog {
                        file,
                        phase: (String::new(), 0, None),
                    })
                })
        });
        Bar {
            quiet,
            bar: Mutex::new(None),
            log,
        }
    }
}

impl lore::progress::Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        if let Some(Ok(mut log)) = self.log.as_ref().map(Mutex::lock) {
            log.line(name);
            log.phase = (name.to_string(), 0, total);
        }
        if self.quiet {
            return;
        }
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr())
                .with_style(
                    ProgressStyle::with_template(
                        "{msg:30} [{bar:30}] {human_pos}/{human_len} ({per_sec}, {eta})",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                ProgressStyle::with_template("{spinner} {msg} {human_pos}")
                    .expect("valid template"),
            ),
        };
        bar.set_message(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Some(old) = self.bar.lock().expect("progress lock").replace(bar) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        if let Some(Ok(mut log)) = self.log.as_ref().map(Mutex::lock) {
            let (name, done, total) = log.phase.clone();
            if let Some(total) = total.filter(|t| *t > 0) {
                let now = done + n;
                if now * 10 / total > done * 10 / total {
                    log.line(&format!("{name} {now}/{total}"));
                }
                log.phase.1 = now;
            }
        }
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.inc(n);
        }
    }

    fn warn(&self, message: &str) {
        let guard = self.bar.lock().expect("progress lock");
        match guard.as_ref() {
            Some(bar) => bar.suspend(|| eprintln!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }

    fn status(&self, text: &str) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.set_message(text.to_string());
        }
    }

    fn done(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}
