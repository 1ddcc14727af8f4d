//! Rate limits kept in memory: per client address (login requests and code guesses), and the
//! per-voucher daily count of signed QR tokens.
//!
//! Token counts are not written to the database per token (the issuance target is 10,000
//! tokens/s on SQLite): each instance counts in memory and [`TokenCounter::flush`] adds the
//! counts to `token_counts` in one transaction every couple of seconds, reading back the
//! totals so that several instances see each other's counts. A crash loses at most the counts
//! of the last interval, which only loosens a rate limit for that day.

use crate::store::wallet::CountDelta;
use crate::store::{Store, StoreResult};
use chrono::NaiveDate;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use uuid::Uuid;

const SHARDS: usize = 16;

/// A map split into independently locked shards, so concurrent requests rarely wait.
pub(crate) struct Sharded<K, V> {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, V>>>,
}

impl<K: Hash + Eq, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    pub(crate) fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn each_shard(
        &self,
    ) -> impl Iterator<Item = std::sync::MutexGuard<'_, HashMap<K, V>>> {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// What an address is limited in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// `POST /wallet/login`: asking for a code.
    Login,
    /// `POST /wallet/login/verify`: guessing a code.
    Verify,
}

impl Purpose {
    /// Requests allowed per address per [`WINDOW_SECONDS`]. Generous enough for a school's
    /// parents behind one mobile-carrier NAT, tight enough to stop scripted guessing.
    pub fn limit(self) -> u32 {
        match self {
            Purpose::Login => 30,
            Purpose::Verify => 60,
        }
    }
}

pub const WINDOW_SECONDS: i64 = 600;
/// Above this many tracked addresses, stale windows are dropped at once.
const MAX_TRACKED: usize = 50_000;

/// Fixed ten-minute windows per (address, purpose).
#[derive(Default)]
pub struct AddressLimiter {
    windows: Sharded<(IpAddr, Purpose), (i64, u32)>,
}

