//! Identity tokens: who a connection is (application, user, device, the
//! topics it may follow, until when), carried by a signed JWT.
//!
//! Topics alone cannot serve an application that wants to notify one of its
//! users on every device, or know who is online. This layer turns a token
//! into an [`Identity`]; the hub and the HTTP layer build targeted delivery,
//! presence and take-over on it. It knows nothing of HTTP: the caller finds
//! the token (header, query, cookie) and maps a [`TokenError`] to a 401
//! (or, for [`TokenError::KeysUnavailable`], a 503).
//!
//! - keys ([`keys`]): an HMAC secret (HS256/384/512), PEM keys pinned to one
//!   algorithm each (RS*/PS*, ES256/384, EdDSA), and a JWKS file or URL
//!   ([`jwks`]) refreshed on an interval and on an unknown `kid`;
//! - verification ([`verify`]): `alg: none` and unconfigured algorithms are
//!   refused before any key is tried; then the signature, `exp` (required
//!   unless configured otherwise), `nbf`, `iat` (with a leeway) and `aud`
//!   (when configured) are checked;
//! - claims ([`claims`]): configurable claim names map to the identity
//!   (`sub` → user, `iss` → application, falling back to a default, `device`,
//!   `topics`: see [`selector`] for the selector grammar);
//! - minting ([`mint`]): a back-end's request becomes a token, within a
//!   maximum lifetime, when a signing key is configured.
//!
//! [`Tokens`] holds all of it; [`IdentitySettings`] configures it.

pub mod claims;
pub mod error;
pub(crate) mod jwks;
pub(crate) mod keys;
pub mod mint;
pub mod selector;
pub mod settings;
mod tokens;
pub(crate) mod verify;

pub use claims::Identity;
pub use error::{MintError, SetupError, TokenError};
pub use mint::{MintRequest, Minted};
pub use selector::{InvalidSelector, TopicSelector};
pub use settings::{
    Algorithm, ClaimNames, IdentitySettings, JwksSettings, JwksSource, KeySettings,
};
pub use tokens::Tokens;
pub use verify::MAX_TOKEN_LEN;
