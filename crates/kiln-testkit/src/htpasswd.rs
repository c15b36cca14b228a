//! htpasswd entries with bcrypt hashes (the only kind distribution 2.8 accepts).

/// One `user:$2b$...` line. Cost 4 (the minimum) keeps tests fast.
pub fn line(username: &str, password: &str) -> String {
    let hash = bcrypt::hash(password, 4).expect("bcrypt hashing");
    format!("{username}:{hash}\n")
}
