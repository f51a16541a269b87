//! A token's claims as its payload gives them, read by hand rather than by serde's derive so that
//! every claim is checked for its type with a message naming it, and every time is clamped.
//!
//! Times (`exp`, `nbf`, `iat`) are RFC 7519 NumericDates: JSON numbers of seconds since 1970,
//! fractions allowed. They are read as whole seconds (rounded down: a token is never honoured
//! longer than it says) and clamped to [`LATEST`], so that `2^64 - 1` or `1e300` can neither
//! overflow a deadline nor lose precision in a client's JSON parser. A claim that is present
//! must be a number; `"soon"` is refused.

use serde_json::{Map, Value};

/// The latest time a token can name, Unix seconds: 9999-12-31T23:59:59Z. Later values are
/// clamped to it; it is exact in every JSON parser (below 2^53).
pub const LATEST: u64 = 253_402_300_799;

/// The claims roomcast reads from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claims {
    pub(super) sub: String,
    pub(super) org: Option<String>,
    /// `None` when the token has no `room` claim at all; a subscription token must have one.
    pub(super) room: Option<Value>,
    pub(super) exp: u64,
    pub(super) nbf: Option<u64>,
}

impl Claims {
    /// Reads the claims from a token's payload object; `Err` names the claim that is wrong.
    pub(super) fn read(mut payload: Map<String, Value>) -> Result<Self, String> {
        let sub = match payload.remove("sub") {
            Some(Value::String(sub)) => sub,
            Some(other) => return Err(format!("sub must be a string, got {}", short(&other))),
            None => return Err("the token has no sub".to_owned()),
        };
        let org = match payload.remove("org") {
            Some(Value::String(org)) => Some(org),
            None | Some(Value::Null) => None,
            Some(other) => return Err(format!("org must be a string, got {}", short(&other))),
        };
        let exp = time(payload.get("exp"), "exp")?.ok_or("the token has no exp")?;
        let nbf = time(payload.get("nbf"), "nbf")?;
        // Read for its type only: a token that says when it was issued must say it as a number.
        time(payload.get("iat"), "iat")?;
        Ok(Self { sub, org, room: payload.remove("room"), exp, nbf })
    }
}

/// A NumericDate claim, in whole seconds within `0..=LATEST`; `None` when absent.
fn time(value: Option<&Value>, claim: &str) -> Result<Option<u64>, String> {
    let Some(value) = value else { return Ok(None) };
    let Value::Number(n) = value else {
        return Err(format!("{claim} must be a number (seconds since 1970), got {}", short(value)));
    };
    let seconds = if let Some(whole) = n.as_u64() {
        whole.min(LATEST)
    } else if n.is_i64() {
        // Before 1970: long past.
        0
    } else {
        // A fraction, or an integer too large for u64 that serde_json read as a float. The cast
        // saturates (and maps NaN to 0, though JSON has none); the clamp does the rest.
        (n.as_f64().unwrap_or(0.0).floor() as u64).min(LATEST)
    };
    Ok(Some(seconds))
}

/// A claim's value for an error message, cut short: tokens come from anyone.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(payload: Value) -> Result<Claims, String> {
        let Value::Object(map) = payload else { panic!("an object") };
        Claims::read(map)
    }

    #[test]
    fn times_are_clamped_whole_seconds() {
        for (exp, seconds) in [
            (json!(1_767_225_600u64), 1_767_225_600),
            (json!(1_767_225_600.9), 1_767_225_600),
            (json!(u64::MAX), LATEST),
            (json!(1e300), LATEST),
            (json!(-5), 0),
            (json!(-1e300), 0),
            (json!(0.5), 0),
        ] {
            assert_eq!(read(json!({"sub": "u", "exp": exp})).unwrap().exp, seconds, "{exp}");
        }
        let huge: Value = serde_json::from_str(r#"{"sub":"u","exp":123456789012345678901234567890}"#).unwrap();
        assert_eq!(read(huge).unwrap().exp, LATEST);
    }

    #[test]
    fn a_time_claim_must_be_a_number_when_present() {
        for (claims, claim) in [
            (json!({"sub": "u", "exp": "soon"}), "exp"),
            (json!({"sub": "u", "exp": 1, "nbf": "soon"}), "nbf"),
            (json!({"sub": "u", "exp": 1, "iat": [1]}), "iat"),
            (json!({"sub": "u", "exp": 1, "nbf": null}), "nbf"),
        ] {
            let err = read(claims.clone()).unwrap_err();
            assert!(err.starts_with(&format!("{claim} must be a number")), "{claims}: {err}");
        }
        assert_eq!(read(json!({"sub": "u"})).unwrap_err(), "the token has no exp");
    }

    #[test]
    fn sub_org_and_room_keep_their_meaning() {
        let c = read(json!({"sub": "u", "org": null, "exp": 1, "nbf": 2})).unwrap();
        assert_eq!((c.sub.as_str(), c.org, c.room, c.nbf), ("u", None, None, Some(2)));
        let c = read(json!({"sub": "u", "room": null, "exp": 1})).unwrap();
        assert_eq!(c.room, Some(Value::Null), "a room claim, even null, makes a subscription token");
        assert!(read(json!({"sub": 7, "exp": 1})).unwrap_err().starts_with("sub must be a string"));
        let err = read(json!({"sub": "u", "org": vec!["x"; 30], "exp": 1})).unwrap_err();
        assert!(err.len() < 100, "values are cut short: {err}");
    }
}
