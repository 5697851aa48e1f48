//! Output directories written whole or not at all: the files go into a temporary directory
//! beside the target, which is moved into place at the end (a PEFT directory, a tiny model).

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::AdaptError;

fn io(path: &Path) -> impl Fn(std::io::Error) -> AdaptError + '_ {
    move |e| AdaptError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// A directory being written, to become `out`.
pub struct Staging {
    tmp: TempDir,
    out: PathBuf,
}

impl Staging {
    /// Start writing `out`, which must not exist or be empty.
    pub fn new(out: &Path, prefix: &str) -> Result<Staging, AdaptError> {
        if let Ok(mut entries) = std::fs::read_dir(out) {
            if entries.next().is_some() {
                return Err(io(out)(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not empty",
                )));
            }
        }
        let parent = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let tmp = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(io(parent))?;
        Ok(Staging {
            tmp,
            out: out.to_path_buf(),
        })
    }

    /// Where to write the files.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Write one file; an error names the file as it will be in `out`.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), AdaptError> {
        std::fs::write(self.tmp.path().join(name), bytes).map_err(io(&self.out.join(name)))
    }

    /// Move everything into place.
    pub fn finish(self) -> Result<(), AdaptError> {
        let _ = std::fs::remove_dir(&self.out);
        let kept = self.tmp.keep();
        std::fs::rename(&kept, &self.out).map_err(|e| {
            let _ = std::fs::remove_dir_all(&kept);
            io(&self.out)(e)
        })
    }
}
