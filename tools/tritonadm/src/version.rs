//! The build stamp `tritonadm --version` prints.
//!
//! The image pipeline writes the stamp into the shipped binary, into the
//! field [`STAMP`] reserves after its marker (`zone_image::tool::stamp_binary`
//! declares the same marker and size), so stamping needs no rebuild: the
//! cargo cache of this crate and every other stays the same whatever the
//! stamp, and the build cache still sees unchanged inputs.

use std::sync::OnceLock;

const MARKER: &[u8] = b"@(#)triton-build-stamp:";
const FIELD_LEN: usize = 128;

const fn field() -> [u8; FIELD_LEN] {
    let mut f = [0u8; FIELD_LEN];
    let mut i = 0;
    while i < MARKER.len() {
        f[i] = MARKER[i];
        i += 1;
    }
    f
}

#[used]
static STAMP: [u8; FIELD_LEN] = field();

/// The stamp written into this binary, if it was stamped.
pub fn build_stamp() -> Option<String> {
    // SAFETY: a read of an initialised static of plain bytes. Volatile, so
    // the bytes come from the binary as stamped after linking, not from
    // the value the compiler saw.
    let field: [u8; FIELD_LEN] = unsafe { std::ptr::read_volatile(&STAMP) };
    let value = &field[MARKER.len()..];
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    let s = std::str::from_utf8(&value[..end]).ok()?;
    (!s.is_empty()).then(|| s.to_string())
}

/// What `--version` says: the stamp, or the crate version marked as not
/// built by the pipeline.
pub fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        build_stamp().unwrap_or_else(|| concat!(env!("CARGO_PKG_VERSION"), "-unstamped").into())
    })
}
