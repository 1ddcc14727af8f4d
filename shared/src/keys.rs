//! Ed25519 keys: the root key (signs trust lists) and the signing keys (sign QR tokens).
//!
//! A key file holds the 32-byte secret seed as base64url and a newline, mode 0600.

use crate::b64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

/// First 4 bytes of SHA-256 of the 32-byte public key; written as 8 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 4]);

impl KeyId {
    pub fn of(public_key: &[u8; 32]) -> KeyId {
        let digest = Sha256::digest(public_key);
        KeyId([digest[0], digest[1], digest[2], digest[3]])
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.hex())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a key id is 8 hex digits")]
pub struct BadKeyId;

impl FromStr for KeyId {
    type Err = BadKeyId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 8 {
            return Err(BadKeyId);
        }
        let mut out = [0u8; 4];
        hex::decode_to_slice(s, &mut out).map_err(|_| BadKeyId)?;
        Ok(KeyId(out))
    }
}

impl Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} does not hold a base64url 32-byte Ed25519 seed")]
    Malformed { path: String },
    #[error("public key is not 32 bytes of base64url or is not a valid Ed25519 point")]
    BadPublicKey,
}

/// A secret Ed25519 key. Its `Debug` never prints the secret.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
    key_id: KeyId,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({}, secret hidden)", self.key_id)
    }
}

impl KeyPair {
    pub fn generate() -> KeyPair {
        KeyPair::from_seed(rand::random())
    }

    pub fn from_seed(seed: [u8; 32]) -> KeyPair {
        let signing = SigningKey::from_bytes(&seed);
        let key_id = KeyId::of(signing.verifying_key().as_bytes());
        KeyPair { signing, key_id }
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn public_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    pub fn public_b64(&self) -> String {
        b64::encode(&self.public_bytes())
    }

    /// The seed as written in key files. Callers must treat it as a secret.
    pub fn seed_b64(&self) -> String {
        b64::encode(self.signing.as_bytes())
    }

    pub fn from_seed_b64(text: &str) -> Option<KeyPair> {
        let bytes = b64::decode(text.trim()).ok()?;
        let seed: [u8; 32] = bytes.try_into().ok()?;
        Some(KeyPair::from_seed(seed))
    }

    /// Writes the key to `path` with mode 0600, creating it (never world-readable, even briefly).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        write_secret_file(path, format!("{}\n", self.seed_b64()).as_bytes()).map_err(|source| {
            KeyError::Write {
                path: path.display().to_string(),
                source,
            }
        })
    }

    pub fn load(path: &Path) -> Result<KeyPair, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        KeyPair::from_seed_b64(&text).ok_or_else(|| KeyError::Malformed {
            path: path.display().to_string(),
        })
    }
}

/// Parses a base64url public key and checks that it is a valid curve point.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = b64::decode(text).map_err(|_| KeyError::BadPublicKey)?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::BadPublicKey)?;
    VerifyingKey::from_bytes(&arr).map_err(|_| KeyError::BadPublicKey)
}

/// Creates or replaces a file readable only by its owner; the content is written to a temporary
/// file in the same folder, synced and renamed, so a crash leaves the old or the new file whole.
pub fn write_secret_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        crate::private_fs::create_private_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut file = crate::private_fs::private_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        crate::private_fs::restrict(&file)?;
        file.write_all(content)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_sha256_prefix_of_public_key() {
        let k = KeyPair::from_seed([7u8; 32]);
        let digest = Sha256::digest(k.public_bytes());
        assert_eq!(k.key_id().0, digest[..4]);
        assert_eq!(k.key_id().hex().len(), 8);
        assert_eq!(k.key_id().hex().parse::<KeyId>().unwrap(), k.key_id());
        assert!("abc".parse::<KeyId>().is_err());
        assert!("zzzzzzzz".parse::<KeyId>().is_err());
    }

    #[test]
    fn save_and_load_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/root.key");
        let k = KeyPair::generate();
        k.save(&path).unwrap();
        let back = KeyPair::load(&path).unwrap();
        assert_eq!(back.public_bytes(), k.public_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            KeyPair::load(&path),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let k = KeyPair::from_seed([9u8; 32]);
        let shown = format!("{k:?}");
        assert!(!shown.contains(&k.seed_b64()));
        assert!(shown.contains(&k.key_id().hex()));
    }
}
