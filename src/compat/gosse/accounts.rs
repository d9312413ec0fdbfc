//! goSSE's accounts: who may log in, and what each may do.
//!
//! goSSE compared passwords from its environment in plain text; here each
//! account holds an argon2 or bcrypt hash (configuration refuses anything
//! else, and hashes goSSE's own variables as it reads them). Checking a
//! password is deliberately slow and memory-hungry (argon2id's default
//! costs 19 MiB), so it runs on the blocking pool, a few at a time: a flood
//! of logins queues instead of exhausting memory or the runtime's threads.
//! An unknown username costs the same as a known one, so timing does not
//! tell which accounts exist.

use std::collections::HashMap;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::secret::Secret;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Log in and open streams (goSSE's `SSE_CLIENT_*`).
    Client,
    /// And broadcast (`SSE_BROADCASTER_*`).
    Broadcaster,
    /// And stop the server (`SSE_ADMIN_*`).
    Admin,
}

impl Role {
    pub fn may_broadcast(self) -> bool {
        matches!(self, Role::Broadcaster | Role::Admin)
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Broadcaster => "broadcaster",
            Role::Admin => "admin",
        }
    }
}

/// One account as configured.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    /// An argon2 PHC string or a bcrypt hash (checked by configuration).
    pub password_hash: Secret,
    pub role: Role,
}

/// The accounts, by username.
pub struct Accounts {
    by_name: HashMap<String, (Role, Secret)>,
    /// Checked against when the username is unknown, so that costs the
    /// same as a wrong password.
    decoy: Secret,
    /// Password checks running at once.
    checks: Semaphore,
}

impl Accounts {
    pub fn new(accounts: Vec<Account>) -> Accounts {
        let by_name = accounts
            .into_iter()
            .map(|a| (a.username, (a.role, a.password_hash)))
            .collect();
        let decoy = hash_password(&crate::secret::new_id())
            .unwrap_or_else(|_| Secret::new("$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Accounts {
            by_name,
            decoy,
            checks: Semaphore::new(parallel),
        }
    }

    /// The role of `username`, when its password is right.
    pub async fn check(&self, username: &str, password: &str) -> Option<Role> {
        let (role, hash) = match self.by_name.get(username) {
            Some((role, hash)) => (Some(*role), hash.clone()),
            None => (None, self.decoy.clone()),
        };
        let _permit = self.checks.acquire().await.ok()?;
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || verify(&password, hash.expose()))
            .await
            .unwrap_or(false);
        role.filter(|_| matches)
    }

    /// The role of `username` now (a token's account may have been removed
    /// or changed since it was signed).
    pub fn role_of(&self, username: &str) -> Option<Role> {
        self.by_name.get(username).map(|(role, _)| *role)
    }
}

/// Whether `password` matches `hash` (argon2 PHC or bcrypt).
fn verify(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        return PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
    }
    bcrypt::verify(password, hash).unwrap_or(false)
}

/// An argon2id PHC string for `password` (random salt, default costs):
/// what `sser --hash-password` prints for `compat.gosse.accounts`.
pub fn hash_password(password: &str) -> Result<Secret, String> {
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| Secret::new(&hash.to_string()))
        .map_err(|e| format!("cannot hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_argon2_and_bcrypt_and_hides_unknown_users() {
        let argon = hash_password("a-pw").unwrap();
        let bcrypt = Secret::new(&bcrypt::hash("b-pw", 4).unwrap());
        let accounts = Accounts::new(vec![
            Account {
                username: "alice".into(),
                password_hash: argon,
                role: Role::Admin,
            },
            Account {
                username: "bob".into(),
                password_hash: bcrypt,
                role: Role::Client,
            },
        ]);
        assert_eq!(accounts.check("alice", "a-pw").await, Some(Role::Admin));
        assert_eq!(accounts.check("alice", "b-pw").await, None);
        assert_eq!(accounts.check("bob", "b-pw").await, Some(Role::Client));
        assert_eq!(accounts.check("bob", "").await, None);
        assert_eq!(accounts.check("carol", "a-pw").await, None);
        assert_eq!(accounts.role_of("bob"), Some(Role::Client));
        assert_eq!(accounts.role_of("carol"), None);
        assert!(Role::Admin.may_broadcast() && !Role::Client.may_broadcast());
    }
}
