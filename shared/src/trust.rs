//! The signed trust list (DESIGN §3): which signing keys terminals accept, signed by the root key.
//!
//! Wire form: `{"payload": base64url(JSON bytes), "root_key_id": hex, "signature": base64url}`;
//! the signature is Ed25519 by the root key over the payload bytes exactly as transmitted.

use crate::b64;
use crate::keys::{parse_public_key, KeyId, KeyPair};
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKey {
    pub key_id: KeyId,
    /// base64url of the 32-byte Ed25519 public key.
    pub public_key: String,
    /// Unix seconds: the key signs tokens from this time...
    pub not_before: i64,
    /// ...until this time (it is retired after)...
    pub not_after: i64,
    /// ...and tokens it signed are accepted until this time.
    pub verify_until: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustPayload {
    pub version: u64,
    pub keys: Vec<TrustedKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTrustList {
    pub payload: String,
    pub root_key_id: String,
    pub signature: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("trust list is not base64url JSON of the expected shape")]
    Malformed,
    #[error("trust list is signed by root key {found}, not the pinned root key {pinned}")]
    WrongRoot { found: String, pinned: String },
    #[error("trust list signature does not verify with the pinned root key")]
    BadSignature,
    #[error("trust list version {got} is lower than the version {have} already trusted")]
    Downgrade { got: u64, have: u64 },
    #[error("trust list key {0} has a public key that does not match its key id or is invalid")]
    BadKey(String),
}

impl SignedTrustList {
    pub fn sign(payload: &TrustPayload, root: &KeyPair) -> SignedTrustList {
        let bytes = serde_json::to_vec(payload).expect("trust payload serialises");
        let signature = root.signing_key().sign(&bytes);
        SignedTrustList {
            payload: b64::encode(&bytes),
            root_key_id: root.key_id().hex(),
            signature: b64::encode(&signature.to_bytes()),
        }
    }

    /// Verifies against the pinned root key and the version already held (if any): a lower
    /// version is a downgrade and is refused; the same version is accepted (a re-fetch).
    pub fn verify(
        &self,
        root: &VerifyingKey,
        have_version: Option<u64>,
    ) -> Result<TrustPayload, TrustError> {
        let pinned = KeyId::of(root.as_bytes()).hex();
        if self.root_key_id != pinned {
            return Err(TrustError::WrongRoot {
                found: self.root_key_id.clone(),
                pinned,
            });
        }
        let bytes = b64::decode(&self.payload).map_err(|_| TrustError::Malformed)?;
        let sig_bytes = b64::decode(&self.signature).map_err(|_| TrustError::Malformed)?;
        let sig: [u8; 64] = sig_bytes.try_into().map_err(|_| TrustError::BadSignature)?;
        root.verify_strict(&bytes, &Signature::from_bytes(&sig))
            .map_err(|_| TrustError::BadSignature)?;
        let payload: TrustPayload =
            serde_json::from_slice(&bytes).map_err(|_| TrustError::Malformed)?;
        if let Some(have) = have_version {
            if payload.version < have {
                return Err(TrustError::Downgrade {
                    got: payload.version,
                    have,
                });
            }
        }
        KeyRing::from_payload(&payload)?;
        Ok(payload)
    }
}

#[derive(Debug, Clone)]
pub struct RingKey {
    pub key_id: KeyId,
    pub key: VerifyingKey,
    pub verify_until: i64,
}

/// Parsed, ready-to-verify keys. Built once per trust list, not per scan.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    keys: Vec<RingKey>,
}

impl KeyRing {
    pub fn from_payload(payload: &TrustPayload) -> Result<KeyRing, TrustError> {
        let mut keys = Vec::with_capacity(payload.keys.len());
        for k in &payload.keys {
            let key =
                parse_public_key(&k.public_key).map_err(|_| TrustError::BadKey(k.key_id.hex()))?;
            if KeyId::of(key.as_bytes()) != k.key_id {
                return Err(TrustError::BadKey(k.key_id.hex()));
            }
            keys.push(RingKey {
                key_id: k.key_id,
                key,
                verify_until: k.verify_until,
            });
        }
        Ok(KeyRing { keys })
    }

    /// Keys trusted without a time limit (tests, vectors). Invalid points are skipped.
    pub fn from_public_keys(keys: impl IntoIterator<Item = [u8; 32]>) -> KeyRing {
        KeyRing {
            keys: keys
                .into_iter()
                .filter_map(|b| VerifyingKey::from_bytes(&b).ok())
                .map(|key| RingKey {
                    key_id: KeyId::of(key.as_bytes()),
                    key,
                    verify_until: i64::MAX,
                })
                .collect(),
        }
    }

    /// Every key with this id still usable at `now` (several keys may share an id).
    pub fn candidates(&self, key_id: KeyId, now: i64) -> impl Iterator<Item = &VerifyingKey> {
        self.keys
            .iter()
            .filter(move |k| k.key_id == key_id && now <= k.verify_until)
            .map(|k| &k.key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(version: u64, keys: &[&KeyPair]) -> TrustPayload {
        TrustPayload {
            version,
            keys: keys
                .iter()
                .map(|k| TrustedKey {
                    key_id: k.key_id(),
                    public_key: k.public_b64(),
                    not_before: 0,
                    not_after: 1000,
                    verify_until: 2000,
                })
                .collect(),
        }
    }

    #[test]
    fn signed_list_verifies_and_refuses_downgrade_and_bad_signature() {
        let root = KeyPair::from_seed([3u8; 32]);
        let signer = KeyPair::from_seed([4u8; 32]);
        let list = SignedTrustList::sign(&payload(5, &[&signer]), &root);
        let got = list.verify(&root.verifying_key(), Some(4)).unwrap();
        assert_eq!(got.version, 5);
        assert!(list.verify(&root.verifying_key(), Some(5)).is_ok());
        assert_eq!(
            list.verify(&root.verifying_key(), Some(6)),
            Err(TrustError::Downgrade { got: 5, have: 6 })
        );
        let other_root = KeyPair::from_seed([5u8; 32]);
        assert!(matches!(
            list.verify(&other_root.verifying_key(), None),
            Err(TrustError::WrongRoot { .. })
        ));
        let mut forged = SignedTrustList::sign(&payload(9, &[&signer]), &other_root);
        forged.root_key_id = root.key_id().hex();
        assert_eq!(
            forged.verify(&root.verifying_key(), None),
            Err(TrustError::BadSignature)
        );
    }

    #[test]
    fn retired_key_verifies_until_verify_until() {
        let signer = KeyPair::from_seed([4u8; 32]);
        let ring = KeyRing::from_payload(&payload(1, &[&signer])).unwrap();
        assert_eq!(ring.candidates(signer.key_id(), 2000).count(), 1);
        assert_eq!(ring.candidates(signer.key_id(), 2001).count(), 0);
    }

    #[test]
    fn mismatched_key_id_is_refused() {
        let a = KeyPair::from_seed([4u8; 32]);
        let b = KeyPair::from_seed([6u8; 32]);
        let mut p = payload(1, &[&a]);
        p.keys[0].key_id = b.key_id();
        assert!(matches!(
            KeyRing::from_payload(&p),
            Err(TrustError::BadKey(_))
        ));
    }
}
