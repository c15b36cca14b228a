//! The one JSON writer for everything kiln digests (manifests, indexes, configs,
//! `index.json`, docker-archive `manifest.json`).
//!
//! Output is deterministic and close to what Go's `encoding/json` (`json.Marshal`)
//! emits for the same documents, so that kiln's manifests look like Docker's,
//! BuildKit's and buildah's:
//!
//! - no insignificant whitespace, struct fields in declaration order (our types declare
//!   them in the order of the Go structs of the OCI image spec and Docker), map keys
//!   sorted bytewise (every map in this crate is a `BTreeMap`; unknown fields held as
//!   `serde_json::Value` are sorted too, serde_json's default `Map` being a `BTreeMap`);
//! - **decision:** like Go, `<`, `>` and `&` are escaped as `\u003c`, `\u003e`,
//!   `\u0026`, and U+2028/U+2029 as `\u2028`/`\u2029`. A label such as
//!   `"a<b"` therefore digests the same whether Docker or kiln wrote it. Other escapes
//!   are serde_json's (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, `\u00XX` for other
//!   control characters), which matches Go 1.22 and later; non-ASCII text is written
//!   as UTF-8, as Go does.
//!
//! Writing the same value twice gives the same bytes; there is no other JSON writer
//! for digested content in kiln.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

use crate::descriptor::Descriptor;
use crate::digest::Digest;
use crate::media_type::MediaType;

/// serde_json's compact formatter plus Go's HTML-safe escaping.
#[derive(Debug, Clone, Copy, Default)]
struct GoCompatibleFormatter;

impl Formatter for GoCompatibleFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (index, character) in fragment.char_indices() {
            let escape = match character {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..index])?;
            writer.write_all(escape.as_bytes())?;
            start = index + character.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        let text = match char_escape {
            CharEscape::Quote => "\\\"".to_owned(),
            CharEscape::ReverseSolidus => "\\\\".to_owned(),
            CharEscape::Solidus => "/".to_owned(),
            CharEscape::Backspace => "\\b".to_owned(),
            CharEscape::FormFeed => "\\f".to_owned(),
            CharEscape::LineFeed => "\\n".to_owned(),
            CharEscape::CarriageReturn => "\\r".to_owned(),
            CharEscape::Tab => "\\t".to_owned(),
            CharEscape::AsciiControl(byte) => format!("\\u{byte:04x}"),
        };
        writer.write_all(text.as_bytes())
    }
}

/// Writes `value` canonically into `writer`.
pub fn to_writer<W: io::Write, T: Serialize + ?Sized>(
    writer: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, GoCompatibleFormatter);
    value.serialize(&mut serializer)
}

/// The canonical bytes of `value`.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(512);
    to_writer(&mut bytes, value)?;
    Ok(bytes)
}

/// The canonical bytes of `value` with a descriptor (digest, size, `media_type`) for them.
pub fn to_blob<T: Serialize + ?Sized>(
    media_type: MediaType,
    value: &T,
) -> serde_json::Result<(Descriptor, Vec<u8>)> {
    let bytes = to_vec(value)?;
    Ok((Descriptor::for_bytes(media_type, &bytes), bytes))
}

/// The digest of the canonical bytes of `value`.
pub fn digest_of<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Digest> {
    Ok(Digest::sha256_of(&to_vec(value)?))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn escapes_html_characters_like_go() {
        let bytes = to_vec(&"a<b>&c\u{2028}d\u{2029}").unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#""a\u003cb\u003e\u0026c\u2028d\u2029""#
        );
        let round: String = serde_json::from_str(r#""a\u003cb\u003e\u0026c""#).unwrap();
        assert_eq!(round, "a<b>&c");
    }

    #[test]
    fn control_characters_and_unicode() {
        let bytes = to_vec(&"q\"\\/\n\r\t\u{8}\u{c}\u{1}é😀").unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "\"q\\\"\\\\/\\n\\r\\t\\b\\f\\u0001é😀\""
        );
    }

    #[test]
    fn maps_are_sorted_and_compact() {
        let mut map = BTreeMap::new();
        map.insert("b", 1);
        map.insert("a", 2);
        map.insert("B", 3);
        assert_eq!(to_vec(&map).unwrap(), br#"{"B":3,"a":2,"b":1}"#);
        let value: serde_json::Value =
            serde_json::from_str(r#"{ "z": [1, 2], "a": {"y": null, "x": true} }"#).unwrap();
        assert_eq!(
            to_vec(&value).unwrap(),
            br#"{"a":{"x":true,"y":null},"z":[1,2]}"#
        );
    }

    #[test]
    fn to_blob_describes_the_written_bytes() {
        let (descriptor, bytes) = to_blob(MediaType::OciEmpty, &serde_json::json!({})).unwrap();
        assert_eq!(bytes, b"{}");
        assert_eq!(descriptor.size, 2);
        assert_eq!(
            descriptor.digest.to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(
            digest_of(&serde_json::json!({})).unwrap(),
            descriptor.digest
        );
    }
}
