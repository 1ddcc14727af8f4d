//! Finds the first two keys of `collision_seed(0..)` whose 4-byte key ids are equal; the test
//! vectors pin that pair in `COLLIDING`. A 32-bit id collides after about 2^16 keys, so this
//! takes a few seconds in release mode:
//!
//! `cargo run --release -p tamaq-shared --example find_key_id_collision`

#[path = "../tests/vectors/generate.rs"]
#[allow(dead_code)]
mod generate;

use shared::{KeyId, KeyPair};
use std::collections::HashMap;

fn main() {
    let mut seen: HashMap<KeyId, u32> = HashMap::new();
    for n in 0u32.. {
        let id = KeyPair::from_seed(generate::collision_seed(n)).key_id();
        if let Some(first) = seen.insert(id, n) {
            println!("key id {id} shared by collision seeds {first} and {n}");
            let (pinned_first, pinned_second) = generate::COLLIDING;
            if (first, n) != (pinned_first, pinned_second) {
                println!("the vectors pin ({pinned_first}, {pinned_second}): update COLLIDING");
                std::process::exit(1);
            }
            return;
        }
    }
}
