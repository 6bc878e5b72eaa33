use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Write a small file via a temp sibling and rename, so readers see the
/// old content or the new, never half of it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .io_context(|| format!("creating a temp file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .io_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .io_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).map_err(|e| crate::Error::Io {
        context: format!("renaming into {}", path.display()),
        source: e.error,
    })?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .io_context(|| format!("setting the mode of {}", path.display()))
}
