//! The server's keys: the root key (signs trust lists) and the signing keys (sign QR tokens).
//!
//! Private keys are files in `<data-dir>/keys/` with mode 0600: `root.key` and
//! `signing-<key_id>.key`. Their public halves and validity are rows in `signing_keys`; the
//! trust list terminals fetch is rebuilt and signed whenever that set changes.

use crate::store::keys::KeyRecord;
use crate::store::{Store, StoreError};
use shared::keys::{KeyError, KeyPair};
use shared::trust::{KeyRing, SignedTrustList, TrustPayload, TrustedKey};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The longest a token can live (`today` validity ends at the latest at midnight) plus skew:
/// a retired key stays trusted this long after it stops signing.
pub const MAX_TOKEN_LIFETIME: i64 = 24 * 3600 + 120;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the active signing key {0} has no key file in {1}: copy signing-{0}.key there (mode 0600) from the instance that created it, or restore it from backup, or run `wallet-server keys rotate`")]
    MissingKeyFile(String, String),
    #[error("this database's signing keys were created by another server instance: copy root.key and every signing-*.key from that instance's <data-dir>/keys/ into {0} (mode 0600), then start again")]
    KeysElsewhere(String),
    #[error("stored trust list is not valid JSON: {0}")]
    BadTrustList(String),
}

/// What token issuance needs on every call, swapped whole when keys change.
pub struct ActiveKeys {
    pub signing: KeyPair,
    pub trust: SignedTrustList,
    pub trust_version: i64,
    pub ring: KeyRing,
}

pub struct Keys {
    dir: PathBuf,
    root: KeyPair,
    active: RwLock<Arc<ActiveKeys>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys(root {}, secrets hidden)", self.root.key_id())
    }
}

impl Keys {
    /// Loads the keys, creating the root key and a first signing key on a fresh database.
    ///
    /// Several instances may share one PostgreSQL, each with its own data dir: exactly one of
    /// them creates the keys (see `insert_first_key_record`); the others stop and say which
    /// files to copy from it, since a second root key would sign trust lists no enrolled
    /// terminal accepts.
    pub async fn open(dir: &Path, store: &dyn Store, now: i64) -> Result<Keys, SigningError> {
        let root_path = dir.join("root.key");
        if store.key_records().await?.is_empty() {
            create_first_keys(dir, store, now).await?;
        }
        if !root_path.exists() {
            return Err(SigningError::KeysElsewhere(dir.display().to_string()));
        }
        let root = KeyPair::load(&root_path)?;
        let active = load_active(dir, &root, store, now)
            .await
            .map_err(|e| match e {
                SigningError::BadTrustList(_) => {
                    SigningError::KeysElsewhere(dir.display().to_string())
                }
                e => e,
            })?;
        Ok(Keys {
            dir: dir.to_path_buf(),
            root,
            active: RwLock::new(Arc::new(active)),
        })
    }

    pub fn root_public_b64(&self) -> String {
        self.root.public_b64()
    }

    pub fn root(&self) -> &KeyPair {
        &self.root
    }

    pub fn active(&self) -> Arc<ActiveKeys> {
        self.active.read().expect("keys lock").clone()
    }

    /// Starts a new signing key; the old one stops signing now and stays trusted until every
    /// token it signed has expired. Publishes a new trust list.
    pub async fn rotate(&self, store: &dyn Store, now: i64) -> Result<KeyRecord, SigningError> {
        let old: Vec<KeyRecord> = store
            .key_records()
            .await?
            .into_iter()
            .filter(|k| k.not_after.is_none())
            .collect();
        let new = add_signing_key(&self.dir, store, now).await?;
        for k in old {
            store
                .retire_key(&k.key_id, now, now + MAX_TOKEN_LIFETIME)
                .await?;
        }
        self.reload(store, now).await?;
        Ok(new)
    }

    /// Picks up keys rotated by another process (a CLI command, another instance).
    pub async fn reload(&self, store: &dyn Store, now: i64) -> Result<bool, SigningError> {
        let current = self.active().trust_version;
        let fresh = load_active(&self.dir, &self.root, store, now).await?;
        let changed = fresh.trust_version != current;
        if changed {
            *self.active.write().expect("keys lock") = Arc::new(fresh);
        }
        Ok(changed)
    }
}

