use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::cancel;
use crate::error::{Error, IoContext, Result};

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

/// Read `reader` to its end in 1 MiB chunks, handing each to `sink` and
/// polling for Ctrl-C between reads; returns the byte count. `what` names
/// the stream in a read error.
pub fn for_each_chunk<R: Read>(
    mut reader: R,
    what: impl Fn() -> String,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        cancel::check()?;
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(Error::Io {
                    context: what(),
                    source,
                });
            }
        };
        total += n as u64;
        sink(&buf[..n])?;
    }
}

/// Text folded onto one line, for error messages built from tool output.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// [`one_line`], cut to `max` characters.
pub fn snippet(s: &str, max: usize) -> String {
    one_line(s).chars().take(max).collect()
}
