//! ListImages filters and channel lookups.

use super::*;

pub(crate) fn in_channel(image: &Image, channel: &str) -> bool {
    image
        .channels
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c == channel))
}

/// The image, if it is in `channel`; 404 otherwise, as IMGAPI answers for
/// an image in another channel.
pub(crate) fn lookup<'a>(
    images: &'a mut BTreeMap<Uuid, Image>,
    uuid: &Uuid,
    channel: &str,
) -> Result<&'a mut Image, ImgapiError> {
    match images.get_mut(uuid) {
        Some(image) if in_channel(image, channel) => Ok(image),
        _ => Err(ImgapiError::not_found(format_args!("image {uuid}"))),
    }
}

/// `tag.<key>=<value>` pairs of a raw query string, percent-decoded.
pub fn tag_filters(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let k = percent_decode(k);
            let key = k.strip_prefix("tag.")?;
            Some((key.to_string(), percent_decode(v)))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn text_matches(filter: &Option<String>, value: &str) -> bool {
    match filter.as_deref() {
        None => true,
        Some(f) => match f.strip_prefix('~') {
            Some(sub) => value.contains(sub),
            None => value == f,
        },
    }
}

pub(crate) fn tag_matches(image: &Image, key: &str, want: &str) -> bool {
    let Some(v) = image.tags.as_ref().and_then(|t| t.get(key)) else {
        return false;
    };
    match v {
        serde_json::Value::String(s) => s == want,
        // `tag.x=true` matches a boolean true, `tag.n=5` the number 5.
        other => serde_json::from_str::<serde_json::Value>(want).is_ok_and(|w| w == *other),
    }
}