/// The root key and the first signing key, written to files before the database names the
/// signing key (a crash in between leaves unused files, never a record without its key). When
/// another instance got there first, the files written here are removed again.
async fn create_first_keys(dir: &Path, store: &dyn Store, now: i64) -> Result<(), SigningError> {
    let root_path = dir.join("root.key");
    let new_root = !root_path.exists();
    if new_root {
        KeyPair::generate().save(&root_path)?;
    }
    let key = KeyPair::generate();
    let key_path = dir.join(format!("signing-{}.key", key.key_id()));
    key.save(&key_path)?;
    let record = KeyRecord {
        key_id: key.key_id().hex(),
        public_key: key.public_b64(),
        not_before: now,
        not_after: None,
        verify_until: None,
        created_at: now,
    };
    match store.insert_first_key_record(&record).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            let _ = std::fs::remove_file(&key_path);
            if new_root {
                let _ = std::fs::remove_file(&root_path);
            }
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&key_path);
            Err(e.into())
        }
    }
}

async fn add_signing_key(
    dir: &Path,
    store: &dyn Store,
    now: i64,
) -> Result<KeyRecord, SigningError> {
    let key = KeyPair::generate();
    key.save(&dir.join(format!("signing-{}.key", key.key_id())))?;
    let record = KeyRecord {
        key_id: key.key_id().hex(),
        public_key: key.public_b64(),
        not_before: now,
        not_after: None,
        verify_until: None,
        created_at: now,
    };
    store.insert_key_record(&record).await?;
    Ok(record)
}

fn payload_of(records: &[KeyRecord], version: i64, now: i64) -> TrustPayload {
    TrustPayload {
        version: version as u64,
        keys: records
            .iter()
            .filter(|k| k.verify_until.is_none_or(|v| v >= now))
            .map(|k| TrustedKey {
                key_id: k
                    .key_id
                    .parse()
                    .expect("key ids are written as 8 hex digits"),
                public_key: k.public_key.clone(),
                not_before: k.not_before,
                not_after: k.not_after.unwrap_or(i64::MAX),
                verify_until: k.verify_until.unwrap_or(i64::MAX),
            })
            .collect(),
    }
}

/// Loads the active signing key and the trust list for the current key set, signing and
/// storing a new trust list version when the set changed.
async fn load_active(
    dir: &Path,
    root: &KeyPair,
    store: &dyn Store,
    now: i64,
) -> Result<ActiveKeys, SigningError> {
    let records = store.key_records().await?;
    let current = records
        .iter()
        .rev()
        .find(|k| k.not_after.is_none())
        .ok_or_else(|| {
            SigningError::MissingKeyFile("(none active)".into(), dir.display().to_string())
        })?;
    let path = dir.join(format!("signing-{}.key", current.key_id));
    if !path.exists() {
        return Err(SigningError::MissingKeyFile(
            current.key_id.clone(),
            dir.display().to_string(),
        ));
    }
    let signing = KeyPair::load(&path)?;
    let latest = store.latest_trust_list().await?;
    let latest_keys = latest
        .as_ref()
        .map(|(_, json)| decode_list(json, root))
        .transpose()?;
    let wanted: Vec<String> = payload_of(&records, 0, now)
        .keys
        .iter()
        .map(|k| format!("{}:{}", k.key_id, k.verify_until))
        .collect();
    let (version, trust) = match (latest, latest_keys) {
        (Some((v, json)), Some(have)) if have == wanted => (
            v,
            serde_json::from_str(&json).map_err(|e| SigningError::BadTrustList(e.to_string()))?,
        ),
        (latest, _) => {
            let version = latest.map(|(v, _)| v).unwrap_or(0) + 1;
            let signed = SignedTrustList::sign(&payload_of(&records, version, now), root);
            let json = serde_json::to_string(&signed).expect("serialisable");
            match store.insert_trust_list(version, &json, now).await {
                Ok(()) => (version, signed),
                // Another instance published this version first: use theirs.
                Err(StoreError::Conflict(_)) => {
                    let (v, json) = store
                        .latest_trust_list()
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    (
                        v,
                        serde_json::from_str(&json)
                            .map_err(|e| SigningError::BadTrustList(e.to_string()))?,
                    )
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let payload = trust
        .verify(&root.verifying_key(), None)
        .map_err(|e| SigningError::BadTrustList(e.to_string()))?;
    let ring =
        KeyRing::from_payload(&payload).map_err(|e| SigningError::BadTrustList(e.to_string()))?;
    Ok(ActiveKeys {
        signing,
        trust,
        trust_version: version,
        ring,
    })
}

fn decode_list(json: &str, root: &KeyPair) -> Result<Vec<String>, SigningError> {
    let signed: SignedTrustList =
        serde_json::from_str(json).map_err(|e| SigningError::BadTrustList(e.to_string()))?;
    let payload = signed
        .verify(&root.verifying_key(), None)
        .map_err(|e| SigningError::BadTrustList(e.to_string()))?;
    Ok(payload
        .keys
        .iter()
        .map(|k| format!("{}:{}", k.key_id, k.verify_until))
        .collect())
}
