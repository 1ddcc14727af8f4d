// The migrations are embedded by `sqlx::migrate!`; a new or edited migration file must rebuild
// the crate, which cargo does not know without being told.
fn main() {
    println!("cargo:rerun-if-changed=../migrations/terminal");
}
