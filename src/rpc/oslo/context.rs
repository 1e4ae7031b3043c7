//! The request context, carried as `_context_*` keys next to the message's own keys
//! (docs/reference/oslo-messaging-rabbit.md §4.4).

use std::fmt;

use serde_json::Value;

/// The key prefix of every context entry on the wire (`pack_context`).
pub(super) const CONTEXT_PREFIX: &str = "_context_";

/// The request context, flattened on the wire as one `_context_<key>` per key (`pack_context`).
///
/// Keys keep their order. `Debug` hides `auth_token`: casts from neutron-server carry the API
/// user's token.
#[derive(Clone, PartialEq, Default)]
pub struct Context(Vec<(String, Value)>);

impl Context {
    /// An empty context (oslo requires no key at all).
    pub fn new() -> Self {
        Context(Vec::new())
    }

    /// neutron-lib's `get_admin_context_without_session().to_dict()`, the context every agent
    /// sends, in its key order: oslo.context's keys, then neutron-lib's additions.
    ///
    /// `request_id` is `req-<uuid4>` (see [`new_request_id`](super::new_request_id)); `timestamp` is `str(utcnow())`
    /// (see [`python_utc_timestamp`](super::python_utc_timestamp)).
    pub fn neutron_admin(request_id: &str, timestamp: &str) -> Self {
        let roles = Value::Array(vec!["admin".into(), "member".into(), "reader".into()]);
        let entries: [(&str, Value); 21] = [
            ("user", Value::Null),
            ("project_id", Value::Null),
            ("system_scope", Value::Null),
            ("project", Value::Null),
            ("domain", Value::Null),
            ("user_domain", Value::Null),
            ("project_domain", Value::Null),
            ("is_admin", Value::Bool(true)),
            ("read_only", Value::Bool(false)),
            ("show_deleted", Value::Bool(false)),
            ("auth_token", Value::Null),
            ("request_id", request_id.into()),
            ("global_request_id", Value::Null),
            ("resource_uuid", Value::Null),
            ("roles", roles),
            ("user_identity", "- - - - -".into()),
            ("is_admin_project", Value::Bool(true)),
            ("user_id", Value::Null),
            ("timestamp", timestamp.into()),
            ("project_name", Value::Null),
            ("user_name", Value::Null),
        ];
        Context(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// Sets `key`, replacing an existing value in place.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    /// The value of `key` (without the `_context_` prefix).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Appends a key read off the wire. The decoder's top-level keys are already unique, so
    /// unlike [`Self::set`] this does not look for an existing one.
    pub(super) fn push(&mut self, key: String, value: Value) {
        self.0.push((key, value));
    }

    fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True without keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `request_id` (`req-<uuid>`), for log correlation.
    pub fn request_id(&self) -> Option<&str> {
        self.get_str("request_id")
    }

    /// `global_request_id`, for cross-service log correlation.
    pub fn global_request_id(&self) -> Option<&str> {
        self.get_str("global_request_id")
    }

    /// `is_admin` is JSON `true`.
    pub fn is_admin(&self) -> bool {
        self.get("is_admin") == Some(&Value::Bool(true))
    }

    /// `user_id`, else `user` (neutron-lib `Context.from_dict`).
    pub fn user_id(&self) -> Option<&str> {
        self.get_str("user_id").or_else(|| self.get_str("user"))
    }

    /// `project_id`, else `tenant_id`.
    pub fn project_id(&self) -> Option<&str> {
        self.get_str("project_id")
            .or_else(|| self.get_str("tenant_id"))
    }

    /// The string entries of `roles`.
    pub fn roles(&self) -> Vec<&str> {
        match self.get("roles") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if k == "auth_token" && !v.is_null() {
                m.entry(k, &"***");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}
