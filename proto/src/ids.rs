//! Validated identifiers: [`GroupId`] and [`UserName`]. Each is checked once,
//! where it enters (a URL segment, a JSON field, a credential), and carried
//! typed from there; both the DS and clients use them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted group id, bytes.
pub const MAX_GROUP_ID_LEN: usize = 256;
/// Longest accepted user name, bytes.
pub const MAX_USER_NAME_LEN: usize = 64;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    /// A group id that is not 1 to [`MAX_GROUP_ID_LEN`] bytes in base64url
    /// without padding.
    GroupId(String),
    /// A user name outside the allowed alphabet or length.
    UserName(String),
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::GroupId(given) => write!(
                f,
                "group id {given:?}: a group id is 1 to {MAX_GROUP_ID_LEN} bytes, written in base64url without padding"
            ),
            IdError::UserName(given) => write!(
                f,
                "{given:?}: use 1 to {MAX_USER_NAME_LEN} characters from A-Z a-z 0-9 . _ - @, starting with a letter or digit"
            ),
        }
    }
}

impl std::error::Error for IdError {}

/// An MLS group id: 1 to [`MAX_GROUP_ID_LEN`] bytes. In URLs and JSON it is
/// written in base64url without padding ([`GroupId::to_path`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(Vec<u8>);

impl GroupId {
    /// A group id from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        if bytes.is_empty() || bytes.len() > MAX_GROUP_ID_LEN {
            return Err(IdError::GroupId(encode_path(bytes)));
        }
        Ok(GroupId(bytes.to_vec()))
    }

    /// A group id from its URL form (base64url without padding).
    pub fn from_path(segment: &str) -> Result<Self, IdError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| IdError::GroupId(segment.to_string()))?;
        Self::from_bytes(&bytes).map_err(|_| IdError::GroupId(segment.to_string()))
    }

    /// The URL form: base64url without padding.
    pub fn to_path(&self) -> String {
        encode_path(&self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn encode_path(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_path())
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({})", self.to_path())
    }
}

impl Serialize for GroupId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_path())
    }
}

impl<'de> Deserialize<'de> for GroupId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        GroupId::from_path(&s).map_err(serde::de::Error::custom)
    }
}

/// A user name: 1 to [`MAX_USER_NAME_LEN`] characters from
/// `A-Z a-z 0-9 . _ - @`, starting with a letter or digit. It is the identity
/// of the user's MLS BasicCredential.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    /// Checks a user name.
    pub fn parse(name: &str) -> Result<Self, IdError> {
        let ok_len = !name.is_empty() && name.len() <= MAX_USER_NAME_LEN;
        let ok_chars = name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        let ok_first = name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if ok_len && ok_chars && ok_first {
            Ok(UserName(name.to_string()))
        } else {
            Err(IdError::UserName(name.to_string()))
        }
    }

    /// A user name from a credential's identity bytes.
    pub fn from_identity(identity: &[u8]) -> Result<Self, IdError> {
        let s =
            std::str::from_utf8(identity).map_err(|_| IdError::UserName(String::from_utf8_lossy(identity).into()))?;
        Self::parse(s)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for UserName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl PartialEq<str> for UserName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UserName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl Serialize for UserName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        UserName::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_round_trip_and_refuse_bad_lengths() {
        let g = GroupId::from_bytes(b"grove").unwrap();
        assert_eq!(g.to_path(), "Z3JvdmU");
        assert_eq!(GroupId::from_path("Z3JvdmU").unwrap(), g);
        assert!(GroupId::from_path("").is_err());
        assert!(GroupId::from_path("Z3JvdmU=").is_err(), "padding is refused");
        assert!(GroupId::from_path("+/").is_err(), "standard base64 is refused");
        assert!(GroupId::from_bytes(&[0; MAX_GROUP_ID_LEN]).is_ok());
        assert!(GroupId::from_bytes(&[0; MAX_GROUP_ID_LEN + 1]).is_err());
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(json, "\"Z3JvdmU\"");
        assert_eq!(serde_json::from_str::<GroupId>(&json).unwrap(), g);
        assert!(serde_json::from_str::<GroupId>("\"\"").is_err());
    }

    #[test]
    fn user_names_follow_the_documented_alphabet() {
        for ok in ["alice", "a", "bob.smith@example.com", "x_1-2", &"a".repeat(64)] {
            assert_eq!(UserName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", ".alice", "-a", "al ice", "ålice", "a/b", &"a".repeat(65)] {
            assert!(UserName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(UserName::from_identity(&[0xff, 0x61]).is_err());
        assert!(serde_json::from_str::<UserName>("\"a b\"").is_err());
    }
}
