//! Python-compatible JSON output: what `json.dumps` writes for the same data, so our bodies are
//! byte-for-byte what oslo.messaging sends.

use std::borrow::Cow;
use std::io;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Number, Value};

use super::error::EncodeError;

/// `json.dumps` defaults: `", "` and `": "` separators, non-ASCII as `\uXXXX`, Python float repr.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(python_float_repr(value).as_bytes())
    }

    /// `ensure_ascii`: everything outside printable ASCII (including DEL) becomes `\uXXXX`,
    /// lower-case, astral characters as surrogate pairs.
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for exponents -4..=15,
/// otherwise `d.ddde+XX`; integral values keep a `.0`.
fn python_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if point >= digits.len() {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        format!(
            "{sign}{first}{frac}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        )
    }
}

pub(super) fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Result<String, EncodeError> {
    let mut buf = Vec::new();
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut buf,
        PyFormatter,
    ))?;
    // The formatter only ever writes ASCII.
    String::from_utf8(buf)
        .map_err(|e| EncodeError::from(<serde_json::Error as serde::ser::Error>::custom(e)))
}

/// A value to write without first building a `serde_json::Value` (no clone of large args).
pub(super) enum Field<'a> {
    Value(&'a Value),
    Str(&'a str),
    OptStr(Option<&'a str>),
    OptNumber(Option<&'a Number>),
    Bool(bool),
    Strs(&'a [String]),
    Values(&'a [Value]),
    Map(&'a Map<String, Value>),
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(v) => v.serialize(s),
            Field::Str(v) => s.serialize_str(v),
            Field::OptStr(v) => v.serialize(s),
            Field::OptNumber(v) => v.serialize(s),
            Field::Bool(v) => s.serialize_bool(*v),
            Field::Strs(v) => s.collect_seq(v.iter()),
            Field::Values(v) => s.collect_seq(v.iter()),
            Field::Map(v) => v.serialize(s),
        }
    }
}

/// A JSON object written in exactly this key order.
pub(super) struct Ordered<'a>(pub(super) Vec<(Cow<'a, str>, Field<'a>)>);

impl<'a> Ordered<'a> {
    pub(super) fn push(&mut self, key: impl Into<Cow<'a, str>>, value: Field<'a>) {
        self.0.push((key.into(), value));
    }
}

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k.as_ref(), v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::oslo::fixtures::ok;
    use serde_json::json;

    #[test]
    fn python_json_formatting() {
        let v = json!({"s": "é ☃ 😀 \u{7f} \n \"q\" \\", "f": [0.1, 2.5, 1e16, 1e-5, 1e-4, 123456789012345.6, -0.0, 1.0, 1e22, 5e-324]});
        assert_eq!(
            ok(to_python_json(&v)),
            r#"{"f": [0.1, 2.5, 1e+16, 1e-05, 0.0001, 123456789012345.6, -0.0, 1.0, 1e+22, 5e-324], "s": "\u00e9 \u2603 \ud83d\ude00 \u007f \n \"q\" \\"}"#
        );
        assert_eq!(python_float_repr(1234.5e10), "12345000000000.0");
        assert_eq!(python_float_repr(1.5e300), "1.5e+300");
    }
}
