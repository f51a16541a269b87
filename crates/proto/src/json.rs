//! The JSON shapes the protocol accepts: objects where a struct is expected, and bounded nesting.
//!
//! serde's derive reads a struct from a JSON array of its fields, in order, as readily as from an
//! object, so without [`Object`] `["ping",31]` is a `ping` command and `["u1",4000]` a disconnect
//! body. [`check_depth`] bounds nesting before anything is parsed or relayed: other clients parse
//! what one client emits and what a backend publishes, and many JSON parsers give up near 1,000
//! levels (or overflow their stack first).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A `T` read from a JSON object only: an array (or any other JSON value) is refused with
/// "invalid type: ..., expected a JSON object".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                // The fields are still read by T's own (derived) code, from the object's entries.
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData)).map(Object)
    }
}

/// JSON text nested deeper than a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("JSON is nested deeper than {limit} levels of arrays and objects")]
pub struct TooDeep {
    /// The limit that was passed.
    pub limit: usize,
}

/// Checks that `text` nests arrays and objects at most `limit` levels deep, the outermost
/// counting as one (`{}` is 1, `{"a":[1]}` is 2).
///
/// One pass over the bytes, without parsing or allocating; strings (and brackets inside them)
/// are skipped. Exact for valid JSON; on invalid JSON it may count wrong, which does not matter
/// because the parser refuses it anyway.
pub fn check_depth(text: &[u8], limit: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(TooDeep { limit });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Pair {
        a: u32,
        b: String,
    }

    #[test]
    fn objects_pass_and_arrays_of_the_fields_do_not() {
        let Object(pair) = serde_json::from_str::<Object<Pair>>(r#"{"a":1,"b":"x"}"#).unwrap();
        assert_eq!(pair, Pair { a: 1, b: "x".into() });
        for text in [r#"[1,"x"]"#, "1", r#""x""#, "null", "true"] {
            let err = serde_json::from_str::<Object<Pair>>(text).unwrap_err();
            assert!(err.to_string().contains("expected a JSON object"), "{text}: {err}");
        }
        // Missing fields are still named by the derived code.
        let err = serde_json::from_str::<Object<Pair>>(r#"{"a":1}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `b`"), "{err}");
    }

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert_eq!(check_depth(b"{}", 1), Ok(()));
        assert_eq!(check_depth(b"{\"a\":[1]}", 1), Err(TooDeep { limit: 1 }));
        assert_eq!(check_depth(b"{\"a\":[1]}", 2), Ok(()));
        assert_eq!(check_depth(br#"{"a":"[[[[\"[[["}"#, 1), Ok(()), "brackets in strings, escaped quotes");
        assert_eq!(check_depth(br#"{"a\\":[[1]]}"#, 2), Err(TooDeep { limit: 2 }), "an escaped backslash ends");
        assert_eq!(check_depth(b"1", 0), Ok(()));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(check_depth(deep.as_bytes(), 64), Err(TooDeep { limit: 64 }));
        assert_eq!(check_depth(deep.as_bytes(), 10_000), Ok(()));
    }
}
