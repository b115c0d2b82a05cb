//! Passwords as GoTrue: bcrypt cost 10 (`$2a$`/`$2b$`/`$2y$` read), hashing and checking on the
//! blocking pool so sign-ins never stall the runtime, and the configurable policy whose failures
//! are 422 `weak_password` with reasons.

use manifold_config::AuthConfig;

use super::error::AuthError;

/// GoTrue's bcrypt cost.
const BCRYPT_COST: u32 = 10;
/// bcrypt only reads the first 72 bytes; GoTrue refuses longer passwords.
const MAX_PASSWORD_BYTES: usize = 72;

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const SYMBOLS: &str = "!@#$%^&*()_+-=[]{};':\"|<>?,./`~";

/// Hashes `password` with bcrypt cost 10 (`$2b$`; GoTrue's `$2a$` reads the same).
pub(crate) async fn hash(password: &str) -> Result<String, AuthError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST))
        .await
        .map_err(AuthError::internal)?
        .map_err(AuthError::internal)
}

/// True when `password` matches `hash`. A missing or unreadable hash never matches, after the
/// same work as a real check.
pub(crate) async fn verify(password: &str, hash: &str) -> Result<bool, AuthError> {
    let password = password.to_owned();
    let usable = is_bcrypt(hash);
    let hash = usable.then(|| hash.to_owned());
    let matched = tokio::task::spawn_blocking(move || {
        let hash = hash.as_deref().unwrap_or_else(|| dummy_hash());
        bcrypt::verify(password, hash)
    })
    .await
    .map_err(AuthError::internal)?
    .unwrap_or(false);
    Ok(usable && matched)
}

/// A hash checked when the user does not exist, so unknown emails take as long as wrong
/// passwords (no user enumeration by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        bcrypt::hash(crate::keys::random_token(16), BCRYPT_COST).unwrap_or_default()
    })
}

/// True for a bcrypt hash GoTrue accepts on import.
pub(crate) fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
        && hash.len() == 60
}

/// The cost of a bcrypt hash; GoTrue re-hashes other costs at the next successful login.
pub(crate) fn needs_rehash(hash: &str) -> bool {
    hash.get(4..6)
        .and_then(|cost| cost.parse::<u32>().ok())
        .is_some_and(|cost| cost != BCRYPT_COST)
}

/// The policy's verdict on a password: `Ok` or the reasons it is weak.
pub(crate) fn weakness(config: &AuthConfig, password: &str) -> Option<AuthError> {
    let mut reasons = Vec::new();
    let mut messages = Vec::new();
    if password.chars().count() < config.password_min_length {
        reasons.push("length");
        messages.push(format!(
            "Password should be at least {} characters.",
            config.password_min_length
        ));
    }
    let classes: &[&str] = match config.password_requirements.as_str() {
        "letters_digits" => &[
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
            DIGITS,
        ],
        "lower_upper_letters_digits" => &[LOWER, UPPER, DIGITS],
        "lower_upper_letters_digits_symbols" => &[LOWER, UPPER, DIGITS, SYMBOLS],
        _ => &[],
    };
    if !classes.is_empty()
        && !classes
            .iter()
            .all(|class| password.chars().any(|c| class.contains(c)))
    {
        reasons.push("characters");
        let listed: Vec<&str> = classes.to_vec();
        messages.push(format!(
            "Password should contain at least one character of each: {}.",
            listed.join(", ")
        ));
    }
    if reasons.is_empty() {
        None
    } else {
        Some(AuthError::WeakPassword {
            message: messages.join(" "),
            reasons,
        })
    }
}

/// Checks a new password: policy first, then bcrypt's length limit.
pub(crate) fn check_new(config: &AuthConfig, password: &str) -> Result<(), AuthError> {
    if let Some(weak) = weakness(config, password) {
        return Err(weak);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AuthError::validation(
            "Password cannot be longer than 72 characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bcrypt_round_trip_and_gotrue_hashes() {
        let hashed = hash("secret-pw").await.unwrap();
        assert!(hashed.starts_with("$2b$10$"));
        assert!(verify("secret-pw", &hashed).await.unwrap());
        assert!(!verify("other", &hashed).await.unwrap());
        // A `$2a$` hash as GoTrue writes them.
        let gotrue = hashed.replacen("$2b$", "$2a$", 1);
        assert!(verify("secret-pw", &gotrue).await.unwrap());
        assert!(!verify("x", "").await.unwrap());
        assert!(!needs_rehash(&hashed));
        assert!(needs_rehash(
            "$2a$12$abcdefghijklmnopqrstuuVLa5ZGW7fKLnD4p2cS5wd6GJ2oNvC8q"
        ));
    }

    #[test]
    fn policy_reasons() {
        let mut config = AuthConfig::default();
        let Some(AuthError::WeakPassword { reasons, message }) = weakness(&config, "abc") else {
            panic!("short password accepted");
        };
        assert_eq!(reasons, ["length"]);
        assert_eq!(message, "Password should be at least 6 characters.");
        assert!(weakness(&config, "abcdef").is_none());
        config.password_requirements = "lower_upper_letters_digits".into();
        let Some(AuthError::WeakPassword { reasons, .. }) = weakness(&config, "abcdefgh") else {
            panic!("missing classes accepted");
        };
        assert_eq!(reasons, ["characters"]);
        assert!(weakness(&config, "abcDEF12").is_none());
    }
}
