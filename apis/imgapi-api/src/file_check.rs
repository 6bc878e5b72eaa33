//! A downloaded image file checked as it arrives: against the manifest's
//! `files[0].size` and `files[0].sha1`, and the `Content-MD5` IMGAPI sends
//! with every GetImageFile. Every downloader (tritonadm's `image get-file`
//! and self-update, zone-image's origin download) checks the same way.

use sha1::{Digest as _, Sha1};

use crate::{ContentMd5, ImageFile};

/// Why a downloaded file is not the one the manifest names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileMismatch {
    #[error("more than the {limit} bytes files[0].size says")]
    TooLong { limit: u64 },
    #[error("got {got} bytes, files[0].size says {want}")]
    Short { got: u64, want: u64 },
    #[error(
        "Content-MD5 mismatch: the server sent {sent}, the {size} bytes received hash to {got}; \
         the file is damaged on the server or in transit"
    )]
    ContentMd5 {
        sent: String,
        got: String,
        size: u64,
    },
    #[error("sha1 {got}, files[0].sha1 says {want}")]
    Sha1 { got: String, want: String },
}

impl FileMismatch {
    /// The transfer stopped early without saying so: another try may get
    /// the whole file. Every other mismatch is in the bytes themselves.
    pub fn is_short(&self) -> bool {
        matches!(self, FileMismatch::Short { .. })
    }
}

/// Feed it each chunk as it arrives, then [`FileCheck::finish`].
pub struct FileCheck {
    size: u64,
    sha1: String,
    content_md5: Option<(ContentMd5, String)>,
    hash: Sha1,
    received: u64,
}

impl FileCheck {
    /// `content_md5`: the header the server sent, if it sent one (a plain
    /// file server may not).
    pub fn new(file: &ImageFile, content_md5: Option<String>) -> FileCheck {
        FileCheck {
            size: file.size,
            sha1: file.sha1.clone(),
            content_md5: content_md5.map(|sent| (ContentMd5::new(), sent)),
            hash: Sha1::new(),
            received: 0,
        }
    }

    /// A server streaming past the manifest's size is cut off at once.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), FileMismatch> {
        self.received += chunk.len() as u64;
        if self.received > self.size {
            return Err(FileMismatch::TooLong { limit: self.size });
        }
        self.hash.update(chunk);
        if let Some((md5, _)) = &mut self.content_md5 {
            md5.update(chunk);
        }
        Ok(())
    }

    /// Bytes fed so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Size first (a short file is a broken transfer), then the server's
    /// Content-MD5, then the manifest's sha1.
    pub fn finish(self) -> Result<(), FileMismatch> {
        if self.received != self.size {
            return Err(FileMismatch::Short {
                got: self.received,
                want: self.size,
            });
        }
        if let Some((md5, sent)) = self.content_md5 {
            let got = md5.finish();
            if got != sent {
                return Err(FileMismatch::ContentMd5 {
                    sent,
                    got,
                    size: self.received,
                });
            }
        }
        let got = hex::encode(self.hash.finalize());
        if !got.eq_ignore_ascii_case(&self.sha1) {
            return Err(FileMismatch::Sha1 {
                got,
                want: self.sha1,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Compression;

    fn file(data: &[u8]) -> ImageFile {
        ImageFile {
            sha1: hex::encode(Sha1::digest(data)),
            size: data.len() as u64,
            compression: Compression::None,
            dataset_guid: None,
            extra: Default::default(),
        }
    }

    fn md5_of(data: &[u8]) -> String {
        let mut m = ContentMd5::new();
        m.update(data);
        m.finish()
    }

    fn check(f: &ImageFile, md5: Option<String>, chunks: &[&[u8]]) -> Result<(), FileMismatch> {
        let mut c = FileCheck::new(f, md5);
        for ch in chunks {
            c.update(ch)?;
        }
        c.finish()
    }

    #[test]
    fn each_mismatch_is_named() {
        let data = b"hello world";
        let f = file(data);
        assert_eq!(
            check(&f, Some(md5_of(data)), &[b"hello ", b"world"]),
            Ok(())
        );
        assert_eq!(check(&f, None, &[data]), Ok(()));
        assert_eq!(
            check(&f, None, &[data, b"!"]),
            Err(FileMismatch::TooLong { limit: 11 })
        );
        let short = check(&f, None, &[b"hello"]).unwrap_err();
        assert!(short.is_short(), "{short}");
        assert_eq!(short.to_string(), "got 5 bytes, files[0].size says 11");
        let e = check(&f, Some(md5_of(b"other")), &[data]).unwrap_err();
        assert!(
            matches!(e, FileMismatch::ContentMd5 { .. }) && !e.is_short(),
            "{e}"
        );
        assert!(e.to_string().starts_with("Content-MD5 mismatch"), "{e}");
        // Same size, a flipped byte, no Content-MD5 sent: the sha1 catches it.
        let e = check(&f, None, &[b"hello worle"]).unwrap_err();
        assert!(matches!(e, FileMismatch::Sha1 { .. }), "{e}");
    }
}