impl AddressLimiter {
    /// Counts one request; false when the address is over its limit in the current window.
    pub fn hit(&self, addr: IpAddr, purpose: Purpose, now: i64) -> bool {
        let window = now.div_euclid(WINDOW_SECONDS);
        let mut shard = self.windows.shard(&(addr, purpose));
        if shard.len() > MAX_TRACKED / SHARDS {
            shard.retain(|_, (w, _)| *w == window);
        }
        let entry = shard.entry((addr, purpose)).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= purpose.limit() {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Forgets windows that have ended.
    pub fn purge(&self, now: i64) {
        let window = now.div_euclid(WINDOW_SECONDS);
        for mut shard in self.windows.each_shard() {
            shard.retain(|_, (w, _)| *w == window);
        }
    }
}

/// Login-code requests per phone, counted in memory for every phone alike: whether a number
/// belongs to a parent must not show in when it is refused. Unknown numbers also get a decoy
/// code here (never in the database), so that guessing at them answers like guessing at a
/// real code.
#[derive(Default)]
pub struct PhoneLimiter {
    /// phone → (ten-minute window, count, hour window, count).
    windows: Sharded<String, (i64, u32, i64, u32)>,
    /// phone → (decoy expiry, guesses taken).
    decoys: Sharded<String, (i64, i64)>,
}

impl PhoneLimiter {
    /// Counts a request; false when the phone is over `per_10_min` or `per_hour`.
    pub fn hit(&self, phone: &str, now: i64, per_10_min: u32, per_hour: u32) -> bool {
        let (ten, hour) = (now.div_euclid(600), now.div_euclid(3600));
        let key = phone.to_owned();
        let mut shard = self.windows.shard(&key);
        if shard.len() > MAX_TRACKED / SHARDS {
            shard.retain(|_, w| w.2 == hour);
        }
        let w = shard.entry(key).or_insert((ten, 0, hour, 0));
        if w.0 != ten {
            (w.0, w.1) = (ten, 0);
        }
        if w.2 != hour {
            (w.2, w.3) = (hour, 0);
        }
        if w.1 >= per_10_min || w.3 >= per_hour {
            return false;
        }
        w.1 += 1;
        w.3 += 1;
        true
    }

    /// A code that does not exist, for a number no pupil lists.
    pub fn decoy(&self, phone: &str, expires_at: i64, now: i64) {
        let key = phone.to_owned();
        let mut shard = self.decoys.shard(&key);
        if shard.len() > MAX_TRACKED / SHARDS {
            shard.retain(|_, d| d.0 > now);
        }
        if shard.len() <= MAX_TRACKED / SHARDS {
            shard.insert(key, (expires_at, 0));
        }
    }

    /// Takes a guess at a decoy: the attempts left after it, or `None` when there is no live one.
    pub fn guess_decoy(&self, phone: &str, now: i64, max_attempts: i64) -> Option<i64> {
        let key = phone.to_owned();
        let mut shard = self.decoys.shard(&key);
        let d = shard.get_mut(&key)?;
        if d.0 <= now || d.1 >= max_attempts {
            shard.remove(&key);
            return None;
        }
        d.1 += 1;
        Some(max_attempts - d.1)
    }

    /// Forgets ended windows and expired decoys.
    pub fn purge(&self, now: i64) {
        let hour = now.div_euclid(3600);
        for mut shard in self.windows.each_shard() {
            shard.retain(|_, w| w.2 == hour);
        }
        for mut shard in self.decoys.each_shard() {
            shard.retain(|_, d| d.0 > now);
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Count {
    /// The database total when last read or flushed (all instances' tokens).
    stored: i64,
    /// Tokens this instance signed since then.
    pending: i64,
}

/// Tokens signed per (voucher, service day).
#[derive(Default)]
pub struct TokenCounter {
    counts: Sharded<(Uuid, NaiveDate), Count>,
}

impl TokenCounter {
    /// Takes one token from the voucher's allowance for the day; false when none is left.
    /// Reads the stored count the first time a voucher is seen that day (after a restart).
    pub async fn try_take(
        &self,
        store: &dyn Store,
        voucher: Uuid,
        day: NaiveDate,
        limit: u32,
    ) -> StoreResult<bool> {
        let key = (voucher, day);
        let take = |c: &mut Count| {
            if c.stored + c.pending >= i64::from(limit) {
                false
            } else {
                c.pending += 1;
                true
            }
        };
        if let Some(c) = self.counts.shard(&key).get_mut(&key) {
            return Ok(take(c));
        }
        let stored = store
            .token_count(&voucher.to_string(), &day.to_string())
            .await?;
        let mut shard = self.counts.shard(&key);
        let c = shard.entry(key).or_insert(Count { stored, pending: 0 });
        Ok(take(c))
    }

    /// Tokens counted for the voucher today, as this instance knows them.
    pub fn current(&self, voucher: Uuid, day: NaiveDate) -> Option<i64> {
        let key = (voucher, day);
        self.counts
            .shard(&key)
            .get(&key)
            .map(|c| c.stored + c.pending)
    }

    /// Adds the pending counts to the database and forgets days before `today` once they are
    /// written. On failure the counts stay pending for the next flush. Returns entries written.
    pub async fn flush(&self, store: &dyn Store, today: NaiveDate) -> StoreResult<usize> {
        let mut batch: Vec<((Uuid, NaiveDate), i64)> = Vec::new();
        for mut shard in self.counts.each_shard() {
            for (key, c) in shard.iter_mut() {
                if c.pending > 0 {
                    batch.push((*key, c.pending));
                    c.stored += c.pending;
                    c.pending = 0;
                }
            }
            shard.retain(|(_, day), c| *day >= today || c.pending > 0);
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let deltas: Vec<CountDelta> = batch
            .iter()
            .map(|((v, d), n)| (v.to_string(), d.to_string(), *n))
            .collect();
        match store.add_token_counts(&deltas).await {
            Ok(totals) => {
                for ((key, _), total) in batch.iter().zip(totals) {
                    if let Some(c) = self.counts.shard(key).get_mut(key) {
                        c.stored = total;
                    }
                }
                Ok(batch.len())
            }
            Err(e) => {
                for (key, n) in &batch {
                    let mut shard = self.counts.shard(key);
                    let c = shard.entry(*key).or_default();
                    c.stored -= n;
                    c.pending += n;
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_windows() {
        let l = AddressLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t = 6_000_000;
        for _ in 0..Purpose::Login.limit() {
            assert!(l.hit(a, Purpose::Login, t));
        }
        assert!(!l.hit(a, Purpose::Login, t + 1));
        assert!(l.hit(a, Purpose::Verify, t + 1), "purposes are separate");
        assert!(l.hit(b, Purpose::Login, t + 1), "addresses are separate");
        assert!(l.hit(a, Purpose::Login, t + WINDOW_SECONDS), "a new window");
        l.purge(t + 2 * WINDOW_SECONDS);
        assert!(l.windows.each_shard().all(|s| s.is_empty()));
    }
}
