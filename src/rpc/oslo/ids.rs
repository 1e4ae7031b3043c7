//! Fresh ids, spelled as oslo spells them: `uuid4().hex` for `_unique_id`, `_msg_id` and queue
//! name suffixes, `str(uuid4())` for request ids and connection names.

use uuid::Uuid;

/// A random (version 4) UUID, for `_unique_id`, `_msg_id`, reply queue names and request ids.
///
/// The bits come from the `uuid` crate (the OS random source); this type only adds oslo's two
/// spellings of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Uuid4(Uuid);

impl Uuid4 {
    /// A fresh id.
    pub fn random() -> Self {
        Uuid4(Uuid::new_v4())
    }

    /// 32 lower-case hex digits (`uuid4().hex`).
    pub fn hex(&self) -> String {
        self.0.simple().to_string()
    }

    /// `8-4-4-4-12` form (`str(uuid4())`).
    pub fn hyphenated(&self) -> String {
        self.0.hyphenated().to_string()
    }
}

/// A fresh `_unique_id` / `_msg_id` (uuid4 hex).
pub fn new_unique_id() -> String {
    Uuid4::random().hex()
}

/// A fresh `req-<uuid4>` request id, as oslo.context generates.
pub fn new_request_id() -> String {
    format!("req-{}", Uuid4::random().hyphenated())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_spelled_as_oslo_spells_them() {
        let a = new_unique_id();
        let b = new_unique_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(&a[12..13], "4");
        let r = new_request_id();
        assert!(r.starts_with("req-") && r.len() == 40);
        let u = Uuid4::random();
        let h = u.hyphenated();
        assert_eq!(h.len(), 36);
        assert_eq!(
            h.char_indices()
                .filter(|&(_, c)| c == '-')
                .map(|(i, _)| i)
                .collect::<Vec<_>>(),
            vec![8, 13, 18, 23]
        );
        assert_eq!(h.replace('-', ""), u.hex());
        assert_eq!(&h[14..15], "4");
        assert!(matches!(&h[19..20], "8" | "9" | "a" | "b"));
    }
}
