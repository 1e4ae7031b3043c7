//! Locates the byte ranges of JSON array elements and object members without parsing them.
//!
//! The standalone reload only re-parses the elements of the networks file that an edit touched;
//! for that it needs to know where each element starts and ends. This scanner only tracks
//! structure (strings, brackets, commas); it never decides whether a value is valid: every
//! range it returns is then parsed by serde_json, which rejects anything malformed. Whenever the
//! text is not shaped the way the scanner expects it answers `None`, and the caller falls back
//! to parsing the whole file, so the scanner can be strict and simple.

use std::ops::Range;

/// Deeper nesting is left to the full parser, whose recursion limit (128, counted from the top
/// of the file) must decide, not a parse of one element starting deeper down.
const MAX_DEPTH: usize = 100;

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

pub fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// End (exclusive) of the string starting at `b[start] == '"'`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// End (exclusive) of the value starting at `b[start]`; structure only, see the module doc.
pub fn value_end(b: &[u8], start: usize) -> Option<usize> {
    match *b.get(start)? {
        b'"' => string_end(b, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        i = string_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        if depth > MAX_DEPTH {
                            return None;
                        }
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            let mut i = start;
            while i < b.len() && !matches!(b[i], b',' | b']' | b'}' | b'"' | b'[' | b'{') {
                if is_ws(b[i]) {
                    break;
                }
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

/// The values in `b[range]`, a piece of an array's content. `prev`/`next` say whether an
/// element of the same array lies right before/after the range, so that the commas around the
/// range's values are accounted for: the whole must read `value (, value)*` (or be empty).
pub fn elements(
    b: &[u8],
    range: Range<usize>,
    prev: bool,
    next: bool,
) -> Option<Vec<Range<usize>>> {
    let mut out = Vec::new();
    // Whether the last thing seen (starting with the element before the range) was a value.
    let mut after_value = prev;
    let mut any = prev;
    let mut i = skip_ws(b, range.start);
    while i < range.end {
        if b[i] == b',' {
            if !after_value {
                return None;
            }
            after_value = false;
            i += 1;
        } else {
            if after_value {
                return None;
            }
            let end = value_end(b, i)?;
            if end > range.end {
                return None;
            }
            out.push(i..end);
            after_value = true;
            any = true;
            i = end;
        }
        i = skip_ws(b, i);
    }
    if i != range.end {
        return None;
    }
    // A following element needs a comma before it (or nothing at all before it); without one
    // the range must not end with a comma.
    let ends_ok = if next {
        !after_value
    } else {
        after_value || !any
    };
    ends_ok.then_some(out)
}

/// An array starting at `b[open] == '['`: the range between its brackets and its elements.
pub fn array(b: &[u8], open: usize) -> Option<(Range<usize>, Vec<Range<usize>>)> {
    if b.get(open) != Some(&b'[') {
        return None;
    }
    let end = value_end(b, open)?;
    let content = open + 1..end - 1;
    let items = elements(b, content.clone(), false, false)?;
    Some((content, items))
}

/// The value range of the member `key` of the object `b[obj]`. `None` when the object does not
/// look as expected, the key appears twice (serde would reject it; the full parser decides) or
/// any key has escapes (it might spell `key`); `Some(None)` when the key is absent.
pub fn member(b: &[u8], obj: Range<usize>, key: &str) -> Option<Option<Range<usize>>> {
    if b.get(obj.start) != Some(&b'{') || obj.end < obj.start + 2 || b[obj.end - 1] != b'}' {
        return None;
    }
    let mut found = None;
    let mut i = skip_ws(b, obj.start + 1);
    let close = obj.end - 1;
    if i == close {
        return Some(None);
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let kend = string_end(b, i)?;
        let name = &b[i + 1..kend - 1];
        if name.contains(&b'\\') {
            return None;
        }
        i = skip_ws(b, kend);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let vend = value_end(b, i)?;
        if vend > close {
            return None;
        }
        if name == key.as_bytes() {
            if found.is_some() {
                return None;
            }
            found = Some(i..vend);
        }
        i = skip_ws(b, vend);
        match b.get(i) {
            Some(b',') if i < close => i = skip_ws(b, i + 1),
            _ if i == close => return Some(found),
            _ => return None,
        }
    }
}

/// Whether serde_json might judge `s` differently alone than as part of the whole file parsed
/// into `serde_json::Value`: skipping a field the agent does not read, it neither rejects lone
/// UTF-16 surrogate escapes nor exponents out of `f64` range, which the full parse does.
/// Such text (rare) is left to the full parser.
pub fn needs_full_parser(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if in_string {
            match c {
                b'"' => in_string = false,
                b'\\' => {
                    if b.get(i + 1) == Some(&b'u') && matches!(b.get(i + 2), Some(b'd' | b'D')) {
                        return true;
                    }
                    i += 1;
                }
                _ => {}
            }
        } else {
            match c {
                b'"' => in_string = true,
                b'e' | b'E' if i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') => {
                    return true
                }
                _ => {}
            }
        }
        i += 1;
    }
    false
}

/// Length of the common prefix of `a` and `b`: large blocks first (one `memcmp` call each),
/// then the first differing block in small ones, then bytes.
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    for block in [4096, 64] {
        while i + block <= n && a[i..i + block] == b[i..i + block] {
            i += block;
        }
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Length of the common suffix of `a` and `b`, at most `max`.
pub fn common_suffix(a: &[u8], b: &[u8], max: usize) -> usize {
    let (la, lb) = (a.len(), b.len());
    let mut i = 0;
    for block in [4096, 64] {
        while i + block <= max && a[la - i - block..la - i] == b[lb - i - block..lb - i] {
            i += block;
        }
    }
    while i < max && a[la - i - 1] == b[lb - i - 1] {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_and_members() {
        let t = br#" [ {"a": "x]}\"", "ports": [1, {"b": [2]} , "s"]}, null ] "#;
        let (content, items) = array(t, 1).unwrap();
        assert_eq!(&t[content.end..content.end + 1], b"]");
        assert_eq!(items.len(), 2);
        assert_eq!(&t[items[1].clone()], b"null");
        let ports = member(t, items[0].clone(), "ports").unwrap().unwrap();
        let (_, p) = array(t, ports.start).unwrap();
        let got: Vec<&[u8]> = p.iter().map(|r| &t[r.clone()]).collect();
        assert_eq!(got, vec![&b"1"[..], br#"{"b": [2]}"#, br#""s""#]);
        assert_eq!(member(t, items[0].clone(), "zz"), Some(None));
        assert_eq!(member(br#"{"a":1,"a":2}"#, 0..13, "a"), None);
    }

    #[test]
    fn segments_account_for_commas() {
        let t = b", 1 , 2";
        assert_eq!(elements(t, 0..t.len(), true, false).unwrap().len(), 2);
        assert!(elements(t, 0..t.len(), false, false).is_none());
        assert!(elements(t, 0..t.len(), true, true).is_none());
        let t = b" 1 , 2 ,";
        assert_eq!(elements(t, 0..t.len(), false, true).unwrap().len(), 2);
        assert!(elements(t, 0..t.len(), true, true).is_none());
        assert_eq!(elements(b" , ", 0..3, true, true).unwrap().len(), 0);
        assert!(elements(b" ", 0..1, true, true).is_none());
        assert_eq!(elements(b" ", 0..1, false, true).unwrap().len(), 0);
        assert_eq!(elements(b" ", 0..1, false, false).unwrap().len(), 0);
        assert!(elements(b"1 2", 0..3, false, false).is_none());
        assert!(elements(b"1,,2", 0..4, false, false).is_none());
    }

    #[test]
    fn text_left_to_the_full_parser() {
        assert!(needs_full_parser(r#"{"x": "\ud800"}"#));
        assert!(!needs_full_parser(r#"{"x": "\\ud800"}"#));
        assert!(!needs_full_parser(r#"{"x": "\u00e9"}"#));
        assert!(needs_full_parser(r#"{"x": 1e400}"#));
        assert!(needs_full_parser(r#"{"x": 1.5E3}"#));
        assert!(!needs_full_parser(
            r#"{"x": true, "m": "fa:16:3e:00:00:01", "y": false}"#
        ));
    }

    #[test]
    fn prefix_and_suffix() {
        let a: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let mut b = a.clone();
        b.insert(200, 7);
        assert_eq!(common_prefix(&a, &b), 200);
        assert_eq!(common_suffix(&a, &b, 100), 100);
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 241) as u8).collect();
        let mut other = big.clone();
        other[9_000] ^= 1;
        assert_eq!(common_prefix(&big, &other), 9_000);
        assert_eq!(common_suffix(&big, &other, 20_000), 20_000 - 9_001);
        assert_eq!(common_suffix(&big, &other, 5_000), 5_000);
        assert_eq!(common_prefix(&a, &a), 300);
        assert_eq!(common_suffix(&a, &b[..1], 1), 0);
    }
}
