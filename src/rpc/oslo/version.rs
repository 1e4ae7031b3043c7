//! RPC API versions and oslo's compatibility rule (`version_is_compatible`,
//! docs/reference/oslo-messaging-rabbit.md §6.2).

use std::fmt;

/// An RPC API version `major.minor[.rev]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RpcVersion {
    /// Must match exactly.
    pub major: i64,
    /// Requested must not exceed implemented.
    pub minor: i64,
    /// Compared only when the minors are equal.
    pub rev: i64,
}

/// A version string oslo could not compare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RPC version {0:?}")]
pub struct VersionError(pub String);

impl RpcVersion {
    /// `major.minor`.
    pub const fn new(major: i64, minor: i64) -> Self {
        RpcVersion {
            major,
            minor,
            rev: 0,
        }
    }

    /// Parses like `version_is_compatible`: split on `.`, the first two parts are required, the
    /// third is the revision (default 0), further parts are ignored.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let err = || VersionError(s.chars().take(40).collect());
        let mut parts = s.split('.');
        let mut num = |required: bool| -> Result<i64, VersionError> {
            match parts.next() {
                Some(p) => p.trim().parse::<i64>().map_err(|_| err()),
                None if required => Err(err()),
                None => Ok(0),
            }
        };
        Ok(RpcVersion {
            major: num(true)?,
            minor: num(true)?,
            rev: num(false)?,
        })
    }

    /// `version_is_compatible(self, requested)`: same major, requested minor not newer, and with
    /// equal minors the requested revision not newer.
    pub fn can_serve(&self, requested: &RpcVersion) -> bool {
        requested.major == self.major
            && requested.minor <= self.minor
            && (requested.minor != self.minor || requested.rev <= self.rev)
    }
}

impl fmt::Display for RpcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rev == 0 {
            write!(f, "{}.{}", self.major, self.minor)
        } else {
            write!(f, "{}.{}.{}", self.major, self.minor, self.rev)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::oslo::fixtures::ok;

    #[test]
    fn version_compatibility() {
        let v = |s: &str| ok(RpcVersion::parse(s));
        let imp = RpcVersion::new(1, 3);
        for (req, want) in [
            ("1.0", true),
            ("1.3", true),
            ("1.2.9", true),
            ("1.3.1", false),
            ("1.5", false),
            ("2.0", false),
            ("0.9", false),
        ] {
            assert_eq!(imp.can_serve(&v(req)), want, "{req}");
        }
        assert!(v("1.3.2").can_serve(&v("1.3.1")));
        assert!(v(" 1 . 0 .0.junk").can_serve(&v("1.0")));
        assert!(
            RpcVersion::parse("1").is_err()
                && RpcVersion::parse("a.b").is_err()
                && RpcVersion::parse("").is_err()
        );
        assert_eq!(v("1.10").to_string(), "1.10");
    }
}
