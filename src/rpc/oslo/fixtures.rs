//! Captured bodies and helpers the unit tests of the codec share (docs/reference/oslo-messaging-rabbit.md).

use std::fmt;

/// Captured byte-for-byte (§4.3).
pub(super) const CAST: &str = r#"{"oslo.version": "2.0", "oslo.message": "{\"method\": \"note\", \"args\": {\"a\": 1, \"b\": \"two\"}, \"version\": \"1.0\", \"_unique_id\": \"a9d187d9bae24d4091e85f5c9841b527\", \"_context_user\": \"u1\", \"_context_project_id\": \"p1\", \"_context_system_scope\": null, \"_context_project\": \"p1\", \"_context_domain\": null, \"_context_user_domain\": null, \"_context_project_domain\": null, \"_context_is_admin\": false, \"_context_read_only\": false, \"_context_show_deleted\": false, \"_context_auth_token\": null, \"_context_request_id\": \"req-11111111-2222-3333-4444-555555555555\", \"_context_global_request_id\": null, \"_context_resource_uuid\": null, \"_context_roles\": [\"member\"], \"_context_user_identity\": \"u1 p1 - - -\", \"_context_is_admin_project\": true}"}"#;

/// Captured (§5.2).
pub(super) const REPLY: &str = r#"{"oslo.version": "2.0", "oslo.message": "{\"result\": {\"got\": {\"x\": [1, 2], \"y\": {\"k\": null}}, \"ctxt_request_id\": \"req-11111111-2222-3333-4444-555555555555\"}, \"failure\": null, \"ending\": true, \"_msg_id\": \"322be23a273e41aaa016ab31d54206d1\", \"_unique_id\": \"cdd4c3bfd0f14d2ea24b0270d82fa328\"}"}"#;

/// The value, or a panic naming the error (tests only).
pub(super) fn ok<T, E: fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}
